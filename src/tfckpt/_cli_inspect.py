"""``tfckpt inspect``: what is in a checkpoint (a table, a scope tree, or TensorFlow's exact output)."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from tfckpt._cli_format import dump_json, human_bytes, print_table
from tfckpt._format.bundle_reader import BundleReader
from tfckpt.inspect_checkpoint import count_total_params, parse_numpy_printoption, print_tensors, printoptions
from tfckpt.reader import CheckpointReader, load_checkpoint

__all__ = ["TensorInfo", "add_parser", "tensor_infos"]

EXAMPLES = """\
examples:
  tfckpt inspect train/                       table of the latest checkpoint in train/
  tfckpt inspect train/model.ckpt-7 --tree    grouped by scope, with subtotals
  tfckpt inspect ckpt --tensor dense/kernel   one tensor's value (TensorFlow's output)
  tfckpt inspect ckpt --all-tensor-names      what TensorFlow's inspect_checkpoint prints
  tfckpt inspect ckpt --all-tensors --printoptions threshold=10000
  tfckpt inspect ckpt --tf                    TensorFlow's default output (debug string)
  tfckpt inspect ckpt --json                  machine-readable
"""


@dataclass
class TensorInfo:
    """One tensor's metadata: name, TF dtype name, shape, element count and stored bytes (None if unknown)."""

    name: str
    dtype: str
    shape: list[int]
    params: int
    nbytes: int | None


def tensor_infos(reader: CheckpointReader) -> list[TensorInfo]:
    """Every tensor's :class:`TensorInfo`, sorted by name, from the index only (no data read).

    Example:
        >>> import numpy as np, tempfile, os, tfckpt
        >>> p = tfckpt.write({"w": np.ones((2, 3), np.float32), "s": "hi"}, os.path.join(tempfile.mkdtemp(), "c"))
        >>> [(t.name, t.dtype, t.shape, t.params, t.nbytes) for t in tensor_infos(tfckpt.load_checkpoint(p))]
        [('s', 'string', [], 1, 7), ('w', 'float32', [2, 3], 6, 24)]
    """
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    impl = getattr(reader, "_impl", None)
    out = []
    for name in sorted(shapes):
        shape, dt = shapes[name], dtypes[name]
        n = 1
        for d in shape:
            n *= d
        nbytes: int | None = n * dt.size if dt.is_fixed_size else None
        if nbytes is None and isinstance(impl, BundleReader):
            e = impl.entry(name)
            nbytes = e.size if not e.slices else None
        out.append(TensorInfo(name, dt.name, list(shape), n, nbytes))
    return out


def _sum_bytes(infos: list[TensorInfo]) -> int | None:
    total = 0
    for t in infos:
        if t.nbytes is None:
            return None
        total += t.nbytes
    return total


@dataclass
class _Scope:
    name: str
    children: dict[str, _Scope] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)

    def all_tensors(self) -> list[TensorInfo]:
        out = list(self.tensors)
        for c in self.children.values():
            out.extend(c.all_tensors())
        return out


def _build_tree(infos: list[TensorInfo]) -> _Scope:
    root = _Scope("")
    for t in infos:
        node = root
        parts = t.name.split("/")
        for p in parts[:-1]:
            node = node.children.setdefault(p, _Scope(p))
        node.tensors.append(t)
    return root


def _tree_rows(node: _Scope, depth: int, rows: list[list[str]], styles: list[str | None]) -> None:
    items: list[tuple[str, Any]] = [(k, c) for k, c in node.children.items()]
    items += [(t.name.rsplit("/", 1)[-1], t) for t in node.tensors]
    items.sort(key=lambda kv: kv[0])
    pad = "  " * depth
    for key, item in items:
        if isinstance(item, _Scope):
            # Collapse chains of scopes that hold a single scope, and scopes that hold a single tensor.
            while len(item.children) == 1 and not item.tensors:
                (sub_key, sub), = item.children.items()
                key, item = f"{key}/{sub_key}", sub
            ts = item.all_tensors()
            if len(ts) == 1 and not item.children:
                t = ts[0]
                rows.append([f"{pad}{key}/{t.name.rsplit('/', 1)[-1]}", t.dtype, str(t.shape), f"{t.params:,}",
                             human_bytes(t.nbytes)])
                styles.append(None)
                continue
            rows.append([f"{pad}{key}/", "", f"{len(ts)} tensor{'s' if len(ts) != 1 else ''}",
                         f"{sum(t.params for t in ts):,}", human_bytes(_sum_bytes(ts))])
            styles.append("bold")
            _tree_rows(item, depth + 1, rows, styles)
        else:
            rows.append([f"{pad}{key}", item.dtype, str(item.shape), f"{item.params:,}", human_bytes(item.nbytes)])
            styles.append(None)


