"""The resource rule: model actors plus one whole CPU to decode, on some node, for every placement Ray may choose."""

from __future__ import annotations

import pytest

from batch.resources import Demand, Node, ResourceError, choose_cpus_per_actor, problem

GIB = 2.0**30
DECODE = 300 * 2**20


def nodes(*cpus: float, gpus: float = 0.0, memory: float = 8 * GIB) -> list[Node]:
    return [Node(c, gpus, memory) for c in cpus]


@pytest.mark.parametrize(
    "layout, actors, share, fits",
    [
        ((1, 1), 1, 1.0, True),  # the actor on one node, decoding on the other
        ((1, 1), 2, 0.5, False),  # one actor on each node leaves 0.5 CPU on both: decoding starves
        ((1, 1), 2, 0.1, False),
        ((2,), 2, 0.5, True),  # both on the one node still leave a whole CPU
        ((2,), 2, 1.0, False),
        ((2,), 1, 1.0, True),
        ((4, 4), 6, 1.0, True),  # 3 + 3 leaves 1 CPU on each node
        ((4, 4), 7, 1.0, True),  # 4 + 3 or 3 + 4: one node always keeps a CPU
        ((4, 4), 8, 1.0, False),  # 4 + 4: none does
        ((1,), 1, 0.1, False),  # one 1-CPU node never runs a model beside a decode
        ((3,), 3, 1.5, False),  # 1.5 CPU actors: only two fit in 3 CPUs
    ],
)
def test_every_placement_leaves_a_cpu_to_decode_or_the_job_is_refused(layout, actors, share, fits):
    assert (problem(nodes(*layout), Demand(actors, share, 0.0, DECODE)) is None) == fits


def test_gpus_and_memory_count():
    demand = Demand(1, 1.0, 1.0, DECODE)
    assert problem(nodes(4), demand) == "the model actors do not fit"  # no GPU anywhere
    assert problem(nodes(4, gpus=1), demand) is None
    assert "for a decode task" in problem(nodes(4, memory=DECODE / 2), Demand(1, 1.0, 0.0, DECODE))


def test_nodes_are_described_in_one_clause():
    from batch.resources import describe_nodes

    assert describe_nodes(nodes(4, 4, 2)) == "3 nodes (2 x 4 CPU, 0 GPU, 8.0 GiB; 2 CPU, 0 GPU, 8.0 GiB)"
    assert describe_nodes([]) == "no alive node"


def test_the_default_share_is_the_largest_that_fits_and_a_given_one_is_never_changed():
    demand = Demand(2, 0.0, 0.0, DECODE)
    assert choose_cpus_per_actor(nodes(2), demand, None, "this machine") == 0.5
    assert choose_cpus_per_actor(nodes(8), demand, None, "this machine") == 1.0
    with pytest.raises(ResourceError) as refused:
        choose_cpus_per_actor(nodes(2), demand, 1.0, "this machine")
    assert str(refused.value) == (
        "2 model actor(s) of 1 CPU each, plus 1 CPU to decode, do not fit this machine, 1 node (2 CPU, 0 GPU, 8.0 GiB): "
        "Ray may place them so that no node keeps a whole CPU to decode, and the job would wait forever; "
        "change --actors or --cpus-per-actor, or --num-cpus"
    )
