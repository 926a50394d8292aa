"""Building the MetaGraphDef that TensorFlow's ``tf.compat.v1.train.Saver`` writes to ``<prefix>.meta``.

The graph holds, per variable, the nodes a TF1 ``tf.Variable`` creates
(``VariableV2`` ``w``, ``w/initial_value``, ``w/Assign``, ``w/read``), then the
save/restore subgraph of a Saver (``save/Const`` filename, ``SaveV2`` -- or the
sharded variant with ``ShardedFilename``/``MergeV2Checkpoints`` --, ``RestoreV2``,
one ``Assign`` per variable, ``save/restore_all``), the ``SaverDef`` naming it and
the ``variables`` / ``trainable_variables`` collections of ``VariableDef``s. The
op definitions in ``stripped_op_list`` are those of TensorFlow's op registry
(descriptions stripped, as TensorFlow exports them).

Example:
    >>> from tfckpt._graph_builder import VariableSpec, build_meta_graph_def
    >>> mg = build_meta_graph_def([VariableSpec("w", "float32", (2, 3))])
    >>> mg.saver_def.restore_op_name, [n.name for n in mg.graph_def.node][:4]
    ('save/restore_all', ['w/initial_value', 'w', 'w/Assign', 'w/read'])
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tfckpt._format.slices import parse_shape_and_slice
from tfckpt._op_registry import op_defs
from tfckpt._proto import meta_graph_pb2, tensor_pb2
from tfckpt.dtypes import DType, as_dtype
from tfckpt.errors import InvalidArgumentError, UnimplementedError

__all__ = ["GRAPH_PRODUCER", "VariableSpec", "build_meta_graph_def"]

#: ``GraphDef.versions.producer`` written by TensorFlow 2.21 (the graphs use no op it deprecates).
GRAPH_PRODUCER = 2474

_AttrValue = meta_graph_pb2.AttrValue
_OpDef = meta_graph_pb2.OpDef
_STRING = tensor_pb2.DT_STRING
_INT32 = tensor_pb2.DT_INT32
_BOOL = tensor_pb2.DT_BOOL
_CPU0 = "/device:CPU:0"
_VALID_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/>]*\Z")


@dataclass(frozen=True)
class VariableSpec:
    """One variable of the graph, as a checkpoint key with its dtype and shape.

    ``name`` is the checkpoint key. For a partition of a partitioned variable,
    ``slice_spec`` is TensorFlow's ``shape_and_slice`` string (``"5 2 0,3:0,2"``:
    full shape, then ``start,length`` per dimension), ``name`` the full
    variable's key and ``shape`` the partition's shape. ``var_name`` is the graph
    op name when it differs from the key (default: the key; ``<name>/part_<k>``
    for partitions). ``device`` groups variables into shards of a sharded save.

    Example:
        >>> VariableSpec("part", "float32", (3, 2), slice_spec="5 2 0,3:0,2").dtype
        tfckpt.float32
    """

    name: str
    dtype: DType
    shape: tuple[int, ...]
    trainable: bool = True
    slice_spec: str = ""
    var_name: str | None = None
    device: str = ""
    _full: tuple[tuple[int, ...], tuple[int, ...]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgumentError(f"VariableSpec name must be a non-empty string, got {self.name!r}")
        dt = as_dtype(self.dtype)
        if not dt.is_fixed_size and not dt.is_string:
            raise UnimplementedError(f"variable {self.name!r}: dtype {dt.name} cannot be a graph variable")
        object.__setattr__(self, "dtype", dt)
        try:
            shape = tuple(int(d) for d in self.shape)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"variable {self.name!r}: bad shape {self.shape!r}") from None
        if any(d < 0 for d in shape):
            raise InvalidArgumentError(f"variable {self.name!r}: shape {list(shape)} has a negative dimension")
        object.__setattr__(self, "shape", shape)
        if self.slice_spec:
            parsed = parse_shape_and_slice(self.slice_spec)
            assert parsed is not None
            full_shape, sl = parsed
            part_shape = sl.shape_in(full_shape)
            if part_shape != shape:
                raise InvalidArgumentError(
                    f"variable {self.name!r}: slice {self.slice_spec!r} has shape {list(part_shape)}, "
                    f"the spec says {list(shape)}"
                )
            offset = tuple(start for start, _ in sl.extents)
            object.__setattr__(self, "_full", (full_shape, offset))

    @property
    def full_shape(self) -> tuple[int, ...]:
        """The shape of the whole variable (the partitioned one for a partition)."""
        return self.shape if self._full is None else self._full[0]

    @property
    def var_offset(self) -> tuple[int, ...]:
        """Where this partition starts in the full variable (zeros for whole variables)."""
        return (0,) * len(self.shape) if self._full is None else self._full[1]

    @property
    def canonical_slice_spec(self) -> str:
        """``slice_spec`` in TensorFlow's canonical form (``""`` for whole variables)."""
        if self._full is None:
            return ""
        full, off = self._full
        ext = ":".join(f"{o},{n}" for o, n in zip(off, self.shape))
        return " ".join([*(str(d) for d in full), ext])


