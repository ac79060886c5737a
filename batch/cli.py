"""`stam-batch MODEL INPUT... --out DIR`: classify a video corpus on Ray Data into Parquet, resumably.

Exit codes: 0 every video classified, 1 some videos failed (they are error rows in DIR),
2 a usage, artifact, input or cluster error (nothing ran: the ray extra missing or failing to import,
a cluster that cannot be joined, actors that do not fit it); 3 Ray gave up on the job midway, or it
made no progress for --stall-timeout seconds (what was written stays: rerun to resume).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from batch.extra import import_ray
from runtime.errors import run_cli
from runtime.infer import positive_int


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stam-batch",
        description="Classify many videos with a STAM artifact on Ray Data, into Parquet files; "
        "rerun with the same --out to resume.",
    )
    parser.add_argument("model", help="model.onnx (ONNX Runtime) or model.plan (TensorRT, with its .json sidecar)")
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files, folders (recursive), manifests (.txt, or .csv/.parquet with a "
        "'path' column); local paths or URIs (file://, s3://, gs://)",
    )
    parser.add_argument("--out", required=True, help="results folder (local, shared, or a URI)")
    parser.add_argument("--frames", type=positive_int, help="frames sampled per video (default: the model's T)")
    parser.add_argument("--sampling", choices=("uniform", "reference"), default="uniform")
    parser.add_argument("--topk", type=positive_int, default=5, help="predictions kept per video (default 5)")
    parser.add_argument("--logits", action="store_true", help="add a 'logits' column")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="videos per model call (default 8)")
    parser.add_argument(
        "--rows-per-file",
        type=positive_int,
        default=256,
        help="results per Parquet part (default 256): the most a kill can lose per writer",
    )
    parser.add_argument("--providers", nargs="+", metavar="PROVIDER", help="ONNX Runtime providers in order")
    parser.add_argument("--verbose", action="store_true", help="show Ray's logs")
    add_cluster_options(parser)
    return parser


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Where the job runs and what it reserves there (docs/cluster.md): checked against the nodes before it starts."""
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--address",
        help="join a running Ray cluster: HOST:PORT of its head, 'auto', or ray://HOST:PORT "
        "(default: start Ray on this machine); token authentication: RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH",
    )
    group.add_argument("--num-cpus", type=positive_int, help="cores of the local Ray (default: all)")
    group.add_argument("--actors", type=positive_int, default=1, help="model replicas (default 1)")
    group.add_argument(
        "--cpus-per-actor",
        type=non_negative_float,
        help="CPUs each model actor reserves (default: 1 with GPUs; on CPUs the largest of 1, 0.5, 0.25, 0.1 "
        "that leaves a whole CPU to decode on some node, whatever the placement)",
    )
    group.add_argument(
        "--gpus-per-actor", type=non_negative_float, default=0.0, help="GPUs each model actor reserves (default 0: CPU)"
    )
    group.add_argument(
        "--stall-timeout",
        type=positive_float,
        default=300.0,
        help="seconds without a video decoded, classified or written before the job ends with exit 3 "
        "(what was written stays; rerun to resume; default 300)",
    )


def run(args: argparse.Namespace) -> int:
    import_ray()  # before anything else: without the extra, one line and exit 2
    from batch.job import JobConfig, run_job

    config = JobConfig(
        model=args.model,
        inputs=args.inputs,
        out=args.out,
        frames=args.frames,
        sampling=args.sampling,
        topk=args.topk,
        with_logits=args.logits,
        batch_size=args.batch_size,
        actors=args.actors,
        gpus_per_actor=args.gpus_per_actor,
        cpus_per_actor=args.cpus_per_actor,
        rows_per_file=args.rows_per_file,
        address=args.address,
        num_cpus=args.num_cpus,
        providers=args.providers,
        verbose=args.verbose,
        stall_timeout=args.stall_timeout,
    )
    summary = run_job(config)
    print(summary.render(args.out), file=sys.stderr)
    return 1 if summary.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
