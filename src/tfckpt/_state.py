"""The state model shared by the Saver, the CheckpointManager and transfer learning.

A *state* is whatever holds a model's values: a mapping of name -> array,
nested mappings and lists, a ``torch.nn.Module`` or ``torch.optim.Optimizer``
(anything with ``state_dict()`` / ``load_state_dict()``), a JAX pytree, a
:class:`tfckpt.Variable`, or a mix (``{"model": m, "optimizer": opt, "step": 3}``).

:func:`flatten` names every leaf by its path joined with ``"/"``
(``"model/dense/kernel"``, ``"layers/0/w"``); objects with ``state_dict()`` are
flattened through it, so a torch module contributes ``"model/0.weight"``.
``None`` leaves are skipped (nothing is saved for them).

Optimizer state dicts round-trip: ``{"state": {0: {"step": t, "exp_avg": t}},
"param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "foreach": None, "params": [0, 1]}]}``
is stored as ``optimizer/state/0/exp_avg``, ``optimizer/param_groups/0/lr`` (a float64
scalar), ``optimizer/param_groups/0/betas/0``, ``optimizer/param_groups/0/params/1``
(int64) and so on; ``None`` entries are not stored and stay ``None`` on restore.
A freshly created optimizer has an empty ``state``; :func:`assign` creates the
missing entries from the values (integer-looking path parts become int keys)
before calling ``load_state_dict``.

:func:`assign` writes values back: in place into numpy arrays, torch tensors
(any device; dtype and device kept) and Variables, through ``load_state_dict``
for modules and optimizers, into mutable containers (dict, list) in place,
and by building new objects for immutable ones (jax arrays, tuples, Python
scalars). Every value is checked first, so a failing assign changes nothing.

It also turns TensorFlow's ``var_list`` into :class:`Entry` records (checkpoint key ->
target) with TensorFlow's checks and messages (:func:`resolve_var_list`,
:func:`state_entries`), which the Saver writes and restores.

Example:
    >>> import numpy as np
    >>> state = {"dense": {"kernel": np.zeros((2, 2), np.float32)}, "step": 3}
    >>> sorted(flatten(state))
    ['dense/kernel', 'step']
    >>> new = assign(state, {"dense/kernel": np.ones((2, 2), np.float32), "step": np.int64(7)})
    >>> new["step"], float(state["dense"]["kernel"].sum())
    (7, 4.0)
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfckpt._convert import framework_of
from tfckpt._format.entry import name_key
from tfckpt.dtypes import DType, as_dtype, dtype_of_numpy
from tfckpt.errors import InvalidArgumentError, InvalidTypeError, TensorNotFoundError

__all__ = ["assign", "expandable_prefixes", "flatten", "leaf_spec", "shape_str", "tf_type_string"]

_PY_SCALARS = (bool, int, float, complex, str, bytes)


def tf_type_string(dtype: DType) -> str:
    """TensorFlow's ``DataTypeString``: ``float`` for float32, ``double``, ``half``, else the name."""
    return {"float32": "float", "float64": "double", "float16": "half"}.get(dtype.name, dtype.name)


def shape_str(shape: tuple[int, ...] | list[int]) -> str:
    """``[3,2]``, as TensorFlow prints shapes in kernel errors."""
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def _is_variable(x: object) -> bool:
    return bool(getattr(type(x), "_is_tfckpt_variable", False))


def _is_torch_tensor(x: object) -> bool:
    if framework_of(x) != "torch":
        return False
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_jax_array(x: object) -> bool:
    return framework_of(x) == "jax" and hasattr(x, "shape") and hasattr(x, "dtype")


_LEAF_TYPES: set[type] = {np.ndarray, *_PY_SCALARS}  # types seen to be leaves (whether one is depends on its type)


def _is_leaf(x: object) -> bool:
    if type(x) in _LEAF_TYPES:  # (100,000 torch tensors: one set lookup each instead of four tests)
        return True
    leaf = (
        isinstance(x, (np.ndarray, np.generic, *_PY_SCALARS))
        or _is_variable(x)
        or _is_torch_tensor(x)
        or _is_jax_array(x)
    )
    if leaf:
        _LEAF_TYPES.add(type(x))
    return leaf


