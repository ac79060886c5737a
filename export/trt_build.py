"""The TensorRT calls of `stam-build`, one small step each: ONNX -> network -> config -> plan, and the inspector.

Written against the TensorRT 10.x/11.x Python API, which TensorRT-RTX (`tensorrt_rtx`) shares: the
library module is passed in, so one set of steps builds for both targets. Enum members and methods
are feature-detected with hasattr, never assumed from a version number (TensorRT-RTX, for
instance, has compute-capability targets and no working timing cache). Every library message goes
through the process's one logger (`runtime.backends.trt.library_logger`): errors end up in the
one-line error of the step that failed, warnings go to `logging`; nothing here prints.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from runtime import contract
from runtime.backends.trt import library_logger, library_name, version_tuple
from runtime.contract import Profile
from runtime.errors import ArtifactError, ShapeError, StamError

GIB = 1 << 30


@dataclass(frozen=True)
class BuilderSettings:
    """What the config step sets; None means the library's default."""

    workspace_gib: float | None = None
    opt_level: int | None = None
    tf32: bool = False
    detailed_profiling: bool = False
    compute_capabilities: tuple[str, ...] = ()


def network_flags(trt: ModuleType) -> tuple[int, bool]:
    """(flags for Builder.create_network, strongly typed?).

    NetworkDefinitionCreationFlag.STRONGLY_TYPED exists from TensorRT 9/10 and in TensorRT-RTX (which
    builds strongly typed networks only); in TensorRT 11.x every network is strongly typed (the flag
    is accepted and ignored, or absent). EXPLICIT_BATCH is ignored since 10.0.
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
    errors = parser_errors(trt, network, logger, path)
    if errors:
        raise ArtifactError(f"{path}: the {library_name(trt)} ONNX parser failed: " + "; ".join(errors))


def parser_errors(trt: ModuleType, network: Any, logger: Any, path: Path) -> list[str]:
    """The parser's per-node errors for a file (empty when it parsed)."""
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(path)):
        return []
    errors = [format_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
    return errors or [logger.reason()]


def format_parser_error(error: Any) -> str:
    """One IParserError as `node NAME (OP): description`; node_name/node_operator exist from TensorRT 10."""
    name = _call(error, "node_name") or f"#{_call(error, 'node')}"
    operator = _call(error, "node_operator") or "?"
    return f"node {name} ({operator}): {' '.join(str(_call(error, 'desc')).split())}"


def _call(obj: Any, method: str) -> Any:
    function = getattr(obj, method, None)
    return function() if callable(function) else None


def create_config(trt: ModuleType, builder: Any, profile: Profile, settings: BuilderSettings, logger: Any) -> Any:
    """IBuilderConfig with the one optimization profile, memory and optimization limits, TF32 off unless
    asked (fp32 engines then match fp32 references), DETAILED profiling only for the inspector (it adds
    enqueue latency), and TensorRT-RTX's target compute capabilities."""
    config = builder.create_builder_config()
    add_profile(builder, config, profile, logger)
    if settings.workspace_gib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, max(1, int(settings.workspace_gib * GIB)))
    if settings.opt_level is not None:
        config.builder_optimization_level = settings.opt_level
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is not None:
        (config.set_flag if settings.tf32 else config.clear_flag)(tf32)
    if settings.detailed_profiling:
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    set_compute_capabilities(trt, config, settings.compute_capabilities)
    return config


def add_profile(builder: Any, config: Any, profile: Profile, logger: Any) -> Any:
    """IOptimizationProfile.set_shape on the part's input; the library's own validity check is the last word."""
    optimization = builder.create_optimization_profile()
    shapes = profile.shapes()
    optimization.set_shape(profile.input_name, shapes["min"], shapes["opt"], shapes["max"])
    if config.add_optimization_profile(optimization) < 0:
        raise ShapeError(
            f"TensorRT refused the profile {profile.input_name} min {shapes['min']} opt {shapes['opt']} "
            f"max {shapes['max']}: {logger.reason()}"
        )
    return optimization