# ----------------------------------------------------------------------------------------------
# Attr values


def _a_type(dt: int) -> _AttrValue:
    return _AttrValue(type=dt)  # type: ignore[arg-type]


def _a_shape(shape: Sequence[int]) -> _AttrValue:
    a = _AttrValue()
    a.shape.SetInParent()
    for d in shape:
        a.shape.dim.add(size=d)
    return a


def _a_types(dts: Iterable[int]) -> _AttrValue:
    a = _AttrValue()
    a.list.type.extend(dts)  # type: ignore[arg-type]
    return a


# ----------------------------------------------------------------------------------------------
# Graph construction


class _Graph:
    """A GraphDef under construction, with TensorFlow's ``name_1``, ``name_2`` uniquification."""

    def __init__(self, reserved: Iterable[str], clear_devices: bool) -> None:
        self.graph = meta_graph_pb2.GraphDef()
        self.used: set[str] = set(reserved)
        self.counts: dict[str, int] = {}
        self.clear_devices = clear_devices
        self.reads: dict[str, str] = {}

    def unique(self, base: str) -> str:
        n = self.counts.get(base, 0)
        name = base if n == 0 else f"{base}_{n}"
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.counts[base] = n + 1
        self.used.add(name)
        return name

    def add(
        self, name: str, op: str, inputs: Sequence[str] = (), device: str = "", **attrs: _AttrValue
    ) -> meta_graph_pb2.NodeDef:
        self.used.add(name)
        node: meta_graph_pb2.NodeDef = self.graph.node.add(name=name, op=op, input=inputs)
        if device and not self.clear_devices:
            node.device = device
        for k, v in attrs.items():
            node.attr[k].CopyFrom(v)
        return node

    def const(self, name: str, tensor: tensor_pb2.TensorProto, device: str = "") -> str:
        self.add(name, "Const", (), device, value=_AttrValue(tensor=tensor), dtype=_a_type(tensor.dtype))
        return name

    def strings(self, name: str, values: Sequence[str], device: str = "") -> str:
        t = tensor_pb2.TensorProto(dtype=_STRING, string_val=[v.encode("utf-8", "surrogateescape") for v in values])
        t.tensor_shape.dim.add(size=len(values))
        return self.const(name, t, device)

    def scalar_string(self, name: str, value: str, device: str = "") -> str:
        t = tensor_pb2.TensorProto(dtype=_STRING, string_val=[value.encode("utf-8", "surrogateescape")])
        t.tensor_shape.SetInParent()
        return self.const(name, t, device)

    def scalar_int32(self, name: str, value: int, device: str = "") -> str:
        t = tensor_pb2.TensorProto(dtype=_INT32, int_val=[value])
        t.tensor_shape.SetInParent()
        return self.const(name, t, device)


def _graph_name(raw: str) -> str:
    """A valid TensorFlow op name for a checkpoint key (invalid characters become ``_``)."""
    if _VALID_NAME.match(raw):
        return raw
    name = re.sub(r"[^A-Za-z0-9_.\-/>]", "_", raw)
    if not re.match(r"[A-Za-z0-9.]", name):
        name = "v" + name
    return name


@dataclass(frozen=True)
class _Var:
    spec: VariableSpec
    graph_name: str
    dtype: int


