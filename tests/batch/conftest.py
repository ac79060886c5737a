"""stam-batch fixtures: a few real and broken videos, a tiny contract model, and a local Ray.

The Ray fixture is module-scoped and always shut down, so a test module costs one Ray start-up
(seconds on 2 cores) and leaves no Ray processes behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

try:  # the ray extra (ray[data] + pyarrow); without it only the command line's own checks run
    import pyarrow  # noqa: F401
except ImportError:
    collect_ignore = ["test_inputs.py", "test_output.py", "test_steps.py", "test_ray_job.py"]

from tests.runtime.conftest import build_mean_rgb
from tests.videos import write_random_bytes, write_truncated, write_video

RAY_CPUS = 2
RAY_OBJECT_STORE = 512 << 20  # bytes: plenty for a handful of 4-16 frame clips


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """videos/ (four good videos, two in a subfolder) and broken/ (random bytes, empty, truncated)."""
    root = tmp_path_factory.mktemp("corpus")
    videos = root / "videos"
    good = [
        write_video(videos / "a.mp4", num_frames=12, width=64, height=48),
        write_video(videos / "b.mkv", num_frames=9, width=48, height=64),
        write_video(videos / "sub" / "c.mp4", num_frames=20, width=72, height=40),
        write_video(videos / "sub" / "d.mp4", num_frames=6, width=40, height=40),
    ]
    (videos / "notes.txt").write_text("not a video suffix: never listed\n")
    broken = root / "broken"
    broken.mkdir()
    write_random_bytes(broken / "random.mp4")
    (broken / "empty.mp4").write_bytes(b"")
    write_truncated(broken / "truncated.mp4", good[2], keep=0.05)
    return {"root": root, "videos": videos, "broken": broken, **{p.stem: p for p in good}}


def copy_videos(corpus: dict[str, Path], folder: Path, count: int) -> Path:
    """`count` copies of the corpus's good videos under distinct names in `folder`, for jobs worth killing."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [corpus[name] for name in ("a", "b", "c", "d")]
    for i in range(count):
        shutil.copy(sources[i % 4], folder / f"v{i:02d}{sources[i % 4].suffix}")
    return folder


@pytest.fixture(scope="module")
def mean_rgb_model(tmp_path_factory) -> Path:
    return build_mean_rgb(tmp_path_factory.mktemp("model") / "mean_rgb.onnx")


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray (2 CPUs, no dashboard), shut down when the module's tests are done."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=RAY_CPUS, include_dashboard=False, object_store_memory=RAY_OBJECT_STORE, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
