"""The plain Python objects a :class:`~tfckpt.meta_graph.MetaGraph` is described with, and the
decoding of the protobuf values (dtypes, shapes, attrs, string constants) behind them.

Example:
    >>> op_name("^save/Assign_1:0"), output_index("split:2")
    ('save/Assign_1', 2)
    >>> SaveSliceInfo("w", (5, 2), (0, 0), (3, 2)).spec
    '5 2 0,3:0,2'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tfckpt._proto import meta_graph_pb2, tensor_pb2
from tfckpt.dtypes import DType, dtype_from_enum
from tfckpt.errors import DataLossError, InvalidArgumentError

__all__ = [
    "MetaInfo",
    "Operation",
    "SaveSliceInfo",
    "SignatureInfo",
    "TensorInfo",
    "VariableInfo",
    "attr_value",
    "dtype_or_none",
    "op_name",
    "output_index",
    "shape_of",
    "string_const",
]


def dtype_or_none(enum: int) -> DType | None:
    try:
        return dtype_from_enum(enum) if enum else None
    except InvalidArgumentError:
        return None


def shape_of(p: tensor_pb2.TensorShapeProto) -> tuple[int | None, ...] | None:
    if p.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in p.dim)


def op_name(tensor_or_input: str) -> str:
    """``"^a"``, ``"a:1"``, ``"a"`` -> ``"a"``."""
    name = tensor_or_input.lstrip("^")
    head, sep, tail = name.rpartition(":")
    return head if sep and tail.isdigit() else name


def output_index(inp: str) -> int:
    _, sep, tail = inp.rpartition(":")
    return int(tail) if sep and tail.isdigit() else 0


@dataclass(frozen=True)
class SaveSliceInfo:
    """Where a partition lies in its full variable (``SaveSliceInfoDef``)."""

    full_name: str
    full_shape: tuple[int, ...]
    var_offset: tuple[int, ...]
    var_shape: tuple[int, ...]

    @property
    def spec(self) -> str:
        """TensorFlow's ``shape_and_slice`` string for this partition (``"5 2 0,3:0,2"``)."""
        ext = ":".join(f"{o},{n}" for o, n in zip(self.var_offset, self.var_shape))
        return " ".join([*(str(d) for d in self.full_shape), ext])


@dataclass(frozen=True)
class VariableInfo:
    """A graph variable: its tensor name (``"w_h:0"``), op, dtype, shape and ``VariableDef`` fields."""

    name: str
    op_name: str
    op_type: str | None
    dtype: DType | None
    shape: tuple[int | None, ...] | None
    is_resource: bool
    trainable: bool
    save_slice_info: SaveSliceInfo | None = None
    initializer_name: str = ""
    snapshot_name: str = ""
    initial_value_name: str = ""
    device: str = ""

    def __str__(self) -> str:
        dt = self.dtype.name if self.dtype is not None else "?"
        shp = (
            "<unknown>"
            if self.shape is None
            else "[" + ",".join("?" if d is None else str(d) for d in self.shape) + "]"
        )
        kind = "resource" if self.is_resource else "ref"
        extra = (
            f" slice {self.save_slice_info.spec} of {self.save_slice_info.full_name}" if self.save_slice_info else ""
        )
        return f"{self.name} {dt} {shp} ({kind}{', trainable' if self.trainable else ''}){extra}"


@dataclass(frozen=True)
class Operation:
    """One graph node: name, op type, inputs (``"a:1"``, ``"^ctrl"``), device and decoded attrs."""

    name: str
    type: str
    inputs: tuple[str, ...]
    device: str
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.name} = {self.type}({', '.join(self.inputs)})"


@dataclass(frozen=True)
class TensorInfo:
    """A signature's tensor: graph tensor name, dtype and shape (None = unknown rank)."""

    name: str
    dtype: DType | None
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class SignatureInfo:
    """A ``SignatureDef``: named inputs and outputs and the method name."""

    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]
    method_name: str


@dataclass(frozen=True)
class MetaInfo:
    """``MetaInfoDef``: tags, versions and the names of the ops in ``stripped_op_list``."""

    tags: tuple[str, ...]
    tensorflow_version: str
    tensorflow_git_version: str
    meta_graph_version: str
    stripped_default_attrs: bool
    op_names: tuple[str, ...]


def attr_value(a: meta_graph_pb2.AttrValue) -> Any:
    kind = a.WhichOneof("value")
    if kind == "s":
        try:
            return a.s.decode("utf-8")
        except UnicodeDecodeError:
            return a.s
    if kind in ("i", "f", "b"):
        return getattr(a, kind)
    if kind == "type":
        dt = dtype_or_none(a.type)
        return dt.name if dt is not None else int(a.type)
    if kind == "shape":
        return shape_of(a.shape)
    if kind == "tensor":
        dt = dtype_or_none(a.tensor.dtype)
        shp = shape_of(a.tensor.tensor_shape)
        return f"Tensor<{dt.name if dt else '?'} {list(shp) if shp is not None else '?'}>"
    if kind == "func":
        return f"func {a.func.name}"
    if kind == "placeholder":
        return f"${a.placeholder}"
    if kind == "list":
        lst = a.list
        out: list[Any] = []
        out.extend(s.decode("utf-8", "replace") for s in lst.s)
        out.extend(lst.i)
        out.extend(lst.f)
        out.extend(lst.b)
        for t in lst.type:
            dt = dtype_or_none(t)
            out.append(dt.name if dt is not None else int(t))
        out.extend(shape_of(s) for s in lst.shape)
        out.extend(f"Tensor<{dtype_or_none(t.dtype)}>" for t in lst.tensor)
        out.extend(f"func {f.name}" for f in lst.func)
        return out
    return None


# A string constant stored compressed (its last value repeated up to its shape, as TensorFlow
# writes a saver's ``shape_and_slices``) is expanded up to this many elements; a graph
# claiming more is corrupt or hostile (no saver restores millions of tensors in one op).
MAX_REPEATED = 1 << 22


def string_const(node: meta_graph_pb2.NodeDef | None) -> list[str] | None:
    """The values of a string ``Const`` node (None for any other node).

    Raises:
        DataLossError: the constant's shape asks for more than ``MAX_REPEATED`` repeated values.
    """
    if node is None or node.op != "Const" or "value" not in node.attr:
        return None
    t = node.attr["value"].tensor
    if t.dtype != tensor_pb2.DT_STRING:
        return None
    vals = [s.decode("utf-8", "surrogateescape") for s in t.string_val]
    n = 1
    for d in t.tensor_shape.dim:
        n *= d.size
    if n > max(len(vals), MAX_REPEATED):
        raise DataLossError(f"graph node {node.name!r}: a string constant of shape "
                            f"{[d.size for d in t.tensor_shape.dim]} ({n} elements) from {len(vals)} values is "
                            "too large to expand (corrupt or hostile graph)")
    if 0 < len(vals) < n:  # TensorFlow repeats the last value
        vals += [vals[-1]] * (n - len(vals))
    if not vals and n > 0:
        vals = [""] * n
    return vals
