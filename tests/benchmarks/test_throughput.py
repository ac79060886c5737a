"""The throughput benchmark: work counting against the paper, timing statistics, and a CLI smoke run on stam_tiny."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.backends import describe_backends, static_skip_reason, uses_cuda_graphs
from benchmarks.flops import count_work
from benchmarks.throughput import DEFAULT_OUT, build_options, main, output_paths, parse_args
from benchmarks.timing import summarize, time_host
from runtime.cpu import has_bf16

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_stam16_work_matches_the_papers_gflops_column():
    work = count_work("stam_16")  # meta device: nothing is computed
    assert work.paper_gmacs == 270.0
    # The paper's 270 "GFLOPs" are MACs without the attention matmuls (16 x 16.9 GMAC + temporal part).
    assert work.gmacs_without_attention == pytest.approx(270.0, rel=0.01)
    # With attention (Q.K^T and attention x V): about 4% more, still within a few percent.
    assert 1.02 < work.ratio < 1.06
    assert work.gflops == pytest.approx(2 * work.gmacs)


def test_work_scales_with_frames_like_the_paper():
    ratios = [count_work(name).to_dict()["ratio_without_attention"] for name in ("stam_8", "stam_64")]
    assert ratios == pytest.approx([1.0, 1.0], rel=0.01)


def test_attention_is_counted_on_cpu_as_on_meta():
    """FlopCounterMode has no formula for SDPA's CPU kernel; ours must count it exactly."""
    on_cpu, on_meta = count_work("stam_tiny", device="cpu"), count_work("stam_tiny")
    # stam_tiny: spatial 2 blocks x 4 heads x 197^2 x head dim 16, temporal 2 layers x 8 heads x 9^2 x 8; 2 matmuls each.
    frames = 8
    spatial = frames * 2 * 4 * 2 * 197 * 197 * 16
    temporal = 2 * 8 * 2 * (frames + 1) ** 2 * 8
    expected_gmacs = (spatial + temporal) / 1e9
    for work in (on_cpu, on_meta):
        assert work.gmacs_by_category["attention matmuls"] == pytest.approx(expected_gmacs, rel=1e-9)
    assert on_cpu.gmacs == pytest.approx(on_meta.gmacs, rel=1e-12)


def test_summarize_reports_median_and_tail_percentiles():
    stats = summarize([i / 1e3 for i in range(1, 101)])  # 1..100 ms
    assert (stats.median_ms, stats.p90_ms, stats.p99_ms) == pytest.approx((50.5, 90.1, 99.01))
    assert (stats.iters, stats.min_ms, stats.max_ms) == (100, pytest.approx(1.0), pytest.approx(100.0))


def test_time_host_warms_up_before_timing(monkeypatch):
    """A clock that only moves inside the step: warm-up calls are not timed, each timed call is its own."""
    from benchmarks import timing

    durations = iter([9.0, 9.0, 9.0, 0.5, 0.25, 0.125, 1.0])
    clock = [0.0]

    def step() -> None:
        clock[0] += next(durations)

    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    assert time_host(step, iters=4, warmup=3) == [0.5, 0.25, 0.125, 1.0]


def test_skip_reasons_on_cuda_keep_the_gpu_paths_open():
    assert static_skip_reason("torch", "fp16", "cuda") is None
    assert static_skip_reason("torch-compile", "fp16", "cuda") is None
    assert static_skip_reason("torch", "fp16", "cpu")
    assert static_skip_reason("torch", "bf16", "cpu") is None
    assert static_skip_reason("tensorrt", "fp16", "cpu") == "needs --device cuda"


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory, tiny_onnx):
    """Reuse the session's stam_tiny export instead of exporting again."""
    folder = tmp_path_factory.mktemp("artifacts")
    shutil.copy(tiny_onnx, folder / "stam_tiny.fp32.onnx")
    return folder


