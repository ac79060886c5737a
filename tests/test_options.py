"""The shared command-line options: every command refuses the same bad value the same way, and fills
one `RunSettings` with its kind's default limits."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import pytest

from batch import cli as batch_cli
from benchmarks import accuracy
from calibration import cli as calibrate_cli
from runtime import RunSettings, infer, options
from runtime.limits import BATCH_LIMITS, CLI_LIMITS, SERVER_LIMITS, Limits
from serve import cli as serve_cli


def parse_calibrate(argv: Sequence[str]) -> argparse.Namespace:
    return calibrate_cli.parse_args(argv)


# command -> (its parser, the arguments of a valid request, the shared options it takes, its default limits)
COMMANDS: dict[str, tuple[Callable[[Sequence[str]], argparse.Namespace], list[str], set[str], Limits]] = {
    "runtime.infer": (infer.build_parser().parse_args, ["m.onnx", "v.mp4"], {"frames", "topk", "backend"}, CLI_LIMITS),
    "stam-calibrate": (parse_calibrate, ["m.onnx", "--videos", "d", "-o", "q.onnx"], {"frames"}, CLI_LIMITS),
    "stam-batch": (
        batch_cli.build_parser().parse_args,
        ["m.onnx", "videos", "--out", "o"],
        {"frames", "topk", "backend"},
        BATCH_LIMITS,
    ),
    "stam-serve": (serve_cli.build_parser().parse_args, ["m.onnx"], {"topk", "backend"}, SERVER_LIMITS),
    "benchmarks.accuracy": (
        accuracy.build_parser().parse_args,
        ["m.onnx", "--val-dir", "d"],
        {"frames", "backend"},
        CLI_LIMITS,
    ),
}
BAD_VALUES = {
    "frames": (["--frames", "x"], "argument --frames: expected a positive integer, got 'x'"),
    "frames0": (["--frames", "0"], "argument --frames: expected a positive integer, got '0'"),
    "topk": (["--topk", "0"], "argument --topk: expected a positive integer, got '0'"),
    "sampling": (["--sampling", "bogus"], "argument --sampling: invalid choice: 'bogus'"),
    "backend": (["--backend", "bogus"], "argument --backend: invalid choice: 'bogus'"),
    "precision": (["--precision", "fp64"], "argument --precision: invalid choice: 'fp64'"),
    "max-pixels": (
        ["--max-pixels", "-1"],
        "argument --max-pixels: expected a positive integer, or 0/none for no limit, got '-1'",
    ),
    "decode-timeout": (
        ["--decode-timeout", "soon"],
        "argument --decode-timeout: expected a positive number, or 0/none for no limit, got 'soon'",
    ),
}
ALWAYS = {"sampling", "max-pixels", "decode-timeout"}
OPTION_OF = {"frames0": "frames", "precision": "backend"}


def cases() -> list[tuple[str, str]]:
    return [
        (command, bad)
        for command, (_, _, takes, _) in COMMANDS.items()
        for bad in BAD_VALUES
        if bad in ALWAYS or OPTION_OF.get(bad, bad) in takes
    ]


@pytest.mark.parametrize(("command", "bad"), cases())
def test_a_bad_shared_option_is_one_error_line_and_exit_2(command, bad, capsys):
    parse, valid, _, _ = COMMANDS[command]
    flags, message = BAD_VALUES[bad]
    with pytest.raises(SystemExit) as exit_info:
        parse([*valid, *flags])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], errors


@pytest.mark.parametrize("command", COMMANDS)
def test_defaults_fill_one_settings_object_with_the_commands_limits(command):
    parse, valid, takes, limits = COMMANDS[command]
    settings = options.settings_from(parse(valid))
    assert settings == RunSettings(model="m.onnx", limits=limits)


@pytest.mark.parametrize("command", COMMANDS)
def test_zero_or_none_lifts_a_limit_and_values_are_kept(command):
    parse, valid, takes, limits = COMMANDS[command]
    flags = ["--max-pixels", "none", "--max-duration", "0", "--max-video-bytes", "1000", "--decode-timeout", "2.5"]
    settings = options.settings_from(parse([*valid, *flags, "--sampling", "reference"]))
    assert settings.limits == Limits(max_pixels=None, max_duration=None, max_video_bytes=1000, decode_timeout=2.5)
    assert settings.sampling == "reference"


def test_backend_precision_frames_and_topk_reach_the_settings():
    parse = batch_cli.build_parser().parse_args
    args = parse(["m.onnx", "v", "--out", "o", "--backend", "openvino", "--precision", "bf16", "--frames", "16"])
    settings = options.settings_from(args)
    assert (settings.backend, settings.precision, settings.frames, settings.topk) == ("openvino", "bf16", 16, 5)


def test_config_from_fills_a_commands_dataclass_by_field_name():
    from batch.job import JobConfig

    args = batch_cli.build_parser().parse_args(["m.onnx", "a", "b", "--out", "o", "--topk", "3", "--logits"])
    config = options.config_from(JobConfig, args, with_logits=args.logits)
    assert (config.model, list(config.inputs), config.topk, config.with_logits) == ("m.onnx", ["a", "b"], 3, True)
    assert config.limits == BATCH_LIMITS and config.backend == "auto"


LIVE_VALID = ["m.onnx", "tcp://127.0.0.1:9"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--topk", "0"], "argument --topk: expected a positive integer, got '0'"),
        (["--window", "x"], "argument --window: expected a positive integer, got 'x'"),
        (["--backend", "bogus"], "argument --backend: invalid choice: 'bogus'"),
        (["--max-pixels", "-1"], "argument --max-pixels: expected a positive integer, or 0/none for no limit"),
        (["--max-duration", "10"], "unrecognized arguments: --max-duration 10"),  # a live stream never ends
    ],
)
def test_stam_live_refuses_the_same_bad_values_the_same_way(flags, message, capsys):
    from runtime.live import cli as live_cli

    with pytest.raises(SystemExit) as exit_info:
        live_cli.build_parser().parse_args([*LIVE_VALID, *flags])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], errors


def test_stam_live_limits_are_the_command_lines_with_its_two_flags():
    from runtime.live import cli as live_cli

    args = live_cli.build_parser().parse_args([*LIVE_VALID, "--max-pixels", "1000", "--decode-timeout", "none"])
    assert options.limits_from(args) == CLI_LIMITS.lifted(max_pixels=1000, decode_timeout=None)
