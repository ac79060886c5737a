"""The torch-free runtime: decode, preprocess, and run STAM artifacts (`runtime.open_model`).

`open_model` is resolved on first use so that `import runtime` loads neither ONNX Runtime nor TensorRT.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "open_model":
        from runtime.backends import open_model

        return open_model
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")


__all__ = ["open_model"]
