"""TensorFlow's ``tf.compat.v1.train.init_from_checkpoint``, with its assignment_map semantics.

Variable -> variable, ``"old_scope/": "new_scope/"``, ``"/": "scope/"`` and partitioned
targets, with TensorFlow's error messages; values are assigned into a state (in place,
or returned for immutable state) through :mod:`tfckpt._state`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tfckpt import _state
from tfckpt._paths import PathLike, as_path
from tfckpt._transforms import can_cast, cast_array, check_policy
from tfckpt.dtypes import as_dtype
from tfckpt.errors import InvalidArgumentError, InvalidTypeError
from tfckpt.reader import load_checkpoint

__all__ = ["init_from_checkpoint"]

Array = np.ndarray[Any, Any]


def _as_array(value: object) -> Array:
    if isinstance(value, bytes):
        out: Array = np.empty((), dtype=object)
        out[()] = value
        return out
    return np.asarray(value)



def _tf_shape(shape: Sequence[int]) -> str:
    """``str(tf.TensorShape(shape))``: ``(2, 3)``, ``(3,)``, ``()``."""
    dims = [str(int(d)) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"


def _is_var_obj(x: object) -> bool:
    return isinstance(x, np.ndarray) or _state._is_variable(x) or _state._is_torch_tensor(x)


# A destination: ("name", store name) or ("obj", the array/tensor/Variable itself).
_Dest = tuple[str, Any]


def _label(dest: _Dest, store: Mapping[str, object]) -> str:
    """TensorFlow's ``var.name`` for messages: ``"scope/v:0"``."""
    if dest[0] == "name":
        return f"{dest[1]}:0"
    for k, v in store.items():
        if v is dest[1]:
            return f"{k}:0"
    name = getattr(dest[1], "name", None)
    return str(name) if name is not None else f"<{type(dest[1]).__name__}>"


def _dest_shape(dest: _Dest, store: Mapping[str, object]) -> tuple[int, ...]:
    leaf = store[dest[1]] if dest[0] == "name" else dest[1]
    shape = _state.leaf_spec(leaf)[1]
    return () if shape is None else shape


def _slice_specs(parts: list[_Dest], store: Mapping[str, object], full: list[int], ckpt: str) -> list[str]:
    """The slice of the checkpoint tensor each part takes (``"0,3:-"``)."""
    infos = [getattr(d[1], "save_slice_info", None) or getattr(d[1], "_save_slice_info", None)
             if d[0] == "obj" else None for d in parts]
    if parts and all(i is not None for i in infos):
        first = infos[0].full_name  # type: ignore[union-attr]
        specs = []
        for info in infos:
            if info.full_name != first:  # type: ignore[union-attr]
                raise InvalidArgumentError(f"Slices must all be from the same tensor: {first} != {info.full_name}")  # type: ignore[union-attr]
            specs.append(":".join(f"{int(o)},{int(n)}" for o, n in zip(info.var_offset, info.var_shape)))  # type: ignore[union-attr]
        return specs
    shapes = [_dest_shape(d, store) for d in parts]
    rank = len(full)
    axes = {a for s in shapes for a in range(min(rank, len(s))) if s[a] != full[a]}
    if any(len(s) != rank for s in shapes) or len(axes) > 1:
        raise InvalidArgumentError(
            f"cannot tell how {', '.join(_label(d, store) for d in parts)} (shapes {[list(s) for s in shapes]}) "
            f"partition tensor {ckpt} of shape {full}"
        )
    axis = axes.pop() if axes else 0
    total = sum(s[axis] for s in shapes) if rank else len(shapes)
    if rank == 0 or total != full[axis]:
        raise InvalidArgumentError(
            f"the parts {', '.join(_label(d, store) for d in parts)} (shapes {[list(s) for s in shapes]}) "
            f"do not make up tensor {ckpt} of shape {full}"
        )
    specs, off = [], 0
    for s in shapes:
        specs.append(":".join(f"{off},{s[a]}" if a == axis else "-" for a in range(rank)))
        off += s[axis]
    return specs


