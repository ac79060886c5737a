"""`stam-triton-repo MODEL --out DIR`: a model repository for the stock Triton server (no Python backend).

Teams running NVIDIA's Triton container serve the artifact with Triton's own ONNX Runtime or
TensorRT backend: `DIR/NAME/config.pbtxt`, `DIR/NAME/labels.txt` and `DIR/NAME/1/model.onnx|model.plan`.
The config is the tensor model `stam-serve` runs (same I/O, batch bound and batching policy); video
decoding stays with the client or with `stam-serve`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime.errors import MissingDependencyError, StamError, run_cli
from serve import config as triton_config

REPO_EXTRA = "stam-triton-repo needs the serve extra: pip install -e '.[serve]'"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stam-triton-repo", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("model", help="model.onnx, or model.plan with its .json sidecar")
    parser.add_argument("--out", required=True, help="repository root (created if missing)")
    parser.add_argument("--name", help="Triton model name (default: the file's stem)")
    parser.add_argument(
        "--max-batch", type=int, default=8, help="largest batch Triton forms (default 8; a plan's profile bounds it)"
    )
    parser.add_argument("--max-queue-delay-us", type=int, default=2000, help="dynamic batching delay (default 2000)")
    parser.add_argument("--no-dynamic-batching", action="store_true")
    parser.add_argument("--instances", type=int, default=1, help="model instances (default 1)")
    parser.add_argument("--force", action="store_true", help="replace DIR/NAME if it exists")
    return parser


def write_model(model: Path, out: Path, name: str, batching: triton_config.Batching, force: bool = False) -> Path:
    """Write DIR/NAME whole (built beside it, then renamed, so a failure leaves no half model); its model file."""
    info = triton_config.servable(model)
    config = triton_config.tensor_model_config(name, info, batching)
    target = out / name
    if target.exists() and not force:
        raise StamError(f"{target} exists (use --force to replace it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = out / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "1").mkdir(parents=True)
        shutil.copyfile(model, staging / "1" / triton_config.MODEL_FILES[info.kind])
        external = model.with_name(f"{model.name}.data")  # weights of a > 2 GB ONNX, named inside the graph
        if info.kind == "onnx" and external.is_file():
            shutil.copyfile(external, staging / "1" / external.name)
        (staging / "config.pbtxt").write_text(triton_config.to_text(config))
        if info.labels:
            triton_config.write_labels(staging, info.labels)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except OSError as error:
        raise StamError(f"{out}: cannot write the repository ({error.strerror})") from None
    return target / "1" / triton_config.MODEL_FILES[info.kind]


def run(args: argparse.Namespace) -> int:
    try:
        import tritonclient.grpc  # noqa: F401  (Triton's config protobuf)
    except ImportError:
        raise MissingDependencyError(REPO_EXTRA) from None
    batching = triton_config.Batching(
        args.max_batch, args.max_queue_delay_us, args.instances, not args.no_dynamic_batching
    )
    batching.validate()
    name = args.name or triton_config.model_name(args.model)
    model_file = write_model(Path(args.model), Path(args.out), name, batching, args.force)
    print(f"wrote {model_file.parent.parent / 'config.pbtxt'} and {model_file}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
