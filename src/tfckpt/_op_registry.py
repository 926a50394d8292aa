"""The op definitions tfckpt's graphs use, as TensorFlow's op registry has them.

A ``.meta`` file lists, in ``stripped_op_list``, the ``OpDef`` of every op its graph
uses; TensorFlow exports them from its registry with the descriptions stripped. The
table below holds exactly those fields for the ops tfckpt writes.

Example:
    >>> d = op_def("SaveV2")
    >>> [a.name for a in d.input_arg], d.is_stateful
    (['prefix', 'tensor_names', 'shape_and_slices', 'tensors'], True)
"""

from __future__ import annotations

import functools

from tfckpt._proto import meta_graph_pb2, tensor_pb2
from tfckpt.errors import UnimplementedError

__all__ = ["op_def", "op_defs"]

_OpDef = meta_graph_pb2.OpDef
_STRING = tensor_pb2.DT_STRING
_INT32 = tensor_pb2.DT_INT32
_BOOL = tensor_pb2.DT_BOOL

# TensorFlow's op registry entries for the ops tfckpt writes. Args: ``name:type`` where type is a
# dtype (``string``...) or a type attr, ``N*`` a number attr, ``[attr]`` a type-list attr and a
# trailing ``&`` a ref; attrs ``name:kind[=default][>=minimum]``; flags ``stateful`` / ``uninit``.
_OP_TABLE: dict[str, tuple[str, str, str, str]] = {
    "Assign": ("ref:T&, value:T", "output_ref:T&", "T:type, validate_shape:bool=true, use_locking:bool=true", "uninit"),
    "Const": ("", "output:dtype", "value:tensor, dtype:type", ""),
    "Identity": ("input:T", "output:T", "T:type", ""),
    "MergeV2Checkpoints": (
        "checkpoint_prefixes:string, destination_prefix:string",
        "",
        "delete_old_dirs:bool=true, allow_missing_files:bool=false",
        "stateful",
    ),
    "NoOp": ("", "", "", ""),
    "Pack": ("values:N*T", "output:T", "N:int>=1, T:type, axis:int=0", ""),
    "PlaceholderWithDefault": ("input:dtype", "output:dtype", "dtype:type, shape:shape", ""),
    "RestoreV2": (
        "prefix:string, tensor_names:string, shape_and_slices:string",
        "tensors:[dtypes]",
        "dtypes:list(type)>=1",
        "stateful",
    ),
    "SaveSlices": (
        "filename:string, tensor_names:string, shapes_and_slices:string, data:[T]",
        "",
        "T:list(type)>=1",
        "stateful",
    ),
    "SaveV2": (
        "prefix:string, tensor_names:string, shape_and_slices:string, tensors:[dtypes]",
        "",
        "dtypes:list(type)>=1",
        "stateful",
    ),
    "Select": ("condition:bool, t:T, e:T", "output:T", "T:type", ""),
    "ShardedFilename": ("basename:string, shard:int32, num_shards:int32", "filename:string", "", ""),
    "ShardedFilespec": ("basename:string, num_shards:int32", "filename:string", "", ""),
    "StaticRegexFullMatch": ("input:string", "output:bool", "pattern:string", ""),
    "StringJoin": ("inputs:N*string", "output:string", "N:int>=0, separator:string=", ""),
    "VariableV2": ("", "ref:dtype&", "shape:shape, dtype:type, container:string=, shared_name:string=", "stateful"),
}
_DTYPES = {"string": _STRING, "int32": _INT32, "bool": _BOOL}


def _parse_args(text: str) -> list[_OpDef.ArgDef]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, typ = item.split(":")
        arg = _OpDef.ArgDef(name=name, is_ref=typ.endswith("&"))
        typ = typ.rstrip("&")
        if "*" in typ:
            arg.number_attr, typ = typ.split("*")
        if typ.startswith("["):
            arg.type_list_attr = typ.strip("[]")
        elif typ in _DTYPES:
            arg.type = _DTYPES[typ]  # type: ignore[assignment]
        else:
            arg.type_attr = typ
        out.append(arg)
    return out


def _parse_attrs(text: str) -> list[_OpDef.AttrDef]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, kind = item.split(":")
        kind, _, minimum = kind.partition(">=")
        kind, has_default, default = kind.partition("=")
        a = _OpDef.AttrDef(name=name, type=kind)
        if has_default:
            dv = a.default_value
            if kind == "bool":
                dv.b = default == "true"
            elif kind == "int":
                dv.i = int(default)
            else:
                dv.s = default.encode()
        if minimum:
            a.has_minimum = True
            a.minimum = int(minimum)
        out.append(a)
    return out


@functools.cache
def op_defs() -> dict[str, _OpDef]:
    """Every op definition tfckpt writes, by name (shared: copy before changing one)."""
    return {
        name: _OpDef(
            name=name,
            input_arg=_parse_args(ins),
            output_arg=_parse_args(outs),
            attr=_parse_attrs(attrs),
            is_stateful=flags == "stateful",
            allows_uninitialized_input=flags == "uninit",
        )
        for name, (ins, outs, attrs, flags) in _OP_TABLE.items()
    }


def op_def(name: str) -> _OpDef:
    """A copy of the ``OpDef`` tfckpt writes for op ``name`` (one of the ops its graphs use).

    Raises:
        UnimplementedError: tfckpt never writes that op.
    """
    d = op_defs().get(name)
    if d is None:
        raise UnimplementedError(f"tfckpt writes no {name!r} op")
    out = _OpDef()
    out.CopyFrom(d)
    return out
