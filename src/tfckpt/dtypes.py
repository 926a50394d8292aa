"""TensorFlow data types, as stored in checkpoints, and their numpy equivalents.

:class:`DType` mirrors the part of ``tf.dtypes.DType`` that checkpoint users
touch: ``name`` (TensorFlow's spelling), ``as_numpy_dtype``,
``as_datatype_enum`` and ``size``.

Example:
    >>> from tfckpt.dtypes import as_dtype
    >>> as_dtype("bfloat16").as_datatype_enum
    14
    >>> as_dtype(14).name
    'bfloat16'
    >>> import numpy as np
    >>> as_dtype(np.float32).name
    'float32'
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from tfckpt.errors import InvalidArgumentError, UnimplementedError

__all__ = ["DType", "as_dtype", "dtype_from_enum"]


class DType:
    """A TensorFlow element type (``DataType`` enum value) with its numpy mapping."""

    __slots__ = ("_enum", "_name", "_np")

    def __init__(self, enum: int, name: str, np_dtype: np.dtype[Any] | None) -> None:
        self._enum = enum
        self._name = name
        self._np = np_dtype

    @property
    def name(self) -> str:
        """TensorFlow's name: ``"float32"``, ``"bfloat16"``, ``"string"``, ..."""
        return self._name

    @property
    def as_datatype_enum(self) -> int:
        """The ``DataType`` enum value stored in checkpoints (``DT_FLOAT`` = 1, ...)."""
        return self._enum

    @property
    def as_numpy_dtype(self) -> type:
        """The numpy scalar type (``np.float32``, ``ml_dtypes.bfloat16``, ``object`` for strings)."""
        if self._np is None:
            raise UnimplementedError(f"DType {self._name} has no numpy equivalent")
        return self._np.type

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        """The numpy dtype, little-endian (``object`` for strings)."""
        if self._np is None:
            raise UnimplementedError(f"DType {self._name} has no numpy equivalent")
        return self._np

    @property
    def is_string(self) -> bool:
        return self._enum == 7

    @property
    def is_fixed_size(self) -> bool:
        """True for the dtypes stored as raw element bytes (everything but string/variant/resource)."""
        return self._np is not None and self._enum != 7

    @property
    def size(self) -> int:
        """Bytes per element on disk (strings: 0, as they have no fixed size)."""
        if not self.is_fixed_size:
            return 0
        assert self._np is not None
        return self._np.itemsize

    def __repr__(self) -> str:
        return f"tfckpt.{self._name}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DType):
            return self._enum == other._enum
        try:
            return self._enum == as_dtype(other)._enum  # type: ignore[arg-type]
        except (InvalidArgumentError, TypeError):
            return NotImplemented

    def __hash__(self) -> int:
        return hash(self._enum)

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (dtype_from_enum, (self._enum,))


def _np_or_none(name: str) -> np.dtype[Any] | None:
    t = getattr(ml_dtypes, name, None)
    return None if t is None else np.dtype(t)


# (enum, TensorFlow name, numpy dtype or None). Order: the DataType enum.
_TABLE: list[tuple[int, str, np.dtype[Any] | None]] = [
    (1, "float32", np.dtype("<f4")),
    (2, "float64", np.dtype("<f8")),
    (3, "int32", np.dtype("<i4")),
    (4, "uint8", np.dtype("u1")),
    (5, "int16", np.dtype("<i2")),
    (6, "int8", np.dtype("i1")),
    (7, "string", np.dtype(object)),
    (8, "complex64", np.dtype("<c8")),
    (9, "int64", np.dtype("<i8")),
    (10, "bool", np.dtype("?")),
    (11, "qint8", np.dtype("i1")),
    (12, "quint8", np.dtype("u1")),
    (13, "qint32", np.dtype("<i4")),
    (14, "bfloat16", np.dtype(ml_dtypes.bfloat16)),
    (15, "qint16", np.dtype("<i2")),
    (16, "quint16", np.dtype("<u2")),
    (17, "uint16", np.dtype("<u2")),
    (18, "complex128", np.dtype("<c16")),
    (19, "float16", np.dtype("<f2")),
    (20, "resource", None),
    (21, "variant", None),
    (22, "uint32", np.dtype("<u4")),
    (23, "uint64", np.dtype("<u8")),
    (24, "float8_e5m2", _np_or_none("float8_e5m2")),
    (25, "float8_e4m3fn", _np_or_none("float8_e4m3fn")),
    (26, "float8_e4m3fnuz", _np_or_none("float8_e4m3fnuz")),
    (27, "float8_e4m3b11fnuz", _np_or_none("float8_e4m3b11fnuz")),
    (28, "float8_e5m2fnuz", _np_or_none("float8_e5m2fnuz")),
    (29, "int4", _np_or_none("int4")),
    (30, "uint4", _np_or_none("uint4")),
    (31, "int2", _np_or_none("int2")),
    (32, "uint2", _np_or_none("uint2")),
    (33, "float4_e2m1fn", _np_or_none("float4_e2m1fn")),
]

