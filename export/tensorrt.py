"""`build_engine`: a STAM ONNX file to a TensorRT plan plus its sidecar (`NAME.plan.json`).

Steps (each a function, the TensorRT calls in export.trt_build): read the ONNX (weights not loaded)
-> resolve and validate the profile -> choose the graph precision (fp16 = an fp16 ONNX graph built
strongly typed: TensorRT 11 has no BuilderFlag.FP16) -> parse -> config with profile -> serialized
plan -> plan file + sidecar.

GPU support (TensorRT release notes): Volta (compute capability 7.0, e.g. V100) was deprecated in
TensorRT 10.0 and removed in 10.5; TensorRT 11 does not support it either. On a V100 the builder
therefore refuses TensorRT >= 10.5 with a message to install `tensorrt>=10.0,<10.5`, and warns on
10.0-10.4 (still supported, deprecated). Strongly typed networks (STRONGLY_TYPED) exist on 10.x, so a
V100 with TensorRT 10.4 builds the same fp16 graphs as newer GPUs.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from export import trt_build
from export.trt_profile import OnnxInfo, read_onnx_info, resolve_profile
from runtime import contract
from runtime.contract import DimRange, Profile, Sidecar
from runtime.errors import ArtifactError, MissingDependencyError, StamError

VOLTA = (7, 0)
VOLTA_REMOVED = (10, 5)
_TWO_GIB = 2**31


@dataclass
class BuildOptions:
    """Everything `stam-build` can set; None means "the default" (see resolve_profile, TensorRT defaults)."""

    plan_path: Path | None = None
    precision: str | None = None
    batch: DimRange | None = None
    frames: DimRange | None = None
    timing_cache: Path | None = None
    workspace_gib: float | None = None
    opt_level: int | None = None
    inspect: bool = False


@dataclass
class BuildResult:
    plan_path: Path
    sidecar: Sidecar
    built_onnx: Path
    seconds: float
    layers: list[dict[str, Any]] = field(default_factory=list)


def default_plan_path(onnx_path: Path, precision: str) -> Path:
    """`m.onnx` -> `m.plan`; a precision other than fp32 is named: `m.fp16.plan` (kept if already there)."""
    stem = onnx_path.stem
    if precision != "fp32" and not stem.endswith(f".{precision}"):
        stem = f"{stem}.{precision}"
    return onnx_path.with_name(f"{stem}.plan")


def built_onnx_path(plan_path: Path) -> Path:
    """Where a converted graph is kept: beside the plan, so --compare and users can read what was built."""
    return plan_path.with_name(f"{plan_path.stem}.built.onnx")


def target_precision(info: OnnxInfo, requested: str | None) -> str:
    """The engine precision: the ONNX's own unless fp16 is requested of an fp32 graph (converted first)."""
    own = info.precision
    if requested is None or requested == own:
        return own
    if requested == "fp16" and own == "fp32":
        return "fp16"
    raise StamError(f"{info.path} is a {own} graph; --precision {requested} cannot be built from it "
                    f"(export a {requested} ONNX with stam-export, or drop --precision)")


def check_gpu_support(trt_version: tuple[int, int], capability: str) -> str | None:
    """Refuse a TensorRT that cannot run on this GPU; return a warning for a deprecated combination."""
    try:
        major, minor = (int(part) for part in capability.split("."))
    except ValueError:
        return None  # unknown GPU (no cuda-python): TensorRT itself will complain
    version = ".".join(map(str, trt_version))
    if (major, minor) < (7, 5) and trt_version >= VOLTA_REMOVED:
        raise StamError(f"TensorRT {version} does not support compute capability {capability} (Volta/V100 support "
                        "was removed in TensorRT 10.5): pip install 'tensorrt>=10.0,<10.5'")
    if (major, minor) <= VOLTA:
        return (f"compute capability {capability} (Volta) is deprecated in TensorRT {version} and removed in 10.5; "
                "this engine cannot be rebuilt with newer TensorRT")
    return None


def gpu_description() -> tuple[str, str]:
    """(GPU name, compute capability) via cuda-python; ("unknown", "unknown") without it."""
    try:
        from runtime.backends.cuda import Cuda, import_cudart

        return Cuda(import_cudart()).device_description()
    except MissingDependencyError:
        return "unknown", "unknown"


