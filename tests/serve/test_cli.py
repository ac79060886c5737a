"""`stam-serve` refuses what it cannot serve in one line, before starting Triton."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime.artifact import describe
from serve import cli
from serve.config import Batching
from serve.server import Endpoints, ServeOptions, TritonServer


def test_missing_extra_names_it(monkeypatch, capsys, tiny_onnx):
    monkeypatch.setitem(sys.modules, "pytriton", None)
    monkeypatch.setitem(sys.modules, "pytriton.utils", None)
    assert cli.main([str(tiny_onnx)]) == 2
    assert capsys.readouterr().err == "error: stam-serve needs the serve extra: pip install -e '.[serve]'\n"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["missing.onnx"], "missing.onnx: no such file"),
        (["{model}", "--max-batch", "0"], "--max-batch must be >= 1, got 0"),
        (["{model}", "--decode-workers", "0"], "--decode-workers must be >= 1, got 0"),
        (["{model}", "--http-port", "9000", "--grpc-port", "9000"], "the HTTP, gRPC and metrics ports must differ"),
    ],
)
def test_bad_requests_are_one_line(arguments, message, capsys, tiny_onnx):
    pytest.importorskip("pytriton", reason="the [serve] extra is not installed")
    assert cli.main([a.format(model=tiny_onnx) for a in arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_a_server_not_started_says_so(tiny_onnx):
    """Waiting on a server before `start()` is a clear error; stopping it is a no-op with exit code 0."""
    server = TritonServer(describe(tiny_onnx), ServeOptions(Path(tiny_onnx), "tiny", Batching()), Endpoints())
    with pytest.raises(RuntimeError, match=r"tritonserver has not been started: call TritonServer.start\(\) first"):
        server.process.wait()
    assert server.stop() == 0
