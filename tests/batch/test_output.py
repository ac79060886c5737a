"""The output folder: parts appear whole or not at all, and what is done is read back from them."""

from __future__ import annotations

import json

import pyarrow.dataset as ds
import pytest

from batch.output import JOB_FILE, OutputDir
from batch.schema import Decoded, ModelId, result_row, rows_to_table
from runtime.errors import StamError

MODEL = ModelId("m.onnx", "0" * 64)
JOB = {"model": MODEL.as_dict(), "frames": 8, "sampling": "uniform", "topk": 5, "logits": False}


def error_rows(*paths: str):
    rows = [
        result_row(Decoded(p, 8, "uniform", [], 1.0, error=f"{p}: no such file"), None, MODEL, None, False)
        for p in paths
    ]
    return rows_to_table(rows, with_logits=False)


def test_finished_paths_and_failures_come_from_the_part_files(tmp_path):
    out = OutputDir(str(tmp_path / "out"))
    out.prepare(JOB)
    out.write_part(error_rows("/v/a.mp4", "/v/b.mp4"))
    out.write_part(error_rows("/v/c.mp4"))
    again = OutputDir(str(tmp_path / "out")).finished()  # a new object: nothing carried in memory
    assert again.paths == {"/v/a.mp4", "/v/b.mp4", "/v/c.mp4"} and again.failures == 3


def test_a_part_name_depends_on_its_paths_so_a_retried_write_replaces_itself(tmp_path):
    out = OutputDir(str(tmp_path))
    first = out.write_part(error_rows("/v/b.mp4", "/v/a.mp4"))
    second = out.write_part(error_rows("/v/a.mp4", "/v/b.mp4"))
    assert first == second and out.part_names() == [first]


def test_temporaries_of_a_killed_run_are_never_read_and_are_removed(tmp_path):
    out = OutputDir(str(tmp_path))
    out.write_part(error_rows("/v/a.mp4"))
    (tmp_path / ".part-deadbeef.parquet.0123.tmp").write_bytes(b"PAR1 half a file")
    assert ds.dataset(tmp_path, format="parquet").to_table().num_rows == 1  # readers skip dot-names
    assert out.finished().paths == {"/v/a.mp4"}
    out.prepare(JOB)
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOB_FILE, *out.part_names()]


def test_resuming_with_other_settings_is_refused(tmp_path):
    OutputDir(str(tmp_path)).prepare(JOB)
    OutputDir(str(tmp_path)).prepare(JOB)  # same settings: fine
    with pytest.raises(StamError, match="another job.*frames 8 -> 16"):
        OutputDir(str(tmp_path)).prepare({**JOB, "frames": 16})
    assert json.loads((tmp_path / JOB_FILE).read_text())["frames"] == 8


def test_a_file_uri_output_folder_works_like_a_local_one(tmp_path):
    out = OutputDir((tmp_path / "res").as_uri())
    out.prepare(JOB)
    out.write_part(error_rows("s3://bucket/a.mp4"))
    assert OutputDir(str(tmp_path / "res")).finished().paths == {"s3://bucket/a.mp4"}