def _tf_mode(args: argparse.Namespace) -> bool:
    return bool(args.tensor or args.all_tensors or args.all_tensor_names or args.tf or args.count_exclude_pattern)


def run(args: argparse.Namespace) -> int:
    if args.tree and _tf_mode(args) and not args.json:
        print("tfckpt inspect: error: --tree is tfckpt's table; TensorFlow's output (--tf, --tensor, --all-tensors, "
              "--all-tensor-names, --count-exclude-pattern) has no tree", file=sys.stderr)
        return 2
    if args.count_exclude_pattern:
        re.compile(args.count_exclude_pattern)  # (a bad pattern is reported before anything is printed)
    with load_checkpoint(args.path) as reader:
        if _tf_mode(args) and not args.json:
            with printoptions(args.printoptions):
                print_tensors(reader, args.tensor, args.all_tensors, args.all_tensor_names,
                              args.count_exclude_pattern or "", sys.stdout)
            return 0
        infos = tensor_infos(reader)
        if args.json:
            return _json(reader, infos, args)
        total_params = sum(t.params for t in infos)
        total_bytes = _sum_bytes(infos)
        footer = [f"total: {len(infos)} tensors", "", "", f"{total_params:,}", human_bytes(total_bytes)]
        headers = ["name", "dtype", "shape", "params", "size"]
        title = f"{reader.prefix} ({reader.format})"
        if args.tree:
            rows: list[list[str]] = []
            styles: list[str | None] = []
            _tree_rows(_build_tree(infos), 0, rows, styles)
            print_table(headers, rows, align="lllrr", footer=footer, title=title, styles=styles)
        else:
            rows = [[t.name, t.dtype, str(t.shape), f"{t.params:,}", human_bytes(t.nbytes)] for t in infos]
            print_table(headers, rows, align="lllrr", footer=footer, title=title)
    return 0


def _json(reader: CheckpointReader, infos: list[TensorInfo], args: argparse.Namespace) -> int:
    selected = infos
    if args.tensor:
        if not reader.has_tensor(args.tensor):
            from tfckpt.errors import TensorNotFoundError

            raise TensorNotFoundError(f"Tensor {args.tensor} not found in checkpoint", key=args.tensor)
        selected = [t for t in infos if t.name == args.tensor]
    with_values = bool(args.tensor or args.all_tensors)
    tensors = []
    for t in selected:
        d: dict[str, Any] = {"name": t.name, "dtype": t.dtype, "shape": t.shape, "params": t.params,
                             "nbytes": t.nbytes}
        if with_values:
            d["value"] = reader.get_tensor(t.name)
        tensors.append(d)
    import io

    sink = io.StringIO()
    counted = count_total_params(reader.get_variable_to_shape_map(), args.count_exclude_pattern or "", sink)
    dump_json({
        "path": reader.prefix,
        "format": reader.format,
        "object_based": reader.is_object_based,
        "tensors": tensors,
        "total": {"tensors": len(infos), "params": sum(t.params for t in infos), "nbytes": _sum_bytes(infos),
                  "counted_params": counted},
    })
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "inspect",
        help="what is in a checkpoint: tensors, dtypes, shapes, sizes",
        description="List a checkpoint's tensors as a table (default), a scope tree (--tree), or exactly as "
                    "TensorFlow's inspect_checkpoint prints them (--tensor / --all-tensors / --all-tensor-names "
                    "/ --tf).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="checkpoint prefix, V1 file/pattern, or a directory with a 'checkpoint' file")
    p.add_argument("--tensor", "--tensor_name", dest="tensor", default="", metavar="NAME",
                   help="print this tensor's value (TensorFlow's output)")
    p.add_argument("--all-tensors", "--all_tensors", dest="all_tensors", action="store_true",
                   help="print every tensor's name and value (TensorFlow's output)")
    p.add_argument("--all-tensor-names", "--all_tensor_names", dest="all_tensor_names", action="store_true",
                   help="print every tensor's name, dtype and shape (TensorFlow's output)")
    p.add_argument("--count-exclude-pattern", "--count_exclude_pattern", dest="count_exclude_pattern",
                   default="", metavar="REGEX", help="exclude matching tensors from the parameter count")
    p.add_argument("--printoptions", action="append", type=parse_numpy_printoption, metavar="K=V",
                   help="numpy print option for values, e.g. threshold=100000 (repeatable)")
    p.add_argument("--tf", action="store_true", help="TensorFlow's default output (one line per tensor)")
    p.add_argument("--tree", action="store_true", help="group tensors by scope ('/'), with subtotals")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