def _has_state_dict(x: object) -> bool:
    return callable(getattr(x, "state_dict", None)) and not isinstance(x, Mapping)


def _is_module(x: object) -> bool:
    return callable(getattr(x, "named_parameters", None))


def _named_parameters(module: Any) -> Any:
    """Every name of a module's parameters, tied ones included (torch drops the repeats by default)."""
    try:
        return module.named_parameters(remove_duplicate=False)
    except TypeError:
        return module.named_parameters()


def _pytree_children(node: object) -> tuple[list[tuple[str, object]], Any] | None:
    """A registered JAX pytree node's children, named by their keys (a ``flax.struct``
    dataclass's fields, a ``jax.tree_util.register_dataclass`` class's), and its treedef; None
    for anything else."""
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    try:
        pairs, treedef = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)
    except Exception:
        return None
    if len(pairs) == 1 and pairs[0][1] is node:
        return None  # (a leaf to JAX: not a container)
    named = []
    for keys, child in pairs:
        k = keys[0] if len(keys) == 1 else keys
        named.append((str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k)))), child))
    return named, treedef


def _join(path: str, key: object, sep: str) -> str:
    return f"{path}{sep}{key}" if path else str(key)


def _state_dict(node: Any, captured: dict[int, Any] | None) -> Any:
    """``node.state_dict()``, taken once per restore: ``captured`` (id -> state dict) keeps the one
    whose tensors a restore reads into, so that the same dict is handed to ``load_state_dict``."""
    if captured is None:
        return node.state_dict()
    sd = captured.get(id(node))
    if sd is None:
        sd = captured[id(node)] = node.state_dict()
    return sd


def _walk(node: object, path: str, sep: str, out: dict[str, object], prefixes: list[str] | None,
          captured: dict[int, Any] | None = None, in_sd: bool = False,
          module_leaves: set[str] | None = None, in_module: bool = False) -> None:
    """``module_leaves`` (when given) collects the paths of leaves a module's state dict holds."""
    if node is None:
        return
    if _is_leaf(node):
        if not path:
            raise InvalidArgumentError(
                f"a single {type(node).__name__} has no name: pass a mapping such as {{'w': value}}"
            )
        if path in out:
            raise InvalidArgumentError(f"At least two variables have the same name: {path}", key=path)
        out[path] = node
        if in_module and module_leaves is not None:
            module_leaves.add(path)
    elif isinstance(node, Mapping):
        for k, v in node.items():
            _walk(v, _join(path, k, sep), sep, out, prefixes, captured, in_sd, module_leaves, in_module)
    elif isinstance(node, (list, tuple)):
        if prefixes is not None and in_sd and isinstance(node, list):
            prefixes.append(path)  # (a list in a state dict may be longer in the checkpoint)
        for i, v in enumerate(node):
            _walk(v, _join(path, i, sep), sep, out, prefixes, captured, in_sd, module_leaves, in_module)
    elif _has_state_dict(node):
        if prefixes is not None and not _is_module(node):
            prefixes.append(path)
        _walk(_state_dict(node, captured), path, sep, out, prefixes, captured, True, module_leaves,
              _is_module(node))
    elif (tree := _pytree_children(node)) is not None:
        for k, v in tree[0]:
            _walk(v, _join(path, k, sep), sep, out, prefixes, captured, in_sd, module_leaves, in_module)
    else:
        where = f" at {path!r}" if path else ""
        raise InvalidArgumentError(
            f"cannot save a {type(node).__name__}{where}: expected arrays, tensors, scalars, strings, "
            "mappings, lists/tuples, JAX pytree nodes or objects with state_dict()"
        )


def flatten(state: object, *, sep: str = "/", captured: dict[int, Any] | None = None,
            module_leaves: set[str] | None = None) -> dict[str, object]:
    """Name -> leaf for every value in ``state`` (``None`` leaves skipped), in traversal order.

    Example:
        >>> import numpy as np
        >>> list(flatten({"layers": [{"w": np.zeros(2)}, {"w": np.ones(2)}], "lr": 0.1}))
        ['layers/0/w', 'layers/1/w', 'lr']

    ``captured`` (when given) records each ``state_dict()`` taken, by the id of its object,
    and reuses those already there (see :func:`assign`); ``module_leaves`` collects the paths
    that come from a module's state dict.

    Raises:
        InvalidArgumentError: a value of an unsupported type, a bare leaf, or two leaves with one name.
    """
    out: dict[str, object] = {}
    _walk(state, "", sep, out, None, captured, False, module_leaves)
    return out


