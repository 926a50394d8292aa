"""Converting between TensorFlow checkpoints, safetensors, ``.npz`` and PyTorch state-dict files.

Formats (chosen by extension, or explicitly):

* ``tf``: a TensorFlow checkpoint prefix (or, as a source, a training directory);
  every dtype, strings included.
* ``safetensors`` (``.safetensors``): written directly, tensor by tensor; bfloat16
  is ``BF16``, float8 ``F8_E4M3``/``F8_E5M2``. No strings, no complex128.
* ``npz`` (``.npz``): one ``.npy`` member per tensor, written into the zip as a
  stream (no pickle ever). Types numpy cannot name (bfloat16, float8, int4) are
  stored as their raw bits (``uint16``/``uint8``) and listed in an extra member
  ``__tfckpt_dtypes__`` (a JSON string) so tfckpt reads them back exactly;
  other tools see the raw bits. Strings become fixed-width ``bytes`` arrays
  (refused if an element ends in a NUL byte, which that type cannot keep).
* ``torch`` (``.pt``, ``.pth``, ``.bin``): read with ``torch.load(weights_only=True)``
  (memory-mapped when possible), written with ``torch.save`` of a dict of tensors.
  No strings.

Memory: sources are read one tensor at a time (TF and safetensors through
memory maps). Writing a TF checkpoint (a streaming :class:`tfckpt.BundleWriter`),
safetensors and npz streams tensor by tensor; ``torch.save`` needs the whole dict.

Example:
    >>> import numpy as np, tempfile, os, tfckpt
    >>> d = tempfile.mkdtemp()
    >>> p = tfckpt.write({"w": np.arange(4, dtype=np.float32)}, os.path.join(d, "ckpt"))
    >>> convert(p, os.path.join(d, "w.safetensors")).tensors
    1
    >>> convert(os.path.join(d, "w.safetensors"), os.path.join(d, "w.npz")).tensors
    1
    >>> np.load(os.path.join(d, "w.npz"))["w"]
    array([0., 1., 2., 3.], dtype=float32)
"""

from __future__ import annotations

import json
import os
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfckpt._paths import PathLike, as_path
from tfckpt._storage import LocalFile, write_file_atomic
from tfckpt.dtypes import DType, as_dtype
from tfckpt.errors import DataLossError, InvalidArgumentError, NotFoundError, UnimplementedError

__all__ = ["FORMATS", "ConvertReport", "TensorMeta", "convert", "detect_format", "open_source"]

FORMATS = ("tf", "safetensors", "npz", "torch")
_EXT = {".safetensors": "safetensors", ".npz": "npz", ".pt": "torch", ".pth": "torch", ".bin": "torch"}
DTYPES_MEMBER = "__tfckpt_dtypes__"

# TF dtype name <-> safetensors dtype string.
_ST = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16", "int32": "I32",
    "uint32": "U32", "int64": "I64", "uint64": "U64", "float16": "F16", "bfloat16": "BF16",
    "float32": "F32", "float64": "F64", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
    "complex64": "C64",
}
_ST_BACK = {v: k for k, v in _ST.items()}


@dataclass(frozen=True)
class TensorMeta:
    """A tensor's name, dtype and shape, known before its data is read."""

    name: str
    dtype: DType
    shape: tuple[int, ...]


