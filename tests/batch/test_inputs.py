"""The listing step: folders, manifests and URIs become one list of absolute paths, each once."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.inputs import list_inputs
from batch.sources import is_uri
from runtime.errors import StamError


def test_folders_are_listed_recursively_by_video_suffix(corpus):
    listed = list_inputs([str(corpus["videos"])])
    expected = [corpus["a"], corpus["b"], corpus["c"], corpus["d"]]
    assert listed == [str(p) for p in sorted(expected)]
    assert all(os.path.isabs(p) for p in listed)


def test_relative_paths_become_absolute_and_duplicates_are_listed_once(corpus, monkeypatch):
    monkeypatch.chdir(corpus["root"])
    listed = list_inputs(["videos/a.mp4", str(corpus["a"]), "videos/sub", "./videos/sub/c.mp4"])
    assert listed == [str(corpus["a"]), str(corpus["c"]), str(corpus["d"])]


def test_a_missing_video_stays_so_that_it_fails_on_its_own_row(corpus):
    missing = corpus["root"] / "gone.mp4"
    assert list_inputs([str(missing)]) == [str(missing)]


def test_txt_manifest_with_comments_and_paths_relative_to_it(corpus):
    manifest = corpus["root"] / "lists" / "todo.txt"
    manifest.parent.mkdir(exist_ok=True)
    manifest.write_text(f"# a comment\n../videos/a.mp4\n\n{corpus['d']}\n../videos/sub\n")
    assert list_inputs([str(manifest)]) == [str(corpus["a"]), str(corpus["d"]), str(corpus["c"])]


def test_csv_and_parquet_manifests_read_their_path_column(corpus):
    csv_manifest = corpus["root"] / "todo.csv"
    csv_manifest.write_text(f"id,path\n1,videos/b.mkv\n2,{corpus['c']}\n")
    parquet_manifest = corpus["root"] / "todo.parquet"
    pq.write_table(pa.table({"path": ["videos/a.mp4", str(corpus["b"])], "x": [1, 2]}), parquet_manifest)
    assert list_inputs([str(csv_manifest)]) == [str(corpus["b"]), str(corpus["c"])]
    assert list_inputs([str(parquet_manifest)]) == [str(corpus["a"]), str(corpus["b"])]


@pytest.mark.parametrize("suffix, content", [(".csv", b"file\nvideos/a.mp4\n"), (".parquet", b"not parquet")])
def test_a_manifest_without_a_path_column_is_one_clear_error(corpus, suffix, content):
    manifest = corpus["root"] / f"bad{suffix}"
    manifest.write_bytes(content)
    with pytest.raises(StamError, match="path|Parquet"):
        list_inputs([str(manifest)])


def test_file_uris_list_folders_and_keep_the_uri_form(corpus):
    folder_uri = corpus["videos"].as_uri()
    listed = list_inputs([folder_uri + "/sub", corpus["a"].as_uri()])
    assert listed == [corpus["c"].as_uri(), corpus["d"].as_uri(), corpus["a"].as_uri()]
    assert all(is_uri(p) for p in listed)


def test_a_manifest_by_uri_resolves_relative_entries_against_its_folder(corpus):
    manifest = corpus["root"] / "by_uri.txt"
    manifest.write_text("videos/a.mp4\n")
    assert list_inputs([manifest.as_uri()]) == [corpus["a"].as_uri()]


def test_no_videos_at_all_is_one_error(corpus, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StamError, match="no videos in"):
        list_inputs([str(tmp_path / "empty")])
    with pytest.raises(StamError, match="cannot read this manifest"):
        list_inputs([str(tmp_path / "missing.txt")])


def test_windows_drive_letters_and_plain_paths_are_not_uris():
    assert not is_uri("C:\\videos\\a.mp4") and not is_uri("videos/a.mp4") and not is_uri(str(Path("/x/y.mp4")))
    assert is_uri("s3://bucket/key.mp4") and is_uri("file:///tmp/a.mp4") and is_uri("gs://b/k")