def _run_cli(out_dir, onnx_dir, backends: str, precisions: str) -> tuple[int, dict, str, bytes]:
    out = out_dir / "out.json"
    status = main(
        [
            "--models",
            "stam_tiny",
            "--backends",
            backends,
            "--precision",
            precisions,
            "--batch",
            "1,2",
            "--device",
            "cpu",
            "--iters",
            "2",
            "--warmup",
            "1",
            "--json",
            str(out),
            "--onnx-dir",
            str(onnx_dir),
            "--peak-size",
            "256",
        ]
    )
    return status, json.loads(out.read_text()), out.with_suffix(".md").read_text(), out.with_suffix(".png").read_bytes()


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, onnx_dir):
    """One CLI run on stam_tiny: torch and onnxruntime measured, the rest skipped with reasons."""
    return _run_cli(tmp_path_factory.mktemp("smoke"), onnx_dir, "torch,onnxruntime,tensorrt", "fp32,fp16,int8")


def test_cli_smoke_writes_json_markdown_and_png(smoke_run):
    status, document, markdown, png = smoke_run
    assert status == 0
    assert set(report.TOP_LEVEL_KEYS) <= set(document) and document["schema"] == report.SCHEMA
    measured = {(r["backend"], r["precision"]) for r in document["results"]}
    assert measured == {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    assert {r["batch"] for r in document["results"]} == {1, 2}
    for result in document["results"]:
        assert set(report.RESULT_KEYS) <= set(result)
        assert result["videos_per_s"] > 0 and result["latency"]["iters"] == 2
        assert result["latency"]["median_ms"] <= result["latency"]["p90_ms"] <= result["latency"]["p99_ms"]
        assert result["tflops"] == pytest.approx(document["work"][0]["gflops"] * result["videos_per_s"] / 1e3)
    skipped = {(s["backend"], s["precision"]) for s in document["skipped"]}
    assert {("torch", "fp16"), ("torch", "int8"), ("tensorrt", "fp32"), ("onnxruntime", "fp16")} <= skipped
    assert all(s["reason"] for s in document["skipped"])
    rows = [line for line in markdown.splitlines() if line.startswith("| stam_tiny | 8 | ")]
    results = len(document["results"])
    assert len(rows) == 1 + 2 + results  # work table, one "beside the paper" row per batch, every measurement
    assert all(line.count("|") == 12 for line in rows[-results:])  # 11 columns
    assert "## Skipped" in markdown and "- torch fp16: " in markdown
    assert png.startswith(PNG_MAGIC)


def test_report_renders_from_json_alone(smoke_run):
    _, document, markdown, _ = smoke_run
    assert report.render_markdown(json.loads(json.dumps(document))) == markdown


@pytest.mark.slow
def test_cli_smoke_torch_compile(tmp_path, onnx_dir):
    """Kept out of the smoke run above: compiling costs seconds even for stam_tiny."""
    status, document, _, _ = _run_cli(tmp_path, onnx_dir, "torch-compile", "fp32")
    assert status == 0 and {r["backend"] for r in document["results"]} == {"torch-compile"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models", "stam_99"], "--models: unknown stam_99"),
        (["--backends", "tvm"], "--backends: unknown tvm"),
        (["--precision", "fp8"], "--precision: unknown fp8"),
        (["--batch", "0"], "--batch must be a comma list of positive integers"),
        (["--batch", "x"], "--batch must be a comma list of positive integers"),
        (["--iters", "0"], "--iters must be >= 1"),
        (["--pairs", "torch"], "--pairs must be a comma list of BACKEND:PRECISION"),
        (["--pairs", "torch:fp64"], "--pairs precision: unknown fp64"),
        (
            ["--json", "/nonexistent/dir/out.json", "--device", "cpu"],
            "output directory /nonexistent/dir does not exist",
        ),
    ],
)
def test_bad_arguments_give_one_line_error(argv, message, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1


def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err


def test_paper_columns_sit_beside_ours(smoke_run):
    """Relabel the smoke results as stam_16: the paper's 270 GFLOPs and 20.0 videos/s must sit in the same row."""
    document = json.loads(json.dumps(smoke_run[1]))
    for entry in (*document["work"], *document["results"]):
        entry["model"] = "stam_16"
    document["work"][0]["paper_gmacs"] = 270.0
    ours = next(r for r in document["results"] if r["batch"] == 1 and r["backend"] == "torch")["videos_per_s"]
    row = next(
        line
        for line in report.render_markdown(document).splitlines()
        if line.startswith("| stam_16 | 8 | 270 | 20.0 |")
    )
    assert f"| {ours:.3g} |" in row


def test_pairs_replace_the_cross_product():
    cross = build_options(
        parse_args(["--backends", "torch,onnxruntime", "--precision", "fp32,int8", "--device", "cpu"])
    )
    assert cross.pairs == (("torch", "fp32"), ("torch", "int8"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"))
    chosen = build_options(
        parse_args(["--pairs", "torch:fp32,torch-compile:fp16", "--backends", "tensorrt", "--device", "cpu"])
    )
    assert chosen.pairs == (("torch", "fp32"), ("torch-compile", "fp16"))


def test_compile_mode_defaults_per_device_and_is_recorded():
    assert build_options(parse_args(["--device", "cpu"])).compile_mode == "default"
    chosen = build_options(parse_args(["--device", "cpu", "--compile-mode", "reduce-overhead"]))
    assert chosen.compile_mode == "reduce-overhead"
    assert "mode max-autotune (Triton matmul autotuning + CUDA graphs)" in describe_backends("cuda")["torch-compile"]
    assert "mode reduce-overhead" in describe_backends("cpu", "reduce-overhead")["torch-compile"]
    assert [
        uses_cuda_graphs(mode, device)
        for mode, device in [
            ("max-autotune", "cuda"),
            ("reduce-overhead", "cuda"),
            ("max-autotune-no-cudagraphs", "cuda"),
            ("default", "cuda"),
            ("max-autotune", "cpu"),
            (None, "cuda"),
        ]
    ] == [True, True, False, False, False, False]


def test_runs_merge_into_one_report(smoke_run, tmp_path):
    document = json.loads(json.dumps(smoke_run[1]))
    compiled = json.loads(json.dumps(document))
    compiled["settings"]["pairs"] = [["torch-compile", "fp32"]]
    compiled["settings"]["backends"] = ["torch-compile"]
    compiled["settings"]["backends_detail"]["torch-compile"] = "torch.compile mode reduce-overhead (as run)"
    compiled["results"] = [dict(r, backend="torch-compile") for r in compiled["results"] if r["backend"] == "torch"]
    runs = [report.write_json(doc, tmp_path / f"run{i}.json") for i, doc in enumerate((document, compiled))]
    assert report.main([*map(str, runs), "--json", str(tmp_path / "merged.json")]) == 0
    merged = report.read_json(tmp_path / "merged.json")
    assert len(merged["results"]) == len(document["results"]) + len(compiled["results"])
    assert ["torch-compile", "fp32"] in merged["settings"]["pairs"] and len(merged["work"]) == 1
    details = merged["settings"]["backends_detail"]  # each backend described as the run that measured it ran it
    assert details["torch-compile"] == "torch.compile mode reduce-overhead (as run)"
    assert details["torch"] == document["settings"]["backends_detail"]["torch"]
    assert "| torch-compile | fp32 |" in (tmp_path / "merged.md").read_text()
    assert (tmp_path / "merged.png").read_bytes().startswith(PNG_MAGIC)


def test_merge_refuses_a_file_that_is_not_a_results_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "something else"}))
    assert report.main([str(bad), "--json", str(tmp_path / "out.json")]) == 2
    assert "not a stam-deploy/throughput/v1 results file" in capsys.readouterr().err


