"""The sources :func:`tfckpt.convert.convert` reads, one tensor at a time: TensorFlow
checkpoints, safetensors files (their JSON header checked field by field), ``.npz`` archives
(no pickle; raw-bits dtypes restored from the ``__tfckpt_dtypes__`` member) and PyTorch files
(``torch.load(weights_only=True)``, flattened as the Saver names state).

Example:
    >>> import numpy as np, tempfile, os, tfckpt
    >>> p = tfckpt.write({"w": np.arange(4, dtype=np.float32)}, os.path.join(tempfile.mkdtemp(), "ckpt"))
    >>> s = open_source(p); [(m.name, m.dtype.name, m.shape) for m in s.metas], s.read("w").tolist()
    ([('w', 'float32', (4,))], [0.0, 1.0, 2.0, 3.0])
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfckpt._convert import to_array
from tfckpt._storage import LocalFile
from tfckpt.dtypes import DType, as_dtype
from tfckpt.errors import (
    CheckpointError,
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
    UnimplementedError,
)

__all__ = ["DTYPES_MEMBER", "FORMATS", "ST_DTYPES", "Source", "TensorMeta", "detect_format", "open_source",
           "torch_module"]

FORMATS = ("tf", "safetensors", "npz", "torch")
_EXT = {".safetensors": "safetensors", ".npz": "npz", ".pt": "torch", ".pth": "torch", ".bin": "torch"}
DTYPES_MEMBER = "__tfckpt_dtypes__"

# TF dtype name <-> safetensors dtype string.
ST_DTYPES = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16", "int32": "I32",
    "uint32": "U32", "int64": "I64", "uint64": "U64", "float16": "F16", "bfloat16": "BF16",
    "float32": "F32", "float64": "F64", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
    "complex64": "C64",
}
ST_BACK = {v: k for k, v in ST_DTYPES.items()}


@dataclass(frozen=True)
class TensorMeta:
    """A tensor's name, dtype and shape, known before its data is read."""

    name: str
    dtype: DType
    shape: tuple[int, ...]


def _short(x: object) -> str:
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def detect_format(path: str, explicit: str | None = None) -> str:
    """The format of ``path``: ``explicit`` if given, else by extension, else ``tf``.

    Example:
        >>> detect_format("m.safetensors"), detect_format("m.pth"), detect_format("train/ckpt-3")
        ('safetensors', 'torch', 'tf')
    """
    if explicit:
        if explicit not in FORMATS:
            raise InvalidArgumentError(f"unknown format {explicit!r}; choose one of {', '.join(FORMATS)}")
        return explicit
    return _EXT.get(os.path.splitext(path)[1].lower(), "tf")


# -- sources -------------------------------------------------------------------


