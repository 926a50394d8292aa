"""Encoding and decoding many index entries at once.

A big index is mostly entries TensorFlow wrote field by field in one layout: a head
(``dtype`` and ``shape``, the same bytes for every tensor of a given kind) then
``shard_id``, ``offset``, ``size`` and ``crc32c``. :func:`decode_entries` looks each head
up once and parses the tails of a whole batch with numpy; entries in any other layout
(and any malformed one) go through :meth:`BundleEntry.decode`, which gives the same
result or raises the same error. :func:`encode_values` writes the entries of a batch of
tensors saved one after another, byte for byte as :func:`encode_entry` does.

Example:
    >>> es = [BundleEntry(1, (i % 3, 2), 0, 8 * i, 24, i) for i in range(100)]
    >>> got = decode_entries([e.encode() for e in es], [f"t{i}" for i in range(100)], "x.index")
    >>> got == es
    True
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tfckpt._format.coding import encode_varint, varint_digits
from tfckpt._format.entry import _HEADS, _KNOWN_DTYPES, BundleEntry, _parse_head
from tfckpt.dtypes import dtype_from_enum
from tfckpt.errors import InvalidArgumentError

__all__ = ["Columns", "columns_of", "decode_columns", "decode_entries", "encode_values"]

_MIN_BATCH = 32  # below this, one at a time is as fast
_FOUR = np.arange(1, 5)
_WIDTH = 32  # longest tail: shard (1 + 3), offset and size (1 + 9 each), crc32c (1 + 4)
_new = tuple.__new__


def _head(h: bytes, entry: bytes,
          local: dict[bytes, tuple[int, tuple[int, ...]] | None]) -> tuple[int, tuple[int, ...]] | None:
    """(dtype, shape) of head ``h`` of ``entry``, not in the shared cache; None sends the entry
    down the full path."""
    if h in local:
        return local[h]
    spec = None
    if len(h) >= 4 and h[3] < 0x80 and h[1] < 0x80:
        spec = _parse_head(entry, 4 + h[3])  # (the whole entry: its varints are read without bounds checks)
        if spec is None and h[0] == 8 and h[1] not in _KNOWN_DTYPES:
            try:
                dtype_from_enum(h[1])
            except InvalidArgumentError:
                pass  # the full path reports the unknown dtype
            else:
                _KNOWN_DTYPES.add(h[1])
                spec = _parse_head(entry, 4 + h[3])
    local[h] = spec
    return spec


def _varints(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """The varint at each ``pos`` (values below 2**63) and its length; length 0 where there is none
    (unterminated within nine bytes). Byte by byte across all of them: as many steps as the longest."""
    value = np.zeros(len(pos), np.uint64)
    length = np.zeros(len(pos), np.int64)
    going = np.ones(len(pos), bool)
    for k in range(9):
        b = buf[pos + k]
        value |= np.where(going, b & 0x7F, 0).astype(np.uint64) << np.uint64(7 * k)
        last = going & (b < 0x80)
        length[last] = k + 1
        going &= ~last
        if not going.any():
            break
    return value, length


class Columns(NamedTuple):
    """The fields of a batch of entries, one list per field (see :func:`decode_columns`).

    ``ok[i]`` is False for an entry that is not in TensorFlow's usual layout (or is
    malformed): its other fields are meaningless, and :meth:`BundleEntry.decode` must
    decode it (and report it if it is corrupt).
    """

    specs: list[tuple[int, tuple[int, ...]] | None]  # (dtype, shape), shared by entries of one head
    shard: list[int]
    offset: list[int]
    size: list[int]
    crc32c: list[int]
    ok: list[bool]
    where: np.ndarray | None = None  # type: ignore[type-arg]  # int64 rows shard, offset, size, crc32c (None: not built)


def decode_columns(values: list[bytes]) -> Columns | None:
    """The fields of many encoded entries at once; None when ``values`` are too few to gain
    from it or not in TensorFlow's layout at all.

    Example:
        >>> es = [BundleEntry(1, (2,), 0, 8 * i, 8, i) for i in range(40)]
        >>> cols = decode_columns([e.encode() for e in es])
        >>> cols.specs[3], cols.offset[3], cols.crc32c[3], all(cols.ok)
        ((1, (2,)), 24, 3, True)
    """
    n = len(values)
    if n < _MIN_BATCH:
        return None
    try:
        heads = [v[: 4 + v[3]] for v in values]
    except IndexError:  # an entry of fewer than four bytes: not TensorFlow's layout
        return None
    get = _HEADS.get
    specs = [get(h) for h in heads]
    local: dict[bytes, tuple[int, tuple[int, ...]] | None] = {}
    for i, s in enumerate(specs):
        if s is None:
            specs[i] = _head(heads[i], values[i], local)
    lens = np.fromiter(map(len, values), np.int64, n)
    ends = np.cumsum(lens)
    pos = ends - lens + np.fromiter(map(len, heads), np.int64, n)
    buf = np.frombuffer(b"".join(values) + bytes(16), np.uint8)
    ok = np.fromiter(map(operator.is_not, specs, itertools.repeat(None)), bool, n)

    has = (pos < ends) & (buf[pos] == 0x18)  # shard_id: one byte in a canonical entry
    shard = np.where(has, buf[pos + 1], 0).astype(np.int64)
    ok &= ~has | (shard < 0x80)
    pos += 2 * has
    fields = []
    for tag in (0x20, 0x28):  # offset, size
        has = (pos < ends) & (buf[pos] == tag)
        value, length = _varints(buf, pos + 1)
        ok &= ~has | (length > 0)
        fields.append(np.where(has, value, 0))
        pos += has * (1 + length)
    has = (pos < ends) & (buf[pos] == 0x35)  # crc32c: fixed32
    crc_bytes = buf[pos[:, None] + _FOUR].astype(np.uint32)
    crc = np.where(has, crc_bytes[:, 0] | crc_bytes[:, 1] << 8 | crc_bytes[:, 2] << 16 | crc_bytes[:, 3] << 24, 0)
    pos += 5 * has
    ok &= pos == ends
    where = np.stack([shard, fields[0].astype(np.int64), fields[1].astype(np.int64), crc.astype(np.int64)])
    return Columns(specs, shard.tolist(), fields[0].tolist(), fields[1].tolist(), crc.tolist(), ok.tolist(), where)


def columns_of(entries: list[BundleEntry]) -> Columns:
    """The :class:`Columns` of entries already decoded (those with slices are not ``ok``)."""
    return Columns([e[:2] for e in entries], [e.shard_id for e in entries], [e.offset for e in entries],
                   [e.size for e in entries], [e.crc32c for e in entries], [not e.slices for e in entries])


def decode_entries(values: list[bytes], names: list[str], path: str) -> list[BundleEntry]:
    """``[BundleEntry.decode(v, key=name, path=path) for v, name in zip(values, names)]``, faster.

    Raises:
        DataLossError: for the first entry (in order) that :meth:`BundleEntry.decode` rejects.
    """
    cols = decode_columns(values)
    if cols is None:
        return [BundleEntry.decode(v, key=k, path=path) for v, k in zip(values, names)]
    return [_new(BundleEntry, (s[0], s[1], a, b, c, d, ())) if k else BundleEntry.decode(v, key=nm, path=path)  # type: ignore[index]
            for k, s, a, b, c, d, v, nm in zip(cols.ok, cols.specs, cols.shard, cols.offset, cols.size, cols.crc32c,
                                               values, names)]


def _tail_rows(shard: int, start: int, sizes: Sequence[int], crcs: Sequence[int],
               lead: int = 0) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """The ``shard_id``, ``offset``, ``size`` and ``crc32c`` fields (an entry's tail) of tensors
    whose data lie one after another from ``start`` in data shard ``shard``, as rows of a
    ``(n, lead + 32)`` byte matrix, each from column ``lead`` on (the first ``lead`` columns
    left for the caller), and their lengths. Zero fields are left out, as protobuf does."""
    n = len(sizes)
    size = np.array(sizes, np.uint64)
    offset = np.cumsum(size, dtype=np.uint64) - size + np.uint64(start)
    width = lead + _WIDTH
    m = np.zeros((n, width), np.uint8)
    cur = np.zeros(n, np.int64) + lead
    if shard:
        prefix = b"\x18" + encode_varint(shard)
        m[:, lead : lead + len(prefix)] = np.frombuffer(prefix, np.uint8)
        cur += len(prefix)
    flat = m.reshape(-1)
    row = np.arange(0, n * width, width)  # where each entry's row starts in flat
    for tag, v in ((0x20, offset), (0x28, size)):
        present = v != 0
        length, digits = varint_digits(v)
        at = (row + cur)[present]
        flat[at] = tag
        j = np.arange(digits.shape[1])
        put = (j < length[:, None]) & present[:, None]  # (tag, then the varint's bytes)
        flat[(at[:, None] + 1 + j)[put[present]]] = digits[put]
        cur += present * (1 + length)
    crc = np.array(crcs, np.uint32)
    present = crc != 0
    at = (row + cur)[present]
    flat[at] = 0x35
    flat[at[:, None] + _FOUR] = crc[present].astype("<u4").view(np.uint8).reshape(-1, 4)
    cur += 5 * present
    return m, cur - lead


def encode_values(heads: list[bytes], head_of: np.ndarray, shard: int, start: int,  # type: ignore[type-arg]
                  sizes: Sequence[int], crcs: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """Whole entries of tensors written one after another from ``start`` in data shard
    ``shard``, as one byte array (the entries one after another) and each entry's length:
    entry ``i`` is ``heads[head_of[i]]`` (its ``entry_head``) then its tail (``shard_id``,
    ``offset``, ``size``, ``crc32c``).
    No Python object per entry.

    Example:
        >>> from tfckpt._format.entry import encode_entry, entry_head
        >>> blob, lengths = encode_values([entry_head(1, (2,)), entry_head(2, ())], np.array([1, 0]),
        ...                               0, 0, [8, 8], [5, 6])
        >>> bytes(blob) == encode_entry(2, (), 0, 0, 8, 5) + encode_entry(1, (2,), 0, 8, 8, 6)
        True
        >>> lengths.tolist() == [len(encode_entry(2, (), 0, 0, 8, 5)), len(encode_entry(1, (2,), 0, 8, 8, 6))]
        True
    """
    hlen = np.fromiter(map(len, heads), np.int64, len(heads))
    widest = int(hlen.max(initial=0))
    if int(hlen.min(initial=widest)) == widest:  # (heads of one length: tails in one column)
        m, tail_len = _tail_rows(shard, start, sizes, crcs, widest)
        if len(heads) == 1:
            m[:, :widest] = np.frombuffer(heads[0], np.uint8)
        else:
            m[:, :widest] = np.frombuffer(b"".join(heads), np.uint8).reshape(len(heads), widest)[head_of]
        lengths = tail_len + widest
        return m[np.arange(m.shape[1]) < lengths[:, None]], lengths
    tails, tail_len = _tail_rows(shard, start, sizes, crcs)
    n = len(tail_len)
    # Each distinct head as a zero-padded row, gathered out of their concatenation.
    j = np.arange(widest)
    inside = j < hlen[:, None]
    rows = np.zeros((len(heads), widest), np.uint8)
    rows[inside] = np.frombuffer(b"".join(heads), np.uint8)
    width = widest + _WIDTH
    m = np.zeros((n, width), np.uint8)
    m[:, :widest] = rows[head_of]
    own = hlen[head_of]
    # Each tail right after its head (over the head row's zero padding).
    m.reshape(-1)[(np.arange(0, n * width, width) + own)[:, None] + np.arange(_WIDTH)] = tails
    lengths = own + tail_len
    return m[np.arange(width) < lengths[:, None]], lengths
