"""The listing step: INPUT arguments (files, folders, manifests; local or URIs) to one list of video paths.

- a folder (local or URI) stands for the videos under it, recursively, with the runtime's suffixes;
- a manifest is `.txt` (one path a line; blank lines and `#` comments skipped) or `.csv` / `.parquet`
  with a `path` column; relative entries are relative to the manifest's folder, so a manifest
  travels with its videos;
- anything else is a video path, kept even when missing so that it becomes an error row of its own.

Local paths are made absolute (Ray workers do not share the driver's working directory); the
list keeps the first occurrence of each path, so an input listed twice is classified once.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from batch import sources
from runtime.decode import list_videos
from runtime.errors import StamError

MANIFEST_SUFFIXES = (".txt", ".csv", ".parquet")
PATH_COLUMN = "path"


def list_inputs(entries: Sequence[str]) -> list[str]:
    """Every video the INPUT arguments name, in order, each once; StamError (exit 2) when there is none."""
    paths = unique(path for entry in entries for path in expand(entry, allow_manifest=True))
    if not paths:
        raise StamError(f"no videos in {', '.join(entries)}")
    return paths


def unique(paths: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(paths))


def expand(entry: str, allow_manifest: bool) -> list[str]:
    """One INPUT argument (or manifest line) as the video paths it stands for."""
    suffix = Path(entry.rstrip("/")).suffix.lower()
    if allow_manifest and suffix in MANIFEST_SUFFIXES:
        return [path for line in read_manifest(entry) for path in expand(line, allow_manifest=False)]
    if sources.is_uri(entry):
        kind = sources.uri_kind(entry)
        return sources.list_uri_videos(entry) if kind == "directory" else [entry]
    if Path(entry).is_dir():
        return [os.path.abspath(path) for path in list_videos(entry)]
    return [os.path.abspath(entry)]


def read_manifest(manifest: str) -> list[str]:
    """The entries of a manifest, relative ones joined to the manifest's folder."""
    data = read_bytes(manifest)
    suffix = Path(manifest).suffix.lower()
    if suffix == ".parquet":
        entries = parquet_paths(data, manifest)
    elif suffix == ".csv":
        entries = csv_paths(data.decode("utf-8-sig"), manifest)
    else:
        lines = (line.strip() for line in data.decode("utf-8-sig").splitlines())
        entries = [line for line in lines if line and not line.startswith("#")]
    return [relative_to_manifest(entry, manifest) for entry in entries]


def read_bytes(manifest: str) -> bytes:
    if sources.is_uri(manifest):
        try:
            return sources.read_uri_text(manifest)
        except (FileNotFoundError, OSError) as error:
            raise StamError(f"{manifest}: cannot read this manifest ({' '.join(str(error).split())})") from None
    try:
        return Path(manifest).read_bytes()
    except OSError as error:
        raise StamError(f"{manifest}: cannot read this manifest ({error.strerror or error})") from None


def csv_paths(text: str, manifest: str) -> list[str]:
    reader = csv.DictReader(io.StringIO(text))
    if PATH_COLUMN not in (reader.fieldnames or []):
        raise StamError(f"{manifest}: a CSV manifest needs a {PATH_COLUMN!r} column (found {reader.fieldnames})")
    return [row[PATH_COLUMN].strip() for row in reader if (row[PATH_COLUMN] or "").strip()]


def parquet_paths(data: bytes, manifest: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as error:
        raise StamError(f"{manifest}: not a readable Parquet file ({' '.join(str(error).split())})") from None
    if PATH_COLUMN not in table.column_names:
        raise StamError(f"{manifest}: a Parquet manifest needs a {PATH_COLUMN!r} column (found {table.column_names})")
    return [str(value).strip() for value in table.column(PATH_COLUMN).to_pylist() if value and str(value).strip()]


def relative_to_manifest(entry: str, manifest: str) -> str:
    if sources.is_uri(entry) or os.path.isabs(entry):
        return entry
    if sources.is_uri(manifest):
        return f"{manifest.rsplit('/', 1)[0]}/{entry}"
    return str(Path(manifest).parent / entry)
