"""Writing V2 tensor bundles: ``<prefix>.index`` plus ``<prefix>.data-NNNNN-of-MMMMM``.

Commit protocol (what makes a save atomic and crash-safe):

1. every data file is written under a temporary name
   (``<final>.tempstate<random>``) and, with ``sync=True``, fsynced;
2. the index is built in memory, written to its own temporary name and fsynced;
3. the data files are renamed into place, then the index -- **the index rename is
   the commit point**: a reader finds a checkpoint by its ``.index``, so it never
   sees a half-written one;
4. the directory is fsynced.

On any error every temporary file is removed and nothing is renamed.

With one shard and tensors added in sorted-name order, the output is
byte-identical to TensorFlow's ``SaveV2`` for the same tensors.
"""

from __future__ import annotations

import array
import errno
import functools
import io
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import repeat
from operator import attrgetter, is_, is_not, itemgetter
from typing import Any, NamedTuple, TypeVar

import numpy as np

from tfckpt._convert import framework_of, to_array, torch_adapter
from tfckpt._format.blocks import join_values, keys_increase, split_values
from tfckpt._format.coding import crc32c, mask, masked_crcs
from tfckpt._format.entries_bulk import encode_values
from tfckpt._format.entry import HEADER_KEY, BundleEntry, BundleHeader, encode_entry, entry_head, name_key
from tfckpt._format.slices import TensorSlice, encode_slice_key, parse_shape_and_slice
from tfckpt._format.strings import encode_strings
from tfckpt._format.table import TableWriter
from tfckpt._gcpause import paused_gc
from tfckpt._paths import as_path
from tfckpt._recovery import guard, recover_prefix
from tfckpt._storage import aside_name, fsync_dir, os_error, preallocate, remove_quietly, temp_name
from tfckpt.dtypes import DType
from tfckpt.errors import CheckpointError, InvalidArgumentError, UnimplementedError

__all__ = ["BundleWriter", "data_filename", "in_checkpoint", "index_filename", "sort_by_name"]

_BATCH = 8 << 20  # tensors are gathered into writes of about this many bytes
_PIPELINE = 1 << 20  # from this size on a batch's CRCs are computed in a thread while it is written
_PIECEWISE = 32 << 20  # from this size on a tensor is written in pieces, each once its CRC is done
_PIECE = 2 << 20  # bytes of such a piece: the worker's CRC of the next one keeps it in the CPU's cache
_IOV_MAX = 512  # buffers per writev (POSIX guarantees at least 16; Linux allows 1024)
_BULK_ENCODE = 64  # from this many tensors in a data file, their entries are encoded with numpy
_TAILS = 8192  # entries encoded by one numpy call
_ARRAYS = 256  # from this many tensors, add_arrays checks them list by list
_MAX_WRITE = 1 << 30  # bytes per write call (Linux writes at most 0x7ffff000 bytes per call)


# numpy dtypes whose C-contiguous arrays to_array returns unchanged -> their DType
_PLAIN: dict[np.dtype[Any], DType] = {}


def sort_by_name(items: list[Any], *, pairs: bool = True) -> None:
    """Sort ``(name, ...)`` tuples (or, with ``pairs=False``, names) in place by the UTF-8 bytes
    of the names: TensorFlow's key order.

    All-ASCII names sort as strings (the same order) without encoding each one.

    Example:
        >>> names = ["b", "\u00e9", "a", "Z"]
        >>> sort_by_name(names, pairs=False)
        >>> names
        ['Z', 'a', 'b', '\u00e9']
    """
    if "".join([it[0] for it in items] if pairs else items).isascii():
        items.sort(key=itemgetter(0) if pairs else None)
    elif pairs:
        items.sort(key=lambda it: name_key(it[0]))
    else:
        items.sort(key=name_key)


def _bytes_of(a: np.ndarray[Any, Any]) -> Any:
    """A buffer of the bytes of the C-contiguous array ``a``, without a copy: the array itself
    for numpy's own dtypes (``os.writev`` and ``crc32c`` take it as it is), a ``uint8`` view for
    the others (bfloat16, float8, int4 from ml_dtypes), which export no buffer."""
    return a if a.dtype.isbuiltin == 1 else a.reshape(-1).view(np.uint8)


def _byte_view(v: Any) -> memoryview:
    """``v`` (bytes or a buffer from :func:`_bytes_of`) as a memoryview of bytes, to slice by byte."""
    return memoryview(v) if isinstance(v, (bytes, bytearray, memoryview)) else v.reshape(-1).view(np.uint8).data


