"""The TensorRT calls of `stam-build`, one small step each: ONNX -> network -> config -> plan, and the inspector.

Written against the documented TensorRT 10.x and 11.x Python API (docs.nvidia.com/deeplearning/tensorrt,
"Python API" and "Migrating from TensorRT 10.x to 11.x"); enum members are feature-detected with
hasattr, never assumed from the version number. `tensorrt` is passed in as a module so that these
steps import on machines without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from runtime import contract
from runtime.contract import Profile
from runtime.errors import ArtifactError, MissingDependencyError, StamError

TRT_MISSING = "TensorRT is not installed: pip install tensorrt (needs an NVIDIA GPU and driver)"
GIB = 1 << 30


def import_tensorrt() -> ModuleType:
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(TRT_MISSING) from None
    return tensorrt


def version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a TensorRT version string such as "10.4.0.26"."""
    parts = (version.split(".") + ["0"])[:2]
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        raise StamError(f"cannot read the TensorRT version {version!r}") from None


def network_flags(trt: ModuleType) -> tuple[int, bool]:
    """(flags for Builder.create_network, strongly typed?).

    NetworkDefinitionCreationFlag.STRONGLY_TYPED exists from TensorRT 9/10; in 11.x every network is
    strongly typed (the flag is accepted and ignored, or absent). EXPLICIT_BATCH is ignored since 10.0.
    """
    flag_enum = getattr(trt, "NetworkDefinitionCreationFlag", None)
    strongly = getattr(flag_enum, "STRONGLY_TYPED", None) if flag_enum is not None else None
    if strongly is not None:
        return 1 << int(strongly), True
    return 0, version_tuple(trt.__version__)[0] >= 11


def create_network(trt: ModuleType, builder: Any) -> tuple[Any, bool]:
    """Builder.create_network(flags): the empty network definition the parser fills."""
    flags, strongly_typed = network_flags(trt)
    return builder.create_network(flags), strongly_typed


def parse_onnx(trt: ModuleType, network: Any, logger: Any, path: Path) -> None:
    """OnnxParser.parse_from_file(path): reads external weights beside the file; every error is reported."""
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        errors = [format_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ArtifactError(f"{path}: the TensorRT ONNX parser failed: " + "; ".join(errors or ["no detail given"]))


def format_parser_error(error: Any) -> str:
    """One IParserError as `node NAME (OP): description`; node_name/node_operator exist from TensorRT 10."""
    name = _call(error, "node_name") or f"#{_call(error, 'node')}"
    operator = _call(error, "node_operator") or "?"
    return f"node {name} ({operator}): {_call(error, 'desc')}"


def _call(obj: Any, method: str) -> Any:
    function = getattr(obj, method, None)
    return function() if callable(function) else None


def create_config(trt: ModuleType, builder: Any, profile: Profile, workspace_gib: float | None,
                  opt_level: int | None) -> Any:
    """IBuilderConfig with one optimization profile over `frames` (IOptimizationProfile.set_shape),
    the WORKSPACE pool limit (set_memory_pool_limit), builder_optimization_level and DETAILED profiling
    verbosity (so the engine inspector can show per-layer precisions)."""
    config = builder.create_builder_config()
    optimization = builder.create_optimization_profile()
    shapes = profile.shapes()
    optimization.set_shape(contract.INPUT_NAME, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(optimization)
    if workspace_gib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * GIB))
    if opt_level is not None:
        config.builder_optimization_level = opt_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    return config


def load_timing_cache(config: Any, path: Path | None) -> None:
    """IBuilderConfig.create_timing_cache(bytes) + set_timing_cache: reuse earlier tactic timings if the file exists."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)


def save_timing_cache(config: Any, path: Path | None) -> None:
    """ITimingCache.serialize() of the cache the build filled."""
    if path is not None:
        path.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))


def build_plan(builder: Any, network: Any, config: Any) -> bytes:
    """Builder.build_serialized_network: None on failure (the logger has printed why)."""
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise StamError("TensorRT could not build the engine (see the TensorRT messages above; "
                        "a larger --workspace or a smaller profile may help)")
    return bytes(memoryview(plan))


def engine_layers(trt: ModuleType, logger: Any, plan: bytes) -> list[dict[str, Any]]:
    """Layers of a plan via ICudaEngine.create_engine_inspector().get_engine_information(LayerInformationFormat.JSON)."""
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    if engine is None:
        raise StamError("cannot deserialize the plan that was just built")
    info = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    return layers_from_json(info)


def layers_from_json(text: str) -> list[dict[str, Any]]:
    """(name, type, output precisions) per layer; 10.x writes `Format/Datatype`, 11.x `DataType`."""
    layers = json.loads(text).get("Layers", [])
    rows = []
    for layer in layers:
        if isinstance(layer, str):  # ProfilingVerbosity below DETAILED gives names only
            rows.append({"name": layer, "type": "?", "outputs": []})
            continue
        outputs = [out.get("DataType") or out.get("Format/Datatype", "?") for out in layer.get("Outputs", [])]
        rows.append({"name": layer.get("Name", "?"), "type": layer.get("LayerType", "?"), "outputs": outputs})
    return rows


def layers_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'type':<16} {'output precision':<24} name"]
    lines += [f"{row['type']:<16} {', '.join(map(str, row['outputs'])) or '-':<24} {row['name']}" for row in rows]
    return "\n".join(lines)


def ensure_tensorrt_major(trt: ModuleType) -> tuple[int, int]:
    version = version_tuple(trt.__version__)
    if version[0] < 10:
        raise MissingDependencyError(f"TensorRT {trt.__version__} is too old: stam-build needs TensorRT >= 10")
    return version
