"""Where inputs live: local paths or URIs that pyarrow's filesystems open (file://, s3://, gs://, ...).

A URI is told apart from a local path by its scheme (`scheme://`). Local paths stay plain strings
(made absolute, so that Ray workers with another working directory find them); URIs keep the form
the user wrote, since that is the name the results must carry.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runtime.decode import VIDEO_SUFFIXES
from runtime.errors import StamError, VideoError


def is_uri(path: str) -> bool:
    """True for `scheme://...` (a Windows drive letter `C:\\` is not a scheme)."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").isalnum()


def resolve(uri: str):
    """(pyarrow FileSystem, path inside it) for a URI; one line naming the URI when it cannot be used."""
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except (ValueError, OSError, ImportError) as error:
        raise StamError(f"{uri}: cannot open this URI ({' '.join(str(error).split())})") from None


def join_uri(uri: str, fs_path: str, base_fs_path: str) -> str:
    """The URI of `fs_path`, a file found under the directory `uri` (whose filesystem path is `base_fs_path`)."""
    relative = fs_path[len(base_fs_path) :].lstrip("/")
    return f"{uri.rstrip('/')}/{relative}"


def is_video_name(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_SUFFIXES


def uri_kind(uri: str) -> str:
    """'file', 'directory' or 'missing', as the URI's filesystem reports it."""
    from pyarrow import fs

    filesystem, path = resolve(uri)
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.Directory:
        return "directory"
    return "file" if info.type == fs.FileType.File else "missing"


def list_uri_videos(uri: str) -> list[str]:
    """Video URIs under the directory `uri` (recursively, by suffix), sorted: `list_videos` for URIs."""
    from pyarrow import fs

    filesystem, base = resolve(uri)
    selector = fs.FileSelector(base, recursive=True)
    found = [
        info.path
        for info in filesystem.get_file_info(selector)
        if info.type == fs.FileType.File and is_video_name(info.path)
    ]
    return sorted(join_uri(uri, path, base) for path in found)


def read_uri_text(uri: str) -> bytes:
    filesystem, path = resolve(uri)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


@contextmanager
def local_file(path: str) -> Iterator[str]:
    """A local path for `path`: itself when local (or file://), else a temporary copy, removed afterwards.

    FFmpeg seeks back and forth in MP4s, so a remote object is copied whole rather than streamed.
    """
    if not is_uri(path):
        yield path
        return
    from pyarrow import fs

    filesystem, inner = resolve(path)
    if isinstance(filesystem, fs.LocalFileSystem):
        yield inner
        return
    with tempfile.TemporaryDirectory(prefix="stam-batch-") as folder:
        copy = os.path.join(folder, "video" + Path(inner).suffix)
        try:
            with filesystem.open_input_file(inner) as source, open(copy, "wb") as target:
                shutil.copyfileobj(source, target, length=1 << 22)
        except FileNotFoundError:
            raise VideoError(f"{path}: no such file") from None
        except OSError as error:
            raise VideoError(f"{path}: cannot be read ({' '.join(str(error).split())})") from None
        yield copy
