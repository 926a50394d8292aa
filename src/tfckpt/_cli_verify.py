"""``tfckpt verify``: read everything, check every CRC-32C and the structure, report every problem.

Checks, for a V2 bundle: the index footer, index block and every data block
(CRC, order of keys), the header entry, every entry (parsable, known dtype,
shard in range, byte range inside its data file, size matching dtype and shape),
every data file present, every tensor's data (CRC-32C, string lengths),
partitioned tensors (each slice stored, slices disjoint and covering the whole
tensor, no orphan slices), and data bytes no tensor refers to (a warning).
For V1 files: every table block and every tensor. It continues past problems.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any

from tfckpt._cli_format import dump_json, human_bytes, print_line, progress, styled
from tfckpt._format.bundle_reader import BundleReader
from tfckpt._format.entry import HEADER_KEY, BundleEntry, BundleHeader, first_overlap
from tfckpt._format.slices import TensorSlice, encode_slice_key
from tfckpt._format.table import TableReader
from tfckpt._format.v1 import V1Reader, v1_files
from tfckpt._storage import read_whole_file
from tfckpt.dtypes import dtype_from_enum
from tfckpt.errors import CheckpointError, NotFoundError
from tfckpt.reader import resolve_checkpoint

__all__ = ["Problem", "Report", "add_parser", "verify"]

EXAMPLES = """\
examples:
  tfckpt verify train/                 the latest checkpoint of train/
  tfckpt verify train/model.ckpt-7
  tfckpt verify ckpt --json

