"""Reading tensor bytes fast: big tensors in parallel parts, small ones in runs.

Both ``pread``/``preadv`` and ``crc32c`` release the GIL, so worker threads read and
checksum while the calling thread decodes the index and lays out the next runs.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from tfckpt._format.coding import crc32c, masked_crcs, unmask
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


class _Run:
    """Adjacent tensors of one data file, read with one ``preadv``."""

    __slots__ = ("bufs", "end", "entries", "file", "names", "start")

    def __init__(self, f: LocalFile, name: str, e: BundleEntry, buf: np.ndarray[Any, Any]) -> None:
        self.file = f
        self.start = e.offset
        self.end = e.offset + e.size
        self.names = [name]
        self.entries = [e]
        self.bufs: list[Any] = [buf]  # numpy arrays: preadv and crc32c take any buffer


def _read_run(f: LocalFile, run: _Run, verify: bool) -> list[int]:
    """Fill the run's buffers (one ``preadv``); their masked CRC-32Cs if ``verify``."""
    f.readinto_many(run.start, run.bufs, run.end - run.start)
    return masked_crcs(run.bufs) if verify else []


class RunQueue:
    """Reads fixed-size tensors straight into their destination arrays, in runs of adjacent ones,
    while the caller is still laying out the next ones.

    :meth:`add` tensors in any order. Those that continue the open run of their data file
    join it; a run is read once it holds about 1 MiB or 1024 tensors, by a worker thread
    if it is big enough to pay for one. Tensors that come out of file order are kept and
    read, sorted by place, in :meth:`finish`, which also waits for every worker and checks
    every CRC. :meth:`close` (always call it, e.g. in ``finally``) never returns while a
    worker may still write into a destination.
    """

    def __init__(self, owner: _Owner, *, verify: bool) -> None:
        self._owner = owner
        self._verify = verify
        self._open: dict[int, _Run] = {}
        self._late: list[tuple[int, int, str, BundleEntry, np.ndarray[Any, Any]]] = []
        self._pending: deque[tuple[LocalFile, _Run, Future[list[int]]]] = deque()
        self._defer = True  # keep tensors that come out of file order for later (False once sorted)

    def add(self, shard: int, name: str, e: BundleEntry, buf: np.ndarray[Any, Any]) -> None:
        """Queue tensor ``name`` (entry ``e`` in data shard ``shard``) to be read into ``buf``
        (C-contiguous, exactly ``e.size`` bytes: the caller checks it)."""
        run = self._open.get(shard)
        if run is not None:
            off = e.offset
            if off == run.end and len(run.bufs) < _IOV_MAX and off - run.start < CHUNK:
                run.names.append(name)
                run.entries.append(e)
                run.bufs.append(buf)
                run.end = off + e.size
                return
            if off < run.end and self._defer:
                self._late.append((shard, off, name, e, buf))
                return
            self._flush(run)  # (sorted, a tensor starts before the run's end only if they overlap)
        # A missing data file is reported for the first tensor that needs it.
        self._open[shard] = _Run(self._owner._file(shard, name), name, e, buf)

    def _flush(self, run: _Run) -> None:
        f = run.file
        if run.end > f.size:
            for name, e in zip(run.names, run.entries):
                self._owner._data_file(name, e, f"tensor {name!r}")  # names the first tensor past the end
        if run.end - run.start >= _POOL_RUN:
            self._pending.append((f, run, crc_pool().submit(_read_run, f, run, self._verify)))
            self._collect(wait=False)
        else:
            self._check(f, run, _read_run(f, run, self._verify))

    def _collect(self, *, wait: bool) -> None:
        """Check the CRCs of the runs workers have read (all of them, waiting, if ``wait``)."""
        pending = self._pending
        while pending and (wait or pending[0][2].done()):
            f, run, fut = pending[0]
            crcs = fut.result()
            pending.popleft()
            self._check(f, run, crcs)

    def _check(self, f: LocalFile, run: _Run, crcs: list[int]) -> None:
        for name, e, crc in zip(run.names, run.entries, crcs):
            if crc != e.crc32c:
                self._owner._check_crc(e, None, name, f, unmask(crc))

    def finish(self) -> None:
        """Read what is still queued, wait for the workers and check every CRC (DataLossError)."""
        for run in self._open.values():
            self._flush(run)
        self._open = {}
        if self._late:
            late = sorted(self._late, key=lambda t: (t[0], t[1]))
            self._late = []
            self._defer = False
            for shard, _, name, e, buf in late:
                self.add(shard, name, e, buf)
            for run in self._open.values():
                self._flush(run)
            self._open = {}
        self._collect(wait=True)

    def close(self) -> None:
        """Cancel or wait for every run still with a worker (after an error: nothing is checked)."""
        for _, _, fut in self._pending:
            if not fut.cancel():
                fut.exception()
        self._pending.clear()