def _assign_graph_names(variables: Sequence[VariableSpec]) -> list[_Var]:
    out: list[_Var] = []
    used: set[str] = set()
    part_counts: dict[str, int] = {}
    whole: set[str] = set()
    for v in variables:
        if not isinstance(v, VariableSpec):
            raise InvalidArgumentError(f"expected VariableSpec objects, got {type(v).__name__}")
        if v.slice_spec:
            k = part_counts.get(v.name, 0)
            part_counts[v.name] = k + 1
            raw = v.var_name if v.var_name is not None else f"{v.name}/part_{k}"
        else:
            if v.name in whole:
                raise InvalidArgumentError(f"checkpoint key {v.name!r} appears twice")
            whole.add(v.name)
            raw = v.var_name if v.var_name is not None else v.name
        if v.var_name is not None and not _VALID_NAME.match(v.var_name):
            raise InvalidArgumentError(f"var_name {v.var_name!r} is not a valid TensorFlow op name")
        name = base = _graph_name(raw)
        n = 0
        while name in used:
            if v.var_name is not None:
                raise InvalidArgumentError(f"two variables have the graph name {name!r}")
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        out.append(_Var(v, name, v.dtype.as_datatype_enum))
    clash = whole & set(part_counts)
    if clash:
        raise InvalidArgumentError(f"checkpoint key {sorted(clash)[0]!r} is both a whole and a partitioned variable")
    return out


def _variable_nodes(g: _Graph, var: _Var) -> meta_graph_pb2.VariableDef:
    spec, name, dt = var.spec, var.graph_name, var.dtype
    init = tensor_pb2.TensorProto(dtype=dt)  # type: ignore[arg-type]
    init.tensor_shape.SetInParent()
    for d in spec.shape:
        init.tensor_shape.dim.add(size=d)  # no values: TensorFlow fills the tensor with zeros / ""
    init_name = g.const(g.unique(f"{name}/initial_value"), init, spec.device)
    g.add(
        name,
        "VariableV2",
        (),
        spec.device,
        shape=_a_shape(spec.shape),
        dtype=_a_type(dt),
        container=_AttrValue(s=b""),
        shared_name=_AttrValue(s=b""),
    )
    assign = g.unique(f"{name}/Assign")
    g.add(
        assign,
        "Assign",
        (name, init_name),
        spec.device,
        T=_a_type(dt),
        validate_shape=_AttrValue(b=True),
        use_locking=_AttrValue(b=True),
    )
    read = g.unique(f"{name}/read")
    g.add(read, "Identity", (name,), spec.device, T=_a_type(dt))
    g.reads[name] = read
    vd = meta_graph_pb2.VariableDef(
        variable_name=f"{name}:0",
        initial_value_name=f"{init_name}:0",
        initializer_name=assign,
        snapshot_name=f"{read}:0",
        trainable=spec.trainable,
    )
    if spec.slice_spec:
        s = vd.save_slice_info_def
        s.full_name = spec.name
        s.full_shape.extend(spec.full_shape)
        s.var_offset.extend(spec.var_offset)
        s.var_shape.extend(spec.shape)
    return vd


def _restore_ops(g: _Graph, sc: str, filename: str, vars_: Sequence[_Var]) -> list[str]:
    """``RestoreV2`` for ``vars_`` and one ``Assign`` per variable; returns the assign names."""
    base = g.unique(f"{sc}/RestoreV2")
    names = g.strings(f"{base}/tensor_names", [v.spec.name for v in vars_], _CPU0)
    slices = g.strings(f"{base}/shape_and_slices", [v.spec.canonical_slice_spec for v in vars_], _CPU0)
    g.add(base, "RestoreV2", (filename, names, slices), _CPU0, dtypes=_a_types(v.dtype for v in vars_))
    assigns = []
    for i, v in enumerate(vars_):
        a = g.unique(f"{sc}/Assign")
        src = base if i == 0 else f"{base}:{i}"
        g.add(
            a,
            "Assign",
            (v.graph_name, src),
            v.spec.device,
            T=_a_type(v.dtype),
            validate_shape=_AttrValue(b=True),
            use_locking=_AttrValue(b=True),
        )
        assigns.append(a)
    return assigns


