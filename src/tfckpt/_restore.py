"""Restoring checkpoint values into a state: key lookup (TF1 names, TF2 object-graph names),
dtype/shape checks with TensorFlow's messages, and assignment through :mod:`tfckpt._state`."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tfckpt import _state
from tfckpt._convert import framework_of, torch_adapter
from tfckpt._format.bulk_reads import FIXED_DTYPES
from tfckpt._format.bundle_reader import BundleReader
from tfckpt._state import Entry
from tfckpt.dtypes import DType, dtype_from_enum, dtype_of_numpy
from tfckpt.errors import DataLossError, InvalidArgumentError, NotFoundError, TensorNotFoundError
from tfckpt.reader import CheckpointReader
from tfckpt.variables import Variable

__all__ = ["restore_entries"]

logger = logging.getLogger("tfckpt")


def _target_leaf(e: Entry, flat: Mapping[str, object]) -> object:
    if isinstance(e.target, str):
        if e.target in flat:
            return flat[e.target]
        return flat.get(e.target[:-2]) if e.target.endswith(":0") else None
    return e.target


def _not_found_in_object_graph(missing: list[str], names: list[str], matched: int) -> str:
    return (
        f"\n\nExisting variables not in the checkpoint: {', '.join(sorted(missing))}\n\n"
        f"Variables names when this checkpoint was written which don't exist now: {', '.join(sorted(names))}\n\n"
        f"({matched} variable name(s) did match)\n\n"
        "Could not find some variables in the checkpoint (see names above). Saver was attempting to load an "
        "object-based checkpoint (saved using tf.train.Checkpoint or tf.keras.Model.save_weights) using "
        "variable names. If the checkpoint was written with eager execution enabled, it's possible that variable "
        "names have changed (for example missing a '_1' suffix). It's also possible that there are new "
        "variables which did not exist when the checkpoint was written. You can construct a Saver(var_list=...) "
        "with only the variables which previously existed, and if variable names have changed you may need to "
        "make this a dictionary with the old names as keys."
    )


_Spec = tuple[DType, tuple[int, ...]]  # stored dtype and shape


def _stored_specs(reader: CheckpointReader, keys: list[str]) -> dict[str, _Spec]:
    """Stored (dtype, shape) of those of ``keys`` the checkpoint has (one index walk for many keys)."""
    impl = reader._impl
    if isinstance(impl, BundleReader):
        return {k: (dtype_from_enum(e.dtype), e.shape) for k, e in impl.entries(keys).items()}
    return {k: (impl.dtype(k), tuple(impl.shape(k))) for k in keys if impl.has(k)}


_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _checkpoint_keys(reader: CheckpointReader, entries: list[Entry], specs: dict[str, _Spec]) -> list[str]:
    """The key to read for each entry; object-based checkpoints are remapped through their object graph.
    ``specs`` (those of the entries' own keys) gains the remapped keys'."""
    missing = [e.key for e in entries if e.key not in specs]
    if not missing:
        return [e.key for e in entries]
    graph = reader.object_graph()
    if graph is None:
        raise TensorNotFoundError(f"Key {missing[0]} not found in checkpoint", key=missing[0])
    logger.warning(
        "Restoring an object-based checkpoint using a name-based saver. This may be somewhat fragile, and will "
        "re-build the Saver. Instead, consider loading object-based checkpoints using tf.train.Checkpoint()."
    )
    # A variable's graph name (as TensorFlow's name-based Saver matches), else its object path
    # (``model/dense/kernel`` for ``model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE``: how a state
    # dict names what a tf.train.Checkpoint saved).
    keys_of = [a.checkpoint_key for node in graph.nodes for a in node.attributes]
    mapping = {k[: -len(_VALUE_SUFFIX)]: k for k in keys_of if k.endswith(_VALUE_SUFFIX)}
    mapping.update((a.full_name, a.checkpoint_key) for node in graph.nodes for a in node.attributes if a.full_name)
    unmatched = [k for k in missing if k not in mapping]
    if unmatched:
        have = {e.key for e in entries}
        raise NotFoundError(_not_found_in_object_graph(
            unmatched, [n for n in mapping if n not in have], len(entries) - len(unmatched)), key=unmatched[0])
    keys = [e.key if e.key in specs else mapping[e.key] for e in entries]
    specs.update(_stored_specs(reader, [mapping[k] for k in missing]))
    for k in missing:
        if mapping[k] not in specs:  # the object graph names a key the index lacks
            raise TensorNotFoundError(f"Key {mapping[k]} not found in checkpoint", key=mapping[k])
    return keys


def _check_shape(e: Entry, key: str, leaf: object, spec: tuple[DType | None, tuple[int, ...] | None],
                 stored: tuple[int, ...], reshape: bool) -> tuple[int, ...] | None:
    """The shape the value read for ``e`` must be given (None: keep the ``stored`` one), or TF's error.
    ``spec`` is the target's :func:`_state.leaf_spec`."""
    if e.slice_info is not None:
        if stored != e.slice_info.full_shape:
            raise InvalidArgumentError(
                f"tensor_name = {key}; shape in shape_and_slice spec {_state.shape_str(e.slice_info.full_shape)} "
                f"does not match the shape stored in checkpoint: {_state.shape_str(stored)}", key=key)
        return None
    shape = spec[1]
    if shape is None and isinstance(leaf, (bool, int, float, complex, str, bytes)):
        shape = ()
    if shape is None:
        return None
    if stored != shape:
        if not reshape:
            raise InvalidArgumentError(
                "Assign requires shapes of both tensors to match. lhs shape= "
                f"{_state.shape_str(shape)} rhs shape= {_state.shape_str(stored)}", key=key)
        want = math.prod(shape)
        if math.prod(stored) != want:
            raise InvalidArgumentError(
                f"Input to reshape is a tensor with {math.prod(stored)} values, but the requested shape has {want}",
                key=key)
    return shape


def _read_checked(reader: CheckpointReader, e: Entry, key: str, shape: tuple[int, ...] | None) -> np.ndarray[Any, Any]:
    """Read ``e``'s value and give it ``shape`` (from :func:`_check_shape`)."""
    if e.slice_info is not None:
        return np.asarray(reader.get_slice(key, e.slice_info.slice_spec))
    arr = reader._impl.read(key)
    return arr if shape is None or arr.shape == shape else arr.reshape(shape)


def _inplace_targets(entries: list[Entry], keys: list[str], leaves: list[object],
                     specs: dict[str, _Spec]) -> dict[int, np.ndarray[Any, Any]]:
    """Entry index -> a writeable array sharing its target's memory, for entries whose stored
    bytes can be read straight into their target (same dtype and shape, plain CPU memory)."""
    out: dict[int, np.ndarray[Any, Any]] = {}
    taken: set[str] = set()
    numpy_of: dict[int, np.dtype[Any] | None] = {}  # id(stored dtype) -> numpy dtype read in place (None: not)
    for i, (e, key, leaf) in enumerate(zip(entries, keys, leaves)):
        if leaf is None or e.expand or e.slice_info is not None or key in taken:
            continue
        buf: np.ndarray[Any, Any] | None
        if isinstance(leaf, Variable):
            buf = leaf._value
            if not ((fl := buf.flags).writeable and fl.c_contiguous):
                continue
        else:
            buf = _state.inplace_buffer(leaf)  # writeable and C-contiguous, or None
        if buf is None:
            continue
        stored, shape = specs[key]
        npd = numpy_of.get(id(stored), False)  # (keyed by identity: DType hashes in Python)
        if npd is False:
            npd = numpy_of[id(stored)] = stored.numpy_dtype if stored.is_fixed_size else None
        if npd is None or buf.shape != shape or buf.dtype != npd:  # (a dtype equals None when it is float64)
            continue
        out[i] = buf
        taken.add(key)
    return out


# stored dtype enum -> the numpy dtype of arrays a value of it can be read straight into: the
# fixed-size dtypes whose numpy dtype maps back to them (not the quantized ones, stored as ints)
_NUMPY_OF: dict[int, np.dtype[Any]] = {
    enum: dt.numpy_dtype for enum, dt in FIXED_DTYPES.items() if dtype_of_numpy(dt.numpy_dtype) is dt}


def _all_in_place(reader: CheckpointReader, entries: list[Entry],
                  leaves: list[object]) -> dict[str, np.ndarray[Any, Any]] | None:
    """Read every entry straight into its target and return key -> target array when each can simply be read
    into (a writeable C-contiguous numpy array, Variable or CPU torch tensor of the stored dtype
    and shape, one per key, from a little-endian V2 bundle); None, having read nothing, when
    any cannot or anything is off: the general path then decides (and raises TensorFlow's
    errors). The common case of a big model, without its per-entry passes."""
    impl = reader._impl
    if not isinstance(impl, BundleReader):
        return None
    targets: dict[str, np.ndarray[Any, Any]] = {}
    inplace_numpy: Callable[[Any], np.ndarray[Any, Any] | None] | None = None
    tensor_type: type = type(None)
    for e, leaf in zip(entries, leaves):
        if type(leaf) is np.ndarray:
            buf = leaf
        elif isinstance(leaf, Variable):
            buf = leaf._value
        else:
            if inplace_numpy is None:
                if not _state._is_torch_tensor(leaf):
                    return None
                adapter, tensor_type = torch_adapter()
                inplace_numpy = adapter.inplace_numpy
            elif not isinstance(leaf, tensor_type):
                return None
            tbuf = inplace_numpy(leaf)  # (its memory, as numpy: None for GPU, strided, inference tensors)
            if tbuf is None:
                return None
            buf = tbuf
        if e.slice_info is not None or e.expand or e.key in targets:
            return None
        targets[e.key] = buf
    plan = impl.plan_into(targets, _NUMPY_OF)  # (every destination checked against the index)
    if plan is None:
        return None
    try:
        impl.read_planned(plan)
    except DataLossError as err:
        raise _partly_restored(err) from None
    return targets


def _partly_restored(err: DataLossError) -> DataLossError:
    return DataLossError(f"{err.message} (restoring in place: the state is partly restored)",
                         path=err.path, key=err.key, offset=err.offset)


def _read_in_place(reader: CheckpointReader, targets: dict[str, np.ndarray[Any, Any]]) -> None:
    """Read each key's value straight into its array (checked to fit), in one bulk read."""
    try:
        reader.read_many(out=targets)
    except DataLossError as err:
        raise _partly_restored(err) from None


def restore_entries(reader: CheckpointReader, entries: list[Entry], sess: object, *,
                    reshape: bool = False, sequential: bool = False) -> Any:
    """Read ``entries`` from ``reader``, check them, and assign them (see :meth:`Saver.restore`)."""
    captured: dict[int, Any] = {}  # the state dicts whose tensors are read into, for load_state_dict
    owned: set[str] = set()  # (paths of a module's values: meta tensors there are replaced, not filled)
    flat = _state.flatten(sess, captured=captured, module_leaves=owned) if sess is not None else {}
    leaves = [_target_leaf(e, flat) for e in entries]
    if sess is not None:
        for e, leaf in zip(entries, leaves):
            if leaf is None and isinstance(e.target, str) and not e.expand:
                raise NotFoundError(f"{e.target!r} is not a value of the state passed as `sess`", key=e.key)
    direct = _all_in_place(reader, entries, leaves)
    if direct is not None:
        _touched(leaves)
        if captured:  # (hooks run; objects whose state_dict() returned copies get the values)
            return _state.assign(sess, {}, strict=False, source=reader.prefix, captured=captured)
        return sess if sess is not None else direct
    for e, leaf in zip(entries, leaves):  # (before anything else asks a meta or lazy tensor its shape)
        in_module = isinstance(e.target, str) and e.target in owned
        if (bad := _state.unassignable_error(e.key, leaf, reader.prefix, in_module)) is not None:
            raise bad
    specs = _stored_specs(reader, [e.key for e in entries])
    keys = _checkpoint_keys(reader, entries, specs)
    leaf_specs = [(None, None) if leaf is None or e.expand else _state.leaf_spec(leaf)
                  for e, leaf in zip(entries, leaves)]
    dtype_errors = []
    for key, (want, _) in zip(keys, leaf_specs):
        stored = specs[key][0]
        if want is not None and want is not stored and want != stored:
            dtype_errors.append(f"tensor_name = {key}; expected dtype {_state.tf_type_string(want)} does not "
                                f"equal original dtype {_state.tf_type_string(stored)}")
    if dtype_errors:
        raise InvalidArgumentError("\n".join(dtype_errors))
    result: dict[str, Any] = {}
    state_values: dict[str, Any] = {}
    restored = sess

    def apply(e: Entry, arr: np.ndarray[Any, Any]) -> None:
        nonlocal restored
        target = e.target
        if isinstance(target, str):
            if sess is None:
                result[target] = arr
            else:
                state_values[e.key if e.expand else target] = arr
            return
        if isinstance(target, Variable):
            target.assign(arr)
        elif framework_of(target) == "torch":
            from tfckpt.adapters import torch as torch_adapter

            torch_adapter.assign_(target, arr)  # type: ignore[arg-type]
        elif isinstance(target, np.ndarray) and target.flags.writeable:
            if target.dtype.kind not in "SU":
                target[...] = arr
            elif _state.fixed_width_strings(target, arr) is not target:
                raise InvalidArgumentError(f"tensor_name = {e.key}; its strings are longer than the {target.dtype} "
                                           "array given for it holds: give an array of dtype object", key=e.key)
        result[e.key] = arr

    # every shape error before anything is written
    shapes = [_check_shape(e, key, leaf, spec, specs[key][1], reshape)
              for e, key, leaf, spec in zip(entries, keys, leaves, leaf_specs)]
    # Targets whose memory can take the stored bytes are read into directly, in one bulk read.
    inplace = _inplace_targets(entries, keys, leaves, specs)
    if inplace:
        _read_in_place(reader, {keys[i]: buf for i, buf in inplace.items()})
        _touched([leaves[i] for i in inplace])
    for i, (e, key) in enumerate(zip(entries, keys)):
        buf = inplace.get(i)
        if buf is not None:
            result[e.key] = buf
            continue
        apply(e, _read_checked(reader, e, key, shapes[i]))
        if sequential and state_values and not captured:  # (a state dict is loaded whole, at the end)
            restored = _state.assign(restored, state_values, strict=False, source=reader.prefix)
            state_values.clear()
    if state_values or captured:
        restored = _state.assign(restored, state_values, strict=False, source=reader.prefix, captured=captured)
    return restored if sess is not None else result


def _touched(leaves: list[object]) -> None:
    """Bump the autograd version of the torch tensors read into in place, as ``copy_`` does (a
    backward pass through a graph that used their old values then fails instead of mixing them)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    tensor = torch.Tensor
    tensors = [leaf for leaf in leaves if isinstance(leaf, tensor)]
    if tensors:
        torch_adapter()[0].bump_versions(tensors)