def capability_names(trt: ModuleType) -> dict[str, Any]:
    """ "8.6" -> ComputeCapability.SM86 for each concrete target the library offers."""
    members = getattr(getattr(trt, "ComputeCapability", None), "__members__", {})
    return {f"{name[2:-1]}.{name[-1]}": value for name, value in members.items() if name.startswith("SM")}


def set_compute_capabilities(trt: ModuleType, config: Any, capabilities: Sequence[str]) -> None:
    """IBuilderConfig.num_compute_capabilities + set_compute_capability (TensorRT-RTX); none keeps the library's default."""
    if not capabilities:
        return
    known = capability_names(trt)
    if not known or not hasattr(config, "set_compute_capability"):
        raise StamError(f"--compute-capability needs --target rtx: {library_name(trt)} builds for the GPU it runs on")
    unknown = [value for value in capabilities if value not in known]
    if unknown:
        raise StamError(
            f"{library_name(trt)} {trt.__version__} cannot target compute capability {', '.join(unknown)} "
            f"(it offers {', '.join(known)})"
        )
    config.num_compute_capabilities = len(capabilities)
    for index, value in enumerate(capabilities):
        if not config.set_compute_capability(known[value], index):
            raise StamError(f"{library_name(trt)} refused compute capability {value}")


def load_timing_cache(config: Any, path: Path | None) -> None:
    """create_timing_cache(bytes) + set_timing_cache: reuse earlier tactic timings if the file exists.

    A cache from another GPU or TensorRT version is rejected by the library (set_timing_cache returns
    False); the build then goes on with an empty cache, says so, and saves a fresh one.
    """
    if path is None:
        return
    data = path.read_bytes() if path.is_file() else b""
    if config.set_timing_cache(config.create_timing_cache(data), ignore_mismatch=False):
        return
    warnings.warn(
        f"{path}: timing cache rejected (made on another GPU or TensorRT version); "
        "building without it and saving a fresh one",
        RuntimeWarning,
        stacklevel=2,
    )
    if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
        raise StamError("TensorRT refused an empty timing cache; build without --timing-cache")


def save_timing_cache(config: Any, path: Path | None) -> None:
    """ITimingCache.serialize() of the cache the build filled, written whole (or a warning when there is none)."""
    if path is None:
        return
    cache = config.get_timing_cache()
    if cache is None:
        warnings.warn(f"{path}: TensorRT kept no timing cache; nothing saved", RuntimeWarning, stacklevel=2)
        return
    contract.write_atomic(path, bytes(memoryview(cache.serialize())))


def build_plan(builder: Any, network: Any, config: Any, logger: Any, settings: BuilderSettings) -> bytes:
    """Builder.build_serialized_network: None on failure, explained by the library's last error."""
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        workspace = f" with --workspace {settings.workspace_gib:g} GiB" if settings.workspace_gib is not None else ""
        raise StamError(f"TensorRT could not build the engine{workspace}: {logger.reason()}")
    return bytes(memoryview(plan))


def engine_layers(trt: ModuleType, logger: Any, plan: bytes) -> list[dict[str, Any]]:
    """Layers of a plan via ICudaEngine.create_engine_inspector().get_engine_information(LayerInformationFormat.JSON)."""
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    if engine is None:
        raise StamError(
            f"cannot inspect the plan on this machine (--inspect deserializes it, which needs a GPU): {logger.reason()}"
        )
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


def check_with_parser(trt: ModuleType, path: Path) -> list[str]:
    """`stam-build --check` with a real library: the ONNX parser's per-node errors (empty: it parses)."""
    logger = library_logger(trt).start()
    builder = trt.Builder(logger)
    network, _ = create_network(trt, builder)
    return parser_errors(trt, network, logger, path)
