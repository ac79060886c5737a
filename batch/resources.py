"""Does the job fit the Ray it runs on? Model actors plus one whole CPU to decode, on some node, always.

Ray places each model actor on one node and each decode task (1 CPU) on one node. Actors hold their
CPUs for the whole job, so a placement that leaves every node with less than one free CPU starves
decoding and the job waits forever: two actors of 0.5 CPU on two 1-CPU nodes, one on each, do
exactly that. Ray chooses the placement, not us, so the check is for every placement Ray may pick:
the job starts only when no way of placing the actors leaves decoding without a node.

When --cpus-per-actor is given it is checked and refused in one line, never changed. When it is
not, the largest share in DEFAULT_SHARES that fits is used (1 CPU where the cores allow).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.errors import StamError

DECODE_CPUS = 1.0  # one decode task: one video on one core
DEFAULT_SHARES = (1.0, 0.5, 0.25, 0.1)  # CPUs per model actor tried, largest first, when not given
EPSILON = 1e-9  # Ray's resources are fixed-point; 3 x (1/3) must fit in 1


class ResourceError(StamError):
    """The job does not fit the cluster: refused before any work, with the numbers and the flags."""


@dataclass(frozen=True)
class Node:
    """One alive Ray node's total resources."""

    cpus: float
    gpus: float
    memory: float  # bytes Ray may give to tasks

    def describe(self) -> str:
        return f"{self.cpus:g} CPU, {self.gpus:g} GPU, {self.memory / 2**30:.1f} GiB"


@dataclass(frozen=True)
class Demand:
    """What the job asks of the cluster."""

    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    decode_memory: float  # bytes per decode task


def nodes_of(ray) -> list[Node]:  # noqa: ANN001 - the ray module
    """The alive nodes of the Ray this process is connected to, as Ray reports them."""
    return [
        Node(n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0), n["Resources"].get("memory", 0.0))
        for n in ray.nodes()
        if n.get("Alive")
    ]


def actors_per_node(node: Node, demand: Demand) -> int:
    """How many model actors the node holds at most."""
    limits = [
        math.floor(have / need + EPSILON)
        for have, need in ((node.cpus, demand.cpus_per_actor), (node.gpus, demand.gpus_per_actor))
        if need > 0
    ]
    return min(limits) if limits else demand.actors


def starving_load(node: Node, demand: Demand) -> int | None:
    """The fewest actors that leave this node unable to run a decode task (0: it never can), or None
    when no number of actors that it holds does."""
    if node.cpus + EPSILON < DECODE_CPUS or node.memory < demand.decode_memory:
        return 0
    if demand.cpus_per_actor <= 0:
        return None
    load = math.floor((node.cpus - DECODE_CPUS) / demand.cpus_per_actor + EPSILON) + 1
    return load if load <= actors_per_node(node, demand) else None


def problem(nodes: Sequence[Node], demand: Demand) -> str | None:
    """Why the job cannot run on these nodes (for every placement Ray may choose), or None when it can."""
    if sum(actors_per_node(node, demand) for node in nodes) < demand.actors:
        return "the model actors do not fit"
    if not any(n.cpus + EPSILON >= DECODE_CPUS and n.memory >= demand.decode_memory for n in nodes):
        return f"no node has {DECODE_CPUS:g} CPU and {demand.decode_memory / 2**20:.0f} MiB for a decode task"
    loads = [starving_load(node, demand) for node in nodes]
    if all(load is not None for load in loads) and sum(load or 0 for load in loads) <= demand.actors:
        return "Ray may place them so that no node keeps a whole CPU to decode, and the job would wait forever"
    return None


def describe_nodes(nodes: Sequence[Node]) -> str:
    """`2 nodes (1 CPU, 0 GPU, 17.3 GiB; 1 CPU, 0 GPU, 19.5 GiB)`, equal nodes counted once (`8 x ...`)."""
    if not nodes:
        return "no alive node"
    counts = Counter(node.describe() for node in nodes)
    kinds = "; ".join(f"{count} x {text}" if count > 1 else text for text, count in counts.items())
    return f"{len(nodes)} node{'s' if len(nodes) > 1 else ''} ({kinds})"


def choose_cpus_per_actor(nodes: Sequence[Node], demand: Demand, given: float | None, where: str) -> float:
    """The CPUs each actor reserves: `given`, checked; else the largest default share that fits."""
    if given is None and demand.gpus_per_actor > 0:
        given = 1.0
    candidates = (given,) if given is not None else DEFAULT_SHARES
    for share in candidates:
        trial = Demand(demand.actors, share, demand.gpus_per_actor, demand.decode_memory)
        if problem(nodes, trial) is None:
            return share
    raise refusal(nodes, trial, where, given is not None)


def refusal(nodes: Sequence[Node], demand: Demand, where: str, given: bool) -> ResourceError:
    """The one line that refuses the job: the actors and their share, the nodes, why, and the flags."""
    gpus = f" and {demand.gpus_per_actor:g} GPU" if demand.gpus_per_actor else ""
    share = f"{demand.cpus_per_actor:g} CPU{gpus}" + ("" if given else ", the smallest default share")
    flags = "--actors or --cpus-per-actor" + (" or --gpus-per-actor" if demand.gpus_per_actor else "")
    local = ", or --num-cpus" if where == "this machine" else ", or add nodes with more CPUs"
    return ResourceError(
        f"{demand.actors} model actor(s) of {share} each, plus 1 CPU to decode, do not fit {where}, "
        f"{describe_nodes(nodes)}: {problem(nodes, demand)}; change {flags}{local}"
    )
