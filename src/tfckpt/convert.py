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
  other tools see the raw bits. Strings become fixed-width ``bytes`` arrays; a
  string tensor with an element ending in a NUL byte (which those arrays drop) is
  stored with a 0x01 byte after every element and listed in ``__tfckpt_dtypes__``
  as ``"string"``: tfckpt reads it back exactly, other tools see the extra byte.
* ``torch`` (``.pt``, ``.pth``, ``.bin``): read with ``torch.load(weights_only=True)``
  (memory-mapped when possible) and flattened as the Saver names state (nested dicts,
  lists and tuples joined with ``"/"``; Python scalars become 0-d tensors; see
  :func:`convert`), written with ``torch.save`` of a flat dict of tensors. No strings.

Source entries that cannot be stored are never dropped silently: they are listed in
:attr:`ConvertReport.not_stored`. Malformed sources (safetensors headers, ``.npz``
members and their dtype table) raise :class:`~tfckpt.errors.DataLossError` naming the
file and the tensor. The destination's parent directories are created.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfckpt._convert_sources import (
    DTYPES_MEMBER,
    FORMATS,
    ST_DTYPES,
    TensorMeta,
    detect_format,
    open_source,
    torch_module,
)
from tfckpt._paths import PathLike, as_path
from tfckpt._storage import os_error, write_file_atomic
from tfckpt.dtypes import DType
from tfckpt.errors import (
    DataLossError,
    InvalidArgumentError,
    UnimplementedError,
)
from tfckpt.reader import OBJECT_GRAPH_KEY

__all__ = ["FORMATS", "ConvertReport", "TensorMeta", "convert", "detect_format", "open_source"]


@dataclass
class ConvertReport:
    """What :func:`convert` did.

    Attributes:
        tensors, bytes: how many tensors were written, and their data bytes.
        skipped: every source entry not written, in name order: dropped by the rules, or
            listed in ``not_stored``.
        not_stored: the entries the rules kept that were not written, with the reason:
            ``None`` values, objects that are not tensors or scalars (``torch.dtype``, ...),
            Python strings for a destination without strings, non-``.npy`` members of a zip.
        renamed: ``{old: new}`` for every tensor the rules renamed.
        unused_rules: one line per rule (or filter pattern, or ``map`` name) that matched no
            entry of the source, e.g. ``"rule 2 (strip_prefix 'bert/') matched nothing"``.
    """

    src_format: str
    dst_format: str
    tensors: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    not_stored: dict[str, str] = field(default_factory=dict)
    unused_rules: list[str] = field(default_factory=list)



# -- sinks -----------------------------------------------------------------------

_Items = Iterable[tuple[TensorMeta, np.ndarray[Any, Any]]]


def _write_new_file(dst: str, write: Callable[[Any], object]) -> None:
    """``write_file_atomic``, creating ``dst``'s parent directories first (as a TF checkpoint does)."""
    d = os.path.dirname(dst)
    if d:
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise os_error(e, d, "cannot create directory") from None
    write_file_atomic(dst, write)


def _cannot_store(dtype: DType, fmt: str) -> str | None:
    """Why ``fmt`` cannot hold ``dtype`` (None if it can)."""
    if dtype.is_string and fmt in ("safetensors", "torch"):
        return f"{fmt} cannot store strings"
    if fmt == "safetensors" and dtype.name not in ST_DTYPES:
        return f"safetensors cannot store {dtype.name}"
    return None


def _fixed(meta: TensorMeta, fmt: str) -> None:
    if meta.dtype.is_string:
        raise UnimplementedError(f"tensor {meta.name!r} is a string tensor; {fmt} cannot store strings",
                                 key=meta.name)


def _write_safetensors(dst: str, metas: list[TensorMeta], items: _Items) -> None:
    header: dict[str, Any] = {"__metadata__": {"format": "pt", "producer": "tfckpt"}}
    off = 0
    for m in metas:
        _fixed(m, "safetensors")
        st = ST_DTYPES.get(m.dtype.name)
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

    _write_new_file(dst, write)


_RAW_BITS = {2: np.uint16, 1: np.uint8}


def _npz_array(m: TensorMeta, arr: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], bool]:
    """The array to store for ``m`` and whether ``__tfckpt_dtypes__`` must list it: raw bits of a
    type numpy cannot name, or strings some of which end in a NUL byte (stored with one more
    byte, 0x01, at the end of every element, which tfckpt removes on reading)."""
    if m.dtype.is_string:
        flat = arr.reshape(-1).tolist()
        if any(x.endswith(b"\x00") for x in flat):  # (numpy's bytes arrays drop trailing NULs: end each with 0x01)
            return np.array([x + b"\x01" for x in flat], dtype=np.bytes_).reshape(arr.shape), True
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

    _write_new_file(dst, write)