def prepare_onnx(info: OnnxInfo, precision: str, path: Path) -> Path:
    """The file the parser reads: the input itself, or its fp16 conversion written to `path`."""
    if precision == info.precision:
        return info.path
    if path.resolve() == info.path.resolve():
        raise ArtifactError(f"{path}: the converted graph would overwrite the input; choose another -o")
    from export.fp16 import convert_to_fp16

    model = convert_to_fp16(onnx.load(str(info.path)))
    _set_precision(model, precision)
    large = model.ByteSize() >= _TWO_GIB
    onnx.save_model(model, str(path), save_as_external_data=large, location=f"{path.name}.data")
    return path


def _set_precision(model: onnx.ModelProto, precision: str) -> None:
    for prop in model.metadata_props:
        if prop.key == contract.META_PRECISION:
            prop.value = precision
            return
    model.metadata_props.add(key=contract.META_PRECISION, value=precision)


def make_sidecar(info: OnnxInfo, profile: Profile, precision: str, trt_version: str, gpu: tuple[str, str],
                 build: dict[str, Any]) -> Sidecar:
    metadata = {**info.metadata, contract.META_PRECISION: precision}
    return Sidecar(metadata=metadata, profile=profile, precision=precision, tensorrt_version=trt_version,
                   gpu_name=gpu[0], compute_capability=gpu[1], build=build)


def write_plan(plan_path: Path, plan: bytes, sidecar: Sidecar) -> None:
    try:
        plan_path.write_bytes(plan)
    except OSError as error:
        raise ArtifactError(f"{plan_path}: cannot write the plan ({error.strerror})") from None
    sidecar.write(plan_path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plan_inputs(onnx_path: Path, options: BuildOptions) -> tuple[OnnxInfo, Profile, str, Path]:
    """Everything decided before TensorRT is touched: model info, profile, precision, plan path."""
    info = read_onnx_info(onnx_path)
    contract.check_metadata(info.metadata, str(onnx_path))
    profile = resolve_profile(info, options.batch, options.frames)
    precision = target_precision(info, options.precision)
    plan_path = options.plan_path or default_plan_path(onnx_path, precision)
    if not plan_path.parent.is_dir():
        raise ArtifactError(f"{plan_path}: output directory {plan_path.parent} does not exist")
    return info, profile, precision, plan_path


def build_engine(onnx_path: str | Path, options: BuildOptions) -> BuildResult:
    """ONNX -> plan + sidecar; raises StamError (one line) on any user-facing problem."""
    info, profile, precision, plan_path = plan_inputs(Path(onnx_path), options)
    trt = trt_build.import_tensorrt()
    version = trt_build.ensure_tensorrt_major(trt)
    gpu = gpu_description()
    warning = check_gpu_support(version, gpu[1])
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    source = prepare_onnx(info, precision, built_onnx_path(plan_path))
    started = time.perf_counter()
    plan, strongly_typed, layers = _run_builder(trt, source, profile, options)
    seconds = time.perf_counter() - started
    build = {"opt_level": options.opt_level, "workspace_gib": options.workspace_gib, "build_seconds": round(seconds, 2),
             "onnx_path": str(info.path), "onnx_sha256": file_sha256(info.path), "built_onnx_path": str(source),
             "strongly_typed": strongly_typed, "timing_cache": str(options.timing_cache or "")}
    sidecar = make_sidecar(info, profile, precision, trt.__version__, gpu, build)
    write_plan(plan_path, plan, sidecar)
    return BuildResult(plan_path, sidecar, source, seconds, layers)


def _run_builder(trt: Any, source: Path, profile: Profile, options: BuildOptions) -> tuple[bytes, bool, list]:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, strongly_typed = trt_build.create_network(trt, builder)
    trt_build.parse_onnx(trt, network, logger, source)
    config = trt_build.create_config(trt, builder, profile, options.workspace_gib, options.opt_level)
    trt_build.load_timing_cache(config, options.timing_cache)
    plan = trt_build.build_plan(builder, network, config)
    trt_build.save_timing_cache(config, options.timing_cache)
    layers = trt_build.engine_layers(trt, logger, plan) if options.inspect else []
    return plan, strongly_typed, layers
