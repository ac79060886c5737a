"""The video model's answer to a refused upload holds no decoder (see tests/runtime/test_release.py).

Triton's stub collects garbage rarely, so a refusal that kept its traceback kept the refused video's
decoder and frame buffers for many requests: the server's memory grew with every size-switching upload.
The model is exercised with a stand-in for `triton_python_backend_utils`, which exists only in the stub.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from benchmarks.hostile_video import size_switch
from runtime.contract import DimRange
from tests.decoders import SWITCH, SWITCH_LIMITS, TASKS, decoder_threads, no_collector

pytestmark = pytest.mark.skipif(not TASKS.is_dir(), reason="thread names are read from /proc")


class Tensor:
    def __init__(self, array: np.ndarray):
        self.array = array

    def as_numpy(self) -> np.ndarray:
        return self.array


@pytest.fixture
def video_model(monkeypatch):
    """A VideoModel with the server's settings and the tight pixel limit, without an artifact."""
    stub = types.ModuleType("triton_python_backend_utils")
    stub.get_input_tensor_by_name = lambda request, name: request.get(name)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", stub)
    monkeypatch.delitem(sys.modules, "serve.backend", raising=False)
    from serve.backend import VideoModel

    model = VideoModel()
    model.frames, model.default_frames, model.sampling = DimRange(1, 8, 16), 8, "uniform"
    model.limits, model.decoders = SWITCH_LIMITS, 1
    return model


def test_a_refused_upload_leaves_no_decoder_behind(video_model, tmp_path):
    upload = size_switch(tmp_path, SWITCH).read_bytes()
    request = {"video": Tensor(np.array([[upload]], dtype=np.object_))}
    with no_collector():
        before = decoder_threads()
        answers = [video_model._decode(request) for _ in range(3)]
        assert all("--max-pixels" in str(answer) for answer in answers), answers
        assert decoder_threads() == before
