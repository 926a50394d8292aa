"""Reading many tensors of a V2 bundle at once: :class:`BulkReads`, the part of
:class:`~tfckpt._format.bundle_reader.BundleReader` behind ``read_many`` and ``entries``.

The index is walked a table block (or a batch of looked-up names) at a time; each batch
of entries is decoded by columns (:func:`~tfckpt._format.entries_bulk.decode_columns`),
and tensors of a fixed-size dtype go to a :class:`~tfckpt._format.runs.RunQueue`, which
reads neighbours with one ``preadv``, or become views of the mapped data files
(``copy=False``). Every other entry takes the reader's one-tensor path, so results and
errors are those of ``read``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Container, Iterable, Iterator, KeysView, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from tfckpt._format.coding import crc32c, unmask
from tfckpt._format.entries_bulk import Columns, columns_of, decode_columns, decode_entries
from tfckpt._format.entry import CACHE_RANK, CACHE_SIZE, BundleEntry, BundleHeader
from tfckpt._format.runs import RunQueue
from tfckpt._format.table import TableReader
from tfckpt._gcpause import paused_gc
from tfckpt._storage import LocalFile
from tfckpt.dtypes import DType, dtype_from_enum
from tfckpt.errors import CheckpointError, InternalError, InvalidArgumentError, TensorNotFoundError

__all__ = ["FIXED_DTYPES", "BulkReads"]

_RUN_MAX = 8 << 20  # read_many reads tensors up to this size in runs (a bigger one is split in parallel parts)
_BULK = 64  # from this many names not yet decoded, look them up with one walk of the index
_DECODE_BATCH = 4096  # entries decoded together while reading many tensors


_EMPTY: np.ndarray[Any, Any] = np.empty(0)


# dtype enum -> DType, for the fixed-size dtypes numpy can hold (read_many's fast path).
FIXED_DTYPES: dict[int, DType] = {}
for _enum in range(1, 100):
    try:
        _dt = dtype_from_enum(_enum)
    except InvalidArgumentError:
        continue
    if _dt.is_fixed_size:
        FIXED_DTYPES[_enum] = _dt

_NO_LAYOUT: tuple[Any, int] = (None, -1)
# (dtype enum, shape) -> (numpy dtype, byte size) of tensors read_many reads in runs (no size matches -1)
_LAYOUTS: dict[tuple[int, tuple[int, ...]], tuple[Any, int]] = {}
_new = tuple.__new__

# A batch of entries to read: names and, for each, its undecoded or decoded entry.
_Batch = tuple[list[str], list[bytes] | None, list[BundleEntry] | None]
# A batch of BulkReads.plan_into: names, entries and destinations.
_Planned = tuple[list[str], Columns, list[Any]]
# An entry as BulkReads._plain gives it.
_Plain = tuple[str, Any, Any, int, int, int, int, BundleEntry | None]


def _queue(names: list[str], cols: Columns, bufs: list[Any], runs: RunQueue) -> None:
    """Queue a batch whose destinations fit (see :func:`_destinations`)."""
    where = cols.where
    if where is None:
        where = np.array([cols.shard, cols.offset, cols.size, cols.crc32c], np.int64)
    runs.add_batch(where, names, bufs)


def _destinations(names: list[str], cols: Columns, out: Mapping[str, np.ndarray[Any, Any]] | None,
                  enums: Container[int] = FIXED_DTYPES) -> list[Any] | None:
    """Where each entry of a batch goes: ``out[name]`` (None for any that is missing or does not
    fit: dtype, shape, writeable, C-contiguous), else new arrays; None too if any entry is not a
    plain tensor of 1 byte to ``_RUN_MAX`` of a dtype of ``enums``."""
    sizes = cols.size
    n = len(sizes)
    if cols.ok.count(True) != n:
        return None
    specs: list[tuple[int, tuple[int, ...]]] = cols.specs  # type: ignore[assignment]  # (all ok)
    first = specs[0]
    if specs.count(first) == n:  # one kind of tensor (the entries of one head share its spec object)
        if enums is not FIXED_DTYPES and first[0] not in enums:
            return None
        lay = _LAYOUTS.get(first) or _layout(first)
        if not 0 < lay[1] <= _RUN_MAX or sizes.count(lay[1]) != n:
            return None
        lays = [lay] * n
    else:
        if min(sizes) <= 0 or max(sizes) > _RUN_MAX:
            return None
        layouts = _LAYOUTS
        lays = [layouts.get(s) or _layout(s) for s in specs]
        if [lay[1] for lay in lays] != sizes:
            return None
        if enums is not FIXED_DTYPES and not all(s[0] in enums for s in specs):
            return None
    if out is None:
        empty = np.empty
        return [empty(s[1], lay[0]) for s, lay in zip(specs, lays)]
    bufs = list(map(out.get, names))
    for buf, s, lay in zip(bufs, specs, lays):
        if not (isinstance(buf, np.ndarray) and buf.shape == s[1] and (buf.dtype is lay[0] or buf.dtype == lay[0])
                and (fl := buf.flags).writeable and fl.c_contiguous):
            return None
    return bufs


def _decoded(keys: list[bytes]) -> list[str]:
    """Tensor names of index keys (as the reader decodes them: undecodable bytes kept as
    lone surrogates)."""
    return [k.decode("utf-8", "surrogateescape") for k in keys]


def _layout(spec: tuple[int, tuple[int, ...]]) -> tuple[Any, int]:
    """(numpy dtype, byte size) of tensors of dtype and shape ``spec``, remembered (up to
    ``CACHE_SIZE``, of up to ``CACHE_RANK`` dimensions)."""
    dt = FIXED_DTYPES.get(spec[0])
    lay = _NO_LAYOUT if dt is None else (dt.numpy_dtype, math.prod(spec[1]) * dt.numpy_dtype.itemsize)
    if len(_LAYOUTS) < CACHE_SIZE and len(spec[1]) <= CACHE_RANK:
        _LAYOUTS[spec] = lay
    return lay


class BulkReads:
    """``read_many`` and ``entries`` of :class:`~tfckpt._format.bundle_reader.BundleReader`
    (a mixin: the reader provides the index, the files and the one-tensor path)."""

    if TYPE_CHECKING:  # provided by BundleReader
        prefix: str
        index_path: str
        verify_crc: bool
        header: BundleHeader
        _table: TableReader
        _files: dict[int, LocalFile]
        _names: list[str] | None
        _entries: dict[str, BundleEntry]
        _raw: dict[str, bytes]

        def names(self) -> list[str]: ...

        def entry(self, name: str) -> BundleEntry: ...

        def _lookup(self, name: str) -> BundleEntry: ...

        def _file(self, shard: int, key: str) -> LocalFile: ...

        def _data_file(self, name: str, e: BundleEntry, what: str) -> LocalFile: ...

        def _check_crc(self, e: BundleEntry, data: Any, name: str, f: LocalFile,
                       actual: int | None = None) -> None: ...

        def _dest(self, name: str, e: BundleEntry, dt: DType,
                  out: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any]: ...

        def _read_whole(self, name: str, e: BundleEntry, *, copy: bool = True,
                        out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]: ...

    def read_many(self, names: Iterable[str] | None = None, out: Mapping[str, np.ndarray[Any, Any]] | None = None,
                  *, copy: bool = True) -> dict[str, np.ndarray[Any, Any]]:
        """Read many tensors (``None``: every key of ``out`` if given, else every tensor in key
        order), into ``out[name]`` where given, else into new arrays.

        Same results and errors as :meth:`read` for each name, but the index is decoded a
        batch of entries at a time, and tensors that lie next to each other in a data file
        are read in runs of about 1 MiB with one ``preadv`` each (up to 1024 tensors),
        straight into their destinations: small runs as the index is walked, bigger ones by
        worker threads once it has been. Every CRC is checked before this returns. A name
        the index lacks is reported before anything is read. After any other error (a
        corrupt entry or data, a destination that does not fit) arrays of ``out`` may be
        partly overwritten. ``copy=False`` (without ``out``) returns read-only views of the
        mapped data files where :meth:`read` would (fixed-size dtypes).
        """
        with paused_gc():
            if names is None and out is not None:
                return self._read_many(self._batches_into(out), out, list(out), hold=True)
            wanted = None if names is None else list(names) if isinstance(names, KeysView) else list(
                dict.fromkeys(names))  # (a mapping's keys are distinct already)
            batches = self._every_batch() if wanted is None else self._batches_of(wanted)
            if not copy and out is None:
                return self._views(batches, wanted)
            return self._read_many(batches, out, wanted)

    def plan_into(self, out: Mapping[str, np.ndarray[Any, Any]],
                  enums: Container[int]) -> list[_Planned] | None:
        """The batches that read every name of ``out`` into ``out[name]`` (see :meth:`read_planned`),
        if every one is a plain tensor of a dtype of ``enums`` with exactly its destination's
        numpy dtype and shape (writeable, C-contiguous); None if any is not, or is missing, or
        the bundle is big-endian. Nothing is read but the index.

        Raises:
            DataLossError: an index entry is corrupt.
        """
        if self.header.big_endian:
            return None
        plan: list[_Planned] = []
        try:
            with paused_gc():
                for batch in self._batches_into(out):
                    names, cols, raws = self._columns(batch)
                    if cols is None:  # (a batch too small for columns)
                        entries = raws if raws and isinstance(raws[0], BundleEntry) else decode_entries(
                            raws, names, self.index_path)
                        cols = columns_of(entries)
                    bufs = _destinations(names, cols, out, enums) if cols.size else []
                    if bufs is None:
                        return None
                    plan.append((names, cols, bufs))
        except TensorNotFoundError:
            return None
        return plan

    def read_planned(self, plan: list[_Planned]) -> None:
        """Read the batches of :meth:`plan_into` into their destinations (every CRC checked, as
        :meth:`read_many` does)."""
        runs = RunQueue(self, verify=self.verify_crc)
        with paused_gc():
            try:
                for names, cols, bufs in plan:
                    if bufs:
                        _queue(names, cols, bufs, runs)
                runs.finish()
            finally:
                runs.close()

    def _views(self, batches: Iterator[_Batch], order: list[str] | None) -> dict[str, np.ndarray[Any, Any]]:
        """``read_many(copy=False)``: each entry read as :meth:`read` with ``copy=False`` does."""
        result: dict[str, np.ndarray[Any, Any]] = dict.fromkeys(order, _EMPTY) if order is not None else {}
        files = self._files
        maps: dict[int, memoryview] = {}  # shard -> its whole data file, mapped
        verify = self.verify_crc
        for name, spec, npd, shard, offset, size, crc, e in (
                p for b in batches for p in self._plain(*self._columns(b))):
            if e is None:
                whole = maps.get(shard)
                if whole is None and (f := files.get(shard)) is not None and f.size:
                    whole = maps[shard] = f.view(0, f.size)
                if whole is not None and offset + size <= len(whole):  # (else the general path opens or reports it)
                    view = whole[offset : offset + size]
                    if verify and crc32c(view) != unmask(crc):
                        self._check_crc(BundleEntry(0, (), shard, offset, size, crc), view, name, files[shard])
                    result[name] = np.frombuffer(view, npd).reshape(spec[1])
                    continue
                e = _new(BundleEntry, (spec[0], spec[1], shard, offset, size, crc, ()))
            result[name] = self._read_whole(name, e, copy=False)
        return result

    def _raw_of(self, names: list[str]) -> tuple[list[str], list[bytes]]:
        """Those of ``names`` (distinct) the index has, and their undecoded entries, from one walk
        of it (in index order). The names are the objects of ``names``: a walk of a big index
        keeps none of the names it decodes."""
        raw = self._raw
        if self._names is not None:
            have = [n for n in names if n in raw]
            return have, [raw[n] for n in have]
        get = {n: n for n in names}.get
        found: list[str] = []
        values: list[bytes] = []
        for keys, vals in self._tensor_blocks():
            hits: list[Any] = list(map(get, _decoded(keys)))
            if None in hits:
                found += filter(None, hits)
                values += itertools.compress(vals, hits)
            else:
                found += hits
                values += vals
        return found, values

    def entries(self, names: Iterable[str]) -> dict[str, BundleEntry]:
        """The entries of those of ``names`` the checkpoint has (absent names are left out; the
        order is unspecified), decoded once and cached: for many names one walk of the index."""
        wanted = names if isinstance(names, list) else list(names)
        cache = self._entries
        got = {n: e for n in wanted if (e := cache.get(n)) is not None} if cache else {}
        todo = [n for n in wanted if n not in got] if got else wanted
        if len(todo) >= _BULK:
            names, raw = self._raw_of(todo)
            found = dict(zip(names, decode_entries(raw, names, self.index_path)))
            cache.update(found)
            got.update(found)
            return got
        for n in todo:
            try:
                got[n] = self.entry(n)
            except TensorNotFoundError:
                pass
        return got

    def _batches_of(self, wanted: list[str]) -> Iterator[_Batch]:
        """Batches of the entries of ``wanted`` (distinct names): cached ones first, then the
        others in index order, a batch at a time (and not cached).

        Raises:
            TensorNotFoundError: for the first name of ``wanted`` the index lacks, before
                anything is yielded.
        """
        cache = self._entries
        todo = [n for n in wanted if n not in cache] if cache else wanted
        if len(todo) < _BULK:
            entries = [cache.get(n) or self._lookup(n) for n in wanted]
            yield wanted, None, entries
            return
        names, raw = self._raw_of(todo)
        if len(names) < len(todo):
            self._missing(todo, set(names))
        if cache:
            cached = [n for n in wanted if n in cache]
            yield cached, None, [cache[n] for n in cached]
        for i in range(0, len(names), _DECODE_BATCH):
            yield names[i : i + _DECODE_BATCH], raw[i : i + _DECODE_BATCH], None

    def _name_at(self, e: BundleEntry, among: Container[str] | None) -> str:
        """The name of the first tensor in index order (of ``among``, if given) whose data are
        ``e``'s (the same shard, offset, size and stored CRC): a :class:`RunQueue` keeps no
        names, so an error message finds its tensor's again."""
        if isinstance(among, list):
            among = set(among)
        want = np.array([e.shard_id, e.offset, e.size, e.crc32c], np.int64)[:, None]
        for keys, vals in self._tensor_blocks():
            cols = decode_columns(vals)
            if cols is None or cols.where is None:
                maybe: Iterable[int] = range(len(vals))
            else:
                hit = (cols.where == want).all(0)
                ok = np.array(cols.ok, bool)
                maybe = np.flatnonzero(hit & ok | ~ok).tolist()  # (the fields of entries not ok mean nothing)
            for i in maybe:
                if cols is None or not cols.ok[i]:
                    try:
                        d = BundleEntry.decode(vals[i], key="", path=self.index_path)
                    except CheckpointError:
                        continue
                    if (d.shard_id, d.offset, d.size, d.crc32c) != (e.shard_id, e.offset, e.size, e.crc32c):
                        continue
                name = keys[i].decode("utf-8", "surrogateescape")
                if among is None or name in among:
                    return name
        return f"<the tensor at offset {e.offset}>"  # (not reached: every queued tensor came from this index)

    def _missing(self, wanted: Iterable[str], have: Container[str]) -> NoReturn:
        """Report the first name of ``wanted`` that is not in ``have`` (those the index walk found)."""
        for n in wanted:
            if n not in have:
                self._lookup(n)  # raises TensorNotFoundError
        raise InternalError(f"{self.index_path}: the index walk missed entries that lookups find")

    def _batches_into(self, out: Mapping[str, Any]) -> Iterator[_Batch]:
        """Batches of the entries of the keys of ``out``, in index order: for many keys, from one
        walk of the index that keeps a batch of entries at a time (nothing cached), else as
        :meth:`_batches_of` gives them.

        Raises:
            TensorNotFoundError: at the end of the walk, for the first key of ``out`` the index lacks.
        """
        if len(out) < _BULK:
            yield from self._batches_of(list(out))
            return
        has = out.__contains__
        found = 0
        names: list[str] = []
        values: list[bytes] = []
        for keys, vals in self._tensor_blocks():
            got = _decoded(keys)
            hits = list(map(has, got))
            if False in hits:
                got = list(itertools.compress(got, hits))
                vals = list(itertools.compress(vals, hits))
            names += got
            values += vals
            if len(names) >= _DECODE_BATCH:
                found += len(names)
                yield names, values, None
                names, values = [], []
        found += len(names)
        if names:
            yield names, values, None
        if found != len(out):
            self._missing(out, set(self.names()))

    def _every_batch(self) -> Iterator[_Batch]:
        """The entries of every tensor in key order, a table block at a time (nothing cached)."""
        for keys, values in self._tensor_blocks():
            yield _decoded(keys), values, None

    def _tensor_blocks(self) -> Iterator[tuple[list[bytes], list[bytes]]]:
        """The keys and values of each table block, without the header and slice entries
        (keys empty or starting with a zero byte: they sort before every tensor's)."""
        for keys, values in self._table.blocks():
            i = 0
            while i < len(keys) and (not keys[i] or keys[i][0] == 0):
                i += 1
            yield (keys[i:], values[i:]) if i else (keys, values)

    def _columns(self, batch: _Batch) -> tuple[list[str], Columns | None, list[Any]]:
        """A batch's names, its entries' :class:`Columns` (None for a big-endian bundle or a batch
        not worth it), and its entries as they came (undecoded, or decoded)."""
        names, values, entries = batch
        cols = None
        if not self.header.big_endian:  # (big-endian tensors are read one by one, then swapped)
            cols = columns_of(entries) if entries is not None else decode_columns(values or [])
        return names, cols, entries if entries is not None else values or []

    def _plain(self, names: list[str], cols: Columns | None, raws: list[Any]) -> Iterator[_Plain]:
        """Each entry of a batch (see :meth:`_columns`). A tensor of a fixed-size dtype whose byte
        size fits its shape (1 byte to 8 MiB, little-endian bundle) comes as
        ``(name, (dtype, shape), numpy dtype, shard, offset, size, crc, None)``; any other
        entry (strings, partitioned tensors, corrupt entries...) as ``(name, ..., entry)``."""
        path = self.index_path
        if cols is None:
            entries = raws if raws and isinstance(raws[0], BundleEntry) else decode_entries(raws, names, path)
            for name, e in zip(names, entries):
                yield name, None, None, 0, 0, 0, 0, e
            return
        layouts = _LAYOUTS
        for name, spec, shard, offset, size, crc, ok, raw in zip(
                names, cols.specs, cols.shard, cols.offset, cols.size, cols.crc32c, cols.ok, raws):
            if ok:
                assert spec is not None
                lay = layouts.get(spec)
                if lay is None:
                    lay = _layout(spec)
                if lay[1] == size and 0 < size <= _RUN_MAX:
                    yield name, spec, lay[0], shard, offset, size, crc, None
                    continue
            if isinstance(raw, BundleEntry):  # (decoded already)
                e = raw
            elif ok:
                e = _new(BundleEntry, (spec[0], spec[1], shard, offset, size, crc, ()))
            else:
                e = BundleEntry.decode(raw, key=name, path=path)
            yield name, None, None, 0, 0, 0, 0, e

    def _read_many(self, batches: Iterator[_Batch], out: Mapping[str, np.ndarray[Any, Any]] | None,
                   order: list[str] | None, *, hold: bool = False) -> dict[str, np.ndarray[Any, Any]]:
        """Read the entries of ``batches`` as they come (see :meth:`read_many`), or with ``hold``
        once they have all come (so an error of ``batches`` comes before anything is read); the
        result follows ``order`` if given. A batch of plain tensors (see :meth:`_plain`) whose
        destinations all fit is queued whole (see :func:`_destinations`); any other batch entry
        by entry (:meth:`_queue_each`)."""
        # Reading every key of a dict ``out`` in its order, the result is ``out`` but for entries
        # that did not go to their ``out`` array: those alone are kept in ``result``.
        into_out = type(out) is dict and order is not None and list(out) == order
        result: dict[str, np.ndarray[Any, Any]] = (
            dict.fromkeys(order, _EMPTY) if order is not None and not into_out else {})
        runs = RunQueue(self, verify=self.verify_crc, hold=hold, among=order if order is not None else out)
        later: list[tuple[str, BundleEntry, Any]] | None = [] if hold else None
        try:
            for batch in batches:
                names, cols, raws = self._columns(batch)
                bufs = None if cols is None else _destinations(names, cols, out) if cols.size else []
                if cols is None or bufs is None:
                    self._queue_each(self._plain(names, cols, raws), out, result, runs, later)
                    continue
                if not into_out:
                    result.update(zip(names, bufs))
                _queue(names, cols, bufs, runs)
            for name, e, dest in later or ():
                result[name] = self._read_whole(name, e, out=dest)
            runs.finish()
        finally:
            runs.close()
        if into_out:
            assert out is not None
            return {**out, **result}
        return result

    def _queue_each(self, plain: Iterator[_Plain], out: Mapping[str, np.ndarray[Any, Any]] | None,
                    result: dict[str, np.ndarray[Any, Any]], runs: RunQueue,
                    later: list[tuple[str, BundleEntry, Any]] | None = None) -> None:
        """Queue entries one by one: plain ones checked inline, the others through :meth:`_read_into`."""
        get = out.get if out is not None else None
        add = runs.add
        for name, spec, npd, shard, offset, size, crc, e in plain:
            if e is None:
                shape = spec[1]
                if get is None or (buf := get(name)) is None:
                    buf = np.empty(shape, npd)
                elif not (isinstance(buf, np.ndarray) and buf.shape == shape
                          and (buf.dtype is npd or buf.dtype == npd)
                          and (fl := buf.flags).writeable and fl.c_contiguous):
                    e = BundleEntry(spec[0], shape, shard, offset, size, crc)  # _read_into raises the error
                if e is None:
                    result[name] = buf
                    add(shard, name, offset, size, crc, buf)
                    continue
            self._read_into(name, e, out, result, runs, later)

    def _read_into(self, name: str, e: BundleEntry, out: Mapping[str, np.ndarray[Any, Any]] | None,
                   result: dict[str, np.ndarray[Any, Any]], runs: RunQueue,
                   later: list[tuple[str, BundleEntry, Any]] | None = None) -> None:
        """Read entry ``e`` of ``name`` into ``result[name]``: queued in ``runs`` when it can be,
        else read at once (or, given ``later``, left there for the caller to read)."""
        dest = out.get(name) if out is not None else None
        dt = FIXED_DTYPES.get(e.dtype)
        if dt is None or e.slices or self.header.big_endian or not 0 < e.size <= _RUN_MAX:
            if later is not None:
                later.append((name, e, dest))
            else:
                result[name] = self._read_whole(name, e, out=dest)
            return
        buf = self._dest(name, e, dt, dest)
        result[name] = buf
        runs.add(e.shard_id, name, e.offset, e.size, e.crc32c, buf)
