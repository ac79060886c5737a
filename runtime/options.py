"""The command-line options every command shares, declared and validated once, into one `RunSettings`.

`runtime.infer`, `stam-calibrate`, `stam-batch`, `stam-serve` and `benchmarks.accuracy` add the
options they take with these helpers (model, backend and precision, frames, sampling, top-k, batch
size, and the limits of `runtime.limits`), so a bad value gets the same `error:` line and exit 2
from every command, and `settings_from(args)` turns what was parsed into one frozen object. The
limit flags default per kind of command (`CLI_LIMITS`, `BATCH_LIMITS`, `SERVER_LIMITS`); `0` or
`none` lifts a limit.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from runtime.backends import BACKENDS
from runtime.backends.openvino import PRECISIONS as EXECUTION_PRECISIONS
from runtime.decode import SAMPLING_MODES
from runtime.limits import CLI_LIMITS, Limits

T = TypeVar("T")
LIFTED = ("0", "none")  # what `--max-pixels` and the other limit flags take to lift a limit
DEFAULT_TOPK = 5
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class RunSettings:
    """What a command was asked to run, as the shared options parsed it.

    `frames` None means the model's trained T; `backend`/`precision` are `open_model`'s; `limits`
    bounds every video the command decodes (`load_clip(..., limits=...)`, `Timeline(..., limits=...)`).
    """

    model: str
    backend: str = "auto"
    precision: str = "fp32"
    frames: int | None = None
    sampling: str = "uniform"
    topk: int = DEFAULT_TOPK
    batch_size: int = DEFAULT_BATCH_SIZE
    limits: Limits = CLI_LIMITS


# --- value types (argparse `type=`: a bad value is argparse's one `error:` line and exit 2) ----------


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return int(_number(text, int, lambda value: value >= 1, "a positive integer"))


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _number(text, float, lambda value: 0 < value < math.inf, "a positive number")


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    return _number(text, float, lambda value: 0 <= value < math.inf, "a number >= 0")


def _number(text: str, kind: Callable[[str], float], valid: Callable[[float], bool], wanted: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not valid(value):
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
    return value


def limit_int(text: str) -> int | None:
    """A count limit: a positive integer, or `0`/`none` for no limit."""
    value = _limit(text, positive_int, "a positive integer")
    return None if value is None else int(value)


def limit_seconds(text: str) -> float | None:
    """A time limit: a positive number of seconds, or `0`/`none` for no limit."""
    return _limit(text, positive_float, "a positive number")


def _limit(text: str, parse: Callable[[str], float], wanted: str) -> float | None:
    if text.strip().lower() in LIFTED:
        return None
    try:
        return parse(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected {wanted}, or 0/none for no limit, got {text!r}") from None


# --- the options ------------------------------------------------------------------------------------


def add_model(parser: argparse.ArgumentParser, help: str) -> None:
    """The artifact, positional: `args.model`."""
    parser.add_argument("model", metavar="MODEL", help=help)


def add_backend(parser: argparse.ArgumentParser) -> None:
    """`--backend` and `--precision` of `open_model`."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto (default): a plan on TensorRT; an .onnx on OpenVINO when installed "
        "(ONNX Runtime for FP8 graphs, GPU providers or --providers), else ONNX Runtime",
    )
    parser.add_argument(
        "--precision",
        choices=EXECUTION_PRECISIONS,
        default="fp32",
        help="float math precision (default fp32: the artifact's own); bf16 or auto (bf16 where "
        "the CPU has avx512_bf16/AMX) run on OpenVINO",
    )


def add_frames(parser: argparse.ArgumentParser, help: str = "frames sampled per video") -> None:
    """`--frames T`, a positive integer; None: the model's trained T."""
    parser.add_argument("--frames", type=positive_int, help=f"{help} (default: the model's trained T)")


def add_sampling(parser: argparse.ArgumentParser) -> None:
    """`--sampling`, one of the decoder's modes."""
    parser.add_argument(
        "--sampling",
        choices=SAMPLING_MODES,
        default="uniform",
        help="uniform over the whole video (default), or the reference's T/10 fps over the first 10 s",
    )


def add_topk(parser: argparse.ArgumentParser, help: str = "predictions per video") -> None:
    """`--topk K`, a positive integer."""
    parser.add_argument("--topk", type=positive_int, default=DEFAULT_TOPK, help=f"{help} (default {DEFAULT_TOPK})")


def add_batch_size(parser: argparse.ArgumentParser, help: str = "videos per inference") -> None:
    """`--batch-size N`, a positive integer."""
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, help=f"{help} (default {DEFAULT_BATCH_SIZE})"
    )


LIMIT_FLAGS: dict[str, tuple[Callable[[str], int | float | None], str]] = {
    "max_pixels": (limit_int, "width x height of any frame"),
    "max_duration": (limit_seconds, "seconds of media read"),
    "max_video_bytes": (limit_int, "size of the encoded file"),
    "decode_timeout": (limit_seconds, "wall seconds spent decoding"),
}


def add_limits(parser: argparse.ArgumentParser, defaults: Limits, only: Sequence[str] | None = None) -> None:
    """`--max-pixels`, `--max-duration`, `--max-video-bytes`, `--decode-timeout`; defaults: this kind of command's.

    `only` names the limits that apply to a command (a live stream has no duration and no file size).
    """
    group = parser.add_argument_group("limits per video (0 or none lifts one)")
    for name, (kind, what) in LIMIT_FLAGS.items():
        if only is not None and name not in only:
            continue
        default = getattr(defaults, name)
        shown = "none" if default is None else f"{default:g}"
        flag = "--" + name.replace("_", "-")
        group.add_argument(flag, type=kind, default=default, metavar="N", help=f"{what} (default {shown})")


def add_window(parser: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """`--window T`, `--stride S`, `--fps F` of a timeline or a live source (runtime.windows.TimelineOptions)."""
    group = parser.add_argument_group(title)
    group.add_argument("--window", type=positive_int, help="frames per window, T (default: the model's trained T)")
    group.add_argument("--stride", type=positive_int, help="samples between window starts, S (default T/4)")
    group.add_argument("--fps", type=positive_float, help="samples per second, F (default T/10)")
    return group


# --- what was parsed ---------------------------------------------------------------------------------


def limits_from(args: argparse.Namespace) -> Limits:
    """The `Limits` the limit flags chose."""
    defaults = Limits()
    return Limits(**{name: getattr(args, name, getattr(defaults, name)) for name in LIMIT_FLAGS})


def settings_from(args: argparse.Namespace) -> RunSettings:
    """One frozen `RunSettings` from the shared options a parser added; those it did not add keep their defaults."""
    parsed = vars(args)
    shared = {field.name: parsed[field.name] for field in dataclasses.fields(RunSettings) if field.name in parsed}
    if "max_pixels" in parsed:
        shared["limits"] = limits_from(args)
    return RunSettings(**shared)


def config_from(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """A dataclass `cls` filled by field name from the settings, then the parsed options, then `overrides`.

    Lets a command build its own configuration (a job's, a server's) without copying every option by hand.
    """
    settings = settings_from(args)
    shared = {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)}
    parsed = {**vars(args), **shared, **overrides}
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: parsed[name] for name in names if name in parsed})


__all__ = [
    "RunSettings",
    "add_backend",
    "add_batch_size",
    "add_frames",
    "add_limits",
    "add_window",
    "add_model",
    "add_sampling",
    "add_topk",
    "config_from",
    "limit_int",
    "limit_seconds",
    "limits_from",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "settings_from",
]
