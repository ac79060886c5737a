"""`python -m benchmarks.accuracy_table`: the motion model's accuracy per backend x precision x frames.

One command builds every artifact from the shipped checkpoint (fp32 and fp16 ONNX, INT8 Q/DQ ONNX
calibrated on videos of another seed), evaluates each on a held-out set through the runtime's own
decode, sampling and preprocessing, and writes the table as Markdown and JSON. Each ONNX row names
the backend it ran on (ONNX Runtime, or OpenVINO at fp32, bf16 and on the same INT8 graph); a row
this machine cannot run (bf16 without bf16 hardware, OpenVINO not installed) is listed with why.
The reversed-order row is the proof that the model uses time and that the runtime keeps frame order.

Outputs go to `artifacts/accuracy/` unless `--out` says otherwise: publishing into the committed
`benchmarks/results/` is a deliberate `--out benchmarks/results`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.accuracy import Options, discover, evaluate, open_classifier
from benchmarks.motion import HELD_OUT_SEED, SHIPPED_CHECKPOINT
from benchmarks.motion.generate import CLASSES, generate
from benchmarks.report import describe_machine, markdown_table, stamp, write_json
from runtime.contract import CALIBRATION_SEED
from runtime.errors import StamError, require_extra, run_cli

CALIBRATION_PER_CLASS = 4
DEFAULT_OUT = Path("artifacts/accuracy")


SCHEMA = "stam-deploy/accuracy/v1"


@dataclass(frozen=True)
class Row:
    """One evaluation: which artifact, on which backend, with how many frames, in which order."""

    backend: str
    precision: str
    frames: int
    reverse: bool = False

    @property
    def artifact(self) -> str:
        """Key of the artifact the row evaluates: bf16 is the fp32 graph run at bf16 (OpenVINO)."""
        return "torch" if self.backend == "torch" else ("fp32" if self.precision == "bf16" else self.precision)

    def open_options(self) -> dict[str, str]:
        if self.backend == "torch":
            return {}
        return {"backend": self.backend, "precision": "bf16" if self.precision == "bf16" else "fp32"}


def build_artifacts(checkpoint: Path, workdir: Path, calibration_per_class: int) -> dict[str, Path]:
    """Row.artifact key ("torch", "fp32", "fp16", "int8") -> artifact path, built from one checkpoint."""
    from export.checkpoint import load_checkpoint
    from export.onnx import export_onnx

    model = load_checkpoint(checkpoint)
    artifacts = {"torch": checkpoint}
    for precision in ("fp32", "fp16"):
        artifacts[precision] = export_onnx(
            model, workdir / f"motion.{precision}.onnx", labels=list(CLASSES), precision=precision
        )
    artifacts["int8"] = calibrate_int8(artifacts["fp32"], workdir, model.config.frames_trained, calibration_per_class)
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
        *(Row("openvino", precision, frames_trained) for precision in ("fp32", "bf16", "int8")),
    ]


def evaluate_rows(
    rows: Sequence[Row], artifacts: dict[str, Path], val_dir: Path, log: Callable[[str], None]
) -> list[dict]:
    results = []
    for row in rows:
        artifact = artifacts[row.artifact]
        log(f"{row.backend} {row.precision}, {row.frames} frames{' reversed' if row.reverse else ''} ...")
        try:
            model = open_classifier(artifact, labels=list(CLASSES), **row.open_options())
        except StamError as reason:  # e.g. bf16 on a CPU without it, OpenVINO not installed
            log(f"  not run: {reason}")
            results.append({**row.__dict__, "skipped": str(reason)})
            continue
        try:
            samples, names = discover(val_dir, list(CLASSES))
            evaluation = evaluate(
                model, samples, names, Options(frames=row.frames, reverse=row.reverse), artifact=str(artifact)
            )
        finally:
            model.close()
        results.append(
            {
                **row.__dict__,
                "top1": evaluation.score.top1,
                "top5": evaluation.score.top5,
                "videos": evaluation.score.videos,
                "failed": len(evaluation.failures),
            }
        )
    return results


def render_markdown(results: Sequence[dict], caption: str) -> str:
    header = ["backend", "precision", "frames", "order", "top-1", "top-5", "videos"]
    rows = [
        [r["backend"], r["precision"], str(r["frames"]), "reversed" if r["reverse"] else "in order", *_scores(r)]
        for r in results
    ]
    return "\n".join([markdown_table(header, rows), "", caption, ""])


def _scores(result: dict) -> list[str]:
    if "skipped" in result:
        return [f"not run: {result['skipped']}", "—", "—"]
    return [f"{100 * result['top1']:.1f}%", f"{100 * result['top5']:.1f}%", str(result["videos"])]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.accuracy_table",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--val-dir", type=Path, help="held-out class folders (default: generate them)")
    parser.add_argument("--per-class", type=int, default=20, help="held-out videos per class to generate")
    parser.add_argument(
        "--calibration-per-class",
        type=int,
        default=CALIBRATION_PER_CLASS,
        help="INT8 calibration videos per class (another seed)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("artifacts/accuracy"))
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder of accuracy_motion.{{md,json}} (default {DEFAULT_OUT}; publish with --out benchmarks/results)",
    )
    parser.add_argument("--markdown", type=Path, help="Markdown table (default OUT/accuracy_motion.md)")
    parser.add_argument("--json", type=Path, help="rows as JSON (default OUT/accuracy_motion.json)")
    args = parser.parse_args(argv)
    args.markdown = args.markdown or args.out / "accuracy_motion.md"
    args.json = args.json or args.out / "accuracy_motion.json"
    args.command = shlex.join(["python", "-m", "benchmarks.accuracy_table", *(sys.argv[1:] if argv is None else argv)])
    return args


def run(args: argparse.Namespace) -> int:
    require_extra(
        "torch", "python -m benchmarks.accuracy_table", "export"
    )  # it exports with torch: say so before minutes of work

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
    caption = (
        f"Held-out motion videos (generator seed {HELD_OUT_SEED}), decoded, sampled and preprocessed by "
        f"the runtime; INT8 calibrated on seed {CALIBRATION_SEED}. Command: `{args.command}`."
    )
    markdown = render_markdown(results, caption)
    print(markdown)
    document = {
        "schema": SCHEMA,
        "created": stamp("benchmarks.accuracy_table", None)["created"],
        "command": args.command,
        "machine": describe_machine("cpu"),
        "rows": results,
    }
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown)
    write_json(document, args.json, required=("schema", "created", "command", "machine", "rows"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
