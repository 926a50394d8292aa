"""``tfckpt diff``: added, removed and changed tensors between two checkpoints."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfckpt._cli_format import dump_json, fmt_num, print_line, progress, styled, tolerance
from tfckpt.reader import CheckpointReader, load_checkpoint

__all__ = ["EXIT_DIFFER", "EXIT_ERROR", "Change", "add_parser", "compare_values", "diff_readers"]

EXIT_DIFFER = 1
EXIT_ERROR = 2

EXAMPLES = """\
examples:
  tfckpt diff run1/ run2/                       exact comparison of the latest checkpoints
  tfckpt diff a/model.ckpt-5 b/model.ckpt-5 --atol 1e-6 --rtol 1e-5
  tfckpt diff a b --json

Values are equal within tolerance when |a - b| <= atol + rtol * |b| elementwise
(numpy.allclose; NaNs in the same places are equal). The defaults (0, 0) ask for
exact equality.

exit status: 0 equal, 1 different, 2 usage error or unreadable checkpoint.
"""


@dataclass
class Change:
    """How one tensor differs: ``kind`` is added, removed, dtype, shape or values."""

    name: str
    kind: str
    a: str = ""
    b: str = ""
    max_abs: float | None = None
    max_rel: float | None = None
    differing: int = 0
    count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare_values(a: Any, b: Any, atol: float, rtol: float) -> tuple[int, float | None, float | None]:
    """``(number of elements outside tolerance, max |a-b|, max |a-b|/|b|)`` of two same-shape arrays.

    Strings compare by equality (the maxima are None). The relative difference of an
    element is ``inf`` where ``b`` is 0 and ``a`` is not, and where the two differ by ``inf``.

    Example:
        >>> compare_values(np.array([1.0, 2.0, np.nan]), np.array([1.0, 2.5, np.nan]), 0.0, 0.0)
        (1, 0.5, 0.2)
        >>> compare_values(np.array([1e-30, 1.0]), np.array([0.0, 1.0]), 0.0, 0.0)[2]
        inf
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype.kind in "OSU" or b.dtype.kind in "OSU":
        return int(np.count_nonzero(a != b)), None, None
    if a.dtype.kind == "b":
        a, b = a.astype(np.int8), b.astype(np.int8)
    complex_ = a.dtype.kind == "c"
    x = a.astype(np.complex128 if complex_ else np.float64)
    y = b.astype(np.complex128 if complex_ else np.float64)
    if a.dtype.kind in "iu" and (np.abs(x).max(initial=0) > 2**53 or np.abs(y).max(initial=0) > 2**53):
        exact = a.astype(object) - b.astype(object)
        absd = np.abs(exact.astype(np.float64))
        bad = int(np.count_nonzero(exact != 0)) if not (atol or rtol) else int(
            np.count_nonzero(absd > atol + rtol * np.abs(y)))
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            absd = np.abs(x - y)
        both_nan = np.isnan(x) & np.isnan(y)
        same_inf = np.isinf(x) & (x == y)
        with np.errstate(invalid="ignore"):
            ok = (absd <= atol + rtol * np.abs(y)) | both_nan | same_inf
        bad = int(ok.size - np.count_nonzero(ok))
        absd = np.where(both_nan | same_inf, 0.0, absd)
    if absd.size == 0:
        return bad, 0.0, 0.0
    max_abs = float(np.nanmax(absd)) if not np.isnan(absd).all() else float("nan")
    denom = np.abs(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(denom != 0, absd / np.where(denom != 0, denom, 1.0), np.where(absd > 0, np.inf, 0.0))
    rel = np.where(np.isinf(absd), np.inf, rel)  # (inf against -inf, or against a finite value)
    max_rel = float(np.nanmax(rel)) if rel.size and not np.isnan(rel).all() else 0.0
    return bad, max_abs, max_rel


def diff_readers(ra: CheckpointReader, rb: CheckpointReader, atol: float = 0.0, rtol: float = 0.0) -> list[Change]:
    """Every difference between two open checkpoints, sorted by tensor name."""
    sa, sb = ra.get_variable_to_shape_map(), rb.get_variable_to_shape_map()
    da, db = ra.get_variable_to_dtype_map(), rb.get_variable_to_dtype_map()
    changes: list[Change] = []
    for n in sorted(set(sa) - set(sb)):
        changes.append(Change(n, "removed", a=f"{da[n].name} {sa[n]}"))
    for n in sorted(set(sb) - set(sa)):
        changes.append(Change(n, "added", b=f"{db[n].name} {sb[n]}"))
    common = sorted(set(sa) & set(sb))
    for n in progress(common, len(common), "diff"):
        if da[n] != db[n]:
            changes.append(Change(n, "dtype", a=da[n].name, b=db[n].name))
        elif sa[n] != sb[n]:
            changes.append(Change(n, "shape", a=str(sa[n]), b=str(sb[n])))
        else:
            va, vb = ra.get_tensor(n, copy=False), rb.get_tensor(n, copy=False)
            bad, max_abs, max_rel = compare_values(va, vb, atol, rtol)
            if bad:
                count = int(np.asarray(va).size)
                changes.append(Change(n, "values", max_abs=max_abs, max_rel=max_rel, differing=bad, count=count))
    changes.sort(key=lambda c: c.name)
    return changes


def _line(c: Change) -> str:
    if c.kind == "removed":
        return styled(f"- {c.name}  {c.a}", "red")
    if c.kind == "added":
        return styled(f"+ {c.name}  {c.b}", "green")
    if c.kind in ("dtype", "shape"):
        return styled(f"~ {c.name}  {c.kind} {c.a} -> {c.b}", "yellow")
    extra = "" if c.max_abs is None else f", max abs diff {fmt_num(c.max_abs)}, max rel diff {fmt_num(c.max_rel)}"
    return styled(f"~ {c.name}  {c.differing} of {c.count} elements differ{extra}", "yellow")


def run(args: argparse.Namespace) -> int:
    with load_checkpoint(args.a) as ra, load_checkpoint(args.b) as rb:
        changes = diff_readers(ra, rb, args.atol, args.rtol)
        n_a = len(ra.get_variable_to_shape_map())
    kinds = {k: sum(c.kind == k for c in changes) for k in ("added", "removed")}
    changed = len(changes) - kinds["added"] - kinds["removed"]
    common = n_a - kinds["removed"]
    if args.json:
        dump_json({"a": args.a, "b": args.b, "atol": args.atol, "rtol": args.rtol, "equal": not changes,
                   "changes": [c.as_dict() for c in changes],
                   "summary": {"equal": common - changed, "changed": changed, **kinds}})
    else:
        for c in changes:
            print_line(_line(c))
        print_line(f"{common - changed} equal, {changed} changed, {kinds['added']} added, "
                   f"{kinds['removed']} removed")
    return EXIT_DIFFER if changes else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "diff",
        help="compare two checkpoints (exit 0 when equal)",
        description="Compare two checkpoints tensor by tensor: added, removed, changed (dtype, shape, or values "
                    "with max abs and relative difference).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", help="first checkpoint (prefix or directory)")
    p.add_argument("b", help="second checkpoint (prefix or directory)")
    p.add_argument("--atol", type=tolerance, default=0.0, help="absolute tolerance (default 0)")
    p.add_argument("--rtol", type=tolerance, default=0.0, help="relative tolerance (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run, error_exit=EXIT_ERROR)
