"""Reading tensor bytes fast: big tensors in parallel parts, small ones in runs.

Both ``pread``/``preadv`` and ``crc32c`` release the GIL, so worker threads read and
checksum in parallel: the parts of a big tensor, and the runs of small ones once the
calling thread has laid them all out (see :class:`RunQueue` for why not sooner).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Container, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from tfckpt._format.coding import crc32c, masked_crc_array, unmask
from tfckpt._format.entry import BundleEntry
from tfckpt._storage import LocalFile

__all__ = ["CHUNK", "RunQueue", "crc32c_combine", "crc_pool", "readinto_crc"]

# Tensors from this size on are read by several threads at once, each reading
# and checksumming its part in cache-sized chunks; the parts' CRCs are then combined.
_PARALLEL = 4 << 20
_PART_MIN = 2 << 20
CHUNK = 1 << 20  # bytes read (then checksummed while still in cache) per call
_IOV_MAX = 1024  # buffers per preadv (Linux's IOV_MAX)
_POOL_RUN = 256 << 10  # runs from this size on are read by a worker thread
_POLY = 0x82F63B78  # CRC-32C, reflected
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_WORKERS = max(1, min(4, os.cpu_count() or 1))
_Crcs = np.ndarray[Any, np.dtype[np.uint32]]


def _multmodp(a: int, b: int) -> int:
    """Product of two polynomials modulo the CRC-32C polynomial (reflected bit order)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


_X2N = [1 << 30]  # x^(2^k) mod P for k = 0..63 (lengths up to 2^60 bytes)
for _ in range(63):
    _X2N.append(_multmodp(_X2N[-1], _X2N[-1]))


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32C of ``A + B`` from ``crc(A)``, ``crc(B)`` and ``len(B)``.

    Example:
        >>> crc32c_combine(crc32c(b"1234"), crc32c(b"56789"), 5) == crc32c(b"123456789")
        True
        >>> a, b, c = 0x1234, 0xABCDEF, 0x42  # lengths past 2**32 bytes
        >>> left = crc32c_combine(crc32c_combine(a, b, 1 << 33), c, 5)
        >>> left == crc32c_combine(a, crc32c_combine(b, c, 5), (1 << 33) + 5)
        True
        >>> z = bytes(1 << 20)
        >>> crc32c_combine(crc32c(z), crc32c(z), len(z)) == crc32c(z + z)
        True
    """
    p = 1 << 31
    k = 3
    n = len2
    while n:
        if n & 1:
            p = _multmodp(_X2N[k], p)
        n >>= 1
        k += 1
    return _multmodp(p, crc1) ^ crc2


def crc_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="tfckpt-read")
    return _pool


def _read_part(f: LocalFile, offset: int, mv: memoryview) -> int:
    """Read ``mv`` chunk by chunk, checksumming each chunk while it is still in cache."""
    crc = 0
    n = mv.nbytes
    pos = 0
    while pos < n:
        end = min(pos + CHUNK, n)
        part = mv[pos:end]
        f.readinto(offset + pos, part)
        crc = crc32c(part, crc)
        pos = end
    return crc


def readinto_crc(f: LocalFile, offset: int, mv: memoryview) -> int:
    """Fill ``mv`` from ``f`` at ``offset`` and return the CRC-32C of the bytes read."""
    n = mv.nbytes
    if n <= CHUNK:
        f.readinto(offset, mv)
        return crc32c(mv)
    parts = min(_WORKERS, n // _PART_MIN) if n >= _PARALLEL else 1
    if parts <= 1:
        return _read_part(f, offset, mv)
    step = -(-n // parts)
    bounds = [(i * step, min(n, (i + 1) * step)) for i in range(parts)]
    pool = crc_pool()
    futs = [pool.submit(_read_part, f, offset + a, mv[a:b]) for a, b in bounds[1:]]
    try:
        crc = _read_part(f, offset, mv[: bounds[0][1]])
    finally:
        results = [fut.result() for fut in futs]  # wait for every part, even after an error
    for (a, b), c in zip(bounds[1:], results):
        crc = crc32c_combine(crc, c, b - a)
    return crc


class _Owner(Protocol):
    """What a :class:`RunQueue` needs from the bundle it reads (``BundleReader``)."""

    def _file(self, shard: int, key: str) -> LocalFile: ...

    def _data_file(self, name: str, e: BundleEntry, what: str) -> LocalFile: ...

    def _check_crc(self, e: BundleEntry, data: Any, name: str, f: LocalFile, actual: int | None = None) -> None: ...

    def _name_at(self, e: BundleEntry, among: Container[str] | None) -> str: ...


class _Run:
    """Adjacent tensors of one data file, read with one ``preadv``. A run keeps no names (for
    100,000 tensors they would outweigh everything else it holds): an error finds the name
    again from the tensor's place (``_Owner._name_at``)."""

    __slots__ = ("bufs", "crcs", "end", "file", "shard", "start")

    def __init__(self, f: LocalFile, shard: int, start: int, end: int, crcs: _Crcs, bufs: list[Any]) -> None:
        self.file = f
        self.shard = shard
        self.start = start
        self.end = end  # (``bufs`` fill ``start`` to ``end``)
        self.crcs = [crcs]  # stored (masked), in parts: joined only to be checked
        self.bufs = bufs  # numpy arrays: preadv and crc32c take any buffer

    def stored(self) -> _Crcs:
        """The stored (masked) CRC of each tensor, as one array."""
        parts = self.crcs
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _read_run(run: _Run, verify: bool) -> _Crcs | None:
    """Fill the run's buffers (one ``preadv``); their masked CRC-32Cs if ``verify``."""
    run.file.readinto_many(run.start, run.bufs, run.end - run.start)
    return masked_crc_array(run.bufs) if verify else None


