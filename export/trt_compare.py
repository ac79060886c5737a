"""`stam-build --compare`: the built plan against ONNX Runtime on the same inputs, with Polygraphy's comparator.

Polygraphy (`pip install polygraphy`) runs both (`TrtRunner` over the plan bytes, `OnnxrtRunner` over
the graph TensorRT parsed) on identical random inputs at the profile's min and opt shapes. The bound
is the project's one tolerance table (`runtime.contract.tolerance`): the plan's precision, or `tf32`
for an fp32 plan built with `--tf32`, scaled by the largest |output| of ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from runtime import contract
from runtime.contract import Profile, Sidecar
from runtime.errors import MissingDependencyError


def compare_inputs(profile: Profile, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """One feed per shape: the profile's min and opt (max is often too large for ONNX Runtime on a CPU)."""
    generator = np.random.default_rng(seed)
    shapes = profile.shapes()
    return [{profile.input_name: generator.random(shapes[key], dtype=np.float32)} for key in ("min", "opt")]


def tolerance_precision(sidecar: Sidecar) -> str:
    """The row of contract.TOLERANCES that judges this plan: TF32 widens fp32 (TensorRT's matmuls then round to 10 bits)."""
    if sidecar.precision == "fp32" and sidecar.build.get("tf32", False):
        return "tf32"
    return sidecar.precision


def allowed_difference(sidecar: Sidecar, reference_outputs: Iterable[np.ndarray]) -> float:
    """Max abs difference allowed, from the table, scaled by the reference's largest |value|."""
    scale = max((float(np.abs(output).max()) for output in reference_outputs), default=1.0)
    return contract.tolerance(tolerance_precision(sidecar), scale)


def compare_with_polygraphy(plan_path: Path, onnx_path: Path, sidecar: Sidecar) -> bool:
    """Run and compare; Polygraphy logs its report; returns whether every output matched."""
    try:
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner
        from polygraphy.comparator import Comparator, CompareFunc
    except ImportError:
        raise MissingDependencyError(
            "--compare needs Polygraphy: pip install -e '.[gpu]' (or pip install polygraphy)"
        ) from None
    reference = OnnxrtRunner(SessionFromOnnx(str(onnx_path)))
    runners = [TrtRunner(EngineFromBytes(plan_path.read_bytes())), reference]
    results = Comparator.run(runners, data_loader=compare_inputs(sidecar.profile))
    bound = allowed_difference(sidecar, _outputs_of(results, reference.name))
    return bool(Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(atol=bound, rtol=0.0)))


def _outputs_of(results: Any, runner_name: str) -> list[np.ndarray]:
    """Every output array of one runner in Polygraphy's RunResults ((name, [IterationResult]) pairs)."""
    return [
        np.asarray(array)
        for name, iterations in results
        if name == runner_name
        for iteration in iterations
        for array in iteration.values()
    ]
