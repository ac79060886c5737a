"""`stam-build --compare`: the built plan against ONNX Runtime on the same inputs, with Polygraphy's comparator.

Polygraphy (`pip install polygraphy`) runs both (`TrtRunner` over the plan bytes, `OnnxrtRunner` over
the graph TensorRT parsed) on identical random frames at the profile's min and opt shapes, and
`Comparator.compare_accuracy` applies per-precision tolerances.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime import contract
from runtime.contract import Profile
from runtime.errors import MissingDependencyError

# (atol, rtol) of TensorRT against ONNX Runtime: fp32 kernels may use different reduction orders
# (and TF32 where allowed); fp16 graphs differ at fp16 resolution on both sides.
TOLERANCES = {"fp32": (1e-3, 1e-3), "fp16": (5e-2, 5e-2)}


def compare_inputs(profile: Profile, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """One feed per shape: the profile's min and opt (max is often too large for ONNX Runtime on a CPU)."""
    generator = np.random.default_rng(seed)
    shapes = profile.shapes()
    return [{contract.INPUT_NAME: generator.random(shapes[key], dtype=np.float32)} for key in ("min", "opt")]


def compare_with_polygraphy(plan_path: Path, onnx_path: Path, profile: Profile, precision: str) -> bool:
    """Run and compare; prints Polygraphy's report and returns whether every output matched."""
    try:
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner
        from polygraphy.comparator import Comparator, CompareFunc
    except ImportError:
        raise MissingDependencyError("--compare needs Polygraphy: pip install polygraphy") from None
    runners = [TrtRunner(EngineFromBytes(plan_path.read_bytes())), OnnxrtRunner(SessionFromOnnx(str(onnx_path)))]
    results = Comparator.run(runners, data_loader=compare_inputs(profile))
    atol, rtol = TOLERANCES.get(precision, TOLERANCES["fp16"])
    return bool(Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(atol=atol, rtol=rtol)))
