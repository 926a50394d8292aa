"""``tfckpt stats``: min, max, mean, std, NaN and Inf counts per tensor, one tensor in memory at a time."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfckpt._cli_format import dump_json, fmt_num, print_line, print_table, progress, styled
from tfckpt.errors import TensorNotFoundError
from tfckpt.reader import load_checkpoint

__all__ = ["TensorStats", "add_parser", "tensor_stats"]

EXIT_NONFINITE = 3
_CHUNK = 1 << 20  # elements per chunk when accumulating in float64

EXAMPLES = f"""\
examples:
  tfckpt stats train/                      every tensor of the latest checkpoint
  tfckpt stats ckpt dense/kernel dense/bias
  tfckpt stats ckpt --nan                  exit {EXIT_NONFINITE} if any tensor has a NaN or Inf (for CI)
  tfckpt stats ckpt --json

Complex tensors are summarised by magnitude |z|; strings are skipped.
exit status: 0 ok, 1 error, 2 usage, {EXIT_NONFINITE} NaN/Inf found with --nan.
"""


@dataclass
class TensorStats:
    """Summary statistics of one tensor; None where undefined (empty, all non-finite, or skipped)."""

    name: str
    dtype: str
    shape: list[int]
    count: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    nan: int = 0
    inf: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def tensor_stats(name: str, value: Any, dtype_name: str) -> TensorStats:
    """Statistics of one tensor's value, over its finite elements, accumulated chunk by chunk in float64.

    Example:
        >>> s = tensor_stats("w", np.array([1.0, 3.0, np.nan, np.inf], np.float32), "float32")
        >>> (s.min, s.max, s.mean, s.std, s.nan, s.inf)
        (1.0, 3.0, 2.0, 1.0, 1, 1)
    """
    arr = np.asarray(value)
    st = TensorStats(name, dtype_name, list(arr.shape), int(arr.size))
    if arr.dtype.kind in "OSU":
        st.note = "string (skipped)"
        return st
    flat = arr.reshape(-1)
    if arr.dtype.kind == "c":
        st.note = "complex: stats of |z|"
    n_total = 0
    mean = 0.0
    m2 = 0.0
    lo, hi = math.inf, -math.inf
    exact_int = arr.dtype.kind in "iub"
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, flat.size, _CHUNK):
            chunk = flat[start : start + _CHUNK]
            n_total, mean, m2, lo, hi = _accumulate(st, chunk, exact_int, n_total, mean, m2, lo, hi)
    if n_total:
        st.min = int(lo) if exact_int else lo
        st.max = int(hi) if exact_int else hi
        st.mean = mean
        st.std = math.sqrt(m2 / n_total) if math.isfinite(m2) else math.inf
    return st


def _accumulate(st: TensorStats, chunk: np.ndarray[Any, Any], exact_int: bool, n_total: int, mean: float,
                m2: float, lo: float, hi: float) -> tuple[int, float, float, float, float]:
    """Fold one chunk into the running count, mean, M2 (Chan et al.), min and max."""
    if exact_int:
        if chunk.size:
            lo = min(lo, int(chunk.min()))
            hi = max(hi, int(chunk.max()))
        x = chunk.astype(np.float64)
    else:
        x = np.abs(chunk) if chunk.dtype.kind == "c" else chunk
        x = x.astype(np.float64)
        nan = np.isnan(x)
        inf = np.isinf(x)
        st.nan += int(nan.sum())
        st.inf += int(inf.sum())
        if st.nan or st.inf:
            x = x[~(nan | inf)]
        if x.size:  # (+ 0.0: which zero numpy's min/max return of -0.0 and 0.0 depends on the CPU)
            lo, hi = min(lo, float(x.min()) + 0.0), max(hi, float(x.max()) + 0.0)
    k = int(x.size)
    if not k:
        return n_total, mean, m2, lo, hi
    cm = float(x.mean())
    cm2 = float(((x - cm) ** 2).sum())
    delta = cm - mean
    tot = n_total + k
    mean += delta * k / tot
    m2 += cm2 + delta * delta * n_total * k / tot
    return tot, mean, m2, lo, hi


def run(args: argparse.Namespace) -> int:
    results: list[TensorStats] = []
    with load_checkpoint(args.path) as r:
        dtypes = r.get_variable_to_dtype_map()
        names = list(args.names) or sorted(dtypes)
        for n in names:
            if not r.has_tensor(n):
                raise TensorNotFoundError(f"Key {n} not found in checkpoint", key=n)
        for n in progress(names, len(names), "stats"):
            dt = dtypes[n]
            if dt.is_string:
                shape = r.get_variable_to_shape_map()[n]
                count = int(np.prod(shape, dtype=np.int64)) if shape else 1
                results.append(TensorStats(n, dt.name, shape, count, note="string (skipped)"))
                continue
            results.append(tensor_stats(n, r.get_tensor(n, copy=False), dt.name))
    bad = [s for s in results if s.nan or s.inf]
    if args.json:
        dump_json({"path": args.path, "tensors": [s.as_dict() for s in results],
                   "nonfinite_tensors": [s.name for s in bad]})
    else:
        rows = [[s.name, s.dtype, str(s.shape), fmt_num(s.min), fmt_num(s.max), fmt_num(s.mean), fmt_num(s.std),
                 str(s.nan), str(s.inf), s.note] for s in results]
        styles = ["red" if (s.nan or s.inf) else None for s in results]
        print_table(["name", "dtype", "shape", "min", "max", "mean", "std", "nan", "inf", "note"], rows,
                    align="lllrrrrrrl", styles=styles)
        if bad:
            print_line(styled(f"{len(bad)} tensor(s) with NaN or Inf: " + ", ".join(s.name for s in bad), "red"))
    if args.nan and bad:
        return EXIT_NONFINITE
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "stats",
        help="min, max, mean, std, NaN/Inf counts per tensor",
        description="Summary statistics of each tensor (over its finite values), reading one tensor at a time.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="checkpoint prefix or directory")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these tensors (default: all)")
    p.add_argument("--nan", action="store_true", help=f"exit with status {EXIT_NONFINITE} if any NaN or Inf")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