class Source:
    """A tensor container read one tensor at a time."""

    metas: list[TensorMeta]

    def __init__(self) -> None:
        self.metas = []
        #: Entries of the source that are not written, with the reason ("None", "not a .npy member").
        self.not_stored: dict[str, str] = {}
        #: Entries made from Python scalars (name -> Python type name), not tensors in the source.
        self.scalars: dict[str, str] = {}

    def read(self, name: str) -> np.ndarray[Any, Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _TFSource(Source):
    def __init__(self, path: str) -> None:
        super().__init__()
        from tfckpt.reader import load_checkpoint

        self.reader = load_checkpoint(path)
        shapes = self.reader.get_variable_to_shape_map()
        dtypes = self.reader.get_variable_to_dtype_map()
        self.metas = [TensorMeta(n, dtypes[n], tuple(shapes[n])) for n in sorted(shapes)]

    def read(self, name: str) -> np.ndarray[Any, Any]:
        value = self.reader.get_tensor(name, copy=False)
        if isinstance(value, bytes):  # a scalar string: kept whole (np.asarray would make it a NUL-stripping |S)
            out = np.empty((), dtype=object)
            out[()] = value
            return out
        return np.asarray(value)

    def close(self) -> None:
        self.reader.close()


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKeyError(k)
        out[k] = v
    return out


class _DuplicateKeyError(ValueError):
    pass


def _count(shape: Iterable[int]) -> int:
    """The number of elements of ``shape`` (a Python int: no overflow)."""
    n = 1
    for d in shape:
        n *= d
    return n


def _is_int(x: object) -> bool:
    return type(x) is int  # (not bool, not float: JSON 8.0 or true is no size)


class _SafetensorsSource(Source):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.file = LocalFile(path)
        self.path = path
        try:
            self._parse()
        except BaseException:
            self.file.close()
            raise

    def _parse(self) -> None:
        path = self.path
        if self.file.size < 8:
            raise DataLossError(f"{path}: too short to be a safetensors file", path=path)
        (hlen,) = struct.unpack("<Q", self.file.read(0, 8))
        if hlen > min(self.file.size - 8, 100 << 20):
            raise DataLossError(f"{path}: bad safetensors header length {hlen} (the file has {self.file.size} "
                                "bytes)", path=path, offset=0)
        try:
            header = json.loads(self.file.read(8, hlen), object_pairs_hook=_json_object)
        except _DuplicateKeyError as e:
            raise DataLossError(f"{path}: safetensors header has a duplicate key {e.args[0]!r}",
                                path=path, offset=8) from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise DataLossError(f"{path}: safetensors header is not JSON: {why}", path=path, offset=8) from None
        if not isinstance(header, dict):
            raise DataLossError(f"{path}: safetensors header is not an object", path=path, offset=8)
        meta = header.get("__metadata__")
        if meta is not None and not (isinstance(meta, dict)
                                     and all(isinstance(v, str) for v in meta.values())):
            raise DataLossError(f"{path}: safetensors __metadata__ must be an object of strings, got "
                                f"{_short(meta)}", path=path, offset=8)
        self.base = 8 + hlen
        self.where: dict[str, tuple[int, int]] = {}
        self.metas = []
        for name in sorted(k for k in header if k != "__metadata__"):
            dt, shape, (b, end) = self._entry(name, header[name])
            self.where[name] = (b, end)
            self.metas.append(TensorMeta(name, dt, shape))
        self._check_layout()
        self._by_name = {m.name: m for m in self.metas}

    def _entry(self, name: str, info: object) -> tuple[DType, tuple[int, ...], tuple[int, int]]:
        path = self.path

        def bad(what: str) -> DataLossError:
            return DataLossError(f"{path}: bad safetensors header entry for tensor {name!r}: {what}",
                                 path=path, key=name, offset=8)

        if not isinstance(info, dict):
            raise bad(f"expected an object, got {_short(info)}")
        missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
        if missing:
            raise bad(f"no {', '.join(missing)}")
        st, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(st, str):
            raise bad(f"dtype must be a string, got {_short(st)}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise bad(f"shape must be a list of sizes (integers >= 0), got {_short(shape)}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise bad(f"data_offsets must be [begin, end] (two integers), got {_short(offsets)}")
        if st not in ST_BACK:
            raise UnimplementedError(f"{path}: tensor {name!r} has safetensors dtype {st}, not supported",
                                     path=path, key=name)
        dt = as_dtype(ST_BACK[st])
        b, end = offsets
        nbytes = _count(shape) * dt.size
        if not 0 <= b <= end or end - b != nbytes or self.base + end > self.file.size:
            raise DataLossError(f"{path}: tensor {name!r} has bad data offsets [{b}, {end}) for "
                                f"{st} {shape} ({nbytes} bytes; the data has {self.file.size - self.base})",
                                path=path, key=name, offset=self.base + max(b, 0))
        return dt, tuple(shape), (b, end)

    def _check_layout(self) -> None:
        """The tensors' bytes must not overlap, and (as the format requires) cover the data exactly."""
        pos, prev = 0, ""
        for name, (b, e) in sorted(self.where.items(), key=lambda kv: kv[1]):
            if b < pos:
                raise DataLossError(f"{self.path}: the data of tensors {prev!r} and {name!r} overlap",
                                    path=self.path, key=name, offset=self.base + b)
            if b > pos:
                raise DataLossError(f"{self.path}: {b - pos} data bytes before tensor {name!r} are not "
                                    "referenced by any tensor", path=self.path, key=name, offset=self.base + pos)
            pos, prev = e, name
        if self.base + pos != self.file.size:
            raise DataLossError(f"{self.path}: {self.file.size - self.base - pos} bytes at the end are not "
                                "referenced by any tensor", path=self.path, offset=self.base + pos)

    def read(self, name: str) -> np.ndarray[Any, Any]:
        m = self._by_name[name]
        b, e = self.where[name]
        view = self.file.view(self.base + b, e - b)
        return np.frombuffer(view, dtype=m.dtype.numpy_dtype).reshape(m.shape)

    def close(self) -> None:
        self.file.close()


def _npy_header(f: Any) -> tuple[tuple[int, ...], np.dtype[Any]]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(shape), dtype


_ZIP_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, KeyError)


class _NpzSource(Source):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise NotFoundError(f"{path}: no such file", path=path) from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise DataLossError(f"{path}: not a .npz file ({e})", path=path) from None
        try:
            self._scan()
        except BaseException:
            self.zf.close()
            raise

    def _scan(self) -> None:
        path = self.path
        members: dict[str, str] = {}
        for n in self.zf.namelist():
            if n.endswith(".npy"):
                members[n[:-4]] = n
            elif not n.endswith("/"):
                self.not_stored[n] = "not a .npy member"
        self.special: dict[str, DType] = {}
        if DTYPES_MEMBER in members:
            self.special = self._dtypes(members.pop(DTYPES_MEMBER), members)
        self.members = members
        self.metas = []
        for name in sorted(members):
            try:
                with self.zf.open(members[name]) as f:
                    shape, dtype = _npy_header(f)
            except _ZIP_ERRORS as e:
                raise DataLossError(f"{path}: member {name!r}: {e}", path=path, key=name) from None
            if name in self.special and self.special[name].is_string:
                dt = self.special[name]
                if dtype.kind != "S":
                    raise DataLossError(f"{path}: {DTYPES_MEMBER} says tensor {name!r} is a marked string tensor, "
                                        f"but the member holds {dtype} values", path=path, key=name)
            elif name in self.special:
                dt = self.special[name]
                count = _count(shape)
                if dtype.kind not in "biu" or dtype.itemsize != dt.size:
                    raise DataLossError(
                        f"{path}: {DTYPES_MEMBER} says tensor {name!r} is {dt.name} ({dt.size} bytes), but the "
                        f"member holds {count} {dtype} values of {dtype.itemsize} byte{'s' * (dtype.itemsize != 1)}, "
                        "not raw bits of that size", path=path, key=name)
            elif dtype.kind in "SUO":
                if dtype.kind == "O":
                    raise UnimplementedError(f"{path}: {name!r} is an object array (needs pickle; refused)",
                                             path=path, key=name)
                dt = as_dtype("string")
            else:
                try:
                    dt = as_dtype(dtype)
                except InvalidArgumentError:
                    raise UnimplementedError(f"{path}: member {name!r} has dtype {dtype}, which has no TensorFlow "
                                             "equivalent", path=path, key=name) from None
            self.metas.append(TensorMeta(name, dt, shape))
        self._by_name = {m.name: m for m in self.metas}

    def _dtypes(self, member: str, members: dict[str, str]) -> dict[str, DType]:
        """The ``__tfckpt_dtypes__`` member: ``{tensor: dtype name}`` for raw-bits members, checked."""
        path = self.path

        def bad(what: str, key: str | None = None) -> DataLossError:
            return DataLossError(f"{path}: {DTYPES_MEMBER}: {what}", path=path, key=key)

        try:
            with self.zf.open(member) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
        except _ZIP_ERRORS as e:
            raise bad(f"cannot read it: {e}") from None
        if arr.shape != () or arr.dtype.kind not in "SU":
            raise bad(f"must be a JSON string, got a {arr.dtype} array of shape {list(arr.shape)}")
        try:
            text = arr.item()
            table = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise bad(f"not JSON: {e if not isinstance(e, RecursionError) else 'nested too deeply'}") from None
        if not isinstance(table, dict):
            raise bad(f"must be a JSON object of tensor name -> dtype name, got {_short(table)}")
        out: dict[str, DType] = {}
        for name, dname in table.items():
            if name not in members:
                raise bad(f"lists tensor {name!r}, but there is no such member", name)
            if not isinstance(dname, str):
                raise bad(f"tensor {name!r}: {_short(dname)} is not a dtype name", name)
            try:
                dt = as_dtype(dname)
            except (InvalidArgumentError, TypeError, ValueError):
                raise bad(f"tensor {name!r}: unknown dtype {dname!r}", name) from None
            if not (dt.is_string or dt.is_fixed_size):
                raise bad(f"tensor {name!r}: {dt.name} cannot be stored as raw bits", name)
            out[name] = dt
        return out

    def read(self, name: str) -> np.ndarray[Any, Any]:
        m = self._by_name[name]
        try:
            with self.zf.open(self.members[name]) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
        except _ZIP_ERRORS as e:
            raise DataLossError(f"{self.path}: member {name!r}: {e}", path=self.path, key=name) from None
        marked = name in self.special and self.special[name].is_string
        if name in self.special and not marked:
            return np.ascontiguousarray(arr).view(m.dtype.numpy_dtype)
        if arr.dtype.kind in "SU":
            out = np.empty(arr.shape, dtype=object)
            flat = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in arr.reshape(-1).tolist()]
            if marked:  # (every element was stored with a 0x01 after it: see convert's npz writer)
                if not all(x.endswith(b"\x01") for x in flat):
                    raise DataLossError(f"{self.path}: string member {name!r} is listed in {DTYPES_MEMBER} but "
                                        "an element lacks its end mark", path=self.path, key=name)
                flat = [x[:-1] for x in flat]
            out.reshape(-1)[:] = flat
            return out
        return np.asarray(arr)

    def close(self) -> None:
        self.zf.close()


