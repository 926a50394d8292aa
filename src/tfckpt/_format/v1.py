"""The legacy V1 checkpoint format (``SaverDef.V1``): one SSTable per shard.

Each file holds a ``""`` record (a ``SavedTensorSlices`` with the metadata of
every tensor in that file) and one record per stored slice, keyed by
``EncodeTensorNameSlice``, whose value holds the elements in a typed repeated
field of a ``TensorProto``. A sharded V1 checkpoint is named by a glob pattern
such as ``model.ckpt-7-?????-of-00002``.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from tfckpt._format.entry import MAX_ELEMENTS, validate_slices
from tfckpt._format.slices import FULL, TensorSlice, encode_slice_key
from tfckpt._format.table import TableReader
from tfckpt._proto import checkpoint_pb2, tensor_pb2
from tfckpt._storage import read_whole_file
from tfckpt.dtypes import DType, dtype_from_enum
from tfckpt.errors import (
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
    TensorNotFoundError,
    UnimplementedError,
)

__all__ = ["V1Reader", "is_v1_checkpoint", "v1_files"]

_FIELD_BY_ENUM = {
    1: "float_val",
    2: "double_val",
    3: "int_val",
    4: "int_val",
    5: "int_val",
    6: "int_val",
    7: "string_val",
    8: "scomplex_val",
    9: "int64_val",
    10: "bool_val",
    11: "int_val",
    12: "int_val",
    13: "int_val",
    15: "int_val",
    16: "int_val",
    17: "int_val",
    18: "dcomplex_val",
    14: "half_val",
    19: "half_val",
    22: "uint32_val",
    23: "uint64_val",
}


# Files of V2 bundles and of the Saver around them, which a V1 pattern (``model.ckpt-*``) may match
# but which are never V1 tables.
_NOT_V1 = re.compile(r"(\.index|\.meta|\.data-\d{5}-of-\d{5}|\.tempstate\d*|(^|/)checkpoint)$")


def v1_files(pattern: str) -> list[str]:
    """The files a V1 checkpoint path names (itself, or the matches of its glob pattern, but
    for the files of V2 bundles: ``.index``, ``.data-*``, ``.meta``, ``checkpoint``).

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> for f in ("ckpt-1.index", "ckpt-1.data-00000-of-00001", "v1-00000-of-00001"):
        ...     open(os.path.join(d, f), "wb").close()
        >>> v1_files(os.path.join(d, "ckpt-*")), [os.path.basename(f) for f in v1_files(os.path.join(d, "*"))]
        ([], ['v1-00000-of-00001'])
    """
    if os.path.isfile(pattern):
        return [pattern]
    if any(c in pattern for c in "*?["):
        return sorted(p for p in glob.glob(pattern) if os.path.isfile(p) and not _NOT_V1.search(p))
    return []


def is_v1_checkpoint(path: str) -> bool:
    for f in v1_files(path)[:1]:
        try:
            with open(f, "rb") as fh:
                fh.seek(-8, os.SEEK_END)
                return fh.read(8) == bytes.fromhex("57fb808b247547db")
        except OSError:
            return False
    return False


def _slice_from_proto(p: tensor_pb2.TensorSliceProto) -> TensorSlice:
    return TensorSlice(tuple((e.start, e.length if e.HasField("length") else FULL) for e in p.extent))


class V1Reader:
    """A V1 checkpoint (one file or a sharded pattern) opened for reading."""

    def __init__(self, pattern: str, *, verify_crc: bool = True) -> None:
        self.prefix = pattern
        files = v1_files(pattern)
        if not files:
            raise NotFoundError(f"Unsuccessful TensorSliceReader constructor: Failed to find any matching files "
                                f"for {pattern}", path=pattern)
        self._tables: list[TableReader] = []
        # name -> (dtype enum, full shape, [(slice, table index)])
        self._meta: dict[str, tuple[int, tuple[int, ...], list[tuple[TensorSlice, int]]]] = {}
        self._slice_sets: dict[str, dict[TensorSlice, int]] = {}
        for i, path in enumerate(files):
            t = TableReader(read_whole_file(path), path=path, verify=verify_crc)
            self._tables.append(t)
            first = t.first()
            if first is None or first[0] != b"":
                raise DataLossError(f"{path}: V1 checkpoint has no metadata record", path=path)
            try:
                meta = checkpoint_pb2.SavedTensorSlices.FromString(first[1]).meta
            except DecodeError:
                raise DataLossError(f"{path}: corrupt V1 metadata record", path=path) from None
            if meta.versions.min_consumer > 1 or 1 in meta.versions.bad_consumers:
                raise DataLossError(f"{path}: V1 checkpoint version is too new for tfckpt", path=path)
            for tm in meta.tensor:
                shape = tuple(d.size for d in tm.shape.dim)
                if any(d < 0 for d in shape):
                    raise DataLossError(f"{path}: tensor {tm.name!r} has a negative dimension", path=path)
                n = 1
                for d in shape:
                    n *= d
                if n > MAX_ELEMENTS:
                    raise DataLossError(f"{path}: tensor {tm.name!r} claims an absurd shape {list(shape)}",
                                        path=path, key=tm.name)
                try:
                    dtype_from_enum(tm.type)
                except InvalidArgumentError:
                    raise DataLossError(f"{path}: tensor {tm.name!r} has an unknown dtype enum {tm.type}",
                                        path=path, key=tm.name) from None
                entry = self._meta.get(tm.name)
                if entry is None:
                    entry = (tm.type, shape, [])
                    self._meta[tm.name] = entry
                elif entry[0] != tm.type or entry[1] != shape:
                    raise DataLossError(f"{path}: tensor {tm.name!r} disagrees with another shard", path=path)
                for sp in tm.slice:
                    entry[2].append((_slice_from_proto(sp), i))
        for name, (_, shape, stored) in self._meta.items():
            if not stored:
                raise DataLossError(f"{self.prefix}: tensor {name!r} has no stored slices", path=self.prefix, key=name)
            validate_slices(shape, [s for s, _ in stored], key=name, path=self.prefix)

    def names(self) -> list[str]:
        return sorted(self._meta)

    def has(self, name: str) -> bool:
        return name in self._meta

    def _meta_of(self, name: str) -> tuple[int, tuple[int, ...], list[tuple[TensorSlice, int]]]:
        try:
            return self._meta[name]
        except KeyError:
            raise TensorNotFoundError(f"{name} not found in checkpoint file", key=name, path=self.prefix) from None

    def dtype(self, name: str) -> DType:
        return dtype_from_enum(self._meta_of(name)[0])

    def shape(self, name: str) -> tuple[int, ...]:
        return self._meta_of(name)[1]

    def slices(self, name: str) -> tuple[TensorSlice, ...]:
        sl = self._meta_of(name)[2]
        if len(sl) == 1 and sl[0][0].is_full(self.shape(name)):
            return ()
        return tuple(s for s, _ in sl)

    def _read_stored(self, name: str, sl: TensorSlice, table: int) -> np.ndarray[Any, Any]:
        enum, full_shape, _ = self._meta_of(name)
        t = self._tables[table]
        raw = t.get(encode_slice_key(name, sl))
        if raw is None:
            raise DataLossError(f"{t.path}: slice {sl.spec()} of {name!r} is listed but not stored",
                                path=t.path, key=name)
        try:
            rec = checkpoint_pb2.SavedTensorSlices.FromString(raw).data.data
        except DecodeError:
            raise DataLossError(f"{t.path}: corrupt V1 record for {name!r}", path=t.path, key=name) from None
        shape = sl.shape_in(full_shape)
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        dt = dtype_from_enum(enum)
        field = _FIELD_BY_ENUM.get(dt.as_datatype_enum)
        if field is None:
            raise UnimplementedError(f"V1 tensor {name!r} has dtype {dt.name}, which V1 cannot store", key=name)
        if rec.tensor_content:
            if dt.is_string or len(rec.tensor_content) != n * dt.numpy_dtype.itemsize:
                raise DataLossError(f"{t.path}: V1 record for {name!r} holds {len(rec.tensor_content)} bytes of "
                                    f"tensor_content, expected {n} {dt.name} elements", path=t.path, key=name)
            arr = np.frombuffer(rec.tensor_content, dtype=dt.numpy_dtype)
        else:
            vals = getattr(rec, field)
            complex_ = dt.name in ("complex64", "complex128")
            if len(vals) != (2 * n if complex_ else n):
                raise DataLossError(f"{t.path}: V1 record for {name!r} holds {len(vals)} values, expected {n}",
                                    path=t.path, key=name)
            if dt.is_string:
                arr = np.empty(len(vals), dtype=object)
                arr[:] = list(vals)
            elif field == "half_val":
                arr = np.asarray(vals, dtype=np.int64).astype(np.uint16).view(dt.numpy_dtype)
            elif complex_:
                arr = np.asarray(vals, dtype=np.float32 if dt.name == "complex64" else np.float64)
                arr = arr.view(dt.numpy_dtype)
            else:
                arr = np.asarray(vals).astype(dt.numpy_dtype)
        if arr.size != n:
            raise DataLossError(f"{t.path}: V1 record for {name!r} holds {arr.size} values, expected {n}",
                                path=t.path, key=name)
        return arr.reshape(shape)

    def read(self, name: str) -> np.ndarray[Any, Any]:
        enum, shape, stored = self._meta_of(name)
        dt = dtype_from_enum(enum)
        if len(stored) == 1 and stored[0][0].is_full(shape):
            return self._read_stored(name, stored[0][0], stored[0][1])
        # The slices were checked not to overlap when the file was opened, so
        # they cover the tensor exactly when their volumes add up to it. Read the
        # parts first: their size is backed by the file, the claimed shape is not.
        total = 1
        for d in shape:
            total *= d
        volume = 0
        for sl, _ in stored:
            v = 1
            for d in sl.shape_in(shape):
                v *= d
            volume += v
        if volume != total:
            raise DataLossError(f"{self.prefix}: the stored slices of {name!r} do not cover the tensor",
                                path=self.prefix, key=name)
        parts = [(sl.index(shape), self._read_stored(name, sl, ti)) for sl, ti in stored]
        out = np.empty(shape, dtype=object if dt.is_string else dt.numpy_dtype)
        for region, part in parts:
            out[region] = part
        return out

    def read_stored_slice(self, name: str, sl: TensorSlice) -> np.ndarray[Any, Any]:
        stored = self._slice_sets.get(name)
        if stored is None:  # (a dict: reading each of n slices in turn must not take n * n comparisons)
            stored = self._slice_sets[name] = dict(self._meta_of(name)[2])
        ti = stored.get(sl)
        if ti is not None:
            return self._read_stored(name, sl, ti)
        raise TensorNotFoundError(f"Slice {sl.spec()} of {name!r} not found in checkpoint", key=name)

    def close(self) -> None:
        self._tables.clear()
