"""The pipeline's steps without Ray: decode rows, classify batches (padding, errors), write parts."""

from __future__ import annotations

import numpy as np
import pytest

from batch.schema import ModelId
from batch.steps import Classify, ClassifyOptions, decode_video, write_part
from runtime import clips, open_model
from runtime.results import VideoResult
from tests.runtime.conftest import build_mean_rgb

MODEL_ID = ModelId("mean_rgb.onnx", "f" * 64)


def as_batch(rows: list[dict]) -> dict[str, np.ndarray]:
    """Rows as Ray hands them to `map_batches(batch_format="numpy")`."""
    batch = {key: np.array([row[key] for row in rows], dtype=object) for key in rows[0] if key != "pixels"}
    batch["pixels"] = np.stack([row["pixels"] for row in rows])
    batch["frames"] = batch["frames"].astype(np.int64)
    batch["decode_ms"] = batch["decode_ms"].astype(np.float64)
    return batch


def test_decode_returns_exactly_what_the_runtime_loads(corpus):
    row = decode_video({"path": str(corpus["c"])}, num_frames=5, sampling="uniform")
    pixels, notes = clips.load_clip(str(corpus["c"]), 5, "uniform")
    np.testing.assert_array_equal(row["pixels"], pixels)
    assert (row["error"], row["notes"], row["frames"], row["sampling"]) == ("", notes, 5, "uniform")
    assert row["decode_ms"] > 0


def test_decode_keeps_the_runtimes_sampling_notes(corpus):
    row = decode_video({"path": str(corpus["d"])}, num_frames=4, sampling="reference")
    assert row["error"] == "" and row["notes"]  # a 6-frame video is shorter than the reference's 10 s


@pytest.mark.parametrize(
    "name, reason", [("random", "not a readable video"), ("empty", "not a readable video"), ("truncated", "")]
)
def test_a_bad_video_becomes_an_error_row_with_zero_pixels(corpus, name, reason):
    path = str(corpus["broken"] / f"{name}.mp4")
    row = decode_video({"path": path}, num_frames=4, sampling="uniform")
    assert row["error"].startswith(f"{path}: ") and reason in row["error"] and "\n" not in row["error"]
    assert row["pixels"].shape == (4, 3, 224, 224) and not row["pixels"].any()


def test_a_file_uri_decodes_the_same_pixels_and_errors_name_the_uri(corpus):
    by_uri = decode_video({"path": corpus["a"].as_uri()}, num_frames=4, sampling="uniform")
    by_path = decode_video({"path": str(corpus["a"])}, num_frames=4, sampling="uniform")
    np.testing.assert_array_equal(by_uri["pixels"], by_path["pixels"])
    missing = (corpus["root"] / "gone.mp4").as_uri()
    row = decode_video({"path": missing}, num_frames=4, sampling="uniform")
    assert row["error"] == f"{missing}: no such file"


def expected_result(model_path, video, frames=4) -> VideoResult:
    with open_model(model_path) as model:
        pixels, _ = clips.load_clip(str(video), frames, "uniform")
        return VideoResult.from_logits(str(video), model.run(pixels[None])[0], model.labels, 3)


@pytest.mark.parametrize("fixed_batch", [None, 2])
def test_classify_equals_the_runtime_and_passes_errors_through(corpus, tmp_path, mean_rgb_model, fixed_batch):
    """A model with a fixed batch of 2 gets chunks of 2 and a padded last chunk; rows keep their order."""
    dims = ("batch" if fixed_batch is None else fixed_batch, "frames", 3, 224, 224)
    model_path = build_mean_rgb(tmp_path / "m.onnx", dims=dims)
    videos = [corpus["a"], corpus["broken"] / "empty.mp4", corpus["b"], corpus["c"]]
    rows = [decode_video({"path": str(v)}, num_frames=4, sampling="uniform") for v in videos]
    table = Classify(str(model_path), MODEL_ID, ClassifyOptions(topk=3, with_logits=True))(as_batch(rows))
    out = table.to_pylist()
    assert [row["path"] for row in out] == [str(v) for v in videos]
    for row, video in zip(out, videos):
        if video.name == "empty.mp4":
            assert row["error"] and row["label"] is None and row["topk"] == [] and row["logits"] is None
            continue
        expected = expected_result(mean_rgb_model, video)  # one video at a time, dynamic batch
        assert row["error"] is None and row["topk"] == [vars(p) for p in expected.predictions]
        assert (row["label"], row["probability"]) == (
            expected.predictions[0].label,
            expected.predictions[0].probability,
        )
        np.testing.assert_allclose(row["logits"], expected.logits, rtol=0, atol=1e-6)
        assert row["model"] == MODEL_ID.as_dict() and row["infer_ms"] > 0


def test_write_part_reports_what_it_wrote(corpus, tmp_path, mean_rgb_model):
    rows = [
        decode_video({"path": str(v)}, num_frames=4, sampling="uniform")
        for v in (corpus["a"], corpus["broken"] / "random.mp4")
    ]
    table = Classify(str(mean_rgb_model), MODEL_ID, ClassifyOptions(topk=2, with_logits=False))(as_batch(rows))
    summary = write_part(table, str(tmp_path)).to_pylist()
    assert summary == [{"part": summary[0]["part"], "videos": 2, "failures": 1}]
    assert (tmp_path / summary[0]["part"]).is_file()