def _save_op(g: _Graph, sc: str, filename: str, vars_: Sequence[_Var], version: int, device: str) -> str:
    # TensorFlow saves a partition through its snapshot (``p/part_0/read``), a whole variable directly.
    data = [g.reads[v.graph_name] if v.spec.slice_spec else v.graph_name for v in vars_]
    if version == 2:
        base = g.unique(f"{sc}/SaveV2")
        names = g.strings(f"{base}/tensor_names", [v.spec.name for v in vars_], device)
        slices = g.strings(f"{base}/shape_and_slices", [v.spec.canonical_slice_spec for v in vars_], device)
        g.add(base, "SaveV2", (filename, names, slices, *data), device, dtypes=_a_types(v.dtype for v in vars_))
    else:
        base = g.unique(f"{sc}/save")
        names = g.strings(f"{base}/tensor_names", [v.spec.name for v in vars_], device)
        slices = g.strings(f"{base}/shapes_and_slices", [v.spec.canonical_slice_spec for v in vars_], device)
        g.add(base, "SaveSlices", (filename, names, slices, *data), device, T=_a_types(v.dtype for v in vars_))
    return base


def _saver_scope(names: Iterable[str]) -> str:
    taken = {n.split("/", 1)[0] for n in names}
    sc, k = "save", 0
    while sc in taken:
        k += 1
        sc = f"save_{k}"
    return sc


def _shards(vars_: Sequence[_Var]) -> list[list[_Var]]:
    by_dev: dict[str, list[_Var]] = {}
    for v in vars_:
        by_dev.setdefault(v.spec.device, []).append(v)
    return [by_dev[d] for d in sorted(by_dev)]


def _saver(g: _Graph, vars_: Sequence[_Var], sharded: bool, version: int, filename: str) -> meta_graph_pb2.SaverDef:
    sc = _saver_scope(v.graph_name for v in vars_)
    # TensorFlow orders the saveables by checkpoint key (stable: partitions keep their order).
    ordered = sorted(vars_, key=lambda v: v.spec.name)
    fn_in = g.scalar_string(f"{sc}/filename/input", filename)
    scalar = _a_shape(())
    g.add(f"{sc}/filename", "PlaceholderWithDefault", (fn_in,), dtype=_a_type(_STRING), shape=scalar)
    fname = f"{sc}/Const"
    g.add(fname, "PlaceholderWithDefault", (f"{sc}/filename",), dtype=_a_type(_STRING), shape=scalar)
    g.counts[fname] = 1
    string_t = _a_type(_STRING)
    if not sharded:
        save = _save_op(g, sc, fname, ordered, version, "")
        dep = g.unique(f"{sc}/control_dependency")
        g.add(dep, "Identity", (fname, f"^{save}"), T=string_t)
        assigns = _restore_ops(g, sc, fname, ordered)
        g.add(g.unique(f"{sc}/restore_all"), "NoOp", [f"^{a}" for a in assigns])
        save_tensor = f"{dep}:0"
    else:
        shards = _shards(ordered)
        base = fname
        if version == 2:
            match = g.unique(f"{sc}/StaticRegexFullMatch")
            g.add(match, "StaticRegexFullMatch", (fname,), "/device:CPU:*", pattern=_AttrValue(s=b"^s3://.*"))
            c1 = g.scalar_string(g.unique(f"{sc}/Const"), ".part", "/device:CPU:*")
            c2 = g.scalar_string(g.unique(f"{sc}/Const"), "_temp/part", "/device:CPU:*")
            sel = g.unique(f"{sc}/Select")
            g.add(sel, "Select", (match, c1, c2), "/device:CPU:*", T=string_t)
            base = g.unique(f"{sc}/StringJoin")
            g.add(base, "StringJoin", (fname, sel), "/device:CPU:*", N=_AttrValue(i=2), separator=_AttrValue(s=b""))
        num = g.scalar_int32(g.unique(f"{sc}/num_shards"), len(shards))
        files, deps = [], []
        for k, shard in enumerate(shards):
            sf = g.unique(f"{sc}/ShardedFilename")
            g.scalar_int32(f"{sf}/shard", k, _CPU0)
            g.add(sf, "ShardedFilename", (base, f"{sf}/shard", num), _CPU0)
            save = _save_op(g, sc, sf, shard, version, _CPU0)
            dep = g.unique(f"{sc}/control_dependency")
            g.add(dep, "Identity", (sf, f"^{save}"), _CPU0, T=string_t)
            files.append(sf)
            deps.append(dep)
        ctrl = [f"^{d}" for d in deps]
        if version == 2:
            pack = f"{sc}/MergeV2Checkpoints/checkpoint_prefixes"
            g.add(pack, "Pack", (*files, *ctrl), _CPU0, N=_AttrValue(i=len(files)), T=string_t, axis=_AttrValue(i=0))
            merge = g.unique(f"{sc}/MergeV2Checkpoints")
            g.add(
                merge,
                "MergeV2Checkpoints",
                (pack, fname),
                _CPU0,
                delete_old_dirs=_AttrValue(b=True),
                allow_missing_files=_AttrValue(b=False),
            )
            out = g.unique(f"{sc}/Identity")
            g.add(out, "Identity", (fname, f"^{merge}", *ctrl), _CPU0, T=string_t)
        else:
            out = g.unique(f"{sc}/ShardedFilespec")
            g.add(out, "ShardedFilespec", (fname, num, *ctrl))
        save_tensor = f"{out}:0"
        shard_ops = []
        for shard in shards:
            assigns = _restore_ops(g, sc, fname, shard)
            rs = g.unique(f"{sc}/restore_shard")
            g.add(rs, "NoOp", [f"^{a}" for a in assigns], shard[0].spec.device)
            shard_ops.append(rs)
        g.add(g.unique(f"{sc}/restore_all"), "NoOp", [f"^{r}" for r in shard_ops])
    return meta_graph_pb2.SaverDef(
        filename_tensor_name=f"{fname}:0",
        save_tensor_name=save_tensor,
        restore_op_name=f"{sc}/restore_all",
        sharded=sharded,
        version=version,  # type: ignore[arg-type]
    )


