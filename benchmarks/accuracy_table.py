"""`python -m benchmarks.accuracy_table`: the motion model's accuracy per backend x precision x frames.

One command builds every artifact from the shipped checkpoint (fp32 and fp16 ONNX, INT8 Q/DQ ONNX
calibrated on videos of another seed), evaluates each on a held-out set through the runtime's own
decode, sampling and preprocessing, and writes the table as Markdown and JSON. The reversed-order
row is the proof that the model uses time and that the runtime keeps frame order.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from benchmarks.accuracy import Options, discover, evaluate, open_classifier
from benchmarks.motion import HELD_OUT_SEED, SHIPPED_CHECKPOINT
from benchmarks.motion.generate import CLASSES, generate
from runtime.errors import run_cli

CALIBRATION_SEED = 4242  # neither the training nor the held-out seed
CALIBRATION_PER_CLASS = 4


@dataclass(frozen=True)
class Row:
    """One evaluation: which artifact, on which backend, with how many frames, in which order."""

    backend: str
    precision: str
    frames: int
    reverse: bool = False


def build_artifacts(checkpoint: Path, workdir: Path, calibration_per_class: int) -> dict[str, Path]:
    """precision -> artifact path, built from one checkpoint."""
    from export.checkpoint import load_checkpoint
    from export.onnx import export_onnx

    model = load_checkpoint(checkpoint)
    artifacts = {"torch-fp32": checkpoint}
    for precision in ("fp32", "fp16"):
        artifacts[f"onnxruntime-{precision}"] = export_onnx(
            model, workdir / f"motion.{precision}.onnx", labels=list(CLASSES), precision=precision)
    artifacts["onnxruntime-int8"] = calibrate_int8(
        artifacts["onnxruntime-fp32"], workdir, model.config.frames_trained, calibration_per_class)
    return artifacts


def calibrate_int8(fp32_onnx: Path, workdir: Path, frames: int, per_class: int) -> Path:
    from calibration.data import iter_clips, list_videos
    from calibration.quantize import calibrate

    root = workdir / "calibration"
    generate(root, per_class, CALIBRATION_SEED)
    videos = list_videos(root)
    output = workdir / "motion.int8.onnx"
    calibrate(fp32_onnx, iter_clips(videos, frames), output, precision="int8", total=len(videos))
    return output


def default_rows(frames_trained: int) -> list[Row]:
    other = [max(1, frames_trained // 2), frames_trained * 2]
    return [
        Row("torch", "fp32", frames_trained),
        *(Row("onnxruntime", "fp32", frames) for frames in sorted({frames_trained, *other})),
        Row("onnxruntime", "fp16", frames_trained),
        Row("onnxruntime", "int8", frames_trained),
        Row("onnxruntime", "fp32", frames_trained, reverse=True),
    ]


def evaluate_rows(rows: Sequence[Row], artifacts: dict[str, Path], val_dir: Path,
                  log: Callable[[str], None]) -> list[dict]:
    results = []
    for row in rows:
        artifact = artifacts[f"{row.backend}-{row.precision}"]
        log(f"{row.backend} {row.precision}, {row.frames} frames{' reversed' if row.reverse else ''} ...")
        model = open_classifier(artifact, labels=list(CLASSES))
        try:
            samples, names = discover(val_dir, list(CLASSES))
            evaluation = evaluate(model, samples, names, Options(frames=row.frames, reverse=row.reverse),
                                  artifact=str(artifact))
        finally:
            model.close()
        results.append({**row.__dict__, "top1": evaluation.score.top1, "top5": evaluation.score.top5,
                        "videos": evaluation.score.videos, "failed": len(evaluation.failures)})
    return results


def render_markdown(results: Sequence[dict], caption: str) -> str:
    lines = ["| backend | precision | frames | order | top-1 | top-5 | videos |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['precision']} | {r['frames']} | {'reversed' if r['reverse'] else 'in order'} "
              f"| {100 * r['top1']:.1f}% | {100 * r['top5']:.1f}% | {r['videos']} |" for r in results]
    return "\n".join([*lines, "", caption, ""])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy_table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--val-dir", type=Path, help="held-out class folders (default: generate them)")
    parser.add_argument("--per-class", type=int, default=20, help="held-out videos per class to generate")
    parser.add_argument("--calibration-per-class", type=int, default=CALIBRATION_PER_CLASS,
                        help="INT8 calibration videos per class (another seed)")
    parser.add_argument("--workdir", type=Path, default=Path("artifacts/accuracy"))
    parser.add_argument("--markdown", type=Path, default=Path("benchmarks/results/accuracy_motion.md"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/accuracy_motion.json"))
    args = parser.parse_args(argv)
    args.command = shlex.join(["python", "-m", "benchmarks.accuracy_table",
                               *(sys.argv[1:] if argv is None else argv)])
    return args


def run(args: argparse.Namespace) -> int:
    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    args.workdir.mkdir(parents=True, exist_ok=True)
    val_dir = args.val_dir
    if val_dir is None:
        val_dir = args.workdir / "held_out"
        generate(val_dir, args.per_class, HELD_OUT_SEED)
    artifacts = build_artifacts(args.checkpoint, args.workdir, args.calibration_per_class)
    from export.checkpoint import load_checkpoint

    rows = default_rows(load_checkpoint(args.checkpoint).config.frames_trained)
    results = evaluate_rows(rows, artifacts, val_dir, log)
    caption = (f"Held-out motion videos (generator seed {HELD_OUT_SEED}), decoded, sampled and preprocessed by "
               f"the runtime; INT8 calibrated on seed {CALIBRATION_SEED}. Command: `{args.command}`.")
    markdown = render_markdown(results, caption)
    print(markdown)
    for path, text in ((args.markdown, markdown), (args.json, json.dumps(results, indent=2) + "\n")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
