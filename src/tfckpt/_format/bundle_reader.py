"""Reading V2 tensor bundles lazily.

Opening reads only ``<prefix>.index``. Each tensor read touches only that
tensor's bytes (``pread`` into the destination array, or an mmap view with
``copy=False``) and checks its CRC-32C unless told not to.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from tfckpt._format.bulk_reads import BulkReads
from tfckpt._format.coding import crc32c, unmask
from tfckpt._format.entry import HEADER_KEY, BundleEntry, BundleHeader
from tfckpt._format.runs import readinto_crc
from tfckpt._format.slices import TensorSlice, encode_slice_key
from tfckpt._format.strings import decode_strings
from tfckpt._format.table import TableReader
from tfckpt._gcpause import paused_gc
from tfckpt._storage import LocalFile, read_whole_file
from tfckpt.dtypes import DType, dtype_from_enum
from tfckpt.errors import (
    DataLossError,
    InvalidArgumentError,
    InvalidTypeError,
    NotFoundError,
    TensorNotFoundError,
    UnimplementedError,
)

__all__ = ["BundleReader"]

# Consumer version implemented here (kTensorBundleVersion).
_CONSUMER = 1


def _check_out(prefix: str, name: str, e: BundleEntry, dt: DType, out: np.ndarray[Any, Any], npd: np.dtype[Any],
               *, contiguous: bool) -> None:
    """Raise unless ``out`` can receive tensor ``name``: same shape and dtype, writeable (and C-contiguous)."""
    if not isinstance(out, np.ndarray):
        raise InvalidArgumentError(
            f"cannot read {name!r} ({dt.name}{list(e.shape)}) of checkpoint {prefix} into a "
            f"{type(out).__name__}: destinations must be numpy arrays", key=name, path=prefix)
    flags = out.flags
    if out.shape != e.shape or out.dtype != npd or not flags.writeable or (contiguous and not flags.c_contiguous):
        need = "C-contiguous and writeable" if contiguous else "writeable"
        raise InvalidArgumentError(
            f"cannot read {name!r} ({dt.name}{list(e.shape)}) of checkpoint {prefix} into an array of "
            f"{out.dtype}{list(out.shape)} (must match and be {need})",
            key=name,
            path=prefix,
        )


class BundleReader(BulkReads):
    """A V2 bundle opened for reading.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from tfckpt._format.bundle_writer import BundleWriter
        >>> p = os.path.join(tempfile.mkdtemp(), "ckpt")
        >>> w = BundleWriter(p); w.add("w", np.arange(3, dtype=np.int64)); _ = w.finish()
        >>> r = BundleReader(p)
        >>> r.names(), r.read("w")
        (['w'], array([0, 1, 2]))
    """

    def __init__(self, prefix: str, *, verify_crc: bool = True, index_bytes: bytes | None = None) -> None:
        self.prefix = prefix
        self.verify_crc = verify_crc
        self.index_path = f"{prefix}.index"
        data = index_bytes if index_bytes is not None else read_whole_file(self.index_path)
        self._table = TableReader(data, path=self.index_path)
        first = self._table.first()
        if first is None or first[0] != HEADER_KEY:
            raise DataLossError(f"{self.index_path}: the bundle header entry is missing", path=self.index_path)
        self.header = BundleHeader.decode(first[1], path=self.index_path)
        h = self.header
        if h.producer < 0 or h.min_consumer > _CONSUMER or _CONSUMER in h.bad_consumers:
            raise DataLossError(
                f"{self.index_path}: bundle version producer={h.producer} min_consumer={h.min_consumer} "
                f"is not readable by this version of tfckpt (consumer {_CONSUMER})",
                path=self.index_path,
            )
        if not 1 <= h.num_shards <= 99999:
            raise DataLossError(f"{self.index_path}: invalid shard count {h.num_shards}", path=self.index_path)
        self._files: dict[int, LocalFile] = {}
        self._names: list[str] | None = None
        self._entries: dict[str, BundleEntry] = {}
        self._raw: dict[str, bytes] = {}
        self._slice_sets: dict[str, frozenset[TensorSlice]] = {}
        self._misses = 0

    # -- index -----------------------------------------------------------

    def names(self) -> list[str]:
        """Every tensor name in key order (slice keys excluded)."""
        if self._names is None:
            names = []
            raw: dict[str, bytes] = {}
            with paused_gc():
                for key, value in self._table.items():
                    if key and key[0] != 0:
                        name = key.decode("utf-8", "surrogateescape")
                        names.append(name)
                        raw[name] = value
            self._names = names
            self._raw = raw  # later entry() lookups skip the table search
        return self._names

    def raw_entries(self) -> Iterator[tuple[bytes, BundleEntry]]:
        """Every index entry but the header, in key order, slice entries included."""
        for key, value in self._table.items():
            if key != HEADER_KEY:
                yield key, BundleEntry.decode(value, key=key.decode("utf-8", "replace"), path=self.index_path)

    def entry(self, name: str) -> BundleEntry:
        """The index entry of ``name`` (decoded once, then cached).

        Raises:
            TensorNotFoundError: no such tensor.
        """
        e = self._entries.get(name)
        if e is None:
            e = self._entries[name] = self._lookup(name)
        return e

    def _lookup(self, name: str) -> BundleEntry:
        """Find and decode the entry of ``name`` (not cached)."""
        raw = self._raw.get(name)
        if raw is None and self._names is None:
            self._misses += 1
            if self._misses > 64:  # reading many tensors: decode the key index once
                self.names()
                raw = self._raw.get(name)
        if raw is None:
            if not isinstance(name, str):
                raise InvalidTypeError(f"a tensor name must be a str, got {type(name).__name__}: {name!r:.80} "
                                       f"(reading checkpoint {self.prefix})", path=self.prefix)
            key = name.encode("utf-8", "surrogateescape")
            raw = self._table.get(key) if key and key[0] != 0 else None
        if raw is None:
            raise TensorNotFoundError(f"Key {name} not found in checkpoint", key=name, path=self.prefix)
        return BundleEntry.decode(raw, key=name, path=self.index_path)

    def has(self, name: str) -> bool:
        try:
            self.entry(name)
        except TensorNotFoundError:
            return False
        return True

    def dtype(self, name: str) -> DType:
        return dtype_from_enum(self.entry(name).dtype)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entry(name).shape

    # -- data ------------------------------------------------------------

    def _file(self, shard: int, key: str) -> LocalFile:
        f = self._files.get(shard)
        if f is None:
            n = self.header.num_shards
            if not 0 <= shard < n:
                raise DataLossError(
                    f"{self.index_path}: tensor {key!r} names data shard {shard} but the bundle has {n} shards",
                    path=self.index_path,
                    key=key,
                )
            path = f"{self.prefix}.data-{shard:05d}-of-{n:05d}"
            try:
                f = LocalFile(path)
            except NotFoundError:
                raise NotFoundError(
                    f"Data file {path} of checkpoint {self.prefix} is missing (needed for tensor {key!r})",
                    path=path,
                    key=key,
                ) from None
            self._files[shard] = f
        return f

    def _data_file(self, name: str, e: BundleEntry, what: str) -> LocalFile:
        """The data file holding ``e``'s bytes, checked to be long enough for them."""
        f = self._file(e.shard_id, name)
        if e.offset + e.size > f.size:
            raise DataLossError(
                f"{f.path}: {what} claims bytes [{e.offset}, {e.offset + e.size}) but the file has {f.size} bytes "
                f"(truncated data file, or a shard from another checkpoint)",
                path=f.path,
                key=name,
                offset=e.offset,
            )
        return f

    def _check_crc(self, e: BundleEntry, data: Any, name: str, f: LocalFile, actual: int | None = None) -> None:
        if actual is None:
            actual = crc32c(data)
        if actual != unmask(e.crc32c):
            raise DataLossError(
                f"Checksum does not match for tensor {name!r} in {f.path} at offset {e.offset} "
                f"(stored {unmask(e.crc32c):#010x}, computed {actual:#010x})",
                path=f.path,
                key=name,
                offset=e.offset,
            )

    def _read_entry(self, name: str, e: BundleEntry, *, copy: bool = True,
                    out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        dt = dtype_from_enum(e.dtype)
        n = e.num_elements
        if dt.as_datatype_enum == 21:
            raise UnimplementedError(f"tensor {name!r} is a DT_VARIANT tensor, which tfckpt cannot decode", key=name)
        if not dt.is_fixed_size and not dt.is_string:
            raise UnimplementedError(f"tensor {name!r} has dtype {dt.name}, which cannot be read", key=name)
        if e.size == 0 and (n == 0 or not dt.is_string):
            if n != 0:
                raise DataLossError(f"{self.index_path}: tensor {name!r} has {n} elements but 0 bytes",
                                    path=self.index_path, key=name)
            if e.crc32c and self.verify_crc and unmask(e.crc32c) != 0:
                raise DataLossError(f"{self.index_path}: checksum mismatch for empty tensor {name!r}",
                                    path=self.index_path, key=name)
            if dt.is_string:
                return self._fill(name, e, dt, np.empty(e.shape, dtype=object), out)
            return self._fill(name, e, dt, np.zeros(e.shape, dtype=dt.numpy_dtype), out)
        f = self._data_file(name, e, f"tensor {name!r}")
        if dt.is_string:
            raw = f.read(e.offset, e.size)
            strings = decode_strings(raw, n, e.crc32c if self.verify_crc else None,
                                     where=f" {name!r} in {f.path} at offset {e.offset}",
                                     path=f.path, key=name, offset=e.offset)
            arr_s = np.empty(len(strings), dtype=object)
            arr_s[:] = strings
            return self._fill(name, e, dt, arr_s.reshape(e.shape), out)
        if not copy and out is None:
            npd = self._check_size(name, e, dt)
            view = f.view(e.offset, e.size)
            if self.verify_crc:
                self._check_crc(e, view, name, f)
            arr = np.frombuffer(view, dtype=npd, count=n).reshape(e.shape)
            if self.header.big_endian:
                arr = arr.byteswap()
            return arr
        dest = self._dest(name, e, dt, out)
        mv = dest.reshape(-1).view(np.uint8).data
        if self.verify_crc:
            self._check_crc(e, mv, name, f, readinto_crc(f, e.offset, mv))
        else:
            f.readinto(e.offset, mv)
        if self.header.big_endian and dest.itemsize > 1:
            dest.byteswap(inplace=True)
        return dest

    def _fill(self, name: str, e: BundleEntry, dt: DType, value: np.ndarray[Any, Any],
              out: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any]:
        """``value``, or ``out`` filled with it (strings and empty tensors, which are not read in place)."""
        if out is None:
            return value
        _check_out(self.prefix, name, e, dt, out, value.dtype, contiguous=False)
        out[...] = value
        return out

    def _check_size(self, name: str, e: BundleEntry, dt: DType) -> np.dtype[Any]:
        """The numpy dtype of fixed-size entry ``e``, after checking its byte size against its shape."""
        npd = dt.numpy_dtype
        need = math.prod(e.shape) * npd.itemsize
        if e.size != need:
            raise DataLossError(
                f"{self.index_path}: tensor {name!r} of dtype {dt.name} and shape {list(e.shape)} needs "
                f"{need} bytes but its entry says {e.size}",
                path=self.index_path,
                key=name,
            )
        return npd

    def _dest(self, name: str, e: BundleEntry, dt: DType, out: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any]:
        """A new array for fixed-size entry ``e``, or ``out`` once checked to fit it exactly."""
        npd = self._check_size(name, e, dt)
        if out is None:
            return np.empty(e.shape, dtype=npd)
        _check_out(self.prefix, name, e, dt, out, npd, contiguous=True)
        return out

    def read(self, name: str, *, copy: bool = True, out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """Read a whole tensor (partitioned tensors are reassembled from their slices).

        ``copy=False`` returns a read-only view of the mapped file (fixed-size dtypes);
        ``out`` reads straight into an existing array of the right dtype and shape.
        """
        return self._read_whole(name, self.entry(name), copy=copy, out=out)

    def _read_whole(self, name: str, e: BundleEntry, *, copy: bool = True,
                    out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        if not e.slices:
            return self._read_entry(name, e, copy=copy, out=out)
        return self.read_slice(name, TensorSlice.full(len(e.shape)), out=out)

    def slices(self, name: str) -> tuple[TensorSlice, ...]:
        """The stored slices of a partitioned tensor (empty for an ordinary one)."""
        return self.entry(name).slices

    def _stored_entry(self, name: str, e: BundleEntry, sl: TensorSlice) -> BundleEntry:
        """The entry of one stored slice of ``name``, checked against the full entry and its data file."""
        key = encode_slice_key(name, sl)
        raw = self._table.get(key)
        if raw is None:
            raise DataLossError(
                f"{self.index_path}: slice {sl.spec()} of {name!r} is listed by its entry but missing from the index",
                path=self.index_path,
                key=name,
            )
        se = BundleEntry.decode(raw, key=f"{name}[{sl.spec()}]", path=self.index_path)
        want = sl.shape_in(e.shape)
        if se.shape != want or se.dtype != e.dtype:
            raise DataLossError(f"{self.index_path}: slice {sl.spec()} of {name!r} has a mismatched shape or dtype",
                                path=self.index_path, key=name)
        dt = dtype_from_enum(se.dtype)
        if dt.is_fixed_size and se.size != se.num_elements * dt.size:
            raise DataLossError(
                f"{self.index_path}: slice {sl.spec()} of {name!r} needs {se.num_elements * dt.size} bytes but its "
                f"entry says {se.size}",
                path=self.index_path,
                key=name,
            )
        if se.size:
            self._data_file(name, se, f"slice {sl.spec()} of {name!r}")
        return se

    def read_stored_slice(self, name: str, sl: TensorSlice) -> np.ndarray[Any, Any]:
        """One stored slice of a partitioned tensor, as it was saved."""
        e = self.entry(name)
        stored = self._slice_sets.get(name)
        if stored is None:  # (a set: reading each of n slices in turn must not take n * n comparisons)
            stored = self._slice_sets[name] = frozenset(e.slices)
        if sl not in stored:
            raise TensorNotFoundError(f"Slice {sl.spec()} of {name!r} not found in checkpoint", key=name)
        return self._read_entry(name, self._stored_entry(name, e, sl))

    def read_slice(self, name: str, sl: TensorSlice | str,
                   out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """Any rectangular slice of a tensor, assembled from the stored slices that overlap it.

        Every overlapping stored slice is located and checked against its data file, and the
        coverage of the region is verified, before the result is allocated: a hostile entry
        claiming a huge shape fails without allocating anything.
        """
        if isinstance(sl, str):
            sl = TensorSlice.parse(sl)
        e = self.entry(name)
        want_shape = sl.shape_in(e.shape)
        dt = dtype_from_enum(e.dtype)
        region = sl.index(e.shape)
        if not e.slices:
            return np.array(self._read_entry(name, e)[region], copy=True)
        parts: list[tuple[BundleEntry, tuple[slice, ...], tuple[slice, ...]]] = []
        covered = 0
        for stored in e.slices:  # stored slices never overlap (checked when the entry is decoded)
            sregion = stored.index(e.shape)
            inter = [(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(sregion, region)]
            if any(lo >= hi for lo, hi in inter):
                continue
            se = self._stored_entry(name, e, stored)
            volume = 1
            for lo, hi in inter:
                volume *= hi - lo
            covered += volume
            src = tuple(slice(lo - s.start, hi - s.start) for (lo, hi), s in zip(inter, sregion))
            dst = tuple(slice(lo - r.start, hi - r.start) for (lo, hi), r in zip(inter, region))
            parts.append((se, src, dst))
        total = 1
        for d in want_shape:
            total *= d
        if covered != total:
            raise DataLossError(
                f"{self.index_path}: the stored slices of {name!r} do not cover slice {sl.spec() or '(scalar)'}",
                path=self.index_path,
                key=name,
            )
        dest = out if out is not None else np.empty(want_shape, dtype=dt.numpy_dtype)
        if dest.shape != want_shape:
            raise InvalidArgumentError(f"output shape {list(dest.shape)} != slice shape {list(want_shape)}")
        for se, src, dst in parts:
            dest[dst] = self._read_entry(name, se)[src]
        return dest

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_v2_prefix(prefix: str) -> bool:
    return os.path.isfile(f"{prefix}.index")
