"""`make demo`: the whole path on this machine, from a model to labels printed for a real video file.

1. export STAM-16 (random weights unless --checkpoint) to ONNX and verify it against PyTorch;
2. export the shipped motion model (trained here, meaningful predictions) to ONNX;
3. encode sample videos of the motion task with PyAV and classify them with `runtime.infer`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="where artifacts are written")
    parser.add_argument("--checkpoint", type=Path, help="an official STAM-16 checkpoint to export instead")
    parser.add_argument("--skip-stam16", action="store_true", help="skip the (slow) full-size export")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_stam16:
        status = export_stam16(args.out, args.checkpoint)
        if status:
            return status
    motion_onnx = export_motion_model(args.out)
    videos = write_sample_videos(args.out / "samples")
    return classify(motion_onnx, videos)


def export_stam16(out: Path, checkpoint: Path | None) -> int:
    from export.cli import main as stam_export

    _step("1/3 export STAM-16 to ONNX and verify it against PyTorch")
    argv = ["--model", "stam_16", "-o", str(out / "stam_16.onnx"), "--verify-shapes", "1x16"]
    return stam_export(argv + (["--checkpoint", str(checkpoint)] if checkpoint else []))


def export_motion_model(out: Path) -> Path:
    from benchmarks.motion import SHIPPED_CHECKPOINT
    from benchmarks.motion.generate import CLASSES
    from export.checkpoint import load_checkpoint
    from export.onnx import export_onnx

    _step("2/3 export the shipped motion model (stam_tiny-sized, trained here on the synthetic motion task)")
    path = export_onnx(load_checkpoint(SHIPPED_CHECKPOINT), out / "stam_motion.onnx", labels=list(CLASSES))
    print(f"wrote {path}")
    return path


def write_sample_videos(folder: Path) -> list[Path]:
    from benchmarks.motion.generate import generate

    _step(
        "3/3 encode one motion video per class with PyAV (seed 2024, never trained on) and classify them "
        "with the torch-free runtime; the folder names are the true classes"
    )
    return generate(folder, per_class=1, seed=2024)


def classify(model_path: Path, videos: list[Path]) -> int:
    """`python -m runtime.infer MODEL VIDEO... --topk 3`, run as a user runs it."""
    command = [sys.executable, "-m", "runtime.infer", str(model_path), *map(str, videos), "--topk", "3"]
    return subprocess.run(command, cwd=Path(__file__).resolve().parents[1], check=False).returncode


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
