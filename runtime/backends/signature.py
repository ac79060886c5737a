"""The artifact's I/O signature, checked the same way whichever backend opens it.

Each backend reads the graph's inputs and outputs its own way; the rule they must satisfy (one
float input `frames` [batch, frames, 3, 224, 224], an output `logits`) and the error a user sees
when it does not hold live here, so that `--backend` never changes what is refused or how.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx

from runtime import contract
from runtime.backends.base import ITEM_SHAPE
from runtime.contract import DimRange
from runtime.errors import ArtifactError

FLOAT_TYPE = "tensor(float)"
Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@dataclass(frozen=True)
class TensorSpec:
    """One graph input: its name, dims as the ONNX file declares them, and its ONNX type string."""

    name: str
    shape: list[Dim]
    type: str


def check_signature(inputs: Sequence[TensorSpec], outputs: Sequence[str], source: str) -> None:
    """Refuse graphs that do not take `frames` (B, T, 3, 224, 224) float and return `logits` (B, C)."""
    expected = f"input {contract.INPUT_NAME!r} [batch, frames, 3, 224, 224], output {contract.OUTPUT_NAME!r}"
    if [i.name for i in inputs] != [contract.INPUT_NAME] or contract.OUTPUT_NAME not in outputs:
        found = f"inputs {[i.name for i in inputs]}, outputs {list(outputs)}"
        raise ArtifactError(f"{source}: not a stam-deploy model (expected {expected}; found {found})")
    shape = inputs[0].shape
    fixed = [dim if isinstance(dim, int) else None for dim in shape[2:]]
    if len(shape) != 5 or any(dim not in (None, want) for dim, want in zip(fixed, ITEM_SHAPE)):
        raise ArtifactError(f"{source}: input {contract.INPUT_NAME!r} has shape {shape}; expected {expected}")
    if inputs[0].type != FLOAT_TYPE:
        raise ArtifactError(f"{source}: input {contract.INPUT_NAME!r} is {inputs[0].type}; expected {FLOAT_TYPE}")


def dim_range(dim: object) -> DimRange | None:
    """A fixed graph dim pins the range; a symbolic or unknown one is unbounded."""
    return DimRange(dim, dim, dim) if isinstance(dim, int) and dim > 0 else None


def onnx_inputs(graph: onnx.GraphProto) -> list[TensorSpec]:
    """The graph's real inputs (initializers listed as inputs by old exporters excluded), as ONNX Runtime lists them."""
    weights = {init.name for init in graph.initializer}
    return [_spec(value) for value in graph.input if value.name not in weights]


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    shape: list[Dim] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]
    type_name = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "unknown"
    return TensorSpec(value.name, shape, FLOAT_TYPE if type_name == "float32" else f"tensor({type_name})")
