"""`build_engine`: a STAM ONNX file to a TensorRT plan plus its sidecar (`NAME.plan.json`), for either target.

Steps (each a function, the library calls in export.trt_build): read the ONNX (weights not loaded)
-> resolve and validate the profile -> choose the graph precision (fp16 = an fp16 ONNX graph built
strongly typed: TensorRT 11 and TensorRT-RTX have no BuilderFlag.FP16) -> parse -> config with
profile -> serialized plan -> plan file + sidecar, both written whole. A failure at any step leaves
nothing new on disk.

Targets: `tensorrt` (TensorRT 10.x/11.x; builds on, and for, the GPU it runs on) and `rtx`
(TensorRT-RTX: builds ahead of time on any machine, even without a GPU, for RTX compute capabilities;
plans run on RTX GPUs). The library module is passed to the same steps.

GPU support of `tensorrt` (release notes): nothing older than Volta (compute capability 7.0) runs
TensorRT 10 or 11. Volta-class GPUs (7.0 V100, 7.2 Xavier) were deprecated in 10.0 and removed in
10.5; TensorRT 11 does not support them. The builder refuses those combinations in one line and
warns on 10.0-10.4 (still supported, deprecated).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from export import trt_build
from export.trt_profile import OnnxInfo, read_onnx_info, resolve_profile
from runtime import contract
from runtime.backends.cuda import Cuda, driver_problem, import_cudart
from runtime.backends.trt import check_library_version, import_tensorrt, library_logger
from runtime.contract import DimRange, Profile, Sidecar
from runtime.errors import ArtifactError, StamError
from runtime.onnx_io import file_sha256

VOLTA_CLASS = ((7, 0), (7, 2))  # V100, Xavier
VOLTA_REMOVED = (10, 5)
TARGETS = tuple(contract.TRT_TARGETS)


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
    target: str = "tensorrt"
    compute_capabilities: tuple[str, ...] = ()
    tf32: bool = False

    def settings(self) -> trt_build.BuilderSettings:
        return trt_build.BuilderSettings(
            workspace_gib=self.workspace_gib,
            opt_level=self.opt_level,
            tf32=self.tf32,
            detailed_profiling=self.inspect,
            compute_capabilities=tuple(self.compute_capabilities),
        )


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
    raise StamError(
        f"{info.path} is a {own} graph; --precision {requested} cannot be built from it "
        f"(export a {requested} ONNX with stam-export, or drop --precision)"
    )


def check_gpu_support(trt_version: tuple[int, int], capability: str) -> str | None:
    """Refuse a TensorRT that cannot run on this GPU; return a warning for a deprecated combination."""
    try:
        major, minor = (int(part) for part in capability.split("."))
    except ValueError:
        return None  # unknown GPU: TensorRT itself will complain
    version = ".".join(map(str, trt_version))
    if (major, minor) < VOLTA_CLASS[0]:
        raise StamError(
            f"compute capability {capability} (Pascal or older) is not supported by TensorRT 10 or 11, "
            "nor by any TensorRT this package builds with: use a Volta (7.0) or newer GPU"
        )
    if (major, minor) in VOLTA_CLASS:
        if trt_version >= VOLTA_REMOVED:
            raise StamError(
                f"TensorRT {version} does not support compute capability {capability} (Volta class: "
                "V100, Xavier; removed in TensorRT 10.5): pip install 'tensorrt>=10.0,<10.5'"
            )
        return (
            f"compute capability {capability} (Volta class) is deprecated in TensorRT {version} and removed "
            "in 10.5; this engine cannot be rebuilt with newer TensorRT"
        )
    return None


def gpu_description() -> tuple[str, str]:
    """(GPU name, compute capability) of device 0 for the sidecar, or ("unknown GPU (why)", "unknown").

    A description must never stop a build: no driver, no cuda-python, a failed dlopen or a CUDA
    error all fall back to "unknown GPU" with the reason (a TensorRT-RTX build needs no GPU at all).
    """
    problem = driver_problem()
    if problem:
        return f"unknown GPU ({problem})", "unknown"
    try:
        return Cuda(import_cudart()).device_description()
    except (StamError, OSError, RuntimeError) as error:
        return f"unknown GPU ({' '.join(str(error).split())})", "unknown"


def prepare_onnx(info: OnnxInfo, precision: str, path: Path) -> Path:
    """The file the parser reads: the input itself, or its fp16 conversion written to `path`."""
    if precision == info.precision:
        return info.path
    if path.resolve() == info.path.resolve():
        raise ArtifactError(f"{path}: the converted graph would overwrite the input; choose another -o")
    import onnx

    from export.fp16 import convert_to_fp16
    from runtime.onnx_io import save_single_file, set_metadata

    model = convert_to_fp16(onnx.load(str(info.path)))
    set_metadata(model, {contract.META_PRECISION: precision})
    save_single_file(model, path)
    return path


def make_sidecar(
    info: OnnxInfo,
    profile: Profile,
    precision: str,
    trt_version: str,
    gpu: tuple[str, str],
    build: dict[str, Any],
    target: str = "tensorrt",
) -> Sidecar:
    metadata = {**info.metadata, contract.META_PRECISION: precision}
    return Sidecar(
        metadata=metadata,
        profile=profile,
        precision=precision,
        tensorrt_version=trt_version,
        gpu_name=gpu[0],
        compute_capability=gpu[1],
        build=build,
        target=target,
    )


def write_plan(plan_path: Path, plan: bytes, sidecar: Sidecar) -> None:
    """Plan, then sidecar, each written whole; a sidecar that cannot be written takes the plan with it."""
    contract.write_atomic(plan_path, plan)
    try:
        sidecar.write(plan_path)
    except StamError:
        plan_path.unlink(missing_ok=True)
        raise


def plan_inputs(onnx_path: Path, options: BuildOptions) -> tuple[OnnxInfo, Profile, str, Path]:
    """Everything decided before TensorRT is touched: model info, profile, precision, plan path."""
    check_target_options(options)
    info = read_onnx_info(onnx_path)
    contract.check_metadata(info.metadata, str(onnx_path))
    profile = resolve_profile(info, options.batch, options.frames)
    precision = target_precision(info, options.precision)
    plan_path = options.plan_path or default_plan_path(onnx_path, precision)
    if not plan_path.parent.is_dir():
        raise ArtifactError(f"{plan_path}: output directory {plan_path.parent} does not exist")
    return info, profile, precision, plan_path


def check_target_options(options: BuildOptions) -> None:
    """Options that one target cannot honour are refused before any work (not silently ignored)."""
    if options.target not in TARGETS:
        raise StamError(f"unknown target {options.target!r} (known: {', '.join(TARGETS)})")
    if options.target == "rtx" and options.timing_cache is not None:
        raise StamError(
            "--timing-cache does nothing with TensorRT-RTX (its timing cache calls are no-ops since 1.2); "
            "kernels are compiled on the RTX GPU at first run and kept in NAME.plan.runtime_cache"
        )
    if options.target == "tensorrt" and options.compute_capabilities:
        raise StamError("--compute-capability needs --target rtx: TensorRT builds for the GPU it runs on")


def target_gpu(options: BuildOptions, trt_version: tuple[int, int]) -> tuple[str, str]:
    """(GPU name, compute capability) for the sidecar: the build GPU for `tensorrt`, which the plan is
    tied to; for `rtx`, the build machine's description and the compute capabilities built for."""
    gpu = gpu_description()
    if options.target == "rtx":
        return gpu[0], ",".join(options.compute_capabilities) or "library default"
    warning = check_gpu_support(trt_version, gpu[1])
    if warning:
        warnings.warn(warning, RuntimeWarning, stacklevel=3)
    return gpu


