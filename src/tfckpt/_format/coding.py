"""Low-level encodings shared by every TensorFlow checkpoint structure.

* CRC-32C (Castagnoli) through the ``crc32c`` package (hardware accelerated,
  releases the GIL), and TensorFlow's CRC *mask* (every stored CRC is masked).
* LEB128 varints (protobuf / LevelDB style) and little-endian fixed32/64.

Example:
    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    >>> hex(mask(0))
    '0xa282ead8'
    >>> unmask(mask(0x12345678)) == 0x12345678
    True
    >>> encode_varint(300).hex()
    'ac02'
    >>> decode_varint(b"\\xac\\x02", 0)
    (300, 2)
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import crc32c as _crc32c_mod
import numpy as np

from tfckpt.errors import DataLossError, InvalidArgumentError

__all__ = [
    "FIXED32",
    "FIXED64",
    "MASK_DELTA",
    "crc32c",
    "decode_varint",
    "encode_varint",
    "encode_varints",
    "mask",
    "unmask",
    "varint_digits",
]

MASK_DELTA = 0xA282EAD8
FIXED32 = struct.Struct("<I")
FIXED64 = struct.Struct("<Q")

_crc = _crc32c_mod.crc32c


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C of ``data``, continuing from ``value`` (0 starts a new CRC)."""
    return _crc(data, value)


def mask(crc: int) -> int:
    """TensorFlow's CRC mask: rotate right by 15 bits and add a constant."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def masked_crcs(buffers: Sequence[Any]) -> list[int]:
    """``[mask(crc32c(b)) for b in buffers]``, without two Python calls per buffer (and, for
    many buffers, with the masks computed by numpy)."""
    if len(buffers) < 64:
        return [((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF for c in map(_crc, buffers)]
    masked: list[int] = masked_crc_array(buffers).tolist()
    return masked


def masked_crc_array(buffers: Sequence[Any]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """:func:`masked_crcs` as a numpy ``uint32`` array.

    Example:
        >>> masked_crc_array([b"a", b"bc"]).tolist() == [mask(crc32c(b"a")), mask(crc32c(b"bc"))]
        True
    """
    c = np.fromiter(map(_crc, buffers), np.uint64, len(buffers))
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + MASK_DELTA & 0xFFFFFFFF).astype(np.uint32)


def unmask(masked: int) -> int:
    """Inverse of :func:`mask`."""
    rot = (masked - MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# Encodings of 0 .. 2**14 - 1 (one or two bytes): the common case of index entries.
_SMALL_VARINTS = [bytes((v,)) if v < 0x80 else bytes(((v & 0x7F) | 0x80, v >> 7)) for v in range(1 << 14)]


def encode_varint(value: int) -> bytes:
    """Base-128 varint of a non-negative integer below 2**64."""
    if value < 0x4000:
        if value < 0:
            raise InvalidArgumentError(f"varint of a negative number: {value}")
        return _SMALL_VARINTS[value]
    if value < 0x10000000:  # three or four bytes: data-file offsets up to 256 MiB
        if value < 0x200000:
            return bytes(((value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80, value >> 14))
        return bytes(((value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80, ((value >> 14) & 0x7F) | 0x80,
                      value >> 21))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_POW7 = np.array([1 << (7 * k) for k in range(1, 10)], np.uint64)  # a varint of v has 1 + sum(v >= _POW7) bytes


def varint_digits(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """The varint encoding of each of ``values`` (non-negative, below 2**64) as a byte
    matrix: ``(lengths, digits)`` with ``digits[i, :lengths[i]]`` the bytes of value ``i``.

    Example:
        >>> k, d = varint_digits(np.array([1, 300], np.uint64))
        >>> k.tolist(), d[1, :2].tobytes().hex()
        ([1, 2], 'ac02')
    """
    v = np.asarray(values, np.uint64).reshape(-1)
    k = 1 + (v[:, None] >= _POW7).sum(axis=1)
    j = np.arange(int(k.max(initial=1)))
    digits = (v[:, None] >> (7 * j).astype(np.uint64)) & np.uint64(0x7F)
    digits |= np.where(j[None, :] < k[:, None] - 1, np.uint64(0x80), np.uint64(0))  # continuation bits
    return k, digits.astype(np.uint8)


def encode_varints(values: np.ndarray) -> bytes:  # type: ignore[type-arg]
    """The varints of an array of non-negative integers (below 2**64), back to back.

    Example:
        >>> encode_varints(np.array([1, 300, 0], np.uint64)).hex()
        '01ac0200'
    """
    v = np.asarray(values, np.uint64).reshape(-1)
    if not v.size:
        return b""
    if int(v.max()) < 0x80:  # one byte each: the usual case of string lengths
        return v.astype(np.uint8).tobytes()
    k, digits = varint_digits(v)
    return digits[np.arange(digits.shape[1])[None, :] < k[:, None]].tobytes()  # (row by row)


def decode_varint(
    buf: bytes | bytearray | memoryview, pos: int, limit: int | None = None, max_bytes: int = 10
) -> tuple[int, int]:
    """Decode a varint at ``buf[pos]``; returns ``(value, next_pos)``.

    Raises:
        DataLossError: the varint runs past ``limit`` (default: end of ``buf``) or
            past ``max_bytes`` bytes (5 for varint32, 10 for varint64).
    """
    end = len(buf) if limit is None else limit
    result = 0
    shift = 0
    stop = min(end, pos + max_bytes)
    while pos < stop:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if max_bytes == 5 and result > 0xFFFFFFFF:
                raise DataLossError("varint32 out of range", offset=pos)
            if result >= 1 << 64:
                raise DataLossError("varint64 out of range", offset=pos)
            return result, pos
        shift += 7
    if pos >= end:
        raise DataLossError("truncated varint", offset=pos)
    raise DataLossError(f"varint longer than {max_bytes} bytes", offset=pos)