@dataclass
class ConvertReport:
    """What :func:`convert` did."""

    src_format: str
    dst_format: str
    tensors: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)


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

    def read(self, name: str) -> np.ndarray[Any, Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _TFSource(Source):
    def __init__(self, path: str) -> None:
        from tfckpt.reader import load_checkpoint

        self.reader = load_checkpoint(path)
        shapes = self.reader.get_variable_to_shape_map()
        dtypes = self.reader.get_variable_to_dtype_map()
        self.metas = [TensorMeta(n, dtypes[n], tuple(shapes[n])) for n in sorted(shapes)]

    def read(self, name: str) -> np.ndarray[Any, Any]:
        return np.asarray(self.reader.get_tensor(name, copy=False))

    def close(self) -> None:
        self.reader.close()


class _SafetensorsSource(Source):
    def __init__(self, path: str) -> None:
        self.file = LocalFile(path)
        if self.file.size < 8:
            raise DataLossError(f"{path}: too short to be a safetensors file", path=path)
        (hlen,) = struct.unpack("<Q", self.file.read(0, 8))
        if hlen > min(self.file.size - 8, 100 << 20):
            raise DataLossError(f"{path}: bad safetensors header length {hlen}", path=path, offset=0)
        try:
            header = json.loads(self.file.read(8, hlen))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataLossError(f"{path}: safetensors header is not JSON: {e}", path=path, offset=8) from None
        if not isinstance(header, dict):
            raise DataLossError(f"{path}: safetensors header is not an object", path=path, offset=8)
        self.base = 8 + hlen
        self.where: dict[str, tuple[int, int]] = {}
        self.metas = []
        for name in sorted(k for k in header if k != "__metadata__"):
            info = header[name]
            try:
                st, shape, (b, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
            except (KeyError, TypeError, ValueError):
                raise DataLossError(f"{path}: bad header entry for {name!r}", path=path, key=name) from None
            if st not in _ST_BACK:
                raise UnimplementedError(f"{path}: tensor {name!r} has safetensors dtype {st}, not supported",
                                         path=path, key=name)
            dt = as_dtype(_ST_BACK[st])
            n = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if not 0 <= b <= end or end - b != n * dt.size or self.base + end > self.file.size:
                raise DataLossError(f"{path}: tensor {name!r} has bad data offsets [{b}, {end})",
                                    path=path, key=name, offset=self.base + b)
            self.where[name] = (b, end)
            self.metas.append(TensorMeta(name, dt, shape))
        self._by_name = {m.name: m for m in self.metas}

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


class _NpzSource(Source):
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise NotFoundError(f"{path}: no such file", path=path) from None
        except (zipfile.BadZipFile, OSError) as e:
            raise DataLossError(f"{path}: not a .npz file ({e})", path=path) from None
        members = {n[:-4]: n for n in self.zf.namelist() if n.endswith(".npy")}
        self.special: dict[str, str] = {}
        if DTYPES_MEMBER in members:
            with self.zf.open(members.pop(DTYPES_MEMBER)) as f:
                self.special = json.loads(str(np.lib.format.read_array(f, allow_pickle=False)))
        self.members = members
        self.metas = []
        for name in sorted(members):
            try:
                with self.zf.open(members[name]) as f:
                    shape, dtype = _npy_header(f)
            except ValueError as e:
                raise DataLossError(f"{path}: member {name!r}: {e}", path=path, key=name) from None
            if name in self.special:
                dt = as_dtype(self.special[name])
            elif dtype.kind in "SUO":
                if dtype.kind == "O":
                    raise UnimplementedError(f"{path}: {name!r} is an object array (needs pickle; refused)",
                                             path=path, key=name)
                dt = as_dtype("string")
            else:
                dt = as_dtype(dtype)
            self.metas.append(TensorMeta(name, dt, shape))
        self._by_name = {m.name: m for m in self.metas}

    def read(self, name: str) -> np.ndarray[Any, Any]:
        m = self._by_name[name]
        with self.zf.open(self.members[name]) as f:
            arr = np.lib.format.read_array(f, allow_pickle=False)
        if name in self.special:
            return np.asarray(arr).view(m.dtype.numpy_dtype)
        if arr.dtype.kind in "SU":
            out = np.empty(arr.shape, dtype=object)
            flat = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in arr.reshape(-1).tolist()]
            out.reshape(-1)[:] = flat
            return out
        return np.asarray(arr)

    def close(self) -> None:
        self.zf.close()


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise UnimplementedError("PyTorch files need torch: pip install torch") from None
    return torch


class _TorchSource(Source):
    def __init__(self, path: str) -> None:
        torch = _torch()
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
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if not isinstance(obj, dict):
            raise InvalidArgumentError(f"{path}: holds a {type(obj).__name__}, not a state dict", path=path)
        from tfckpt.adapters.torch import numpy_dtype

        self.tensors: dict[str, Any] = {}
        self.metas = []
        for k in sorted(obj, key=str):
            v = obj[k]
            if isinstance(v, torch.Tensor):
                self.tensors[str(k)] = v
                self.metas.append(TensorMeta(str(k), as_dtype(numpy_dtype(v.dtype)), tuple(v.shape)))

    def read(self, name: str) -> np.ndarray[Any, Any]:
        from tfckpt.adapters.torch import to_numpy

        return to_numpy(self.tensors[name])


def open_source(path: str, fmt: str | None = None) -> Source:
    """Open ``path`` for reading tensor by tensor (``fmt`` as :func:`detect_format`)."""
    kind = detect_format(path, fmt)
    return {"tf": _TFSource, "safetensors": _SafetensorsSource, "npz": _NpzSource, "torch": _TorchSource}[kind](path)


# -- sinks -----------------------------------------------------------------------

_Items = Iterable[tuple[TensorMeta, np.ndarray[Any, Any]]]


def _fixed(meta: TensorMeta, fmt: str) -> None:
    if meta.dtype.is_string:
        raise UnimplementedError(f"tensor {meta.name!r} is a string tensor; {fmt} cannot store strings",
                                 key=meta.name)


def _write_safetensors(dst: str, metas: list[TensorMeta], items: _Items) -> None:
    header: dict[str, Any] = {"__metadata__": {"format": "pt", "producer": "tfckpt"}}
    off = 0
    for m in metas:
        _fixed(m, "safetensors")
        st = _ST.get(m.dtype.name)
        if st is None:
            raise UnimplementedError(f"tensor {m.name!r} has dtype {m.dtype.name}, which safetensors cannot store",
                                     key=m.name)
        n = int(np.prod(m.shape, dtype=np.int64)) if m.shape else 1
        header[m.name] = {"dtype": st, "shape": list(m.shape), "data_offsets": [off, off + n * m.dtype.size]}
        off += n * m.dtype.size
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)

    def write(f: Any) -> None:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _m, arr in items:
            f.write(np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data)

    write_file_atomic(dst, write)