def expandable_prefixes(state: object, *, sep: str = "/") -> list[str]:
    """Paths of objects whose ``state_dict()`` may grow on restore (optimizers, not modules), and
    of lists inside any state dict (an L-BFGS history, a module's extra state).

    A restore should read every checkpoint key under ``prefix + sep`` (or every key when a
    prefix is ``""``) so that a fresh optimizer gets its saved state back.

    Example:
        >>> expandable_prefixes({"w": 1.0})
        []
    """
    prefixes: list[str] = []
    _walk(state, "", sep, {}, prefixes)
    return [p for p in prefixes if not any(q != p and (not q or p.startswith(q + sep)) for q in prefixes)]


def untrainable_paths(state: object, *, sep: str = "/") -> set[str]:
    """The paths of :func:`flatten` that are state but not trained weights: a module's buffers
    and frozen parameters, everything of other objects with ``state_dict()`` (optimizers,
    schedulers), Python numbers, and parameters (``torch.nn.Parameter``) that do not require grad.

    Example:
        >>> import numpy as np
        >>> sorted(untrainable_paths({"w": np.zeros(2), "lr": 0.1}))
        ['lr']
    """
    out: set[str] = set()

    def walk(node: object, path: str, frozen: bool) -> None:
        if node is None:
            return
        if _is_leaf(node):
            torch = sys.modules.get("torch")
            param = torch is not None and isinstance(node, torch.nn.Parameter) and not node.requires_grad
            if frozen or param or isinstance(node, _PY_SCALARS):
                out.add(path)
        elif isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, _join(path, k, sep), frozen)
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, _join(path, i, sep), frozen)
        elif _has_state_dict(node):
            sd = node.state_dict()  # type: ignore[attr-defined]
            if not _is_module(node):
                walk(sd, path, True)
                return
            trained = {n for n, p in _named_parameters(node) if p.requires_grad}
            for k, v in sd.items():
                walk(v, _join(path, k, sep), frozen or k not in trained)
        elif (tree := _pytree_children(node)) is not None:
            for k, v in tree[0]:
                walk(v, _join(path, k, sep), frozen)

    walk(state, "", False)
    return out


def leaf_spec(leaf: object) -> tuple[DType | None, tuple[int, ...] | None]:
    """``(dtype, shape)`` a restored value must have for ``leaf``; ``(None, None)`` for Python scalars.

    Example:
        >>> import numpy as np
        >>> d, s = leaf_spec(np.zeros((2, 3), np.int32)); d.name, s
        ('int32', (2, 3))
    """
    if type(leaf) is np.ndarray:  # the common case, first
        d = dtype_of_numpy(leaf.dtype)
        if d is not None:
            return d, leaf.shape
    elif isinstance(leaf, _PY_SCALARS):
        return None, None
    if _is_variable(leaf):
        return leaf.dtype, tuple(leaf.shape)  # type: ignore[attr-defined]
    if _is_torch_tensor(leaf):
        from tfckpt.adapters import torch as torch_adapter

        return as_dtype(torch_adapter.numpy_dtype(leaf.dtype)), tuple(leaf.shape)  # type: ignore[attr-defined]
    if _is_jax_array(leaf):
        from tfckpt.adapters import jax as jax_adapter

        npd, jshape = jax_adapter.stored_spec(leaf)
        return as_dtype(npd), jshape
    arr_dtype = np.dtype(leaf.dtype)  # type: ignore[attr-defined]
    return as_dtype(arr_dtype), tuple(int(d) for d in leaf.shape)  # type: ignore[attr-defined]


