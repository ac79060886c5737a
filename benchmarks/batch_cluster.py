"""stam-batch through a two-node Ray cluster on the loopback (head + one node, token authentication on).

    python -m benchmarks.batch_cluster [--videos 100] [--cpus-per-node 1]
        [--json benchmarks/results/batch_cluster_cpu.json]

The cluster is started as docs/cluster.md says (`ray start --head`, `ray start --address`, a token
file), the job runs as a fresh `stam-batch --address` process timed from launch to exit, then its
rerun (nothing left: no Ray work), and the cluster is stopped (its processes, by their sessions).
Same motion model and videos as benchmarks.batch. Results as JSON first; the table is rendered from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.batch import add_common_arguments, document_head, prepare_inputs, publish, rate_cells, run_batch
from benchmarks.local_cluster import Cluster
from benchmarks.report import describe_machine, machine_line

LIBRARIES = ("ray", "pyarrow", "onnxruntime", "av", "numpy")
SCHEMA = "stam-deploy/batch-cluster/v1"


def run_on_cluster(args: argparse.Namespace, model: Path, manifest: Path) -> tuple[dict[str, Any], float]:
    """Start the cluster, run the job once (and its rerun), stop the cluster; (result row, cluster start-up s)."""
    cluster = Cluster(cpus_per_node=args.cpus_per_node)
    try:
        start = time.perf_counter()
        cluster.start_node(head=True)
        cluster.start_node(head=False)
        started = time.perf_counter() - start
        extra = ["--address", cluster.address, "--actors", str(args.actors)]
        row = run_batch(model, manifest, args.workdir / "out_cluster", args.actors, args.batch_size, extra, cluster.env)
    finally:
        cluster.stop()
    row["command"] = f"stam-batch --address HEAD --actors {args.actors} --batch-size {args.batch_size}"
    row["nodes"] = 2
    row["cpus_per_node"] = args.cpus_per_node
    return row, started


def render_table(document: dict[str, Any]) -> str:
    """The run's table and how the cluster was made, with Ray's and the decoders' versions (docs add the machine)."""
    header = (
        "| command | nodes x CPUs | videos | wall (s) | videos/s | Ray start-up (s) | videos/s after start-up "
        "| decode ms/video | model ms/video | rerun, nothing new (s) |"
    )
    lines = [header, "|" + "---|" * 10]
    for row in document["results"]:
        cells = [f"`{row['command']}`", f"{row['nodes']} x {row['cpus_per_node']}", *rate_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    versions = ", ".join(f"{name} {version}" for name, version in document["versions"].items())
    lines += [
        "",
        f"Two nodes on 127.0.0.1 (`ray start`, token authentication), started in {document['cluster_start_s']:.1f} s; "
        f"{versions}. Load average before: {document['load_before']}.",
    ]
    return "\n".join(lines)


def render(document: dict[str, Any]) -> str:
    """The table, then the machine (its CPU flags included), the date and the command."""
    return (
        f"{render_table(document)} Machine: {machine_line(document['machine'])}. "
        f"Measured {document['created']} by `{document['command']}`."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_cluster", description=__doc__.splitlines()[0])
    add_common_arguments(parser, videos=100)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    videos, model, manifest = prepare_inputs(args, "videos_cluster.txt")
    machine = describe_machine("cpu")  # with the CPU flags, from runtime.cpu
    head = document_head(SCHEMA, "benchmarks.batch_cluster", argv, machine, model, videos, LIBRARIES)
    document: dict[str, Any] = head | {"batch_size": args.batch_size}
    row, document["cluster_start_s"] = run_on_cluster(args, model, manifest)
    document["results"] = [row]
    return publish(document, args.json, render)


if __name__ == "__main__":
    sys.exit(main())
