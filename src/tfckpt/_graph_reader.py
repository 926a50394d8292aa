"""Reading any ``.meta`` file (MetaGraphDef) TensorFlow wrote into plain Python objects.

:class:`MetaGraph` describes the graph's variables (TF1 ``VariableV2`` ref
variables, ``VarHandleOp`` resource variables, partitions with their
``SaveSliceInfoDef``), operations, collections, signatures and SaverDef, and
maps checkpoint keys to graph variables by reading the Saver's restore subgraph.
Nothing is executed: asking for a tensor that is not a variable raises
:class:`~tfckpt.errors.UnimplementedError`.

Example:
    >>> from tfckpt._graph_builder import VariableSpec, build_meta_graph_def
    >>> mg = parse_meta_graph(build_meta_graph_def([VariableSpec("w", "float32", (2,))]).SerializeToString())
    >>> [v.name for v in mg.variables], mg.checkpoint_keys()
    (['w:0'], {'w': 'w'})
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from google.protobuf import message as _message
from google.protobuf import text_format

from tfckpt._graph_values import (
    MetaInfo,
    Operation,
    SaveSliceInfo,
    SignatureInfo,
    TensorInfo,
    VariableInfo,
    attr_value,
    dtype_or_none,
    op_name,
    output_index,
    shape_of,
    string_const,
)
from tfckpt._proto import meta_graph_pb2
from tfckpt.dtypes import DType
from tfckpt.errors import DataLossError, InvalidArgumentError, TensorNotFoundError, UnimplementedError

__all__ = ["MetaGraph", "parse_meta_graph"]

_NodeDef = meta_graph_pb2.NodeDef
# Ops whose output 0 is a variable (ref or resource handle).
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp", "AutoReloadVariable", "TemporaryVariable"})
# Collections whose bytes_list values are serialized VariableDefs (TensorFlow's registered proto functions).
VARIABLE_COLLECTIONS = frozenset(
    {
        "variables",
        "trainable_variables",
        "local_variables",
        "model_variables",
        "moving_average_variables",
        "metric_variables",
        "global_step",
        "concatenated_variables",
        "trainable_resource_variables",
    }
)


class MetaGraph:
    """A readable description of a ``MetaGraphDef`` (see :func:`tfckpt.read_meta_graph`)."""

    def __init__(self, proto: meta_graph_pb2.MetaGraphDef) -> None:
        self.proto = proto
        nodes = proto.graph_def.node
        self._nodes: dict[str, meta_graph_pb2.NodeDef] = {n.name: n for n in nodes}
        info = proto.meta_info_def
        self.meta_info = MetaInfo(
            tags=tuple(info.tags),
            tensorflow_version=info.tensorflow_version,
            tensorflow_git_version=info.tensorflow_git_version,
            meta_graph_version=info.meta_graph_version,
            stripped_default_attrs=info.stripped_default_attrs,
            op_names=tuple(o.name for o in info.stripped_op_list.op),
        )
        self.saver_def: meta_graph_pb2.SaverDef | None = proto.saver_def if proto.HasField("saver_def") else None
        self.operations: list[Operation] = [
            Operation(n.name, n.op, tuple(n.input), n.device, {k: attr_value(v) for k, v in sorted(n.attr.items())})
            for n in nodes
        ]
        self._trainable_names: set[str] = set()
        if "trainable_variables" in proto.collection_def:
            for raw in proto.collection_def["trainable_variables"].bytes_list.value:
                try:
                    self._trainable_names.add(meta_graph_pb2.VariableDef.FromString(raw).variable_name)
                except _message.DecodeError:
                    pass
        self.collections: dict[str, list[Any]] = {k: self._collection(k, c) for k, c in proto.collection_def.items()}
        trainable_names = self._trainable_names
        self.variables: list[VariableInfo] = self._variables(trainable_names)
        self.trainable_variables: list[VariableInfo] = [
            v for v in self.collections.get("trainable_variables", []) if isinstance(v, VariableInfo)
        ]
        self.signature_def: dict[str, SignatureInfo] = {
            name: SignatureInfo(
                {k: self._tensor_info(t) for k, t in sorted(s.inputs.items())},
                {k: self._tensor_info(t) for k, t in sorted(s.outputs.items())},
                s.method_name,
            )
            for name, s in sorted(proto.signature_def.items())
        }

    # -- construction helpers ------------------------------------------------------------------

    @staticmethod
    def _tensor_info(t: meta_graph_pb2.TensorInfo) -> TensorInfo:
        shape = shape_of(t.tensor_shape) if t.HasField("tensor_shape") else None
        return TensorInfo(t.name, dtype_or_none(t.dtype), shape)

    def _variable_from_def(self, vd: meta_graph_pb2.VariableDef) -> VariableInfo:
        op = op_name(vd.variable_name)
        node = self._nodes.get(op)
        ssi = None
        if vd.HasField("save_slice_info_def"):
            s = vd.save_slice_info_def
            ssi = SaveSliceInfo(s.full_name, tuple(s.full_shape), tuple(s.var_offset), tuple(s.var_shape))
        dt, shp = self._node_dtype_shape(node)
        return VariableInfo(
            name=vd.variable_name,
            op_name=op,
            op_type=node.op if node is not None else None,
            dtype=dt,
            shape=shp,
            is_resource=vd.is_resource or (node is not None and node.op == "VarHandleOp"),
            trainable=vd.trainable or vd.variable_name in self._trainable_names,
            save_slice_info=ssi,
            initializer_name=vd.initializer_name,
            snapshot_name=vd.snapshot_name,
            initial_value_name=vd.initial_value_name,
            device=node.device if node is not None else "",
        )

    @staticmethod
    def _node_dtype_shape(
        node: meta_graph_pb2.NodeDef | None,
    ) -> tuple[DType | None, tuple[int | None, ...] | None]:
        if node is None:
            return None, None
        dt = dtype_or_none(node.attr["dtype"].type) if "dtype" in node.attr else None
        shp = shape_of(node.attr["shape"].shape) if "shape" in node.attr else None
        return dt, shp

    def _collection(self, name: str, c: meta_graph_pb2.CollectionDef) -> list[Any]:
        kind = c.WhichOneof("kind")
        if kind == "node_list":
            return list(c.node_list.value)
        if kind == "int64_list":
            return [int(x) for x in c.int64_list.value]
        if kind == "float_list":
            return [float(x) for x in c.float_list.value]
        if kind == "any_list":
            return [(a.type_url, a.value) for a in c.any_list.value]
        if kind == "bytes_list":
            out: list[Any] = []
            for raw in c.bytes_list.value:
                out.append(self._decode_bytes(name, raw))
            return out
        return []

    def _decode_bytes(self, name: str, raw: bytes) -> Any:
        try:
            if name in VARIABLE_COLLECTIONS:
                vd = meta_graph_pb2.VariableDef.FromString(raw)
                if vd.variable_name:
                    return self._variable_from_def(vd)
            elif name == "savers":
                return meta_graph_pb2.SaverDef.FromString(raw)
        except _message.DecodeError:
            pass
        return raw

    def _variables(self, trainable_names: set[str]) -> list[VariableInfo]:
        out = [v for v in self.collections.get("variables", []) if isinstance(v, VariableInfo)]
        if out:
            return out
        # No collections: every variable op of the graph.
        for n in self.proto.graph_def.node:
            if n.op in VARIABLE_OPS:
                dt, shp = self._node_dtype_shape(n)
                name = f"{n.name}:0"
                out.append(
                    VariableInfo(
                        name, n.name, n.op, dt, shp, n.op == "VarHandleOp", name in trainable_names, device=n.device
                    )
                )
        return out

    # -- queries --------------------------------------------------------------------------------

    @property
    def local_variables(self) -> list[VariableInfo]:
        """The ``local_variables`` collection (not saved by a default Saver)."""
        return [v for v in self.collections.get("local_variables", []) if isinstance(v, VariableInfo)]

    def node(self, name: str) -> meta_graph_pb2.NodeDef:
        """The ``NodeDef`` named ``name`` (op name, no ``:0``)."""
        try:
            return self._nodes[name]
        except KeyError:
            raise TensorNotFoundError(f"The operation, {name!r}, does not exist in the graph.", key=name) from None

    def _consumers(self) -> dict[str, list[meta_graph_pb2.NodeDef]]:
        cons: dict[str, list[meta_graph_pb2.NodeDef]] = {}
        for n in self.proto.graph_def.node:
            for inp in n.input:
                if not inp.startswith("^"):
                    cons.setdefault(op_name(inp), []).append(n)
        return cons

    def _assign_target(
        self, node: meta_graph_pb2.NodeDef, cons: Mapping[str, list[meta_graph_pb2.NodeDef]]
    ) -> str | None:
        """The variable op a restored tensor flows into (through Identity nodes), or None."""
        seen = 0
        while seen < 8:
            seen += 1
            if node.op in ("Assign", "AssignVariableOp") and node.input:
                return op_name(node.input[0])
            if node.op != "Identity":
                return None
            nxt = cons.get(node.name, [])
            if len(nxt) != 1:
                return None
            node = nxt[0]
        return None

    def _saver_pairs(self) -> list[tuple[str, str, str]]:
        """``(checkpoint key, shape_and_slice, variable op)`` from the restore ops of the saver."""
        scope = ""
        if self.saver_def is not None and self.saver_def.restore_op_name:
            scope = (
                self.saver_def.restore_op_name.rsplit("/", 1)[0] + "/" if "/" in self.saver_def.restore_op_name else ""
            )
        cons = self._consumers()
        pairs: list[tuple[str, str, str]] = []
        for n in self.proto.graph_def.node:
            if scope and not n.name.startswith(scope):
                continue
            if n.op == "RestoreV2" and len(n.input) >= 3:
                names = string_const(self._nodes.get(op_name(n.input[1])))
                slices = string_const(self._nodes.get(op_name(n.input[2])))
                if names is None:
                    continue
                slices = slices if slices is not None and len(slices) == len(names) else [""] * len(names)
                targets: dict[int, str] = {}
                for c in cons.get(n.name, []):
                    for inp in c.input:
                        if op_name(inp) == n.name:
                            t = self._assign_target(c, cons)
                            if t is not None:
                                targets[output_index(inp)] = t
                pairs.extend((k, s, targets[i]) for i, (k, s) in enumerate(zip(names, slices)) if i in targets)
            elif n.op in ("RestoreSlice", "Restore") and len(n.input) >= 2:
                names = string_const(self._nodes.get(op_name(n.input[1])))
                spec = [""]
                if n.op == "RestoreSlice" and len(n.input) >= 3:
                    spec = string_const(self._nodes.get(op_name(n.input[2]))) or [""]
                target = None
                for c in cons.get(n.name, []):
                    target = target or self._assign_target(c, cons)
                if names and target is not None:
                    pairs.append((names[0], spec[0], target))
        if scope and not pairs:
            return self._saver_pairs_unscoped()
        return pairs

    def _saver_pairs_unscoped(self) -> list[tuple[str, str, str]]:
        saved, self.saver_def = self.saver_def, None
        try:
            return self._saver_pairs()
        finally:
            self.saver_def = saved

    def checkpoint_keys(self) -> dict[str, str]:
        """Checkpoint key -> graph variable name, for every variable the graph's saver restores.

        Read from the saver's restore subgraph (``RestoreV2`` tensor names and the
        ``Assign``/``AssignVariableOp`` they feed), so renaming savers and resource
        variables map correctly; a partitioned variable maps its key to its full
        name. Without a saver: the variables' op names (partitions: their full name).
        """
        slice_names = {v.op_name: v.save_slice_info.full_name for v in self.variables if v.save_slice_info}
        out: dict[str, str] = {}
        for key, spec, op in self._saver_pairs():
            out.setdefault(key, slice_names.get(op, key) if spec else op)
        if out:
            return out
        for v in self.variables:
            if v.save_slice_info is not None:
                out.setdefault(v.save_slice_info.full_name, v.save_slice_info.full_name)
            else:
                out.setdefault(v.op_name, v.op_name)
        return out

    def get_tensor_by_name(self, name: str) -> VariableInfo:
        """The variable behind tensor ``name`` (``"w_h:0"``, or its snapshot ``"w_h/read:0"``).

        Raises:
            InvalidArgumentError: ``name`` is an op name, not ``"<op>:<index>"``.
            TensorNotFoundError: no such op in the graph.
            UnimplementedError: the tensor is not a variable (tfckpt does not execute graphs).
        """
        head, sep, tail = name.rpartition(":")
        if not sep or not tail.isdigit():
            raise InvalidArgumentError(
                f"The name {name!r} refers to an Operation, not a Tensor. "
                f'Tensor names must be of the form "<op_name>:<output_index>".'
            )
        for v in [*self.variables, *self.local_variables]:
            if name in (v.name, v.snapshot_name):
                return v
        node = self._nodes.get(head)
        if node is None:
            raise TensorNotFoundError(
                f"The name {name!r} refers to a Tensor which does not exist. "
                f"The operation, {head!r}, does not exist in the graph.",
                key=name,
            )
        if node.op in VARIABLE_OPS and tail == "0":
            dt, shp = self._node_dtype_shape(node)
            return VariableInfo(name, head, node.op, dt, shp, node.op == "VarHandleOp", False, device=node.device)
        raise UnimplementedError(
            f"tfckpt restores variables and does not execute graphs: {name!r} is a {node.op} op", key=name
        )

    def __iter__(self) -> Iterator[VariableInfo]:
        return iter(self.variables)

    def __len__(self) -> int:
        return len(self.variables)

    def __repr__(self) -> str:
        return (
            f"<MetaGraph: {len(self.variables)} variables, {len(self.operations)} operations, "
            f"{len(self.collections)} collections, {len(self.signature_def)} signatures>"
        )

    def __str__(self) -> str:
        lines = [repr(self)]
        if self.meta_info.tensorflow_version or self.meta_info.tags:
            lines.append(
                f"  written by TensorFlow {self.meta_info.tensorflow_version or '?'}, tags {list(self.meta_info.tags)}"
            )
        lines.append("  variables:")
        lines.extend(f"    {v}" for v in self.variables)
        if self.saver_def is not None:
            s = self.saver_def
            ver = {0: "LEGACY", 1: "V1", 2: "V2"}.get(int(s.version), str(s.version))
            lines.append(
                f"  saver: restore {s.restore_op_name!r}, filename {s.filename_tensor_name!r}, {ver}, "
                f"sharded={s.sharded}, max_to_keep={s.max_to_keep}"
            )
        for k, vals in sorted(self.collections.items()):
            shown = ", ".join(v.name if isinstance(v, VariableInfo) else repr(v) for v in vals[:5])
            more = f", ... ({len(vals)} items)" if len(vals) > 5 else ""
            lines.append(f"  collection {k}: [{shown}{more}]")
        for name, sig in self.signature_def.items():
            ins = ", ".join(f"{k}={t.name}" for k, t in sig.inputs.items())
            outs = ", ".join(f"{k}={t.name}" for k, t in sig.outputs.items())
            lines.append(f"  signature {name} ({sig.method_name}): ({ins}) -> ({outs})")
        return "\n".join(lines)


def parse_meta_graph(data: bytes, *, path: str | None = None) -> MetaGraph:
    """Parse a binary (or, failing that, text) ``MetaGraphDef``.

    Raises:
        DataLossError: the data is neither.
    """
    proto = meta_graph_pb2.MetaGraphDef()
    binary_error: Exception | None = None
    try:
        proto.ParseFromString(data)
    except _message.DecodeError as e:
        binary_error = e
    if binary_error is None and (proto.ListFields() or not data.lstrip()[:1].isalpha()):
        return MetaGraph(proto)
    try:
        text = data.decode("utf-8")
        proto = meta_graph_pb2.MetaGraphDef()
        text_format.Parse(text, proto, allow_unknown_field=True)
    except RecursionError:
        raise DataLossError(f"Cannot parse file{f' {path}' if path else ''}: its text MetaGraphDef is nested too "
                            "deeply", path=path) from None
    except (UnicodeDecodeError, text_format.ParseError) as e:
        where = f" {path}" if path else ""
        raise DataLossError(
            f"Cannot parse file{where}: not a binary MetaGraphDef ({binary_error}) nor a text one ({e}).", path=path
        ) from None
    return MetaGraph(proto)
