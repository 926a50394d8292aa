"""TensorFlow's SSTable ("table") format: the container of ``.index`` files and V1 checkpoints.

It is the LevelDB table format with a bytewise comparator, 256 KiB blocks, no
filter blocks and (as TensorFlow writes it) no compression. The writer here
reproduces TensorFlow's block cutting and index-key shortening rules, so its
output is byte-identical to TensorFlow's for the same entries.

Layout: ``[data block + trailer]... [meta-index block + trailer]
[index block + trailer] [48-byte footer]``; a trailer is one compression type
byte and the masked CRC-32C of the stored block plus that byte.

Example:
    >>> data = build_table([(b"a", b"1"), (b"b", b"2")])
    >>> t = TableReader(data)
    >>> t.get(b"b"), [k for k, _ in t.items()]
    (b'2', [b'a', b'b'])
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from operator import itemgetter

import numpy as np

from tfckpt._format.blocks import (
    block_columns,
    encode_entries,
    join_values,
    keys_increase,
    parse_block,
    split_values,
    varint_lengths,
)
from tfckpt._format.coding import FIXED32, crc32c, decode_varint, encode_varint, mask, unmask
from tfckpt.errors import DataLossError, InvalidArgumentError

__all__ = [
    "BLOCK_SIZE",
    "FOOTER_SIZE",
    "MAGIC",
    "TableReader",
    "TableWriter",
    "build_table",
    "find_short_successor",
    "find_shortest_separator",
    "parse_block",
]

BLOCK_SIZE = 262144
RESTART_INTERVAL = 16
FOOTER_SIZE = 48
TRAILER_SIZE = 5
MAGIC = 0xDB4775248B80FB57
MAGIC_BYTES = MAGIC.to_bytes(8, "little")
NO_COMPRESSION = 0
SNAPPY_COMPRESSION = 1
_BULK = 256  # pairs from which TableWriter.add_many lays out and encodes blocks with numpy
_PREFIX_CHUNK = 8192  # keys compared as one matrix


def _shared_prefixes(keys: list[bytes]) -> np.ndarray | None:  # type: ignore[type-arg]
    """Length of the common prefix of each key with the next one (vectorised, 8192 keys at a
    time), or None when the keys are too long for a ``8192 x longest`` byte matrix to be cheap."""
    longest = max(map(len, keys))
    if not longest or longest > 1024:
        return None
    lens = np.fromiter(map(len, keys), np.int64, len(keys))
    parts = []
    for a in range(0, len(keys) - 1, _PREFIX_CHUNK):
        chunk = keys[a : a + _PREFIX_CHUNK + 1]  # (overlapping the next chunk by one key)
        m = np.array(chunk, dtype=f"S{longest}").view(np.uint8).reshape(len(chunk), longest)
        neq = m[1:] != m[:-1]
        parts.append(np.where(neq.any(axis=1), neq.argmax(axis=1), longest))
    first = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    shared: np.ndarray = np.minimum(first, np.minimum(lens[1:], lens[:-1]))  # type: ignore[type-arg]
    return shared


def find_shortest_separator(start: bytes, limit: bytes) -> bytes:
    """A short key ``k`` with ``start <= k < limit`` (TensorFlow's bytewise rule)."""
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i < n:
        b = start[i]
        if b < 0xFF and b + 1 < limit[i]:
            return start[:i] + bytes((b + 1,))
    return start


def find_short_successor(key: bytes) -> bytes:
    """A short key ``>= key``: increment the first byte that is not 0xFF and cut after it."""
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes((b + 1,))
    return key


class _BlockBuilder:
    """One block being built: :meth:`TableWriter.add_many` appends data entries to its state
    directly; index blocks take whole entries through :meth:`add_restart`."""

    __slots__ = ("buf", "counter", "last_key", "restarts")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""

    def add_restart(self, key: bytes, value: bytes) -> None:
        """Append an entry that shares no prefix and starts a restart (every index entry does)."""
        buf = self.buf
        if buf:
            self.restarts.append(len(buf))
        buf += encode_varint(0) + encode_varint(len(key)) + encode_varint(len(value))
        buf += key
        buf += value
        self.last_key = key
        self.counter = 1

    def empty(self) -> bool:
        return not self.buf

    def finish(self) -> bytearray:
        buf = self.buf
        for r in self.restarts:
            buf += FIXED32.pack(r)
        buf += FIXED32.pack(len(self.restarts))
        return buf


class TableWriter:
    """Streams a table into an in-memory buffer, exactly as TensorFlow's TableBuilder lays it out.

    Keys must be added in strictly increasing bytewise order.
    """

    def __init__(self, block_size: int = BLOCK_SIZE, restart_interval: int = RESTART_INTERVAL) -> None:
        self._out = bytearray()
        self._block_size = block_size
        self._interval = restart_interval
        self._data = _BlockBuilder()
        self._index = _BlockBuilder()
        self._last_key: bytes | None = None
        self._pending: bytes | None = None  # encoded handle of the last flushed block

    def add(self, key: bytes, value: bytes) -> None:
        self.add_many(((key, value),))

    def add_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """:meth:`add` for many pairs, in strictly increasing key order: the same bytes. From
        256 pairs on, a block's entries are laid out and encoded together with numpy
        (:meth:`_add_bulk`); otherwise (or if that declines) one at a time."""
        items = items if isinstance(items, list) else list(items)
        if len(items) >= _BULK and self._add_bulk(list(map(itemgetter(0), items)),
                                                  *join_values(list(map(itemgetter(1), items)))):
            return
        self._add_each(items)

    def add_columns(self, keys: list[bytes], values: np.ndarray, value_lengths: np.ndarray) -> None:  # type: ignore[type-arg]
        """:meth:`add_many` of ``zip(keys, values)`` for values given as one byte array (each
        value after the one before) and their lengths: no bytes object per value.

        Example:
            >>> w = TableWriter()
            >>> w.add_columns([b"a", b"b"], np.frombuffer(b"xyz", np.uint8), np.array([1, 2]))
            >>> w.finish() == build_table([(b"a", b"x"), (b"b", b"yz")])
            True
        """
        if len(keys) >= _BULK and self._add_bulk(keys, values, value_lengths):
            return
        self._add_each(list(zip(keys, split_values(values, value_lengths))))

    def _add_each(self, items: list[tuple[bytes, bytes]]) -> None:
        """:meth:`add_many` one pair at a time."""
        bs = self._block_size
        interval = self._interval
        data = self._data
        buf, restarts, counter, blast = data.buf, data.restarts, data.counter, data.last_key
        last = self._last_key
        try:
            for key, value in items:
                klen, vlen = len(key), len(value)
                if last is not None:
                    if key <= last:
                        raise InvalidArgumentError(
                            f"table keys must be strictly increasing: {key[:64]!r} after {last[:64]!r}")
                    if klen + vlen >= 2 * bs:
                        data.counter, data.last_key = counter, blast
                        self._flush()
                        data = self._data
                        buf, restarts, counter, blast = data.buf, data.restarts, data.counter, data.last_key
                    if self._pending is not None:
                        self._index.add_restart(find_shortest_separator(last, key), self._pending)
                        self._pending = None
                if counter < interval:
                    n = min(len(blast), klen)
                    x = int.from_bytes(blast[:n], "big") ^ int.from_bytes(key[:n], "big")
                    shared = n - ((x.bit_length() + 7) >> 3)
                else:
                    restarts.append(len(buf))
                    counter = shared = 0
                non_shared = klen - shared
                if non_shared < 0x80 and vlen < 0x80 and shared < 0x80:
                    buf += bytes((shared, non_shared, vlen))
                else:
                    buf += encode_varint(shared) + encode_varint(non_shared) + encode_varint(vlen)
                buf += key[shared:] if shared else key
                buf += value
                counter += 1
                last = blast = key
                if len(buf) + 4 * len(restarts) + 4 >= bs:
                    data.counter, data.last_key, self._last_key = counter, blast, last
                    self._flush()
                    data = self._data
                    buf, restarts, counter, blast = data.buf, data.restarts, data.counter, data.last_key
        finally:
            data.counter, data.last_key, self._last_key = counter, blast, last

    def _add_bulk(self, keys: list[bytes], values: np.ndarray, vlen: np.ndarray) -> bool:  # type: ignore[type-arg]
        """:meth:`add_columns` a block at a time: which entries fill the block, where its
        restarts fall and each entry's bytes, all with numpy. False (nothing added) for pairs it
        leaves to the one-at-a-time loop: keys out of order (the loop reports them), a pair of
        twice the block size or more, keys too long to compare as a matrix."""
        last = self._last_key
        if not keys_increase(keys) or (last is not None and keys[0] <= last):
            return False
        n = len(keys)
        klen = np.fromiter(map(len, keys), np.int64, n)
        bs = self._block_size
        if int((klen + vlen).max()) >= 2 * bs:
            return False
        vstart = np.cumsum(vlen) - vlen
        pre = _shared_prefixes([self._data.last_key, *keys])  # (with the block's last key: b"" if empty)
        if pre is None:
            return False
        interval = self._interval
        window = 1024
        i = 0
        while i < n:
            if self._pending is not None:  # (the first entry after a block was cut)
                assert last is not None
                self._index.add_restart(find_shortest_separator(last, keys[i]), self._pending)
                self._pending = None
            data = self._data
            m = min(n - i, window)
            u = data.counter + np.arange(m)
            restart = (u % interval == 0) & (u > 0)
            shared = np.where(restart | (u == 0), 0, pre[i : i + m])  # (u == 0: a new block's first entry)
            kl, vl = klen[i : i + m], vlen[i : i + m]
            size = varint_lengths(shared) + varint_lengths(kl - shared) + varint_lengths(vl) + kl - shared + vl
            estimate = len(data.buf) + np.cumsum(size) + 4 * (len(data.restarts) + np.cumsum(restart)) + 4
            full = np.flatnonzero(estimate >= bs)
            if not full.size and m < n - i:
                window *= 2
                continue
            cut = int(full[0]) + 1 if full.size else m
            v0 = int(vstart[i])
            block_values = values[v0 : v0 + int(vl[:cut].sum())]
            start = len(data.buf)
            data.buf += encode_entries(b"".join(keys[i : i + cut]), kl[:cut], block_values, vl[:cut], shared[:cut]).data
            data.restarts += (start + (np.cumsum(size[:cut]) - size[:cut])[restart[:cut]]).tolist()
            data.counter = int(u[cut - 1] % interval) + 1
            data.last_key = last = self._last_key = keys[i + cut - 1]
            i += cut
            window = max(1024, 2 * cut)
            if full.size:
                self._flush()
        return True

    def _write_block(self, contents: bytes | bytearray) -> bytes:
        offset = len(self._out)
        self._out += contents
        trailer_type = bytes((NO_COMPRESSION,))
        self._out += trailer_type
        self._out += FIXED32.pack(mask(crc32c(trailer_type, crc32c(contents))))
        return encode_varint(offset) + encode_varint(len(contents))

    def _flush(self) -> None:
        if self._data.empty():
            return
        self._pending = self._write_block(self._data.finish())
        self._data = _BlockBuilder()

    def finish(self) -> bytes:
        """Write the last block, the meta-index, the index and the footer; return the table bytes."""
        self._flush()
        metaindex = self._write_block(_BlockBuilder().finish())
        if self._pending is not None:
            assert self._last_key is not None
            self._index.add_restart(find_short_successor(self._last_key), self._pending)
            self._pending = None
        index = self._write_block(self._index.finish())
        footer = metaindex + index
        footer += bytes(40 - len(footer)) + MAGIC_BYTES
        self._out += footer
        return bytes(self._out)


def build_table(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Build a whole table from ``(key, value)`` pairs in strictly increasing key order."""
    w = TableWriter()
    w.add_many(items)
    return w.finish()


def _decode_handle(buf: bytes | memoryview, pos: int, limit: int) -> tuple[int, int, int]:
    offset, pos = decode_varint(buf, pos, limit)
    size, pos = decode_varint(buf, pos, limit)
    return offset, size, pos


class TableReader:
    """Reads a table held in memory (the whole ``.index`` or V1 file).

    Blocks are decoded lazily and cached; ``get`` binary-searches the index
    block, so looking one key up in a huge table decodes one data block.
    """

    def __init__(self, data: bytes, *, path: str = "<memory>", verify: bool = True) -> None:
        self._data = data
        self._path = path
        self._verify = verify
        n = len(data)
        if n < FOOTER_SIZE:
            raise DataLossError(
                f"{path}: file too short ({n} bytes) to be an sstable; expected at least {FOOTER_SIZE}",
                path=path,
            )
        if data[n - 8 :] != MAGIC_BYTES:
            raise DataLossError(
                f"{path}: not an sstable (bad magic number {data[n - 8:].hex()} at offset {n - 8})",
                path=path,
                offset=n - 8,
            )
        fstart = n - FOOTER_SIZE
        try:
            _mo, _ms, pos = _decode_handle(data, fstart, fstart + 40)
            io, isz, _ = _decode_handle(data, pos, fstart + 40)
        except DataLossError as e:
            raise DataLossError(f"{path}: corrupt footer: {e.message}", path=path, offset=fstart) from None
        try:
            where = f" in {path} (index block at offset {io})"
            index = parse_block(self._read_block(io, isz, "index block"), where=where)
        except DataLossError as e:
            raise DataLossError(e.message, path=path, offset=io) from None
        self._index_keys: list[bytes] = []
        self._handles: list[tuple[int, int]] = []
        for k, v in index:
            try:
                off, size, _ = _decode_handle(v, 0, len(v))
            except DataLossError:
                raise DataLossError(f"{path}: corrupt block handle in index", path=path, offset=io) from None
            if self._index_keys and k <= self._index_keys[-1]:
                raise DataLossError(f"{path}: index block keys are out of order", path=path, offset=io)
            self._index_keys.append(k)
            self._handles.append((off, size))
        self._cache: dict[int, tuple[list[bytes], list[bytes]]] = {}

    @property
    def path(self) -> str:
        return self._path

    def _read_block(self, offset: int, size: int, what: str) -> bytes:
        data = self._data
        end = offset + size + TRAILER_SIZE
        if end > len(data) - FOOTER_SIZE:
            raise DataLossError(
                f"{self._path}: {what} at offset {offset} with size {size} extends past the end "
                f"of the file ({len(data)} bytes)",
                path=self._path,
                offset=offset,
            )
        contents = data[offset : offset + size]
        btype = data[offset + size]
        if self._verify:
            (stored,) = FIXED32.unpack_from(data, offset + size + 1)
            actual = crc32c(bytes((btype,)), crc32c(contents))
            if unmask(stored) != actual:
                raise DataLossError(
                    f"{self._path}: block checksum mismatch in {what} at offset {offset} "
                    f"(stored {unmask(stored):#010x}, computed {actual:#010x})",
                    path=self._path,
                    offset=offset,
                )
        if btype == NO_COMPRESSION:
            return contents
        if btype == SNAPPY_COMPRESSION:
            from tfckpt._format.snappy import decompress

            try:
                return decompress(contents, max_size=64 * BLOCK_SIZE + 2 * len(data))
            except DataLossError as e:
                raise DataLossError(f"{self._path}: {what} at offset {offset}: {e.message}",
                                    path=self._path, offset=offset) from None
        raise DataLossError(
            f"{self._path}: bad block type {btype} in {what} at offset {offset}",
            path=self._path,
            offset=offset,
        )

    def _block(self, i: int, *, keep: bool = True) -> tuple[list[bytes], list[bytes]]:
        """Keys and values of data block ``i``, decoded and checked (and cached if ``keep``)."""
        blk = self._cache.get(i)
        if blk is None:
            off, size = self._handles[i]
            what = f"data block {i}"
            try:
                where = f" in {self._path} ({what} at offset {off})"
                blk = block_columns(self._read_block(off, size, what), where=where)
            except DataLossError as e:
                raise DataLossError(e.message, path=self._path, offset=off) from None
            self._check_order(i, blk[0], off)
            if keep:
                if len(self._cache) > 64:
                    self._cache.clear()
                self._cache[i] = blk
        return blk

    def _check_order(self, i: int, keys: list[bytes], offset: int) -> None:
        # Lookups binary-search the index, so a block whose keys are unsorted or
        # stray outside its index range would make listed keys unfindable.
        ok = keys_increase(keys)
        if ok and keys:
            ok = keys[-1] <= self._index_keys[i] and (i == 0 or keys[0] > self._index_keys[i - 1])
        if not ok:
            raise DataLossError(
                f"{self._path}: keys of data block {i} at offset {offset} are out of order or outside "
                f"the range its index entry gives",
                path=self._path,
                offset=offset,
            )

    @property
    def num_blocks(self) -> int:
        return len(self._handles)

    def block(self, i: int) -> tuple[list[bytes], list[bytes]]:
        """Keys and values of data block ``i`` alone (for tools that check a table block by block).

        Raises:
            DataLossError: the block is corrupt (checksum, encoding, or keys out of order or
                outside the range the index gives them).
        """
        return self._block(i, keep=False)

    def block_offset(self, i: int) -> int:
        """Where data block ``i`` starts in the file."""
        return self._handles[i][0]

    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None."""
        i = bisect.bisect_left(self._index_keys, key)
        if i >= len(self._index_keys):
            return None
        keys, values = self._block(i)
        j = bisect.bisect_left(keys, key)
        if j < len(keys) and keys[j] == key:
            return values[j]
        return None

    def first(self) -> tuple[bytes, bytes] | None:
        """The first entry (the header, in a checkpoint), or None for an empty table."""
        for i in range(len(self._handles)):
            keys, values = self._block(i)
            if keys:
                return keys[0], values[0]
        return None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every entry in key order (each block's keys are checked to increase and to lie in its
        index range, and the index keys to increase: so keys increase across blocks too).
        Blocks decoded for a walk are not cached: a walk of a big table holds one at a time."""
        for keys, values in self.blocks():
            yield from zip(keys, values)

    def blocks(self) -> Iterator[tuple[list[bytes], list[bytes]]]:
        """The keys and values of each data block in turn: :meth:`items`, a block at a time."""
        for i in range(len(self._handles)):
            yield self._block(i, keep=False)
