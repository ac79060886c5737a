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
from runtime import options
from runtime.errors import run_cli
from runtime.limits import BATCH_LIMITS
from runtime.options import non_negative_float, positive_float, positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stam-batch",
        description="Classify many videos with a STAM artifact on Ray Data, into Parquet files; "
        "rerun with the same --out to resume.",
    )
    options.add_model(
        parser, "model.onnx (on the backend --backend auto picks) or model.plan (TensorRT, with its .json sidecar)"
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files, folders (recursive), manifests (.txt, or .csv/.parquet with a "
        "'path' column); local paths or URIs (file://, s3://, gs://)",
    )
    parser.add_argument("--out", required=True, help="results folder (local, shared, or a URI)")
    options.add_frames(parser)
    options.add_sampling(parser)
    options.add_topk(parser, "predictions kept per video")
    parser.add_argument("--logits", action="store_true", help="add a 'logits' column")
    options.add_batch_size(parser, "videos per model call")
    options.add_backend(parser)
    parser.add_argument(
        "--rows-per-file",
        type=positive_int,
        default=256,
        help="results per Parquet part (default 256): the most a kill can lose per writer",
    )
    parser.add_argument("--providers", nargs="+", metavar="PROVIDER", help="ONNX Runtime providers in order")
    parser.add_argument("--verbose", action="store_true", help="show Ray's logs")
    options.add_limits(parser, BATCH_LIMITS)
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

    config = options.config_from(JobConfig, args, with_logits=args.logits)
    summary = run_job(config)
    print(summary.render(args.out), file=sys.stderr)
    return 1 if summary.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