_RAW_BITS = {2: np.uint16, 1: np.uint8}


def _npz_array(m: TensorMeta, arr: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], bool]:
    """The array to store for ``m`` and whether it is raw bits of a type numpy cannot name."""
    if m.dtype.is_string:
        flat = arr.reshape(-1).tolist()
        if any(x.endswith(b"\x00") for x in flat):
            raise UnimplementedError(f"string tensor {m.name!r} has an element ending in a NUL byte, which .npz "
                                     "bytes arrays cannot keep", key=m.name)
        return np.array(flat, dtype=np.bytes_).reshape(arr.shape), False
    if arr.dtype.type.__module__.startswith("ml_dtypes"):
        return arr.view(_RAW_BITS[arr.dtype.itemsize]), True
    return arr, False


def _write_npz(dst: str, metas: list[TensorMeta], items: _Items) -> None:
    def write(f: Any) -> None:
        special: dict[str, str] = {}
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for m, arr in items:
                out, raw = _npz_array(m, arr)
                if raw:
                    special[m.name] = m.dtype.name
                with zf.open(m.name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(out), allow_pickle=False)
            if special:
                with zf.open(DTYPES_MEMBER + ".npy", "w") as member:
                    np.lib.format.write_array(member, np.array(json.dumps(special)), allow_pickle=False)

    write_file_atomic(dst, write)


