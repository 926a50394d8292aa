"""Turning user values into arrays the format layer can write.

Accepted: numpy arrays and scalars, Python scalars (numpy's rules: ``1`` is
int64, ``1.0`` is float64), ``bytes``/``str`` and (nested) lists of them,
anything ``np.asarray`` takes, and -- through adapters imported only when such
a value shows up -- torch tensors and jax arrays.

Example:
    >>> dt, arr = to_array([1.5, 2.0])
    >>> dt.name, arr.dtype.str
    ('float64', '<f8')
    >>> to_array("héllo")[1]
    array(b'h\\xc3\\xa9llo', dtype=object)
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from tfckpt.dtypes import DType, as_dtype, dtype_of_numpy
from tfckpt.errors import CheckpointError, InvalidArgumentError, UnimplementedError

__all__ = ["Typed", "framework_of", "to_array", "torch_adapter", "typed"]


class Typed:
    """A value with an explicit TensorFlow dtype, for types numpy cannot tell apart.

    ``typed(np.int8_array, "qint8")`` stores DT_QINT8; ``typed(uint16_bits, "bfloat16")``
    stores raw bfloat16 bit patterns. The element size must match.
    """

    __slots__ = ("dtype", "value")

    def __init__(self, value: object, dtype: object) -> None:
        self.value = value
        self.dtype = as_dtype(dtype)

    def __repr__(self) -> str:
        return f"typed({self.value!r}, {self.dtype.name!r})"


def typed(value: object, dtype: object) -> Typed:
    """Mark ``value`` to be stored with TensorFlow dtype ``dtype`` (e.g. ``"qint8"``, ``"bfloat16"``).

    Example:
        >>> to_array(typed(np.array([1, -2], np.int8), "qint8"))[0].name
        'qint8'
    """
    return Typed(value, dtype)


def framework_of(value: object) -> str | None:
    """``"torch"``, ``"jax"`` or None, judged by the value's type without importing anything."""
    mod = type(value).__module__
    if mod.startswith("torch"):
        return "torch"
    if mod.startswith(("jax", "jaxlib")):
        return "jax"
    return None


def torch_adapter() -> tuple[ModuleType, type]:
    """:mod:`tfckpt.adapters.torch` and ``torch.Tensor``, for code that has met a torch value
    (so torch is imported already)."""
    import torch

    from tfckpt.adapters import torch as adapter

    return adapter, torch.Tensor


def _strings(arr: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    flat_in = arr.reshape(-1)
    kinds = set(map(type, flat_in))
    if arr.dtype == object and kinds <= {bytes}:  # the usual case: nothing to convert
        return arr
    out = np.empty(arr.shape, dtype=object)
    if kinds == {str}:
        out.reshape(-1)[:] = [e.encode("utf-8") for e in flat_in]
        return out
    flat_out = out.reshape(-1)
    for i, e in enumerate(flat_in):
        if isinstance(e, (bytes, bytearray, memoryview)):
            flat_out[i] = bytes(e)
        elif isinstance(e, (str, np.str_)):
            flat_out[i] = str(e).encode("utf-8")
        elif isinstance(e, np.bytes_):
            flat_out[i] = bytes(e)
        else:
            raise InvalidArgumentError(
                f"tensor {name!r}: an object array may only hold bytes or str, found {type(e).__name__}"
            )
    return out


def to_array(value: object, name: str = "") -> tuple[DType, np.ndarray[Any, Any]]:
    """Normalize ``value`` to ``(dtype, array)``.

    Numeric arrays come back C-contiguous and little-endian (no copy when they
    already are); string tensors come back as object arrays of ``bytes``.

    Raises:
        InvalidArgumentError: the value cannot be a TensorFlow tensor.
        UnimplementedError: the dtype has no TensorFlow equivalent (resource, variant).
    """
    if isinstance(value, Typed):
        want = value.dtype
        _, base = to_array(value.value, name)
        if want.is_string:
            if base.dtype != object:
                raise InvalidArgumentError(f"tensor {name!r}: {base.dtype} values cannot be stored as string")
            return want, base
        if not want.is_fixed_size:
            raise UnimplementedError(f"tensor {name!r}: {want.name} tensors cannot be stored")
        if base.dtype == object or base.dtype.itemsize != want.size:
            if base.dtype.kind in "biufc" and base.dtype != object:
                return want, np.ascontiguousarray(base.astype(want.numpy_dtype))
            raise InvalidArgumentError(f"tensor {name!r}: cannot store {base.dtype} values as {want.name}")
        return want, base.view(want.numpy_dtype)
    fw = framework_of(value)
    if fw in ("torch", "jax"):
        import importlib

        adapter = importlib.import_module(f"tfckpt.adapters.{fw}")
        try:
            host: np.ndarray[Any, Any] = adapter.to_numpy(value)
        except CheckpointError as e:
            raise type(e)(f"tensor {name!r}: {e.message}", key=name or None) from None
        dt = dtype_of_numpy(host.dtype)  # (torch: C-contiguous, native order: as is unless strings)
        if fw == "torch" and dt is not None and not dt.is_string:
            return dt, host
        value = host
    if isinstance(value, (bytes, bytearray, str)):
        scalar: np.ndarray[Any, Any] = np.empty((), dtype=object)
        scalar[()] = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return as_dtype(7), scalar
    try:
        arr: np.ndarray[Any, Any] = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(f"tensor {name!r}: cannot convert {type(value).__name__} to an array: {e}") from None
    if arr.dtype.kind in "SUO":
        if arr.dtype.kind in "SU" and not isinstance(value, np.ndarray):
            # numpy's fixed-width strings drop trailing NUL bytes: keep the exact elements.
            arr = np.array(value, dtype=object)
        return as_dtype(7), _strings(arr, name)
    if arr.dtype.kind == "V" and arr.dtype.fields is not None:
        raise InvalidArgumentError(f"tensor {name!r}: structured arrays cannot be saved")
    try:
        dt = as_dtype(arr.dtype)
    except InvalidArgumentError:
        raise UnimplementedError(f"tensor {name!r}: dtype {arr.dtype} has no TensorFlow equivalent") from None
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return dt, arr