def torch_module() -> Any:
    try:
        import torch
    except ImportError:
        raise UnimplementedError("PyTorch files need torch: pip install torch") from None
    return torch


_WRAPPERS = ("state_dict", "model_state_dict", "model")


class _TorchSource(Source):
    """A ``torch.load(weights_only=True)`` object, flattened as :func:`tfckpt._state.flatten` names state."""

    def __init__(self, path: str) -> None:
        super().__init__()
        torch = torch_module()
        self.path = path
        if not os.path.isfile(path):
            raise NotFoundError(f"{path}: no such file", path=path)
        try:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:
                obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
        except Exception as e:
            raise DataLossError(f"{path}: cannot load with torch.load(weights_only=True): "
                                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}", path=path) from None
        if isinstance(obj, Mapping) and len(obj) == 1:
            (key, value), = obj.items()
            if key in _WRAPPERS and isinstance(value, Mapping):
                obj = value  # {"state_dict": sd} alone: the names of sd, nothing else is lost
        if not isinstance(obj, (Mapping, list, tuple)):
            raise InvalidArgumentError(f"{path}: holds a {type(obj).__name__}, not a state dict", path=path)
        self._torch = torch
        self.tensors: dict[str, Any] = {}
        self.values: dict[str, tuple[DType, np.ndarray[Any, Any]]] = {}
        self._walk(obj, "")
        from tfckpt.adapters.torch import numpy_dtype

        for name in sorted(self.tensors):
            t = self.tensors[name]
            try:
                dt = as_dtype(numpy_dtype(t.dtype))
            except CheckpointError as e:
                raise UnimplementedError(f"{path}: tensor {name!r}: {e.message}", path=path, key=name) from None
            self.metas.append(TensorMeta(name, dt, tuple(t.shape)))
        for name, (dt, arr) in self.values.items():
            self.metas.append(TensorMeta(name, dt, tuple(arr.shape)))
        self.metas.sort(key=lambda m: m.name)

    def _add(self, name: str) -> None:
        if name in self.tensors or name in self.values or name in self.not_stored:
            raise InvalidArgumentError(f"{self.path}: two entries are both named {name!r} (a key holding '/' "
                                       "and a nested one)", path=self.path, key=name)

    def _walk(self, node: object, path: str) -> None:
        if isinstance(node, self._torch.Tensor):
            self._add(path)
            self.tensors[path] = node
        elif isinstance(node, Mapping):
            for k, v in node.items():
                self._walk(v, f"{path}/{k}" if path else str(k))
        elif isinstance(node, (list, tuple)):  # (also torch.Size)
            for i, v in enumerate(node):
                self._walk(v, f"{path}/{i}" if path else str(i))
        elif node is None:
            self._add(path)
            self.not_stored[path] = "None"
        elif isinstance(node, (bool, int, float, complex, str, bytes)):
            self._add(path)
            try:
                self.values[path] = to_array(node, path)
            except CheckpointError as e:
                self.not_stored[path] = f"a {type(node).__name__} that is not a tensor value: {e.message}"
                return
            self.scalars[path] = type(node).__name__
        else:
            self._add(path)
            t = type(node)
            self.not_stored[path] = f"a {t.__module__}.{t.__qualname__}, not a tensor or a scalar"

    def read(self, name: str) -> np.ndarray[Any, Any]:
        if name in self.values:
            return self.values[name][1]
        from tfckpt.adapters.torch import to_numpy

        try:
            return to_numpy(self.tensors[name])
        except CheckpointError as e:
            raise type(e)(f"{self.path}: tensor {name!r}: {e.message}", path=self.path, key=name) from None


def open_source(path: str, fmt: str | None = None) -> Source:
    """Open ``path`` for reading tensor by tensor (``fmt`` as :func:`detect_format`)."""
    kind = detect_format(path, fmt)
    return {"tf": _TFSource, "safetensors": _SafetensorsSource, "npz": _NpzSource, "torch": _TorchSource}[kind](path)


