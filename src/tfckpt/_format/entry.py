"""Index entries of a V2 bundle: ``BundleHeaderProto`` and ``BundleEntryProto``.

Entries are encoded by hand (the hot path of saving thousands of tensors) with
exactly the bytes protobuf produces, and decoded with the generated protobuf
classes, then validated.

Example:
    >>> e = BundleEntry(dtype=1, shape=(2,), shard_id=0, offset=0, size=8, crc32c=0x35E53C59)
    >>> e.encode().hex()
    '0801120412020802280835593ce535'
    >>> BundleEntry.decode(e.encode(), key="w") == e
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from google.protobuf.message import DecodeError

from tfckpt._format.coding import FIXED32, decode_varint, encode_varint
from tfckpt._format.slices import FULL, TensorSlice
from tfckpt._proto import checkpoint_pb2
from tfckpt.dtypes import dtype_from_enum
from tfckpt.errors import DataLossError, InvalidArgumentError

__all__ = ["HEADER_KEY", "BundleEntry", "BundleHeader", "encode_entry", "encode_shape", "entry_head", "name_key",
           "validate_slices"]

HEADER_KEY = b""
# Checks shapes against this many elements before anything is allocated.
MAX_ELEMENTS = 1 << 62


def _varint_signed64(v: int) -> bytes:
    return encode_varint(v & 0xFFFFFFFFFFFFFFFF)


_parse_entry = checkpoint_pb2.BundleEntryProto.FromString
_KNOWN_DTYPES: set[int] = set()  # enums already checked by dtype_from_enum
# The caches of shapes and entry heads below keep this many kinds each (a model has far
# fewer), of shapes of up to CACHE_RANK dimensions: however hostile an index, they hold a
# few MB each.
CACHE_SIZE = 16384
CACHE_RANK = 8
_SHAPES: dict[tuple[int, ...], bytes] = {}  # shapes repeat across a model's tensors


def encode_shape(shape: tuple[int, ...]) -> bytes:
    """A serialized ``TensorShapeProto`` with only ``dim.size`` set, as TensorFlow writes it."""
    enc = _SHAPES.get(shape)
    if enc is None:
        out = bytearray()
        for d in shape:
            dim = b"\x08" + encode_varint(d) if d else b""
            out += b"\x12" + encode_varint(len(dim)) + dim
        enc = bytes(out)
        if len(_SHAPES) < CACHE_SIZE and len(shape) <= CACHE_RANK:
            _SHAPES[shape] = enc
    return enc


def name_key(name: str) -> bytes:
    r"""The index key of tensor ``name``: its UTF-8 bytes (the lone surrogates a reader decodes
    undecodable key bytes to go back to those bytes).

    Example:
        >>> name_key("caf\u00e9"), name_key("\udcff")
        (b'caf\xc3\xa9', b'\xff')
        >>> name_key("\ud800")
        Traceback (most recent call last):
        ...
        tfckpt.errors.InvalidArgumentError: tensor name '\ud800': not encodable as UTF-8 (surrogates not allowed)
    """
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise InvalidArgumentError(f"tensor name {name!r}: not encodable as UTF-8 ({e.reason})") from None


_ENTRY_HEADS: dict[tuple[int, tuple[int, ...]], bytes] = {}


def entry_head(dtype: int, shape: tuple[int, ...]) -> bytes:
    """The first two fields (``dtype``, ``shape``) of an encoded entry, shared by every tensor of that kind."""
    head = _ENTRY_HEADS.get((dtype, shape))
    if head is None:
        shp = encode_shape(shape)
        head = (b"\x08" + encode_varint(dtype) if dtype else b"") + b"\x12" + encode_varint(len(shp)) + shp
        if len(_ENTRY_HEADS) < CACHE_SIZE and len(shape) <= CACHE_RANK:
            _ENTRY_HEADS[(dtype, shape)] = head
    return head


def encode_entry(dtype: int, shape: tuple[int, ...], shard: int, offset: int, size: int, crc: int) -> bytes:
    """A serialized ``BundleEntryProto`` without slices, byte for byte as protobuf writes it.

    Example:
        >>> encode_entry(1, (2,), 0, 0, 8, 0x35E53C59).hex()
        '0801120412020802280835593ce535'
    """
    head = entry_head(dtype, shape)
    tail = b""
    if shard:
        tail = b"\x18" + encode_varint(shard)
    if offset:
        tail += b"\x20" + encode_varint(offset)
    if size:
        tail += b"\x28" + encode_varint(size)
    if crc:
        tail += b"\x35" + FIXED32.pack(crc)
    return head + tail


def _encode_slice(sl: TensorSlice) -> bytes:
    out = bytearray()
    for start, length in sl.extents:
        ext = bytearray()
        if start:
            ext += b"\x08" + _varint_signed64(start)
        if length != FULL:
            ext += b"\x10" + _varint_signed64(length)
        out += b"\x0a" + encode_varint(len(ext)) + ext
    return bytes(out)


@dataclass(frozen=True, slots=True)
class BundleHeader:
    """The value of the ``""`` key: shard count, byte order, format version."""

    num_shards: int = 1
    big_endian: bool = False
    producer: int = 1
    min_consumer: int = 0
    bad_consumers: tuple[int, ...] = ()

    def encode(self) -> bytes:
        out = bytearray()
        if self.num_shards:
            out += b"\x08" + encode_varint(self.num_shards)
        if self.big_endian:
            out += b"\x10\x01"
        ver = bytearray()
        if self.producer:
            ver += b"\x08" + encode_varint(self.producer)
        if self.min_consumer:
            ver += b"\x10" + encode_varint(self.min_consumer)
        for b in self.bad_consumers:
            ver += b"\x18" + encode_varint(b)
        out += b"\x1a" + encode_varint(len(ver)) + ver
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes, *, path: str = "") -> BundleHeader:
        try:
            p = checkpoint_pb2.BundleHeaderProto.FromString(data)
        except DecodeError:
            raise DataLossError(f"{path}: corrupt bundle header", path=path) from None
        return cls(
            num_shards=p.num_shards,
            big_endian=p.endianness == 1,
            producer=p.version.producer,
            min_consumer=p.version.min_consumer,
            bad_consumers=tuple(p.version.bad_consumers),
        )


class BundleEntry(NamedTuple):
    """Where and how one tensor (or one slice of a partitioned tensor) is stored.

    ``crc32c`` is the stored (masked) value. ``slices`` is non-empty only for
    the "full" entry of a partitioned tensor, which holds no data itself.
    (A named tuple: reading 100,000 entries builds 100,000 of them.)
    """

    dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0
    slices: tuple[TensorSlice, ...] = ()

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def encode(self) -> bytes:
        enc = encode_entry(self.dtype, self.shape, self.shard_id, self.offset, self.size, self.crc32c)
        if not self.slices:
            return enc
        parts = [enc]
        for sl in self.slices:
            sl_enc = _encode_slice(sl)
            parts += (b"\x3a", encode_varint(len(sl_enc)), sl_enc)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes, *, key: str = "", path: str = "") -> BundleEntry:
        """Parse and validate a serialized ``BundleEntryProto``.

        Raises:
            DataLossError: unparsable proto, negative or unknown-rank shape,
                negative offset/size/shard, or an absurd element count.
        """
        e = _decode_canonical(data)
        if e is not None:
            return e
        try:
            p = _parse_entry(data)
        except DecodeError:
            raise DataLossError(f"{path}: corrupt index entry for {key!r}", path=path, key=key) from None
        shp = p.shape
        if shp.unknown_rank:
            raise DataLossError(f"{path}: entry {key!r} has a shape of unknown rank", path=path, key=key)
        shape = tuple([d.size for d in shp.dim])
        n = 1
        for d in shape:
            if d < 0:
                raise DataLossError(f"{path}: entry {key!r} has a negative dimension in shape {list(shape)}",
                                    path=path, key=key)
            n *= d
            if n > MAX_ELEMENTS:
                raise DataLossError(f"{path}: entry {key!r} claims an absurd shape {list(shape)}",
                                    path=path, key=key)
        dtype, shard, offset, size = p.dtype, p.shard_id, p.offset, p.size
        if offset < 0 or size < 0 or shard < 0:
            raise DataLossError(f"{path}: entry {key!r} has a negative offset, size or shard id",
                                path=path, key=key)
        if dtype not in _KNOWN_DTYPES:
            try:
                dtype_from_enum(dtype)
            except InvalidArgumentError:
                raise DataLossError(f"{path}: entry {key!r} has an unknown dtype enum {dtype}",
                                    path=path, key=key) from None
            _KNOWN_DTYPES.add(dtype)
        if not p.slices:
            _remember_head(data, dtype, shape)
            return cls(dtype, shape, shard, offset, size, p.crc32c)
        slices = []
        for sp in p.slices:
            ext = []
            for e in sp.extent:
                length = e.length if e.HasField("length") else FULL
                if e.start < 0 or length < FULL:
                    raise DataLossError(f"{path}: entry {key!r} has an invalid slice", path=path, key=key)
                ext.append((e.start, length))
            slices.append(TensorSlice(tuple(ext)))
        if slices:
            validate_slices(shape, slices, key=key, path=path)
        return cls(p.dtype, shape, p.shard_id, p.offset, p.size, p.crc32c, tuple(slices))


# Canonical entry heads seen so far: the bytes ``08 <dtype> 12 <len> <shape>`` -> (dtype, shape).
# Models repeat a few shapes many times, so most entries of a big index decode through here.
_HEADS: dict[bytes, tuple[int, tuple[int, ...]]] = {}


def _remember_head(data: bytes, dtype: int, shape: tuple[int, ...]) -> None:
    """Cache the head of a validated entry if it is exactly the canonical encoding of (dtype, shape)."""
    if len(_HEADS) >= CACHE_SIZE or dtype >= 0x80 or len(shape) > CACHE_RANK:
        return
    shp = encode_shape(shape)
    if len(shp) < 0x80:
        head = bytes((8, dtype, 0x12, len(shp))) + shp
        if data.startswith(head):
            _HEADS[head] = (dtype, shape)


def _int64_at(data: bytes, pos: int, limit: int) -> tuple[int, int] | None:
    """A non-negative int64 varint at ``data[pos]`` ending by ``limit``, and the position after it;
    None for anything else (truncated, overlong, or negative), which the full path then reports."""
    if pos + 3 < len(data):  # up to four bytes (values below 2**28) without a loop
        b = data[pos]
        if b < 0x80:
            v, end = b, pos + 1
        else:
            c = data[pos + 1]
            if c < 0x80:
                v, end = (b & 0x7F) | c << 7, pos + 2
            else:
                d = data[pos + 2]
                if d < 0x80:
                    v, end = (b & 0x7F) | (c & 0x7F) << 7 | d << 14, pos + 3
                else:
                    e = data[pos + 3]
                    if e >= 0x80:
                        return _int64_slow(data, pos, limit)
                    v, end = (b & 0x7F) | (c & 0x7F) << 7 | (d & 0x7F) << 14 | e << 21, pos + 4
        return (v, end) if end <= limit else None
    return _int64_slow(data, pos, limit)


def _int64_slow(data: bytes, pos: int, limit: int) -> tuple[int, int] | None:
    try:
        v, end = decode_varint(data, pos, limit)
    except DataLossError:
        return None
    return None if v >> 63 else (v, end)


def _parse_head(data: bytes, end: int) -> tuple[int, tuple[int, ...]] | None:
    """(dtype, shape) from a canonical head ``data[:end]`` of known dtype and sane shape, else None."""
    dtype = data[1]
    if data[0] != 8 or dtype >= 0x80 or data[2] != 0x12 or dtype not in _KNOWN_DTYPES or end > len(data):
        return None
    dims: list[int] = []
    pos = 4
    count = 1
    while pos < end:
        if data[pos] != 0x12 or pos + 1 >= end:
            return None
        stop = pos + 2 + data[pos + 1]
        if stop > end:
            return None
        pos += 2
        v = 0
        if pos < stop:  # an absent size is a zero dimension
            if data[pos] != 8:
                return None
            k = stop - pos  # the tag and the varint
            b = data[pos + 1] if k > 1 else 0x80
            if k == 2 and b < 0x80:
                v = b
            elif k == 3 and b >= 0x80 and (c := data[pos + 2]) < 0x80:
                v = (b & 0x7F) | c << 7
            else:
                got = _int64_at(data, pos + 1, stop)
                if got is None or got[1] != stop:
                    return None
                v = got[0]
            pos = stop
        dims.append(v)
        count *= v
        if count > MAX_ELEMENTS:
            return None
    shape = tuple(dims)
    if len(_HEADS) < CACHE_SIZE and len(shape) <= CACHE_RANK and encode_shape(shape) == data[4:end]:
        _HEADS[data[:end]] = (dtype, shape)
    return dtype, shape


_new_entry = tuple.__new__  # BundleEntry from all seven fields, without the named tuple's Python __new__


def _decode_canonical(data: bytes) -> BundleEntry | None:
    """Fast path of :meth:`BundleEntry.decode` for entries laid out as TensorFlow writes them
    (known head, then shard/offset/size/crc in field order); None means "take the full path".

    Example:
        >>> e = BundleEntry(1, (2, 3), 0, 300, 24, 7)
        >>> _ = BundleEntry.decode(e.encode())  # the full path learns the head
        >>> _decode_canonical(e.encode()) == e
        True
    """
    if len(data) < 4 or data[3] >= 0x80:
        return None
    pos = 4 + data[3]
    head = _HEADS.get(data[:pos])
    if head is None:
        head = _parse_head(data, pos)
        if head is None:
            return None
    n = len(data)
    shard = offset = size = 0
    b = data[pos] if pos < n else 0
    if b == 0x18:
        shard = data[pos + 1] if pos + 1 < n else 0x80
        if shard >= 0x80:
            return None
        pos += 2
        b = data[pos] if pos < n else 0
    if b == 0x20:
        got = _int64_at(data, pos + 1, n)
        if got is None:
            return None
        offset, pos = got
        b = data[pos] if pos < n else 0
    if b == 0x28:
        got = _int64_at(data, pos + 1, n)
        if got is None:
            return None
        size, pos = got
        b = data[pos] if pos < n else 0
    if pos == n:
        return _new_entry(BundleEntry, (head[0], head[1], shard, offset, size, 0, ()))
    if b == 0x35 and pos + 5 == n:
        crc = int.from_bytes(data[pos + 1 :], "little")
        return _new_entry(BundleEntry, (head[0], head[1], shard, offset, size, crc, ()))
    return None


# Stored slices are checked pairwise for overlap up to this many (TensorFlow's
# TensorSliceSet does the same quadratic check); above it only their total volume.
_MAX_PAIRWISE = 1024


def validate_slices(shape: tuple[int, ...], slices: list[TensorSlice], *, key: str, path: str) -> None:
    """Every stored slice must lie inside ``shape`` and no two may overlap (DataLossError otherwise)."""
    total = 1
    for d in shape:
        total *= d
    starts: list[list[int]] = []
    stops: list[list[int]] = []
    volume = 0
    for sl in slices:
        if sl.rank != len(shape):
            raise DataLossError(
                f"{path}: entry {key!r}: stored slice {sl.spec()!r} has rank {sl.rank} but the shape is "
                f"{list(shape)}", path=path, key=key)
        lo, hi = [], []
        v = 1
        for (start, length), dim in zip(sl.extents, shape, strict=True):
            stop = dim if length == FULL else start + length
            if start > dim or stop > dim or stop < start:
                raise DataLossError(
                    f"{path}: entry {key!r}: stored slice {sl.spec()!r} lies outside shape {list(shape)}",
                    path=path, key=key)
            lo.append(start)
            hi.append(stop)
            v *= stop - start
        volume += v
        starts.append(lo)
        stops.append(hi)
    if volume > total:
        raise DataLossError(
            f"{path}: entry {key!r}: stored slices hold {volume} elements but the tensor has {total}; "
            f"they overlap", path=path, key=key)
    if len(slices) > _MAX_PAIRWISE or not shape or not slices:
        if not shape and len(slices) > 1:
            raise DataLossError(f"{path}: entry {key!r}: overlapping stored slices", path=path, key=key)
        return
    pair = first_overlap(starts, stops)
    if pair is not None:
        raise DataLossError(
            f"{path}: entry {key!r}: stored slices {slices[pair[0]].spec()!r} and "
            f"{slices[pair[1]].spec()!r} overlap", path=path, key=key)


def first_overlap(starts: list[list[int]], stops: list[list[int]]) -> tuple[int, int] | None:
    """Indexes ``(i, j)`` of two boxes that overlap (box ``i`` spans ``starts[i][d]`` to
    ``stops[i][d]`` in each dimension ``d``; empty boxes overlap nothing), or None.
    Quadratic, with numpy: 128 boxes against all the others at a time.

    Example:
        >>> first_overlap([[0], [4], [2]], [[4], [8], [5]]), first_overlap([[0], [4]], [[4], [8]])
        ((0, 2), None)
    """
    if not starts:
        return None
    a = np.array(starts, dtype=np.int64)
    b = np.array(stops, dtype=np.int64)
    idx = np.flatnonzero(np.all(b > a, axis=1))
    a, b = a[idx], b[idx]
    k = len(a)
    for i in range(0, k, 128):
        inter = np.all(
            np.maximum(a[i : i + 128, None, :], a[None, :, :]) < np.minimum(b[i : i + 128, None, :], b[None, :, :]),
            axis=2,
        )
        rows = np.arange(i, min(i + 128, k))
        inter[rows - i, rows] = False
        if inter.any():
            r, c = np.argwhere(inter)[0]
            x, y = sorted((int(idx[r + i]), int(idx[c])))
            return x, y
    return None