def _write_torch(dst: str, metas: list[TensorMeta], items: _Items) -> None:
    torch = torch_module()
    from tfckpt.adapters.torch import from_numpy

    state: dict[str, Any] = {}
    for m, arr in items:
        _fixed(m, "torch")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = from_numpy(arr)
        state[m.name] = t.reshape(arr.shape) if tuple(t.shape) != arr.shape else t  # 0-d arrays
    _write_new_file(dst, lambda f: torch.save(state, f))


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
    from tfckpt._rules import Rules

    if isinstance(rules, (Mapping, list)):
        return Rules.from_dict(rules)
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

    PyTorch sources are flattened the way :class:`tfckpt.Saver` names state, so a training
    checkpoint keeps everything: ``{"model": sd, "optimizer": opt.state_dict(), "epoch": 3}``
    gives ``model/<param>``, ``optimizer/state/0/exp_avg``, ``optimizer/param_groups/0/lr``,
    ``optimizer/param_groups/0/betas/0`` and ``epoch`` (nested dicts, lists and tuples joined
    with ``"/"``). A file holding only ``{"state_dict": sd}`` (or ``"model_state_dict"``,
    ``"model"``) gives the names of ``sd``. Python scalars become 0-d tensors as the Saver
    stores them (int: int64, float: float64, bool, str/bytes: string). What cannot be stored
    -- ``None``, objects such as a ``torch.dtype``, strings for safetensors or torch, ints
    beyond 64 bits -- is not written and is listed, with the reason, in
    :attr:`ConvertReport.not_stored` (and in ``skipped``); nothing is dropped silently. So is
    a TF2 checkpoint's object graph (``_CHECKPOINTABLE_OBJECT_GRAPH``, a string of TensorFlow
    bookkeeping) when the destination cannot store strings (safetensors, torch).

    The parent directories of ``dst`` are created, for every format.

    Args:
        src, dst: paths; formats by extension unless ``src_format``/``dst_format`` say otherwise.
        rules: a ``tfckpt.Rules`` object, its dict form, or the path of a rules JSON file; an
            entry whose new name is None is skipped. Rules that match nothing are listed in
            :attr:`ConvertReport.unused_rules`.
        progress: wraps the iteration over tensors (e.g. a progress bar).

    Raises:
        UnimplementedError: a tensor of a dtype (strings, complex128, ...) the destination cannot store.
        InvalidArgumentError: two entries named alike (by the rules, or by flattening); bad rules;
            unknown format.
        DataLossError: a corrupt or malformed source (named, with the tensor where it applies).
        AlreadyExistsError: never; ``dst`` is replaced atomically.
    """
    src, dst = as_path(src, "src"), as_path(dst, "dst")
    s_fmt, d_fmt = detect_format(src, src_format), detect_format(dst, dst_format)
    if dst.endswith(("/", os.sep)) or os.path.isdir(dst):
        hint = " such as " + os.path.join(dst, "ckpt") if d_fmt == "tf" else ""
        raise InvalidArgumentError(f"destination {dst} is a directory: give a file name or checkpoint prefix{hint}",
                                   path=dst)
    rule_obj = _load_rules(rules)
    usage = rule_obj.usage() if rule_obj is not None and callable(getattr(rule_obj, "usage", None)) else None
    apply: Callable[[str], str | None] | None = (
        usage.apply if usage is not None else None if rule_obj is None else rule_obj.apply)
    report = ConvertReport(s_fmt, d_fmt)
    source = open_source(src, s_fmt)
    try:
        plan: list[tuple[TensorMeta, TensorMeta]] = []
        seen: dict[str, str] = {}
        metas = {m.name: m for m in source.metas}
        for name in sorted([*metas, *source.not_stored]):
            new = apply(name) if apply is not None else name
            if new is None:
                report.skipped.append(name)
                continue
            m = metas.get(name)
            why = source.not_stored.get(name)
            if m is not None and name in source.scalars:
                reason = _cannot_store(m.dtype, d_fmt)
                if reason is not None:
                    why = f"a {source.scalars[name]}; {reason}"
            elif m is not None and name == OBJECT_GRAPH_KEY and s_fmt == "tf":
                reason = _cannot_store(m.dtype, d_fmt)
                if reason is not None:  # (TF2 bookkeeping, in every object-based checkpoint: not a weight)
                    why = f"TensorFlow's object graph (TF2 bookkeeping, not a weight); {reason}"
            if why is not None or m is None:
                report.skipped.append(name)
                report.not_stored[name] = why or "not stored"
                continue
            if new in seen:
                raise InvalidArgumentError(f"{m.name!r} and {seen[new]!r} would both be named {new!r}")
            seen[new] = m.name
            if new != m.name:
                report.renamed[m.name] = new
            plan.append((m, TensorMeta(new, m.dtype, m.shape)))
        if usage is not None:
            report.unused_rules = usage.unused()
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

        if d_fmt != "tf":  # (a TF checkpoint keeps any bytes as a name; the other formats take text)
            for o in out_metas:
                try:
                    size = len(o.name.encode("utf-8"))
                except UnicodeEncodeError:
                    raw = o.name.encode("utf-8", "surrogateescape")
                    raise UnimplementedError(f"{src}: tensor name {raw!r} is not UTF-8, which {d_fmt} names must "
                                             "be (rename it with rules)", key=o.name, path=src) from None
                if d_fmt == "npz" and size > 65535 - 4:  # (a zip member's name: 16 bits, ".npy" included)
                    raise UnimplementedError(f"{src}: tensor name {o.name[:60]!r}... is {size} bytes long; .npz "
                                             "member names end at 65,531 (rename it with rules)", key=o.name,
                                             path=src)
        _SINKS[d_fmt](dst, out_metas, items())
    finally:
        source.close()
    return report