def _drain(runs: list[_Run], todo: Iterator[int], results: list[_Crcs | None], verify: bool) -> None:
    """Read runs from ``todo`` (shared by the threads that drain it: each number is taken by
    one) until none is left, each run's CRCs into ``results``."""
    for i in todo:
        results[i] = _read_run(runs[i], verify)


class RunQueue:
    """Reads fixed-size tensors straight into their destination arrays, in runs of adjacent ones.

    :meth:`add` tensors in any order. Those that continue the open run of their data file
    join it; a run closes once it holds about 1 MiB or 1024 tensors. Small runs are read
    at once (with ``hold``, by :meth:`finish`, so that nothing is read before it). Bigger
    ones are left for :meth:`finish`, which reads them with worker threads in parallel,
    the calling thread taking runs too: one thread per core in all, as for the parts of a
    big tensor (more threads than cores were slower, and so was a caller that only waits),
    after the caller's layout loop: while that loop runs, it holds the GIL, and a worker
    waits for it after every read or checksum (up to the 5 ms switch interval), so
    reading during the loop was slower than reading after it. Tensors that come out of file
    order are kept and read, sorted by place, in :meth:`finish`, which also checks every CRC.
    :meth:`close` (always call it, e.g. in ``finally``) never returns while a worker may
    still write into a destination.

    A tensor past the end of its data file is reported as it is added. Queued tensors keep
    only their place, CRC and destination; a bad CRC is reported under the name the owner
    finds at that place (the first of ``among``, if given: the names asked for).
    """

    def __init__(self, owner: _Owner, *, verify: bool, hold: bool = False,
                 among: Container[str] | None = None) -> None:
        self._owner = owner
        self._verify = verify
        self._hold = hold  # read nothing before finish
        self._among = among
        self._open: dict[int, _Run] = {}
        self._late: list[tuple[int, int, str, int, int, np.ndarray[Any, Any]]] = []
        self._big: list[_Run] = []  # closed runs left for the workers
        self._small: list[_Run] = []  # closed runs held for finish to read (``hold``)
        self._pending: list[Future[None]] = []  # the workers reading big runs in finish
        self._todo: Iterator[int] = iter(())  # numbers of the big runs no thread has taken yet
        self._defer = True  # keep tensors that come out of file order for later (False once sorted)

    def add(self, shard: int, name: str, offset: int, size: int, crc: int, buf: np.ndarray[Any, Any]) -> None:
        """Queue tensor ``name`` (``size`` bytes at ``offset`` in data shard ``shard``, stored
        masked CRC ``crc``) to be read into ``buf`` (C-contiguous, exactly ``size`` bytes: the
        caller checks it)."""
        self._add_run(shard, offset, offset + size, [name], np.array([crc], np.uint32), [buf])

    def add_batch(self, where: np.ndarray[Any, Any], names: list[str], bufs: list[Any]) -> None:
        """:meth:`add` for many tensors at once: ``where`` holds their shards, offsets, sizes and
        stored CRCs (int64 rows), ``bufs`` their destinations (as :meth:`add` takes them). Tensors
        that lie one after another are cut into runs with numpy, not one by one."""
        n = len(names)
        if n == 0:
            return
        shard, offset, size = where[:3]
        crc = where[3].astype(np.uint32)
        end = offset + size
        new = np.empty(n, bool)  # where a run starts
        new[0] = True
        np.not_equal(shard[1:], shard[:-1], out=new[1:])
        new[1:] |= offset[1:] != end[:-1]
        first = np.flatnonzero(new)  # first tensor of each stretch of adjacent ones
        stretch = np.cumsum(new) - 1
        span = (offset - offset[first][stretch]) // CHUNK  # a run starts within CHUNK bytes of its first tensor
        count = (np.arange(n) - first[stretch]) // _IOV_MAX
        new[1:] |= (span[1:] != span[:-1]) | (count[1:] != count[:-1])
        starts = np.flatnonzero(new).tolist()
        shards, offsets, ends = shard.tolist(), offset.tolist(), end.tolist()
        for a, b in zip(starts, [*starts[1:], n]):
            self._add_run(shards[a], offsets[a], ends[b - 1], names[a:b], crc[a:b], bufs[a:b])

    def _add_run(self, shard: int, start: int, end: int, names: Sequence[str], crcs: _Crcs, bufs: list[Any]) -> None:
        """Queue adjacent tensors filling ``start`` to ``end``: they join the shard's open run if
        they continue it, wait for :meth:`finish` if they come before its end (out of file
        order), else open a new run."""
        run = self._open.get(shard)
        f = run.file if run is not None else self._owner._file(shard, names[0])  # (names the first that needs it)
        if end > f.size:
            self._past_end(shard, start, names, bufs)
        if run is not None:
            if start == run.end and len(run.bufs) + len(bufs) <= _IOV_MAX and start - run.start < CHUNK:
                run.crcs.append(crcs)
                run.bufs += bufs
                run.end = end
                return
            if start < run.end and self._defer:
                pos = start
                for name, crc, buf in zip(names, crcs.tolist(), bufs):
                    self._late.append((shard, pos, name, buf.nbytes, crc, buf))
                    pos += buf.nbytes
                return
            self._close(run)  # (sorted, tensors start before the run's end only if they overlap)
        self._open[shard] = _Run(f, shard, start, end, crcs, bufs)

    def _past_end(self, shard: int, start: int, names: Sequence[str], bufs: list[Any]) -> None:
        """Report the first of adjacent tensors from ``start`` that lies past the end of its file."""
        pos = start
        for name, buf in zip(names, bufs):
            self._owner._data_file(name, BundleEntry(0, (), shard, pos, buf.nbytes, 0), f"tensor {name!r}")
            pos += buf.nbytes

    def _close(self, run: _Run) -> None:
        if run.end - run.start >= _POOL_RUN:
            self._big.append(run)
        elif self._hold:
            self._small.append(run)
        else:
            self._check(run, _read_run(run, self._verify))

    def _check(self, run: _Run, crcs: _Crcs | None) -> None:
        if crcs is None:
            return
        stored = run.stored()
        if np.array_equal(crcs, stored):
            return
        i = int(np.flatnonzero(crcs != stored)[0])
        offset = run.start + sum(b.nbytes for b in run.bufs[:i])
        e = BundleEntry(0, (), run.shard, offset, run.bufs[i].nbytes, int(stored[i]))
        self._owner._check_crc(e, None, self._owner._name_at(e, self._among), run.file, unmask(int(crcs[i])))

    def _close_open(self) -> None:
        for run in self._open.values():
            self._close(run)
        self._open = {}

    def finish(self) -> None:
        """Read what is still queued and check every CRC (DataLossError)."""
        self._close_open()
        if self._late:
            late = sorted(self._late, key=lambda t: (t[0], t[1]))
            self._late = []
            self._defer = False
            for shard, offset, name, size, crc, buf in late:
                self.add(shard, name, offset, size, crc, buf)
            self._close_open()
        big, self._big = self._big, []
        results: list[_Crcs | None] = [None] * len(big)
        if big:
            todo = self._todo = iter(range(len(big)))
            pool = crc_pool()
            self._pending = [pool.submit(_drain, big, todo, results, self._verify)
                             for _ in range(min(_WORKERS - 1, len(big)))]  # (and this thread: one per core)
        small, self._small = self._small, []
        for run in small:
            self._check(run, _read_run(run, self._verify))
        if big:
            _drain(big, todo, results, self._verify)  # (this thread takes runs too, then waits)
            for fut in self._pending:
                fut.result()
            self._pending = []
            for run, crcs in zip(big, results):
                self._check(run, crcs)

    def close(self) -> None:
        """Stop the workers and wait for them (after an error: nothing is checked)."""
        for _ in self._todo:  # (takes the runs no worker has begun: each stops after its current one)
            pass
        for fut in self._pending:
            fut.exception()
        self._pending = []
        self._big = []
        self._small = []
