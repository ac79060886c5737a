"""benchmarks.accuracy: folder-to-label matching, scoring, bad videos, and the command line."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.accuracy import Options, discover, evaluate, main, normalize_name, open_classifier, score, spread
from benchmarks.motion.generate import plan_dataset, render, write_video
from runtime.errors import StamError


@pytest.fixture(scope="module")
def small_val_dir(tmp_path_factory):
    """Two class folders named like tiny_labels (underscores), one video each, plus a corrupt file."""
    root = tmp_path_factory.mktemp("val")
    spec = replace(plan_dataset(1, 0)[0], width=160, height=120, num_frames=12)
    for folder in ("class_0", "class_3"):
        (root / folder).mkdir()
        write_video(render(spec), root / folder / "a.mp4", spec.fps)
    (root / "class_3" / "broken.mp4").write_bytes(b"not a video")
    return root


def test_names_match_across_download_conventions():
    assert normalize_name("passing_American_football_(in_game)") == normalize_name(
        "passing American football (in game)"
    )
    assert normalize_name('"Abseiling"') == "abseiling"


def test_discover_maps_folders_to_label_indices(small_val_dir, tiny_labels):
    samples, names = discover(small_val_dir, tiny_labels)
    assert names == tiny_labels
    assert sorted({s.target for s in samples}) == [0, 3]


def test_discover_falls_back_to_sorted_folders_without_labels(small_val_dir):
    samples, names = discover(small_val_dir, [])
    assert names == ["class_0", "class_3"] and sorted({s.target for s in samples}) == [0, 1]


def test_discover_refuses_folders_that_match_no_label(small_val_dir):
    with pytest.raises(StamError, match="match no model label"):
        discover(small_val_dir, ["archery", "bowling"])


def test_score_top1_top5_and_confusions():
    logits = np.array([[3, 2, 1, 0, 0, 0], [0, 3, 2, 1, 0, 0], [-1, 0, 0, 0, 1, 2]], dtype=np.float32)
    result = score(logits, np.array([0, 2, 0]), list("abcdef"))
    assert result.top1 == pytest.approx(1 / 3)
    assert result.top5 == pytest.approx(2 / 3)  # video 3's target ranks 6th
    assert result.per_class["a"] == {"videos": 2, "top1": 0.5}
    assert {(c["true"], c["predicted"]) for c in result.confusions} == {("c", "b"), ("a", "f")}


def test_spread_takes_every_class_first(small_val_dir, tiny_labels):
    samples, _ = discover(small_val_dir, tiny_labels)
    assert {s.target for s in spread(samples, 2)} == {0, 3}


def test_bad_videos_are_counted_not_fatal(small_val_dir, tiny_onnx, tiny_labels):
    model = open_classifier(tiny_onnx)
    samples, names = discover(small_val_dir, model.labels)
    result = evaluate(model, samples, names, Options(frames=4, batch_size=2, workers=2))
    assert result.score.videos == 2 and len(result.failures) == 1
    assert result.failures[0]["path"].endswith("broken.mp4")
    assert result.logits.shape == (2, len(tiny_labels))


def test_checkpoint_and_onnx_give_the_same_predictions(small_val_dir, tiny_onnx, tiny_checkpoint, tiny_labels):
    options = Options(frames=4, batch_size=2, workers=1)
    results = []
    for artifact in (tiny_onnx, tiny_checkpoint):
        model = open_classifier(artifact, tiny_labels)
        samples, names = discover(small_val_dir, model.labels)
        results.append(evaluate(model, samples, names, options).logits)
    np.testing.assert_allclose(results[0], results[1], atol=1e-4)


def test_command_line_writes_json(small_val_dir, tiny_onnx, tmp_path, capsys):
    out = tmp_path / "acc.json"
    assert main([str(tiny_onnx), "--val-dir", str(small_val_dir), "--frames", "4", "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert data["failed"] == 1 and data["frames"] == 4 and 0 <= data["top1"] <= 1
    assert "failed videos" in capsys.readouterr().out


def test_command_line_reports_a_missing_directory(tiny_onnx, tmp_path, capsys):
    assert main([str(tiny_onnx), "--val-dir", str(tmp_path / "nope"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