def _partitions(name: str, store: Mapping[str, object]) -> list[_Dest] | None:
    if f"{name}/part_0" not in store:
        return None
    out, i = [], 0
    while f"{name}/part_{i}" in store:
        out.append(("name", f"{name}/part_{i}"))
        i += 1
    return out


def _check_shape(dest: _Dest, store: Mapping[str, object], ckpt_name: str,
                 variable_map: Mapping[str, list[int]]) -> None:
    """TensorFlow's error unless ``dest`` has the shape of checkpoint tensor ``ckpt_name``."""
    if _dest_shape(dest, store) != tuple(variable_map[ckpt_name]):
        raise InvalidArgumentError(
            f"Shape of variable {_label(dest, store)} ({_tf_shape(_dest_shape(dest, store))}) "
            f"doesn't match with shape of tensor {ckpt_name} ({variable_map[ckpt_name]}) from "
            "checkpoint reader.", key=ckpt_name)


def _pairs(assignment_map: object) -> list[tuple[str, Any]]:
    """The (checkpoint name, target) pairs of a dict or a list of pairs, checked."""
    items: list[Any]
    if isinstance(assignment_map, Mapping):
        items = list(assignment_map.items())
    elif isinstance(assignment_map, Iterable) and not isinstance(assignment_map, (str, bytes)):
        items = list(assignment_map)
    else:
        items = [None]  # (reported below)
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise InvalidTypeError(
                "assignment_map must be a dict or a list of (checkpoint name, target) pairs, e.g. "
                f"{{'old_scope/': 'new_scope/'}}; got {type(assignment_map).__name__} {assignment_map!r:.80}")
    return [(k, v) for k, v in items]