def _strip_default_attrs(graph: meta_graph_pb2.GraphDef) -> None:
    defs = op_defs()
    for node in graph.node:
        for a in defs[node.op].attr:
            if a.HasField("default_value") and a.name in node.attr and node.attr[a.name] == a.default_value:
                del node.attr[a.name]


def build_meta_graph_def(
    variables: Sequence[VariableSpec],
    *,
    sharded: bool = False,
    max_to_keep: int = 5,
    keep_checkpoint_every_n_hours: float = 10000.0,
    version: int = 2,
    filename: str = "model",
    strip_default_attrs: bool = False,
    clear_devices: bool = False,
) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef of :func:`tfckpt.meta_graph.saver_meta_graph`, as a protobuf message.

    Raises:
        InvalidArgumentError: bad variable specs or options.
    """
    if isinstance(version, bool) or version not in (1, 2):
        raise InvalidArgumentError(f"version must be 1 (V1) or 2 (V2), got {version!r}")
    if isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int):
        raise InvalidArgumentError(f"max_to_keep must be an int, got {max_to_keep!r}")
    vars_ = _assign_graph_names(variables)
    g = _Graph((v.graph_name for v in vars_), clear_devices)
    var_defs = [_variable_nodes(g, v) for v in vars_]
    mg = meta_graph_pb2.MetaGraphDef()
    if vars_:
        sd = _saver(g, vars_, bool(sharded), version, filename)
        sd.max_to_keep = max_to_keep
        sd.keep_checkpoint_every_n_hours = float(keep_checkpoint_every_n_hours)
        mg.saver_def.CopyFrom(sd)
        col = mg.collection_def["variables"].bytes_list
        col.value.extend(d.SerializeToString() for d in var_defs)
        trainable = [d.SerializeToString() for d in var_defs if d.trainable]
        if trainable:
            mg.collection_def["trainable_variables"].bytes_list.value.extend(trainable)
    graph = g.graph
    graph.versions.producer = GRAPH_PRODUCER
    if strip_default_attrs:
        _strip_default_attrs(graph)
    mg.graph_def.CopyFrom(graph)
    info = mg.meta_info_def
    defs = op_defs()
    info.stripped_op_list.op.extend(defs[name] for name in sorted({n.op for n in graph.node}))
    info.stripped_default_attrs = bool(strip_default_attrs)
    return mg