def _batches(sizes: list[int]) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of the batches :meth:`BundleWriter._write_shard` writes tensors of
    ``sizes`` bytes in (-1: a string tensor, alone in its batch): up to ``_IOV_MAX`` tensors
    of under 16 MiB in all, a tensor of ``_BATCH`` bytes or more alone; cut with numpy."""
    n = len(sizes)
    if n == 0:
        return
    nb = np.array(sizes, np.int64)
    alone = (nb < 0) | (nb >= _BATCH)
    nb[alone] = 0
    before = np.cumsum(nb) - nb  # bytes of the tensors (not alone) before each
    window = before // _BATCH
    count = np.arange(n) // _IOV_MAX
    new = np.empty(n, bool)
    new[0] = True
    new[1:] = (window[1:] != window[:-1]) | (count[1:] != count[:-1]) | alone[1:] | alone[:-1]
    starts = np.flatnonzero(new).tolist()
    yield from zip(starts, [*starts[1:], n])


# A data file's index entries: the keys, their encoded entries one after another, each entry's length.
_Entries = tuple[list[bytes], np.ndarray, np.ndarray]  # type: ignore[type-arg]


def _entries(shard: int, items: list[_Item], sizes: list[int], crcs: Sequence[int]) -> _Entries:
    """The index entries of ``items`` written one after another from the start of data shard
    ``shard``, with their byte sizes and masked CRC-32Cs."""
    keys = [it.key for it in items]
    if len(items) < _BULK_ENCODE:
        values = []
        pos = 0
        for it, size, crc in zip(items, sizes, crcs):
            values.append(encode_entry(it.enum, it.array.shape, shard, pos, size, crc))
            pos += size
        return _as_entries(keys, values)
    specs = [(it.enum, it.array.shape) for it in items]
    number = dict.fromkeys(specs, 0)  # each distinct (dtype, shape) -> its head's number
    for k, spec in enumerate(number):
        number[spec] = k
    heads = [entry_head(*spec) for spec in number]
    head_of = np.fromiter(map(number.__getitem__, specs), np.intp, len(specs))
    blobs, lengths = [], []
    pos = 0
    for a in range(0, len(items), _TAILS):  # (a chunk at a time: a matrix of _TAILS rows)
        blob, n = encode_values(heads, head_of[a : a + _TAILS], shard, pos, sizes[a : a + _TAILS],
                                crcs[a : a + _TAILS])
        blobs.append(blob)
        lengths.append(n)
        pos += sum(sizes[a : a + _TAILS])
    return keys, np.concatenate(blobs), np.concatenate(lengths)


def _as_entries(keys: list[bytes], values: list[bytes]) -> _Entries:
    """:data:`_Entries` of keys and their encoded entries."""
    return keys, *join_values(values)


def _pairs(entries: _Entries) -> list[tuple[bytes, bytes]]:
    """``(key, encoded entry)`` of each of ``entries``."""
    return list(zip(entries[0], split_values(entries[1], entries[2])))


def _write_views(f: Any, views: list[Any], sizes: list[int]) -> None:
    """Write every byte of ``views`` (buffers of ``sizes`` bytes) to the unbuffered file ``f``,
    resuming after short writes.

    A plain ``io.FileIO`` gets one ``writev`` per batch; any other file object
    (a wrapper, a test double) gets one ``write`` per view.
    """
    if type(f) is io.FileIO and len(views) > 1 and hasattr(os, "writev"):
        fd = f.fileno()
        if 0 in sizes:
            kept = [(v, k) for v, k in zip(views, sizes) if k]
            views, sizes = [v for v, _ in kept], [k for _, k in kept]
        bufs = list(views)
        left = list(sizes)  # bytes of each buffer not written yet
        i = 0
        while i < len(bufs):
            n = os.writev(fd, bufs[i : i + _IOV_MAX])
            if n <= 0:
                raise OSError(errno.EIO, "write made no progress")
            if n == sum(left[i : i + _IOV_MAX]):  # (the usual case: all of them)
                i += _IOV_MAX
                continue
            while n:
                if n >= left[i]:
                    n -= left[i]
                    i += 1
                else:  # a short write: resume inside this buffer
                    bufs[i] = _byte_view(bufs[i])[n:]
                    left[i] -= n
                    n = 0
        return
    for v, total in zip(views, sizes):
        mv = _byte_view(v)
        done = 0
        while done < total:
            n = f.write(mv[done : done + _MAX_WRITE])
            if n is None or n <= 0:
                raise OSError(errno.EIO, "write made no progress")
            done += n


def _write_in_pieces(f: Any, mv: memoryview, pool: ThreadPoolExecutor) -> int:
    """Write the big buffer ``mv`` to ``f`` in pieces of ``_PIECE`` bytes; return its CRC-32C.

    The worker computes the CRC of the piece after the one being written, and a piece is
    written only once its CRC is done: its bytes have just been read, so the write copies
    them from the CPU's cache, not from memory. Checksumming all of the buffer beside its
    write instead (as batches of smaller tensors are) has the two compete for memory
    bandwidth: a 2 GiB tensor took ~440 ms that way against ~370 ms in pieces, here.
    """
    n = mv.nbytes
    crc = crc32c(mv[:_PIECE])
    fut: Future[int] | None = None  # (after an error, the caller's pool.shutdown waits for it)
    for pos in range(0, n, _PIECE):
        if fut is not None:
            crc = fut.result()
        nxt = pos + _PIECE
        fut = pool.submit(crc32c, mv[nxt : nxt + _PIECE], crc) if nxt < n else None
        _write_views(f, [mv[pos:nxt]], [min(nxt, n) - pos])
    return crc


def data_filename(prefix: str, shard: int, num_shards: int) -> str:
    """``<prefix>.data-%05d-of-%05d``."""
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def index_filename(prefix: str) -> str:
    return f"{prefix}.index"


class _Item(NamedTuple):
    """One tensor added (a named tuple: saving 100,000 tensors builds 100,000 of them)."""

    key: bytes
    name: str
    dtype: DType
    enum: int  # dtype.as_datatype_enum
    array: np.ndarray[Any, Any]
    nbytes: int  # -1 for strings
    shard: int | None


_DT_STRING = 7
_ARRAY = attrgetter("array")
_NUMPY_DTYPE = attrgetter("dtype")


_EMPTY: np.ndarray[Any, Any] = np.zeros(0, np.uint8)
_new = tuple.__new__


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidArgumentError(f"tensor names must be str, got {type(name).__name__}: {name!r}")
    if name == "":
        raise InvalidArgumentError("tensor name must not be empty (the empty key is the bundle header)")
    if name.startswith("\x00"):
        raise InvalidArgumentError(f"tensor name {name!r} must not start with a NUL byte (reserved for slices)")
    return name


def in_checkpoint(e: CheckpointError, prefix: str) -> CheckpointError:
    """``e`` naming checkpoint ``prefix`` (message and ``path``), unless it names a file already."""
    if e.path is not None:
        return e
    return type(e)(f"{e.message} (writing checkpoint {prefix})", path=prefix, key=e.key)


_F = TypeVar("_F", bound=Callable[..., None])


def _names_checkpoint(method: _F) -> _F:
    """Make a :class:`BundleWriter` method's errors name the checkpoint (see :func:`in_checkpoint`)."""

    @functools.wraps(method)
    def wrapper(self: BundleWriter, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except CheckpointError as e:
            named = in_checkpoint(e, self.prefix)
            if named is e:
                raise
            raise named from None

    return wrapper  # type: ignore[return-value]


def _torch_as_numpy(values: list[Any]) -> list[Any]:
    """``values`` with every torch tensor as the numpy array :meth:`BundleWriter.add` would store
    (sharing its memory); ``values`` as they are if any is something else or cannot be stored
    (``add`` then reports it, in order)."""
    adapter, tensor = torch_adapter()
    if not all(map(isinstance, values, repeat(tensor))):
        return values
    try:
        return list(map(adapter.to_numpy, values))
    except CheckpointError:
        return values


def _learn_plain(dtypes: Iterable[np.dtype[Any]]) -> bool:
    """Add to ``_PLAIN`` those of ``dtypes`` whose arrays ``to_array`` returns unchanged (fixed
    size); whether any was added."""
    added = False
    for dt in dtypes:
        if dt not in _PLAIN:
            probe = np.empty(1, dt)
            try:
                dtype, arr = to_array(probe, "probe")
            except CheckpointError:
                continue
            if arr is probe and dtype.is_fixed_size:
                _PLAIN[dt] = dtype
                added = True
    return added


def _string_weight(arr: np.ndarray[Any, Any]) -> int:
    """About the bytes a string tensor takes in a data file (to balance shards)."""
    return sum(map(len, arr.reshape(-1).tolist())) + 5 * arr.size


class BundleWriter:
    """Collects tensors, then writes them as one bundle on :meth:`finish`.

    Example:
        >>> import numpy as np, tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> w = BundleWriter(os.path.join(d, "ckpt"))
        >>> w.add("w", np.array([1.0, 2.0], np.float32))
        >>> w.finish().endswith("ckpt")
        True
        >>> sorted(os.listdir(d))
        ['ckpt.data-00000-of-00001', 'ckpt.index']
    """

    def __init__(self, prefix: str, *, num_shards: int = 1, sync: bool = True, streaming: bool = False) -> None:
        """``streaming=True`` writes each tensor to the (single) data file as soon as it is added
        and keeps no reference to it, so memory stays at one tensor; the commit protocol is the
        same (temporary names until :meth:`finish`; :meth:`abort` or an exception in a ``with``
        block removes them)."""
        if not isinstance(num_shards, int) or num_shards < 1:
            raise InvalidArgumentError(f"num_shards must be a positive integer, got {num_shards!r}")
        if num_shards > 99999:
            raise InvalidArgumentError(f"num_shards must be at most 99999, got {num_shards}")
        if streaming and num_shards != 1:
            raise InvalidArgumentError("a streaming BundleWriter writes one data file: num_shards must be 1")
        self.prefix = as_path(prefix, "prefix")
        self.num_shards = num_shards
        self.sync = sync
        self._streaming = streaming
        self._stream_tmp: str | None = None
        self._token = secrets.randbits(64)  # (one for the save's temporaries: see tfckpt._recovery)
        self._stream_file: Any = None
        self._stream_keys: list[bytes] = []
        self._stream_values: list[bytes] = []  # (encoded entries)
        self._stream_offset = 0
        self._items: list[_Item] = []
        # Keys added so far, for the duplicate check: while they come in increasing order (the
        # usual case: callers add sorted names) only the last is needed; the set is built the
        # first time one does not.
        self._last_key = b""
        self._keys: set[bytes] | None = None
        # name -> (dtype, full shape, slices added so far)
        self._partitioned: dict[str, tuple[DType, tuple[int, ...], list[TensorSlice]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def _has_key(self, key: bytes) -> bool:
        if self._keys is None:
            if key > self._last_key:
                return False
            self._keys = {it.key for it in self._items}
        return key in self._keys

    def _append(self, key: bytes, name: str, value: object, shard: int | None) -> _Item:
        if self._has_key(key):
            raise InvalidArgumentError(f"Adding duplicate key: {name!r}")
        dtype: DType | None = None
        if type(value) is np.ndarray and value.flags.c_contiguous:
            dtype = _PLAIN.get(value.dtype)  # an array to_array would return as is
            arr = value
        if dtype is None:
            dtype, arr = to_array(value, name)
            if arr is value and dtype.is_fixed_size and type(value) is np.ndarray:
                _PLAIN[value.dtype] = dtype
        enum = dtype.as_datatype_enum
        if enum in (20, 21):
            raise UnimplementedError(f"tensor {name!r}: {dtype.name} tensors cannot be stored in a checkpoint")
        if shard is not None and not 0 <= shard < self.num_shards:
            raise InvalidArgumentError(f"tensor {name!r}: shard {shard} is not in [0, {self.num_shards})")
        nbytes = -1 if enum == _DT_STRING else arr.nbytes  # (strings: weighed only to balance shards)
        item = _Item(key, name, dtype, enum, arr, nbytes, shard)
        if self._keys is None:
            self._last_key = key
        else:
            self._keys.add(key)
        if self._streaming:
            self._stream(item)
            item = item._replace(array=_EMPTY)  # written: drop the reference
        self._items.append(item)
        return item

    def _open_stream(self) -> Any:
        if self._stream_file is None:
            d = os.path.dirname(self.prefix)
            try:
                if d:
                    os.makedirs(d, exist_ok=True)
                self._stream_tmp = temp_name(data_filename(self.prefix, 0, 1), self._token)
                self._stream_file = open(self._stream_tmp, "wb", buffering=0)  # noqa: SIM115 (closed in finish/abort)
            except OSError as e:
                raise os_error(e, self._stream_tmp or d, "cannot create") from None
        return self._stream_file

    def _stream(self, it: _Item) -> None:
        self._open_stream()
        view: Any
        if it.enum == _DT_STRING:
            view, crc = encode_strings(it.array.reshape(-1).tolist())
            size = len(view)
        else:
            view = _bytes_of(it.array)
            crc = mask(crc32c(view))
            size = it.array.nbytes
        try:
            _write_views(self._stream_file, [view], [size])
        except OSError as e:
            self.abort()
            raise os_error(e, self._stream_tmp or "", "cannot write") from None
        self._stream_keys.append(it.key)
        self._stream_values.append(encode_entry(it.enum, it.array.shape, 0, self._stream_offset, size, crc))
        self._stream_offset += size

    def abort(self) -> None:
        """Give up: remove what a streaming writer wrote so far (a no-op otherwise)."""
        f, self._stream_file = self._stream_file, None
        if f is not None:
            f.close()
        if self._stream_tmp is not None:
            remove_quietly(self._stream_tmp)
            self._stream_tmp = None

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()

    @_names_checkpoint
    def add(self, name: str, value: object, *, shard: int | None = None) -> None:
        """Add a whole tensor. ``shard`` pins it to a data file; by default shards are balanced by bytes."""
        name = _check_name(name)
        if name in self._partitioned:
            raise InvalidArgumentError(f"Adding duplicate key: {name!r} (already added as slices)")
        self._append(name_key(name), name, value, shard)

    @_names_checkpoint
    def add_many(self, pairs: Iterable[tuple[str, object]]) -> None:
        """:meth:`add` each ``(name, value)`` in turn (with the same checks and errors).

        The common case costs about half as much: str names in increasing order, and values
        that are C-contiguous numpy arrays of numpy's own dtypes (or CPU torch tensors).

        Example:
            >>> import numpy as np, tempfile, os
            >>> w = BundleWriter(os.path.join(tempfile.mkdtemp(), "ckpt"))
            >>> w.add_many([("a", np.zeros(2)), ("b", "text")])
            >>> len(w)
            2
        """
        items = self._items
        plain = _PLAIN
        last = self._last_key
        fast = self._keys is None and not self._streaming and not self._partitioned
        tensor: Any = None  # torch.Tensor, once a torch value comes
        for name, value in pairs:
            if type(value) is not np.ndarray and (tensor is not None or framework_of(value) == "torch"):
                if tensor is None:
                    adapter, tensor = torch_adapter()
                    tensor_to_numpy = adapter.to_numpy
                if isinstance(value, tensor):
                    try:
                        value = tensor_to_numpy(value)  # (what add would do: shares the tensor's memory)
                    except CheckpointError:
                        pass  # (add raises it again, naming the tensor)
            if fast and type(name) is str and name and name[0] != "\x00" and type(value) is np.ndarray:
                key = name_key(name)  # (raises what add would for a name UTF-8 cannot encode)
                if key > last and value.flags.c_contiguous and (dtype := plain.get(value.dtype)) is not None:
                    items.append(_new(_Item, (key, name, dtype, dtype._enum, value, value.nbytes, None)))
                    last = key
                    continue
            self._last_key = last
            self.add(name, value)
            last = self._last_key
            fast = self._keys is None and not self._streaming and not self._partitioned
        self._last_key = last

    @_names_checkpoint
    def add_arrays(self, names: list[str], values: list[object]) -> None:
        """:meth:`add_many` of ``zip(names, values)``, with the checks done by whole lists where
        it can: str names in increasing order and C-contiguous numpy arrays of numpy's own
        dtypes cost a few C-level passes over the lists, not a Python step per tensor.

        Example:
            >>> import numpy as np, tempfile, os
            >>> w = BundleWriter(os.path.join(tempfile.mkdtemp(), "ckpt"))
            >>> w.add_arrays(["a", "b"], [np.zeros(2), "text"])
            >>> len(w)
            2
        """
        if len(names) < _ARRAYS:
            self.add_many(zip(names, values))
            return
        if type(values[0]) is not np.ndarray and framework_of(values[0]) == "torch":
            values = _torch_as_numpy(values)
        if not self._add_plain(names, values):
            self.add_many(zip(names, values))

    def _add_plain(self, names: list[str], values: list[Any]) -> bool:
        """:meth:`add_arrays` when every name is a str past the last key added, in increasing
        order, without NUL bytes, and every value a C-contiguous numpy array whose dtype is
        in ``_PLAIN``; False (nothing added) otherwise."""
        if self._keys is not None or self._streaming or self._partitioned or len(names) != len(values):
            return False
        if any(map(is_not, map(type, names), repeat(str))) or any(map(is_not, map(type, values), repeat(np.ndarray))):
            return False
        joined = "\x00".join(names)
        if joined.count("\x00") != len(names) - 1:  # (a NUL in a name)
            return False
        try:
            keys = joined.encode("utf-8", "surrogateescape").split(b"\x00")
        except UnicodeEncodeError:  # (add reports it)
            return False
        if keys[0] <= self._last_key or not keys_increase(keys):  # (also rejects an empty name: b"" is first)
            return False
        dtypes = list(map(_PLAIN.get, map(_NUMPY_DTYPE, values)))
        if any(map(is_, dtypes, repeat(None))) and _learn_plain(set(map(_NUMPY_DTYPE, values))):
            dtypes = list(map(_PLAIN.get, map(_NUMPY_DTYPE, values)))
        if any(map(is_, dtypes, repeat(None))) or not all(map(attrgetter("flags.c_contiguous"), values)):
            return False
        self._items += map(_new, repeat(_Item), zip(keys, names, dtypes, map(attrgetter("_enum"), dtypes), values,
                                                   map(attrgetter("nbytes"), values), repeat(None)))
        self._last_key = keys[-1]
        return True

    @_names_checkpoint
    def add_slice(
        self,
        name: str,
        full_shape: Sequence[int],
        slice_spec: str | TensorSlice,
        value: object,
        *,
        shard: int | None = None,
    ) -> None:
        """Add one slice of a partitioned tensor of ``full_shape``.

        ``slice_spec`` is TensorFlow's slice string (``"0,3:-"``) or a TensorSlice.
        A slice that covers the whole tensor is stored as a plain tensor, as TensorFlow does.
        """
        name = _check_name(name)
        shape = tuple(int(d) for d in full_shape)
        sl = TensorSlice.parse(slice_spec) if isinstance(slice_spec, str) else slice_spec
        want = sl.shape_in(shape)
        dtype, arr = to_array(value, name)
        if tuple(arr.shape) != want:
            raise InvalidArgumentError(
                f"slice {sl.spec()} of {name!r} has shape {list(want)} but the value has shape {list(arr.shape)}"
            )
        if sl.is_full(shape):
            self.add(name, arr, shard=shard)
            return
        if self._has_key(name_key(name)):
            raise InvalidArgumentError(f"Adding duplicate key: {name!r}")
        prev = self._partitioned.get(name)
        if prev is None:
            prev = (dtype, shape, [])
            self._partitioned[name] = prev
        elif prev[0] != dtype or prev[1] != shape:
            raise InvalidArgumentError(
                f"slices of {name!r} disagree: {prev[0].name}{list(prev[1])} vs {dtype.name}{list(shape)}"
            )
        self._append(encode_slice_key(name_key(name), sl), name, arr, shard)
        prev[2].append(sl)

    @_names_checkpoint
    def add_shape_and_slice(self, name: str, shape_and_slice: str, value: object) -> None:
        """Add a tensor the way ``SaveV2`` takes it: ``""`` for whole, else ``"5 2 0,3:0,2"``."""
        parsed = parse_shape_and_slice(shape_and_slice)
        if parsed is None:
            self.add(name, value)
        else:
            self.add_slice(name, parsed[0], parsed[1], value)

    # -- writing ---------------------------------------------------------

    def _plan(self) -> list[list[_Item]]:
        shards: list[list[_Item]] = [[] for _ in range(self.num_shards)]
        if self.num_shards == 1:
            shards[0] = list(self._items)
            return shards
        load = [0] * self.num_shards
        assigned: dict[int, int] = {}
        weight = {id(it): it.nbytes if it.nbytes >= 0 else _string_weight(it.array) for it in self._items}
        for it in self._items:
            if it.shard is not None:
                assigned[id(it)] = it.shard
                load[it.shard] += weight[id(it)]
        for it in sorted((i for i in self._items if i.shard is None), key=lambda i: -weight[id(i)]):
            s = min(range(self.num_shards), key=load.__getitem__)
            assigned[id(it)] = s
            load[s] += weight[id(it)]
        for it in self._items:  # keep the order of addition inside each shard
            shards[assigned[id(it)]].append(it)
        return shards

    def _write_shard(self, shard: int, items: list[_Item], tmp: str) -> _Entries:
        """Write ``items`` to ``tmp`` in order; return their index entries.

        Tensors are written straight from their buffers (no copies), in batches of about
        8 MiB (at most ``_IOV_MAX`` tensors) with one ``writev`` each; while a batch is
        written, a worker thread computes its CRC-32Cs (both release the GIL). A string
        tensor (encoded when its turn comes) or a tensor of 8 MiB or more is a batch of
        its own; one of ``_PIECEWISE`` bytes or more is written by :func:`_write_in_pieces`.
        The entries are encoded together at the end.
        """
        sizes = [it.nbytes for it in items]  # (-1 for strings until they are encoded)
        # Whether every array exports its own bytes (numpy's own dtypes: not bfloat16 and the like).
        plain = all(dt.isbuiltin == 1 for dt in set(map(_NUMPY_DTYPE, map(_ARRAY, items))))
        crcs = array.array("I")  # masked CRC-32C of each (4 bytes each, not a Python int)
        pool: ThreadPoolExecutor | None = None
        try:
            f = open(tmp, "wb", buffering=0)  # noqa: SIM115 (closed by the with below)
        except OSError as e:
            raise os_error(e, tmp, "cannot create") from None
        try:
            with f:
                preallocate(f.fileno(), sum(sizes) + sizes.count(-1))  # (the bytes known before strings are encoded)
                for a, b in _batches(sizes):
                    if sizes[a] < 0:  # a string tensor
                        view, crc = encode_strings(items[a].array.reshape(-1).tolist())
                        sizes[a] = len(view)
                        _write_views(f, [view], sizes[a : a + 1])
                        crcs.append(crc)
                        continue
                    views = list(map(_ARRAY, items[a:b])) if plain else [_bytes_of(it.array) for it in items[a:b]]
                    if sum(sizes[a:b]) >= _PIPELINE:
                        if pool is None:
                            pool = ThreadPoolExecutor(1, thread_name_prefix="tfckpt-crc")
                        if b - a == 1 and sizes[a] >= _PIECEWISE:
                            crcs.append(mask(_write_in_pieces(f, _byte_view(views[0]), pool)))
                            continue
                        fut = pool.submit(masked_crcs, views)
                        try:
                            _write_views(f, views, sizes[a:b])
                        finally:
                            crcs.extend(fut.result())
                    else:
                        crcs.extend(masked_crcs(views))
                        _write_views(f, views, sizes[a:b])
                if self.sync:
                    os.fsync(f.fileno())
        except OSError as e:
            raise os_error(e, tmp, "cannot write") from None
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return _entries(shard, items, sizes, crcs)

    def finish(self) -> str:
        """Write the data files and the index; return the prefix.

        Raises:
            ResourceExhaustedError: the disk filled up (nothing is left behind).
            PermissionDeniedError, InternalError: other I/O failures.
        """
        with paused_gc():
            return self._finish()

    def _finish(self) -> str:
        prefix = self.prefix
        d = os.path.dirname(prefix)
        if d:
            try:
                os.makedirs(d, exist_ok=True)
            except OSError as e:
                raise os_error(e, d, "cannot create directory") from None
        finals = [data_filename(prefix, s, self.num_shards) for s in range(self.num_shards)]
        temps = [temp_name(f, self._token) for f in finals]
        index_final = index_filename(prefix)
        index_tmp = temp_name(index_final, self._token)
        old_index = aside_name(index_final, self._token)  # (an earlier checkpoint's index, while rewriting)
        replacing = rewriting = False
        guard_fd: int | None = None
        renamed: list[str] = []
        if self._streaming:
            self._open_stream()  # an empty bundle still has its (empty) data file
            assert self._stream_tmp is not None
            temps = [self._stream_tmp]
        try:
            if self._streaming:
                f_stream, self._stream_file = self._stream_file, None
                try:
                    if self.sync:
                        os.fsync(f_stream.fileno())
                finally:
                    f_stream.close()
                results = [_as_entries(self._stream_keys, self._stream_values)]
            elif self.num_shards == 1:
                plan = self._plan()
                results = [self._write_shard(0, plan[0], temps[0])]
            else:
                plan = self._plan()
                workers = min(self.num_shards, os.cpu_count() or 2, 8)
                with ThreadPoolExecutor(workers, thread_name_prefix="tfckpt-shard") as pool:
                    futures = [pool.submit(self._write_shard, s, plan[s], temps[s]) for s in range(self.num_shards)]
                    results = [fut.result() for fut in futures]
            index = self._build_index(results)
            try:
                with open(index_tmp, "wb") as f:
                    f.write(index)
                    if self.sync:
                        f.flush()
                        os.fsync(f.fileno())
            except OSError as e:
                raise os_error(e, index_tmp, "cannot write") from None
            # Rewriting a prefix with its shard count: its old index goes aside first, so that no
            # instant has the old index naming new data; killed before the first data rename, the
            # old checkpoint is put back, after it the save is finished, by the next read or save
            # (tfckpt._recovery; the guard tells a live save from a killed one). Another shard
            # count overwrites none of the old files: the index rename swaps whole checkpoints.
            rewriting = os.path.exists(index_final) or (  # (an earlier killed re-save first, if data of
                os.path.exists(finals[0]) and recover_prefix(prefix))  # the prefix is there: no listing per new save)
            replacing = rewriting and os.path.exists(finals[0])
            if replacing:
                guard_fd = guard(index_tmp)
                try:
                    os.replace(index_final, old_index)
                except OSError as e:
                    raise os_error(e, index_final, "cannot move aside") from None
                if self.sync:
                    fsync_dir(d)
            for tmp, final in zip(temps, finals):
                try:
                    os.replace(tmp, final)
                except OSError as e:
                    raise os_error(e, final, "cannot rename into") from None
                renamed.append(final)
            try:
                os.replace(index_tmp, index_final)
            except OSError as e:
                raise os_error(e, index_final, "cannot rename into") from None
        except BaseException:
            self._stream_tmp = None
            if not (renamed and replacing):  # (else the old checkpoint is partly overwritten and the
                self._undo(renamed, replacing, old_index, index_final, [*temps, index_tmp])  # new whole:
            raise  # left for the next read or save to finish, as after a kill)
        finally:
            if guard_fd is not None:
                os.close(guard_fd)
        if replacing:
            remove_quietly(old_index)
        if rewriting:  # (only a rewritten prefix can have an earlier checkpoint's shards: no listing per new save)
            remove_stale_shards(prefix, self.num_shards)
        if self.sync:
            fsync_dir(d)
        return prefix

    @staticmethod
    def _undo(renamed: list[str], replacing: bool, old_index: str, index_final: str, temps: list[str]) -> None:
        """A failed save's files go; an old index moved aside goes back first (if that fails,
        the temporaries stay, for a recovery to put it back)."""
        for r in renamed:  # (new names: another shard count, or a first save)
            remove_quietly(r)
        if replacing and os.path.exists(old_index):
            try:
                os.replace(old_index, index_final)
            except OSError:
                return
        for t in temps:
            remove_quietly(t)

    def _build_index(self, results: list[_Entries]) -> bytes:
        w = TableWriter()
        w.add(HEADER_KEY, BundleHeader(num_shards=self.num_shards).encode())
        if len(results) == 1 and not self._partitioned and self._keys is None:
            w.add_columns(*results[0])  # (one data file, every key added after the last: the usual case)
            return w.finish()
        entries = [kv for shard_entries in results for kv in _pairs(shard_entries)]
        for name, (dtype, shape, slices) in self._partitioned.items():
            entries.append((name_key(name),
                            BundleEntry(dtype.as_datatype_enum, shape, slices=tuple(slices)).encode()))
        entries.sort(key=itemgetter(0))  # (keys are unique)
        w.add_many(entries)
        return w.finish()


def remove_stale_shards(prefix: str, num_shards: int) -> None:
    """Remove data files of an earlier checkpoint at ``prefix`` with another shard count
    (``prefix.data-00000-of-00004`` once a one-shard save replaced it): the new index,
    committed already, names none of them, and nothing else would ever remove them."""
    d, base = os.path.split(prefix)
    lead = base + ".data-"
    try:
        names = [n for n in os.listdir(d or ".") if n.startswith(lead)]
    except OSError:
        return
    for n in names:
        tail = n[len(lead):]  # NNNNN-of-MMMMM
        if len(tail) == 14 and tail[5:9] == "-of-" and tail[:5].isdigit() and tail[9:].isdigit() \
                and int(tail[9:]) != num_shards:
            remove_quietly(os.path.join(d, n))