def init_from_checkpoint(
    ckpt_dir_or_file: PathLike,
    assignment_map: Mapping[str, Any] | Iterable[tuple[str, Any]],
    target: Any,
    *,
    dtype_policy: str = "never",
) -> Any:
    """TensorFlow's ``init_from_checkpoint``: load checkpoint tensors into ``target`` by assignment_map.

    ``assignment_map`` (a dict, or a list of pairs so one tensor can go to several places),
    processed in checkpoint-name order:

    * ``"ckpt/name": "target/name"``: one tensor into one value of ``target`` (names as
      :func:`tfckpt._state.flatten` gives them), or into ``target/name/part_0``, ``part_1``,
      ... (a partitioned variable; each part gets its slice, inferred from the part shapes).
    * ``"ckpt/name": array_or_tensor_or_Variable`` (or a list of them: partitions; Variables
      with ``save_slice_info`` take exactly their slice).
    * ``"old_scope/": "new_scope/"`` every target value under ``new_scope/`` from the
      same name under ``old_scope/``; ``"/": "new_scope/"`` from the checkpoint root;
      ``"/": "/"`` everything.

    Values are assigned in place where the target allows it (numpy arrays, torch tensors and
    modules, Variables); the restored state is returned (a new one for immutable JAX/tuple
    state). Every check runs before anything is assigned. ``dtype_policy`` (``"never"``, as
    in TensorFlow, or a numpy casting rule) allows dtype conversions.

    Example:
        >>> import numpy as np, tempfile, os, tfckpt
        >>> p = tfckpt.write({"old/w": np.ones(2, np.float32), "b": np.zeros(1, np.float32)},
        ...                  os.path.join(tempfile.mkdtemp(), "ckpt"))
        >>> model = {"new": {"w": np.zeros(2, np.float32)}}
        >>> _ = init_from_checkpoint(p, {"old/": "new/"}, model); model["new"]["w"]
        array([1., 1.], dtype=float32)

    Raises:
        InvalidArgumentError: TensorFlow's ValueErrors, with its messages (``Tensor w is not found
            in ... checkpoint {...}``, ``Shape of variable w:0 ((2,)) doesn't match with shape of
            tensor w ([3]) from checkpoint reader.``, ``Assignment map with scope only name ...``,
            ``Tensor x (y in s/) is not found in ... checkpoint``, ``Slices must all be from the
            same tensor: a != b``); dtype mismatches (``tensor_name = w; expected dtype float does
            not equal original dtype double``).
        NotFoundError: no checkpoint there.
    """
    check_policy(dtype_policy)
    arg = as_path(ckpt_dir_or_file, "ckpt_dir_or_file") if isinstance(ckpt_dir_or_file, (bytes, os.PathLike)) \
        else ckpt_dir_or_file
    items = _pairs(assignment_map)
    store = _state.flatten(target, sep="/")
    jobs: list[tuple[str, list[_Dest], bool]] = []
    with load_checkpoint(ckpt_dir_or_file) as reader:
        variable_map = reader.get_variable_to_shape_map()
        for ckpt_name, current in sorted(items, key=lambda pair: pair[0]):
            var: list[_Dest] | None = None
            single = False
            if _is_var_obj(current):
                var, single = [("obj", current)], True
            elif isinstance(current, list) and all(_is_var_obj(v) for v in current):
                var = [("obj", v) for v in current]
            elif not isinstance(current, str):
                raise InvalidArgumentError(
                    f"assignment_map value for {ckpt_name!r} must be a name, an array/tensor/Variable or a list "
                    f"of them; got {type(current).__name__}"
                )
            elif current in store:
                var, single = [("name", current)], True
            else:
                var = _partitions(current, store)
            if var is not None:
                if ckpt_name not in variable_map:
                    raise InvalidArgumentError(
                        f"Tensor {ckpt_name} is not found in {arg} checkpoint {variable_map}", key=ckpt_name)
                if single:
                    _check_shape(var[0], store, ckpt_name, variable_map)
                jobs.append((ckpt_name, var, single))
                continue
            scopes = current[: current.rindex("/")] if "/" in current else ""
            if not ckpt_name.endswith("/"):
                raise InvalidArgumentError(
                    f"Assignment map with scope only name {scopes} should map to scope only {ckpt_name}. "
                    "Should be 'scope/': 'other_scope/'.")
            scope_variables = set()
            for var_name in store:
                if not scopes or var_name.startswith(scopes + "/"):
                    if "/part_" in var_name:
                        var_name = var_name[: var_name.index("/part_")]
                    scope_variables.add(var_name)
            for var_name in sorted(scope_variables):
                full = var_name[len(scopes):]
                if current != "/":
                    full = full[1:]
                if ckpt_name != "/":
                    full = ckpt_name + full
                if full.endswith("/"):
                    full = full[:-1]
                if full not in variable_map:
                    raise InvalidArgumentError(
                        f"Tensor {full} ({var_name[len(scopes) + 1:]} in {ckpt_name}) is not found in {arg} "
                        "checkpoint", key=full)
                if var_name in store:
                    _check_shape(("name", var_name), store, full, variable_map)
                    jobs.append((full, [("name", var_name)], True))
                else:
                    jobs.append((full, _partitions(var_name, store) or [], False))
        by_name: dict[str, Array] = {}
        direct: list[tuple[Any, Array]] = []
        for ckpt_name, dests, single in jobs:
            specs = [""] if single else _slice_specs(dests, store, list(variable_map[ckpt_name]), ckpt_name)
            for dest, spec in zip(dests, specs):
                value = _as_array(reader.get_tensor(ckpt_name) if not spec else reader.get_slice(ckpt_name, spec))
                leaf = store[dest[1]] if dest[0] == "name" else dest[1]
                want = _state.leaf_spec(leaf)[0]
                got = as_dtype(value.dtype)
                if want is not None and want != got:
                    if not can_cast(got, want, dtype_policy):
                        raise InvalidArgumentError(
                            f"tensor_name = {ckpt_name}; expected dtype {_state.tf_type_string(want)} does not "
                            f"equal original dtype {_state.tf_type_string(got)}", key=ckpt_name)
                    value = cast_array(value, want, dtype_policy, name=ckpt_name)
                if dest[0] == "name":
                    by_name[dest[1]] = value
                else:
                    direct.append((dest[1], value))
        source = reader.prefix
    _state.validate(target, by_name, strict=False, source=source)
    for obj, value in direct:
        _state.validate({"v": obj}, {"v": value}, strict=False, source=source)
    for obj, value in direct:
        _state.assign({"v": obj}, {"v": value}, strict=False)
    return _state.assign(target, by_name, strict=False)