exit status: 0 no problems (warnings allowed), 1 problems found or unreadable, 2 usage.
"""


@dataclass
class Problem:
    """One problem: the file, byte offset and tensor it concerns (where known), and what is wrong."""

    file: str
    message: str
    offset: int | None = None
    key: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file + (f" @ offset {self.offset}" if self.offset is not None else "")
        msg = self.message
        for p in (self.file + ": ", os.path.basename(self.file) + ": "):
            if msg.startswith(p):
                msg = msg[len(p):]
        tag = "warning" if self.severity == "warning" else "error"
        key = f" [{self.key}]" if self.key else ""
        return f"{tag}: {where}{key}: {msg}"


@dataclass
class Report:
    prefix: str
    format: str = "?"
    tensors: int = 0
    bytes: int = 0
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def add(self, e: CheckpointError | str, file: str, *, key: str | None = None, offset: int | None = None,
            severity: str = "error") -> None:
        if isinstance(e, CheckpointError):
            self.problems.append(Problem(e.path or file, e.message, e.offset if e.offset is not None else offset,
                                         key or e.key, severity))
        else:
            self.problems.append(Problem(file, e, offset, key, severity))


def _table_entries(data: bytes, path: str, rep: Report) -> list[tuple[bytes, bytes]] | None:
    """Every entry of a table, checking each block separately; None if the footer or index is unreadable."""
    try:
        t = TableReader(data, path=path)
    except CheckpointError as e:
        rep.add(e, path)
        return None
    out: list[tuple[bytes, bytes]] = []
    prev: bytes | None = None
    for i in range(t.num_blocks):
        try:
            keys, values = t.block(i)
        except CheckpointError as e:
            rep.add(e, path)
            continue
        for k, v in zip(keys, values):
            if prev is not None and k <= prev:
                rep.add(f"keys out of order in data block {i} (key {k!r})", path, offset=t.block_offset(i))
            prev = k
            out.append((k, v))
    return out


def verify(path: str) -> Report:
    """Check a checkpoint completely; every problem found is in the returned report.

    Example:
        >>> import numpy as np, tempfile, os, tfckpt
        >>> p = tfckpt.write({"w": np.ones(4, np.float32)}, os.path.join(tempfile.mkdtemp(), "ckpt"))
        >>> r = verify(p); (r.ok, r.tensors, r.bytes)
        (True, 1, 16)
    """
    prefix = resolve_checkpoint(path)
    rep = Report(prefix)
    if os.path.isfile(prefix + ".index"):
        rep.format = "V2"
        _verify_v2(prefix, rep)
    else:
        files = v1_files(prefix)
        if not files:
            raise NotFoundError(f"Unsuccessful TensorSliceReader constructor: Failed to find any matching files "
                                f"for {prefix}", path=prefix)
        rep.format = "V1"
        _verify_v1(prefix, files, rep)
    return rep


def _verify_v1(prefix: str, files: list[str], rep: Report) -> None:
    rep.files = list(files)
    for f in files:
        try:
            _table_entries(read_whole_file(f), f, rep)
        except CheckpointError as e:
            rep.add(e, f)
    if not rep.ok:
        return
    try:
        reader = V1Reader(prefix)
    except CheckpointError as e:
        rep.add(e, files[0])
        return
    for name in progress(reader.names(), len(reader.names()), "verify"):
        try:
            arr = reader.read(name)
            rep.tensors += 1
            rep.bytes += int(arr.nbytes) if arr.dtype.kind != "O" else sum(len(x) for x in arr.reshape(-1))
        except CheckpointError as e:
            rep.add(e, files[0], key=name)


def _verify_v2(prefix: str, rep: Report) -> None:
    index = prefix + ".index"
    rep.files.append(index)
    try:
        data = read_whole_file(index)
    except CheckpointError as e:
        rep.add(e, index)
        return
    entries = _table_entries(data, index, rep)
    if entries is None:
        return
    if not entries or entries[0][0] != HEADER_KEY:
        rep.add("the bundle header entry (empty key) is missing", index)
        return
    try:
        header = BundleHeader.decode(entries[0][1], path=index)
    except CheckpointError as e:
        rep.add(e, index)
        return
    n = header.num_shards
    if not 1 <= n <= 99999:
        rep.add(f"invalid shard count {n} in the bundle header", index)
        return
    sizes: dict[int, int] = {}
    for s in range(n):
        f = f"{prefix}.data-{s:05d}-of-{n:05d}"
        rep.files.append(f)
        try:
            sizes[s] = os.stat(f).st_size
        except OSError:
            rep.add(f"data file {os.path.basename(f)} is missing", f)
    slice_keys = {k: v for k, v in entries[1:] if k[:1] == b"\x00"}
    used: set[bytes] = set()
    ranges: dict[int, list[tuple[int, int, str]]] = {s: [] for s in sizes}
    try:
        reader = BundleReader(prefix, index_bytes=data)
    except CheckpointError as e:
        rep.add(e, index)
        reader = None
    named = [(k, v) for k, v in entries[1:] if k[:1] != b"\x00"]
    for k, v in progress(named, len(named), "verify"):
        name = k.decode("utf-8", "surrogateescape")
        try:
            ent = BundleEntry.decode(v, key=name, path=index)
            dt = dtype_from_enum(ent.dtype)
        except CheckpointError as err:
            rep.add(err, index, key=name)
            continue
        if not ent.slices:
            if _check_entry(prefix, n, sizes, ranges, name, ent, rep) and reader is not None:
                _read(reader, name, rep, ent)
            continue
        pieces: list[TensorSlice] = []
        for sl in ent.slices:
            sk = encode_slice_key(name, sl)
            used.add(sk)
            raw = slice_keys.get(sk)
            if raw is None:
                rep.add(f"slice {sl.spec()} of {name!r} is listed but has no entry", index, key=name)
                continue
            try:
                se = BundleEntry.decode(raw, key=f"{name}[{sl.spec()}]", path=index)
                want = sl.shape_in(ent.shape)
            except CheckpointError as err:
                rep.add(err, index, key=name)
                continue
            if se.shape != want or se.dtype != ent.dtype:
                rep.add(f"slice {sl.spec()} of {name!r} has dtype {dtype_from_enum(se.dtype).name} shape "
                        f"{list(se.shape)}, expected {dt.name} {list(want)}", index, key=name)
                continue
            if _check_entry(prefix, n, sizes, ranges, f"{name}[{sl.spec()}]", se, rep) and reader is not None:
                try:
                    reader.read_stored_slice(name, sl)
                    rep.bytes += se.size
                except CheckpointError as err:
                    rep.add(err, index, key=name)
            pieces.append(sl)
        _check_cover(name, ent.shape, pieces, index, rep)
        rep.tensors += 1
    for sk in sorted(set(slice_keys) - used):
        rep.add(f"orphan slice entry {sk!r} belongs to no tensor", index)
    for s, rs in ranges.items():
        _check_ranges(f"{prefix}.data-{s:05d}-of-{n:05d}", sizes[s], rs, rep)


def _check_entry(prefix: str, n: int, sizes: dict[int, int], ranges: dict[int, list[tuple[int, int, str]]],
                 name: str, e: BundleEntry, rep: Report) -> bool:
    index = prefix + ".index"
    dt = dtype_from_enum(e.dtype)
    if dt.is_fixed_size and e.size != e.num_elements * dt.size:
        rep.add(f"entry of {name!r} ({dt.name} {list(e.shape)}) says {e.size} bytes, expected "
                f"{e.num_elements * dt.size}", index, key=name)
        return False
    if e.size == 0:
        return True
    if not 0 <= e.shard_id < n:
        rep.add(f"entry of {name!r} names data shard {e.shard_id} of {n}", index, key=name)
        return False
    f = f"{prefix}.data-{e.shard_id:05d}-of-{n:05d}"
    if e.shard_id not in sizes:
        return False  # missing file already reported
    if e.offset + e.size > sizes[e.shard_id]:
        rep.add(f"{name!r} claims bytes [{e.offset}, {e.offset + e.size}) but the file has "
                f"{sizes[e.shard_id]} bytes", f, key=name, offset=e.offset)
        return False
    ranges[e.shard_id].append((e.offset, e.offset + e.size, name))
    return True


def _read(reader: BundleReader, name: str, rep: Report, e: BundleEntry) -> None:
    try:
        reader.read(name, copy=False)
        rep.tensors += 1
        rep.bytes += e.size
    except CheckpointError as err:
        rep.add(err, reader.index_path, key=name)


# Slices of one tensor checked pairwise for overlap (quadratic, vectorized: 16,384 take about two
# seconds); above it, only their total size is compared with the tensor's.
_MAX_PAIRWISE = 1 << 14


def _check_cover(name: str, shape: tuple[int, ...], pieces: list[TensorSlice], index: str, rep: Report) -> None:
    boxes = []
    for sl in pieces:
        idx = sl.index(shape)
        boxes.append([(s.start, s.stop) for s in idx])
    total = 1
    for d in shape:
        total *= d
    volume = 0
    for b in boxes:
        v = 1
        for lo, hi in b:
            v *= max(0, hi - lo)
        volume += v
    if len(boxes) > _MAX_PAIRWISE:
        rep.add(f"{len(boxes)} slices of {name!r}: checked for overlap by their total size only", index,
                key=name, severity="warning")
    elif boxes and boxes[0]:  # (scalars: one slice at most, as the volume shows)
        pair = first_overlap([[lo for lo, _ in b] for b in boxes], [[hi for _, hi in b] for b in boxes])
        if pair is not None:
            rep.add(f"slices {pieces[pair[0]].spec()} and {pieces[pair[1]].spec()} of {name!r} overlap", index,
                    key=name)
            return
    if volume != total:
        rep.add(f"the slices of {name!r} cover {volume} of its {total} elements", index, key=name)


def _check_ranges(f: str, size: int, rs: list[tuple[int, int, str]], rep: Report) -> None:
    pos = 0
    for lo, hi, name in sorted(rs):
        if lo < pos:
            rep.add(f"{name!r} overlaps the previous tensor's bytes", f, key=name, offset=lo)
        elif lo > pos:
            rep.add(f"{lo - pos} bytes not referenced by any tensor", f, offset=pos, severity="warning")
        pos = max(pos, hi)
    if pos < size:
        rep.add(f"{size - pos} bytes at the end not referenced by any tensor", f, offset=pos, severity="warning")


def run(args: argparse.Namespace) -> int:
    rep = verify(args.path)
    if args.json:
        dump_json({"path": rep.prefix, "format": rep.format, "ok": rep.ok, "tensors": rep.tensors,
                   "bytes": rep.bytes, "files": rep.files,
                   "problems": [p.__dict__ for p in rep.problems]})
    else:
        for p in rep.problems:
            print_line(styled(str(p), "red" if p.severity == "error" else "yellow"))
        errors = sum(p.severity == "error" for p in rep.problems)
        if rep.ok:
            print_line(styled(f"OK: {rep.prefix} ({rep.format}): {rep.tensors} tensors, {len(rep.files)} files, "
                              f"{human_bytes(rep.bytes)} of data verified", "green"))
        else:
            print_line(styled(f"FAILED: {rep.prefix} ({rep.format}): {errors} problem(s); {rep.tensors} tensors "
                              f"read intact", "bold red"))
    return 0 if rep.ok else 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="check every checksum and the structure of a checkpoint",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="checkpoint prefix, V1 file/pattern, or directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