def build_engine(onnx_path: str | Path, options: BuildOptions) -> BuildResult:
    """ONNX -> plan + sidecar; raises StamError (one line) on any user-facing problem, leaving nothing new on disk."""
    info, profile, precision, plan_path = plan_inputs(Path(onnx_path), options)
    trt = import_tensorrt(options.target)
    version = check_library_version(trt)
    gpu = target_gpu(options, version)
    built = built_onnx_path(plan_path)
    with removed_on_failure(built if precision != info.precision else None):
        source = prepare_onnx(info, precision, built)
        started = time.perf_counter()
        plan, strongly_typed, layers = _run_builder(trt, source, profile, options)
        seconds = time.perf_counter() - started
        build = {
            "library": trt.__name__,
            "opt_level": options.opt_level,
            "workspace_gib": options.workspace_gib,
            "build_seconds": round(seconds, 2),
            "onnx_path": str(info.path),
            "onnx_sha256": file_sha256(info.path),
            "built_onnx_path": str(source),
            "strongly_typed": strongly_typed,
            "tf32": options.tf32,
            "compute_capabilities": list(options.compute_capabilities),
            "timing_cache": str(options.timing_cache or ""),
        }
        sidecar = make_sidecar(info, profile, precision, trt.__version__, gpu, build, options.target)
        write_plan(plan_path, plan, sidecar)
    return BuildResult(plan_path, sidecar, source, seconds, layers)


@contextmanager
def removed_on_failure(path: Path | None) -> Iterator[None]:
    """Delete a file this build creates (the converted graph and its weights) if the build fails."""
    existed = path is not None and path.exists()
    try:
        yield
    except BaseException:
        if path is not None and not existed:
            path.unlink(missing_ok=True)
            path.with_name(f"{path.name}.data").unlink(missing_ok=True)
        raise


def _run_builder(trt: ModuleType, source: Path, profile: Profile, options: BuildOptions) -> tuple[bytes, bool, list]:
    settings = options.settings()
    logger = library_logger(trt).start()
    builder = trt.Builder(logger)
    network, strongly_typed = trt_build.create_network(trt, builder)
    trt_build.parse_onnx(trt, network, logger, source)
    config = trt_build.create_config(trt, builder, profile, settings, logger)
    trt_build.load_timing_cache(config, options.timing_cache)
    plan = trt_build.build_plan(builder, network, config, logger, settings)
    trt_build.save_timing_cache(config, options.timing_cache)
    return plan, strongly_typed, _inspect(trt, logger, plan) if options.inspect else []


def _inspect(trt: ModuleType, logger: Any, plan: bytes) -> list[dict[str, Any]]:
    """The inspector needs the plan deserialized (a GPU): without one the plan is still written, with a warning."""
    try:
        return trt_build.engine_layers(trt, logger, plan)
    except StamError as error:
        warnings.warn(str(error), RuntimeWarning, stacklevel=3)
        return []
