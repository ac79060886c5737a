"""The output folder: Parquet part files written whole or not at all, and what is done, read back from them.

Resuming needs no state in memory: a video is done when its path is in the `path` column of a
part file. A part is written under a dot-name (which readers skip: pyarrow datasets, pandas and
Ray ignore `.` and `_` prefixes) and renamed into place only once complete, so a run killed at any
moment leaves complete parts and garbage temporaries, never half a part. A part's name is a hash of
the paths it holds: a write that Ray retries after the rename rewrites the same file, not a copy.

`_job.json` records the settings the rows depend on (model hash, frames, sampling, top-k, logits,
backend and precision);
resuming with other settings is refused rather than mixing two jobs in one folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

from batch import sources
from runtime.errors import StamError

PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
JOB_FILE = "_job.json"
TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class Finished:
    """What earlier runs wrote: every path with a row, and how many of those rows are errors."""

    paths: set[str]
    failures: int


class OutputDir:
    """A results folder, local or on any filesystem pyarrow opens (shared storage for a cluster)."""

    def __init__(self, location: str):
        self.location = location
        if sources.is_uri(location):
            self.fs, self.root = sources.resolve(location)
        else:
            self.fs, self.root = fs.LocalFileSystem(), os.path.abspath(location)
        # How workers on other processes (or nodes) reopen this folder.
        self.address = location if sources.is_uri(location) else self.root
        self.local = isinstance(self.fs, fs.LocalFileSystem)

    def prepare(self, job: dict) -> None:
        """Create the folder, drop temporaries of killed runs, and record or check the job's settings."""
        try:
            self.fs.create_dir(self.root, recursive=True)
            for name in self._names():
                if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                    self.fs.delete_file(self._join(name))
            self._check_job(job)
        except OSError as error:  # object stores: no such bucket, access denied, no endpoint
            reason = " ".join(str(error).split())
            raise StamError(f"{self.location}: cannot use the output folder ({reason})") from None

    def part_names(self) -> list[str]:
        return sorted(n for n in self._names() if n.startswith(PART_PREFIX) and n.endswith(PART_SUFFIX))

    def finished(self) -> Finished:
        """The paths already in part files (read from the files, one column at a time)."""
        paths: set[str] = set()
        failures = 0
        for name in self.part_names():
            table = pq.read_table(self._join(name), columns=["path", "error"], filesystem=self.fs)
            paths.update(table.column("path").to_pylist())
            failures += table.num_rows - table.column("error").null_count
        return Finished(paths, failures)

    def write_part(self, table: pa.Table) -> str:
        """Write `table` as one part, atomically; returns the part's name."""
        digest = hashlib.sha256("\n".join(sorted(table.column("path").to_pylist())).encode()).hexdigest()
        name = f"{PART_PREFIX}{digest[:24]}{PART_SUFFIX}"
        self._write_atomically(name, lambda sink: pq.write_table(table, sink))
        return name

    def _check_job(self, job: dict) -> None:
        path = self._join(JOB_FILE)
        if self.fs.get_file_info(path).type == fs.FileType.NotFound:
            text = json.dumps(job, indent=2, sort_keys=True) + "\n"
            self._write_atomically(JOB_FILE, lambda sink: sink.write(text.encode()))
            return
        with self.fs.open_input_stream(path) as stream:
            try:
                recorded = json.loads(stream.read())
            except ValueError:
                raise StamError(
                    f"{self.location}/{JOB_FILE}: not readable JSON; is this a stam-batch folder?"
                ) from None
        changed = [
            f"{key} {recorded.get(key)!r} -> {value!r}" for key, value in job.items() if recorded.get(key) != value
        ]
        if changed:
            raise StamError(
                f"{self.location} holds results of another job ({'; '.join(changed)}): "
                "rerun with the same settings, or use another --out"
            )

    def _write_atomically(self, name: str, write) -> None:
        temp = self._join(f".{name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
        final = self._join(name)
        if self.local:
            with open(temp, "wb") as sink:
                write(sink)
                sink.flush()
                os.fsync(sink.fileno())  # survives a node losing power, not only a killed process
            os.replace(temp, final)
        else:
            with self.fs.open_output_stream(temp) as sink:
                write(sink)
            self.fs.move(temp, final)  # object stores: the final object appears whole or not at all

    def _names(self) -> list[str]:
        selector = fs.FileSelector(self.root, allow_not_found=True)
        return [info.base_name for info in self.fs.get_file_info(selector) if info.type == fs.FileType.File]

    def _join(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"