def _write_torch(dst: str, metas: list[TensorMeta], items: _Items) -> None:
    torch = _torch()
    from tfckpt.adapters.torch import from_numpy

    state: dict[str, Any] = {}
    for m, arr in items:
        _fixed(m, "torch")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = from_numpy(arr)
        state[m.name] = t.reshape(arr.shape) if tuple(t.shape) != arr.shape else t  # 0-d arrays
    write_file_atomic(dst, lambda f: torch.save(state, f))


def _write_tf(dst: str, metas: list[TensorMeta], items: _Items) -> None:
    from tfckpt.bundle import BundleWriter

    with BundleWriter(dst, streaming=True) as w:  # one tensor in memory at a time
        for m, arr in items:
            w.add(m.name, arr)
        w.finish()


_SINKS: dict[str, Callable[[str, list[TensorMeta], _Items], None]] = {
    "tf": _write_tf, "safetensors": _write_safetensors, "npz": _write_npz, "torch": _write_torch,
}


def _load_rules(rules: Any) -> Any:
    if rules is None or hasattr(rules, "apply"):
        return rules
    try:
        from tfckpt.transfer import Rules
    except ImportError:
        from tfckpt._rules import Rules
    return Rules.from_file(as_path(rules, "rules"))


def convert(
    src: PathLike,
    dst: PathLike,
    *,
    src_format: str | None = None,
    dst_format: str | None = None,
    rules: Any = None,
    progress: Callable[[Iterable[TensorMeta], int], Iterable[TensorMeta]] | None = None,
) -> ConvertReport:
    """Copy every tensor of ``src`` into a new file/checkpoint ``dst``, renamed by ``rules``.

    Args:
        src, dst: paths; formats by extension unless ``src_format``/``dst_format`` say otherwise.
        rules: a ``tfckpt.Rules`` object or the path of a rules JSON file; a tensor whose new
            name is None is skipped.
        progress: wraps the iteration over tensors (e.g. a progress bar).

    Raises:
        UnimplementedError: a dtype (strings, complex128, ...) the destination cannot store.
        InvalidArgumentError: two tensors renamed to the same name; unknown format.
        AlreadyExistsError: never; ``dst`` is replaced atomically.
    """
    src, dst = as_path(src, "src"), as_path(dst, "dst")
    s_fmt, d_fmt = detect_format(src, src_format), detect_format(dst, dst_format)
    rule_obj = _load_rules(rules)
    report = ConvertReport(s_fmt, d_fmt)
    source = open_source(src, s_fmt)
    try:
        plan: list[tuple[TensorMeta, TensorMeta]] = []
        seen: dict[str, str] = {}
        for m in source.metas:
            new = rule_obj.apply(m.name) if rule_obj is not None else m.name
            if new is None:
                report.skipped.append(m.name)
                continue
            if new in seen:
                raise InvalidArgumentError(f"{m.name!r} and {seen[new]!r} would both be named {new!r}")
            seen[new] = m.name
            if new != m.name:
                report.renamed[m.name] = new
            plan.append((m, TensorMeta(new, m.dtype, m.shape)))
        out_metas = [o for _, o in plan]
        by_old = {m.name: o for m, o in plan}

        def items() -> Iterator[tuple[TensorMeta, np.ndarray[Any, Any]]]:
            seq: Iterable[TensorMeta] = [i for i, _ in plan]
            if progress is not None:
                seq = progress(seq, len(plan))
            for m in seq:
                arr = source.read(m.name)
                if tuple(arr.shape) != m.shape:
                    raise DataLossError(f"{src}: tensor {m.name!r} read with shape {list(arr.shape)}, "
                                        f"expected {list(m.shape)}", path=src, key=m.name)
                report.tensors += 1
                report.bytes += int(arr.nbytes) if arr.dtype.kind != "O" else sum(len(x) for x in arr.reshape(-1))
                yield by_old[m.name], arr

        _SINKS[d_fmt](dst, out_metas, items())
    finally:
        source.close()
    return report