_BY_ENUM: dict[int, DType] = {e: DType(e, n, d) for e, n, d in _TABLE}
_BY_NAME: dict[str, DType] = {d.name: d for d in _BY_ENUM.values()}
_BY_NAME.update(
    {
        "half": _BY_ENUM[19],
        "float": _BY_ENUM[1],
        "double": _BY_ENUM[2],
        "float16": _BY_ENUM[19],
        "str": _BY_ENUM[7],
        "bytes": _BY_ENUM[7],
        "object": _BY_ENUM[7],
    }
)
# numpy dtype -> DType, for the canonical (non-quantized) types.
_BY_NUMPY: dict[np.dtype[Any], DType] = {}
for _e, _n, _d in _TABLE:
    if _d is not None and not _n.startswith("q") and _d not in _BY_NUMPY:
        _BY_NUMPY[_d] = _BY_ENUM[_e]



def __getattr__(name: str) -> DType:
    """Module attributes ``tfckpt.dtypes.float32``, ``tfckpt.dtypes.bfloat16``, ..."""
    d = _BY_NAME.get(name)
    if d is None or (d.name != name and name not in ("half", "float16")):
        raise AttributeError(f"module 'tfckpt.dtypes' has no attribute {name!r}")
    return d


def dtype_from_enum(value: int) -> DType:
    """The :class:`DType` for a ``DataType`` enum value; ``*_REF`` values (101+) map to their base."""
    base = value - 100 if 100 < value < 200 else value
    try:
        return _BY_ENUM[base]
    except KeyError:
        raise InvalidArgumentError(f"Unknown DataType enum value {value}") from None


def dtype_of_numpy(npd: np.dtype[Any]) -> DType | None:
    """The DType of a numpy dtype in native byte order (``object``: string), by lookup; None
    for anything else, which :func:`as_dtype` converts or rejects.

    Example:
        >>> dtype_of_numpy(np.dtype(np.int32)), dtype_of_numpy(np.dtype(">f4"))
        (tfckpt.int32, None)
    """
    return _BY_NUMPY.get(npd)


def as_dtype(value: object) -> DType:
    """Convert a DType, enum value, TensorFlow name, numpy dtype or scalar type to a :class:`DType`.

    Raises:
        InvalidArgumentError: the value names no TensorFlow dtype.
    """
    if isinstance(value, DType):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return dtype_from_enum(int(value))
    if isinstance(value, str):
        name = value.lower().removeprefix("tf.").removeprefix("dt_")
        d = _BY_NAME.get(name)
        if d is not None:
            return d
        # Fall through to numpy for spellings such as "<f4".
    try:
        npd = np.dtype(value)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidArgumentError(f"Cannot convert {value!r} to a TensorFlow dtype") from None
    if npd.kind in "SUO":
        return _BY_ENUM[7]
    d = _BY_NUMPY.get(npd.newbyteorder("<") if npd.byteorder == ">" else npd)
    if d is None:
        raise InvalidArgumentError(f"numpy dtype {npd} has no TensorFlow equivalent")
    return d
