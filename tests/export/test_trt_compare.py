"""export.trt_compare: which row of the one tolerance table judges a plan, and the inputs it is fed."""

from __future__ import annotations

import numpy as np
import pytest

from export import trt_compare
from runtime import contract
from runtime.contract import DimRange, Profile, Sidecar
from tests.runtime.conftest import contract_metadata


def _sidecar(precision: str, tf32: bool, profile: Profile | None = None) -> Sidecar:
    return Sidecar(
        metadata=contract_metadata(),
        profile=profile or Profile(DimRange(1, 2, 3), DimRange(2, 4, 8)),
        precision=precision,
        tensorrt_version="10.13.0",
        gpu_name="GPU",
        compute_capability="8.9",
        build={"tf32": tf32},
    )


def test_tolerance_comes_from_the_contract_table():
    assert not hasattr(trt_compare, "TOLERANCES")
    assert trt_compare.tolerance_precision(_sidecar("fp32", tf32=False)) == "fp32"
    assert trt_compare.tolerance_precision(_sidecar("fp32", tf32=True)) == "tf32"
    assert trt_compare.tolerance_precision(_sidecar("fp16", tf32=True)) == "fp16"
    reference = [np.array([[3.0, -20.0]]), np.array([[5.0]])]
    assert trt_compare.allowed_difference(_sidecar("fp32", False), reference) == contract.tolerance("fp32", 20.0)
    assert trt_compare.allowed_difference(_sidecar("fp32", True), reference) == pytest.approx(5e-3 * 20)
    assert trt_compare.allowed_difference(_sidecar("int8", False), reference) == contract.tolerance("int8", 20.0)


def test_inputs_follow_the_plans_part():
    whole = trt_compare.compare_inputs(Profile(DimRange(1, 2, 3), DimRange(2, 4, 8)))
    assert [feed["frames"].shape for feed in whole] == [(1, 2, 3, 224, 224), (2, 4, 3, 224, 224)]
    temporal = Profile(DimRange(1, 2, 3), DimRange(2, 4, 8), part=contract.PART_TEMPORAL, embed_dim=6)
    assert [feed["embeddings"].shape for feed in trt_compare.compare_inputs(temporal)] == [(1, 2, 6), (2, 4, 6)]