def inplace_buffer(leaf: object) -> np.ndarray[Any, Any] | None:
    """A writeable C-contiguous numpy array sharing ``leaf``'s memory (numpy arrays, CPU torch
    tensors), so a restore can read straight into it; None when the leaf cannot take that.

    Example:
        >>> import numpy as np
        >>> a = np.zeros(3)
        >>> inplace_buffer(a) is a, inplace_buffer(a[::2]), inplace_buffer(1.0)
        (True, None, None)
    """
    if isinstance(leaf, np.ndarray):
        ok = leaf.flags.writeable and leaf.flags.c_contiguous and leaf.dtype != object
        return leaf if ok else None
    if _is_torch_tensor(leaf):
        from tfckpt.adapters import torch as torch_adapter

        return torch_adapter.inplace_numpy(leaf)  # type: ignore[arg-type]
    return None


def _check(path: str, leaf: object, value: np.ndarray[Any, Any], dtype_errors: list[str]) -> str | None:
    """Append a dtype error line, or return a shape error message, for ``value`` going into ``leaf``."""
    stored = as_dtype(value.dtype)
    want, shape = leaf_spec(leaf)
    if want is None:
        if value.size != 1:
            return f"Assign requires shapes of both tensors to match. lhs shape= [] rhs shape= {shape_str(value.shape)}"
        if isinstance(leaf, (str, bytes)) != stored.is_string:
            want = as_dtype(7) if isinstance(leaf, (str, bytes)) else as_dtype(np.asarray(leaf).dtype)
            dtype_errors.append(
                f"tensor_name = {path}; expected dtype {tf_type_string(want)} does not equal original dtype "
                f"{tf_type_string(stored)}"
            )
        return None
    if want != stored:
        dtype_errors.append(
            f"tensor_name = {path}; expected dtype {tf_type_string(want)} does not equal original dtype "
            f"{tf_type_string(stored)}"
        )
        return None
    assert shape is not None
    if tuple(value.shape) != shape:
        lhs, rhs = shape_str(shape), shape_str(value.shape)
        return f"Assign requires shapes of both tensors to match. lhs shape= {lhs} rhs shape= {rhs}"
    return None


def unassignable_error(path: str, leaf: object, source: str | None,
                       in_module: bool = False) -> InvalidArgumentError | None:
    """The error for restoring into a torch tensor that cannot take values in place (an inference,
    meta, sparse, lazy or self-overlapping tensor), or None. A module's meta tensors are fine
    (``in_module``): the module gets new tensors through ``load_state_dict(..., assign=True)``."""
    if type(leaf) is np.ndarray or not _is_torch_tensor(leaf):
        return None
    from tfckpt.adapters import torch as torch_adapter

    if in_module and leaf.is_meta:  # type: ignore[attr-defined]
        return None
    why = torch_adapter.unassignable(leaf)  # type: ignore[arg-type]
    if why is None:
        return None
    where = f"restoring {path} from checkpoint {source}" if source else path
    return InvalidArgumentError(f"{where}: {why}", key=path, path=source)


def validate(state: object, values: Mapping[str, Any], *, strict: bool = True, sep: str = "/",
             source: str | None = None, captured: dict[int, Any] | None = None) -> None:
    """Raise the error :func:`assign` would raise, without changing anything (``source``: the
    checkpoint the values come from, for the messages; ``captured``: see :func:`assign`)."""
    owned: set[str] = set()
    leaves = flatten(state, sep=sep, captured=captured, module_leaves=owned)
    if strict:
        missing = [p for p in leaves if p not in values]
        if missing:
            raise TensorNotFoundError(f"Key {missing[0]} not found in checkpoint", key=missing[0])
    dtype_errors: list[str] = []
    shape_error: tuple[str, str] | None = None
    for path, leaf in leaves.items():
        if path in values:
            if (bad := unassignable_error(path, leaf, source, path in owned)) is not None:
                raise bad
            err = _check(path, leaf, np.asarray(values[path]), dtype_errors)
            if err is not None and shape_error is None:
                shape_error = (path, err)
    if dtype_errors:
        raise InvalidArgumentError("\n".join(dtype_errors))
    if shape_error:
        raise InvalidArgumentError(shape_error[1], key=shape_error[0])


def _py_value(leaf: object, value: np.ndarray[Any, Any]) -> object:
    """A Python scalar leaf's restored value: the stored one, as the Python number of its own type
    (a learning rate saved as 0.125 comes back 0.125 into a leaf that held the int 1, as
    ``load_state_dict`` would give it; casting it to the leaf's type would make it 0)."""
    item = value.reshape(()).item() if value.dtype != object else value.reshape(-1)[0]
    if isinstance(leaf, str):
        return item.decode("utf-8") if isinstance(item, bytes) else str(item)
    if isinstance(leaf, bytes):
        return bytes(item)
    if type(leaf) is int and isinstance(item, float) and item.is_integer():
        return int(item)  # (an epoch counter TensorFlow stored as a float stays an int)
    return item