# --- the honest peak, OpenVINO, where results go -------------------------------------------------------


def test_cpu_peak_is_the_best_library_per_dtype_and_model_runs_are_judged_by_it(smoke_run):
    _, document, markdown, _ = smoke_run
    detail = document["peak_detail"]
    measured = [m for m in detail["measured"] if m["tflops"]]
    libraries = {m["library"] for m in measured if m["dtype"] == "fp32"}
    assert {"torch", "numpy", "onnxruntime"} <= libraries  # every library present measured the same matmul
    for peak in document["peaks"]:
        assert peak["tflops"] == max(m["tflops"] for m in measured if m["dtype"] == peak["dtype"])
    fp32_peak = next(p["tflops"] for p in document["peaks"] if p["dtype"] == "fp32")
    for result in (r for r in document["results"] if r["precision"] == "fp32"):
        assert result["peak_fraction"] == pytest.approx(result["tflops"] / fp32_peak)
    assert "### Every library's matmul" in markdown and "Theoretical fp32 peak:" in markdown


def test_theoretical_peak_from_microarchitecture_and_clock():
    from benchmarks.peak import fp32_flops_per_cycle, theoretical_peak

    zen3 = {"vendor_id": "AuthenticAMD", "cpu family": "25", "model": "1", "cpu MHz": "2445.428", "flags": "fma avx2"}
    assert fp32_flops_per_cycle(zen3) == (32, "AMD Zen 3")
    assert fp32_flops_per_cycle({**zen3, "model": "17"}) == (32, "AMD Zen 4")
    hidden = theoretical_peak(0.2, zen3, max_ghz=None, cores=2)
    assert hidden["clock_used"] == "nominal" and hidden["tflops"] == pytest.approx(2 * 2.445428 * 32 / 1e3)
    assert hidden["implied_clock_ghz"] == pytest.approx(0.2e3 / 64)  # 3.125 GHz: the cores boost above nominal
    known = theoretical_peak(None, zen3, max_ghz=3.5, cores=2)
    assert known["clock_used"] == "max" and known["tflops"] == pytest.approx(0.224)
    intel512 = {"vendor_id": "GenuineIntel", "cpu family": "6", "model": "143", "flags": "fma avx2 avx512f"}
    assert theoretical_peak(0.5, intel512, cores=2)["tflops"] is None  # 1 or 2 FMA units: not guessed
    assert report.theory_line(theoretical_peak(0.5, intel512, cores=2)).startswith("not known")


needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")


@needs_openvino
def test_openvino_rows_measure_fp32_and_int8_and_bf16_only_with_hardware(tmp_path, onnx_dir):
    status, document, _, _ = _run_cli(tmp_path, onnx_dir, "openvino", "fp32,bf16,int8")
    assert status == 0
    measured = {r["precision"] for r in document["results"] if r["backend"] == "openvino"}
    bf16 = has_bf16()
    assert measured == {"fp32"} | ({"bf16"} if bf16 else set()) | {"int8"}
    if not bf16:
        (skip,) = [s for s in document["skipped"] if s["precision"] == "bf16"]
        assert "CPU has no bf16" in skip["reason"]


def test_outputs_default_to_artifacts_and_publishing_is_explicit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default is relative to where the command runs
    default = output_paths(parse_args(["--device", "cpu"]), "cpu")
    assert default[0] == DEFAULT_OUT / "throughput_cpu.json" and DEFAULT_OUT.parts[0] == "artifacts"
    assert (tmp_path / DEFAULT_OUT).is_dir() and not (tmp_path / "benchmarks").exists()
    published = output_paths(parse_args(["--out", "benchmarks/results"]), "cpu")
    assert published == tuple(Path("benchmarks/results") / f"throughput_cpu.{ext}" for ext in ("json", "md", "png"))


def test_interleaved_run_times_every_pair_in_turns(tmp_path, onnx_dir):
    out = tmp_path / "turns.json"
    argv = [
        "--models",
        "stam_tiny",
        "--pairs",
        "torch:fp32,onnxruntime:fp32,onnxruntime:fp16",
        "--batch",
        "1",
        "--device",
        "cpu",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--json",
        str(out),
        "--onnx-dir",
        str(onnx_dir),
        "--peak-size",
        "128",
        "--interleave",
    ]
    assert main(argv) == 0
    document = json.loads(out.read_text())
    assert document["settings"]["interleaved"] is True
    assert [(r["backend"], r["latency"]["iters"]) for r in document["results"]] == [("torch", 3), ("onnxruntime", 3)]
    assert [(s["backend"], s["precision"]) for s in document["skipped"]] == [("onnxruntime", "fp16")]
    assert "backends taking turns" in out.with_suffix(".md").read_text()