class _Ctx:
    def __init__(self, values: Mapping[str, Any], sep: str, captured: dict[int, Any] | None) -> None:
        self.values = values
        self.sep = sep
        self.captured = captured


def _new_leaf(leaf: object, value: np.ndarray[Any, Any], in_state_dict: bool) -> object:
    if isinstance(leaf, _PY_SCALARS):
        return _py_value(leaf, value)
    if _is_variable(leaf):
        leaf.assign(value)  # type: ignore[attr-defined]
        return leaf
    if _is_torch_tensor(leaf):
        from tfckpt.adapters import torch as torch_adapter

        if in_state_dict:  # load_state_dict copies it into place, keeping dtype and device
            return torch_adapter.from_numpy(value)
        return torch_adapter.assign_(leaf, value)  # type: ignore[arg-type]
    if _is_jax_array(leaf):
        from tfckpt.adapters import jax as jax_adapter

        return jax_adapter.from_numpy(value, like=leaf)
    if isinstance(leaf, np.ndarray):
        if leaf.dtype.kind in "SU":
            return fixed_width_strings(leaf, value)
        if leaf.flags.writeable:
            leaf[...] = value
            return leaf
        return np.array(value, dtype=leaf.dtype).reshape(leaf.shape)
    return np.asarray(value, dtype=leaf.dtype).reshape(())[()]  # type: ignore[attr-defined]


def _listify(node: dict[Any, Any]) -> dict[Any, Any]:
    """Below ``node``, every dict whose keys are exactly 0..n-1 becomes a list."""
    for k, v in node.items():
        if isinstance(v, dict):
            v = _listify(v)
            node[k] = list(v.values()) if v and list(v) == list(range(len(v))) else v
    return node


def fixed_width_strings(leaf: np.ndarray[Any, Any], value: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Restored strings (an array of ``bytes``) for a numpy ``str_``/``bytes_`` array ``leaf``:
    written into it when they fit its width, else a new array of the width they need (numpy
    would cut them to the old width).

    Example:
        >>> a = np.array(["cat", "dog"])
        >>> fixed_width_strings(a, np.array([b"ox", b"yak"], dtype=object)) is a, a.tolist()
        (True, ['ox', 'yak'])
        >>> fixed_width_strings(a, np.array([b"horse", b"zebra"], dtype=object)).tolist()
        ['horse', 'zebra']
    """
    items = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in value.reshape(-1).tolist()]
    new: np.ndarray[Any, Any]
    if leaf.dtype.kind == "U":
        new = np.array([v.decode("utf-8", "surrogateescape") for v in items] or [""], dtype=str)
    else:
        new = np.array(items or [b""], dtype=bytes)
    new = new[: len(items)].reshape(value.shape)
    if leaf.flags.writeable and new.dtype.itemsize <= leaf.dtype.itemsize:
        leaf[...] = new
        return leaf
    return new


def _expand(path: str, keys: list[str], ctx: _Ctx, torch_ctx: bool) -> dict[Any, Any]:
    """The values of ``keys`` (under ``path``) as a new nested structure to merge into the
    container at ``path``: integer path parts become int keys, and below the top level a
    container whose keys are exactly 0..n-1 is a list in a torch object's state (an L-BFGS history:
    ``old_dirs/0``...; elsewhere a dict with int keys stays one: nothing tells them apart on disk)."""
    out: dict[Any, Any] = {}
    for key in keys:
        rest = key[len(path) + len(ctx.sep):] if path else key
        parts = rest.split(ctx.sep)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(int(part) if part.isdigit() else part, {})
        value = np.asarray(ctx.values[key])
        leaf: object = value
        if value.dtype == object and value.shape == ():  # a string of the state: str, unless not UTF-8
            leaf = value[()]
            try:
                leaf = leaf.decode("utf-8") if isinstance(leaf, bytes) else leaf
            except UnicodeDecodeError:
                pass
        elif torch_ctx and value.dtype != object:
            if value.shape == () and value.dtype == np.int64:
                leaf = int(value)  # (a Python int of the state, as numpy stored it: L-BFGS's n_iter)
            else:
                from tfckpt.adapters import torch as torch_adapter

                leaf = torch_adapter.from_numpy(value)
        last = parts[-1]
        node[int(last) if last.isdigit() else last] = leaf
    return _listify(out) if torch_ctx else out


def _rebuild(node: object, path: str, ctx: _Ctx, sd: str | None, torch_ctx: bool, top: bool = False) -> object:
    """``sd``: None outside state_dicts; "module" / "other" inside one (others may grow); "plain"
    inside a stock torch module's (its tensors are written in place, no ``load_state_dict``);
    ``top``: ``node`` is a state dict itself (a new dict ``state_dict()`` made, updated in place
    so that attributes such as a module's ``_metadata`` stay)."""
    sep = ctx.sep
    if node is None:
        return None
    if _is_leaf(node):
        if path in ctx.values:
            return _new_leaf(node, np.asarray(ctx.values[path]), sd in ("module", "other"))
        return node
    if isinstance(node, Mapping):
        new = {k: _rebuild(v, _join(path, k, sep), ctx, sd, torch_ctx) for k, v in node.items()}
        if sd == "other":
            covered = [_join(path, k, sep) for k in node]
            extra = [
                k for k in ctx.values
                if (not path or k.startswith(path + sep))
                and not any(k == c or k.startswith(c + sep) for c in covered)
            ]
            if extra:
                new.update(_expand(path, extra, ctx, torch_ctx))
        if isinstance(node, dict):
            if sd is not None and not top:  # (inside a state dict: maybe the object's own, shared)
                node = copy.copy(node)
            node.update(new)
            return node
        try:
            return type(node)(new)  # type: ignore[call-arg]
        except TypeError:
            return new
    if isinstance(node, list):
        items = [_rebuild(v, _join(path, i, sep), ctx, sd, torch_ctx) for i, v in enumerate(node)]
        if sd is not None:  # the checkpoint's list may be longer (a state dict's lists are rebuilt, not
            items += _longer(path, len(node), ctx, torch_ctx)  # mutated: an object may share them)
            return items
        node[:] = items
        return node
    if isinstance(node, tuple):
        items = [_rebuild(v, _join(path, i, sep), ctx, sd, torch_ctx) for i, v in enumerate(node)]
        if hasattr(node, "_fields"):
            return type(node)(*items)  # type: ignore[arg-type]
        return tuple(items) if type(node) is tuple else type(node)(items)  # type: ignore[arg-type]
    if _has_state_dict(node):
        kind = "module" if _is_module(node) else "other"
        is_torch = torch_ctx or _is_torch_object(node)
        old_sd = _state_dict(node, ctx.captured)
        # a module built on the meta device takes the restored tensors themselves
        meta = kind == "module" and any(getattr(v, "is_meta", False) for v in old_sd.values())
        if not meta and _plain_torch_module(node):  # (its state dict's tensors are its own memory:
            _rebuild(old_sd, path, ctx, "plain", True, top=True)  # written in place, as load_state_dict
            return node  # would, without its cost: a scan of every key per submodule)
        new_sd = _rebuild(old_sd, path, ctx, kind, is_torch, top=True)
        try:
            node.load_state_dict(new_sd, **({"assign": True} if meta else {}))  # type: ignore[attr-defined]
        except (ValueError, KeyError, IndexError, TypeError, RuntimeError) as e:
            where = f" at {path!r}" if path else ""
            raise InvalidArgumentError(
                f"{type(node).__name__}.load_state_dict{where} refused the checkpoint's values (the state may be "
                f"partly restored): {type(e).__name__}: {e}", key=path) from e
        return node
    if (tree := _pytree_children(node)) is not None:
        children = [_rebuild(v, _join(path, k, sep), ctx, sd, torch_ctx) for k, v in tree[0]]
        return tree[1].unflatten(children)
    raise InvalidArgumentError(f"cannot restore into a {type(node).__name__} at {path!r}")


def _is_torch_object(node: object) -> bool:
    """A torch module, optimizer or scheduler, subclasses included."""
    if type(node).__module__.startswith("torch"):
        return True
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    sched = torch.optim.lr_scheduler
    return isinstance(node, (torch.nn.Module, torch.optim.Optimizer,
                             getattr(sched, "LRScheduler", None) or sched._LRScheduler))  # (torch < 2.0)


def _plain_torch_module(node: object) -> bool:
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(node, torch.nn.Module):
        return False
    from tfckpt.adapters import torch as torch_adapter

    return torch_adapter.plain_module(node)


def _longer(path: str, have: int, ctx: _Ctx, torch_ctx: bool) -> list[Any]:
    """The items ``have``, ``have + 1``, ... of the list at ``path`` that the values hold beyond it."""
    head = path + ctx.sep if path else ""
    extra = [k for k in ctx.values if k.startswith(head) and (i := k[len(head):].split(ctx.sep, 1)[0]).isdigit()
             and int(i) >= have]
    if not extra:
        return []
    grown = _listify(_expand(path, extra, ctx, torch_ctx))  # (a list's items: lists of lists too)
    if sorted(grown) != list(range(have, have + len(grown))):
        raise InvalidArgumentError(f"the list at {path!r} holds {have} items, and the checkpoint items "
                                   f"{sorted(grown)} beyond them: not one list", key=path)
    return [grown[i] for i in sorted(grown)]


def assign(state: object, values: Mapping[str, Any], *, strict: bool = True, sep: str = "/",
           source: str | None = None, captured: dict[int, Any] | None = None) -> object:
    """Write ``values`` (name -> numpy array) into ``state``; return the restored state.

    Mutable leaves are written in place; immutable ones (jax arrays, tuples, Python and
    numpy scalars) are replaced in a new pytree, which is returned (mutable dicts and
    lists holding them are updated in place too). Every object with ``state_dict()`` gets
    ``load_state_dict`` called (its hooks run, and an object whose ``state_dict()`` returns
    copies gets the values), even when no value of it is in ``values`` (a torch module with no
    state-dict hooks, overrides or extra state is written in place instead, as its own
    ``load_state_dict`` would, without a scan of every key per submodule): ``captured``, from the
    :func:`flatten` whose leaves a caller filled in place, supplies those filled state dicts.

    Example:
        >>> import numpy as np
        >>> w = np.zeros(2, np.float32)
        >>> _ = assign({"w": w}, {"w": np.array([1, 2], np.float32)}); w
        array([1., 2.], dtype=float32)

    Raises:
        TensorNotFoundError: with ``strict``, a value of the state is missing
            (``Key X not found in checkpoint``).
        InvalidArgumentError: a dtype (``... expected dtype float does not equal original
            dtype int32``) or shape (``Assign requires shapes of both tensors to match. ...``)
            mismatch; nothing was changed.
    """
    validate(state, values, strict=strict, sep=sep, source=source, captured=captured)
    return _rebuild(state, "", _Ctx(values, sep, captured), None, False)


# -- what a Saver saves: checkpoint key -> target --------------------------------


class Entry:
    """One checkpoint key and where its value lives.

    ``target`` is a Variable, a leaf (array/tensor) given in a ``var_list`` dict, or a
    ``str``: the name of a value in the state passed as ``sess`` (for ``var_list=None``
    every leaf's path). ``slice_info`` marks one slice of a partitioned variable;
    ``expand`` marks keys read only to grow an optimizer's state.
    """

    __slots__ = ("expand", "key", "slice_info", "target")

    def __init__(self, key: str, target: object, slice_info: Any = None, *, expand: bool = False) -> None:
        self.key = key
        self.target = target
        self.slice_info = slice_info
        self.expand = expand

    def __repr__(self) -> str:
        return f"Entry({self.key!r}, {self.target!r})"


def _op_name(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


def _flatten_list(var_list: object, out: list[object]) -> None:
    if isinstance(var_list, (list, tuple, set, frozenset)):
        for v in var_list:
            _flatten_list(v, out)
    else:
        out.append(var_list)


def _not_a_variable(value: object) -> TypeError:
    return TypeError(
        f"names_to_saveables must be a dict mapping string names to Tensors/Variables. Not a variable: {value}"
    )


def _slice_group(key: str, group: list[object]) -> list[Entry]:
    full_name = None
    out = []
    for v in group:
        if not _is_variable(v):
            raise InvalidArgumentError(f"Slices must all be Variables: {v}")
        info = getattr(v, "save_slice_info", None)
        if info is None:
            raise InvalidArgumentError(f"Slices must all be slices: {v}")
        if full_name is None:
            full_name = info.full_name
        elif info.full_name != full_name:
            raise InvalidArgumentError(f"Slices must all be from the same tensor: {info.full_name} != {full_name}")
        out.append(Entry(key, v, info))
    return out


def resolve_var_list(var_list: object) -> list[Entry]:
    """TensorFlow's ``var_list`` -> entries, with TensorFlow's checks and messages (sorted by key).

    Example:
        >>> resolve_var_list({"b": "graph/b", "a": "graph/a"})
        [Entry('a', 'graph/a'), Entry('b', 'graph/b')]

    Raises:
        TypeError: not a dict or list, a non-str key, a value that is not a variable.
        ValueError: two variables with one name, one variable under two names, bad slices.
    """
    entries: list[Entry] = []
    if isinstance(var_list, Mapping):
        for k in var_list:
            if not isinstance(k, str):
                raise InvalidTypeError(
                    "names_to_saveables must be a dict mapping string names to trackable operations. "
                    f"Name is not a string: {k}"
                )
        seen_objects: set[int] = set()
        seen_names: set[str] = set()
        for key in sorted(var_list):
            value = var_list[key]
            if isinstance(value, (list, tuple)):
                group = _slice_group(key, list(value))
                for e in group:
                    if id(e.target) in seen_objects:
                        raise InvalidArgumentError(f"The same saveable will be restored with two names: {key}")
                    seen_objects.add(id(e.target))
                entries += group
                continue
            if isinstance(value, str):
                if value in seen_names:
                    raise InvalidArgumentError(f"The same saveable will be restored with two names: {key}")
                seen_names.add(value)
            elif _is_leaf(value):
                if not isinstance(value, (*_PY_SCALARS, np.generic)) and id(value) in seen_objects:
                    raise InvalidArgumentError(f"The same saveable will be restored with two names: {key}")
                seen_objects.add(id(value))
            else:
                raise _not_a_variable(value)
            entries.append(Entry(key, value, getattr(value, "save_slice_info", None)))
        return entries
    if not isinstance(var_list, (list, tuple, set, frozenset)):
        raise InvalidTypeError(f"Variables to save should be passed in a dict or a list. Got {var_list}")
    items: list[object] = []
    _flatten_list(var_list, items)
    for v in items:
        if not (_is_variable(v) or isinstance(v, str)):
            raise _not_a_variable(v)
    items.sort(key=lambda v: v if isinstance(v, str) else str(v.name))  # type: ignore[attr-defined]
    plain: set[str] = set()
    sliced: dict[str, list[object]] = {}
    for v in items:
        if isinstance(v, str):
            name = _op_name(v)
            if name in plain or name in sliced:
                raise InvalidArgumentError(f"At least two variables have the same name: {name}")
            plain.add(name)
            entries.append(Entry(name, v))
            continue
        info = getattr(v, "save_slice_info", None)
        if info is not None:
            if info.full_name in plain:
                raise InvalidArgumentError(f"Mixing slices and non-slices with the same name: {info.full_name}")
            sliced.setdefault(info.full_name, []).append(v)
            continue
        name = v.op_name  # type: ignore[attr-defined]
        if name in plain or name in sliced:
            raise InvalidArgumentError(f"At least two variables have the same name: {name}")
        plain.add(name)
        entries.append(Entry(name, v))
    for full_name, members in sliced.items():
        entries += _slice_group(full_name, members)
    entries.sort(key=lambda e: name_key(e.key))
    return entries


def state_entries(state: object, *, sep: str = "/") -> list[Entry]:
    """Entries for ``var_list=None``: every leaf of ``state`` by path (sliced Variables by full name)."""
    out = []
    for path, leaf in flatten(state, sep=sep).items():
        info = getattr(leaf, "save_slice_info", None) if _is_variable(leaf) else None
        out.append(Entry(info.full_name if info is not None else path, path, info))
    return out
