"""``tfckpt plot``: weight histograms of a checkpoint, or tensor norms across a directory's checkpoints.

matplotlib is optional (``pip install tfckpt[plot]``) and used without pyplot
(an Agg canvas), so no display or global backend is touched.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

import numpy as np

from tfckpt._cli_format import dump_json, positive_int, print_line, progress
from tfckpt._cli_ls import scan
from tfckpt.errors import InvalidArgumentError, NotFoundError, UnimplementedError
from tfckpt.reader import CheckpointReader, load_checkpoint

__all__ = ["add_parser", "plot_histograms", "plot_norms"]

_SAMPLE = 1 << 20  # at most this many values per histogram (evenly strided)

EXAMPLES = """\
examples:
  tfckpt plot ckpt -o weights.png                   one histogram per tensor (a grid)
  tfckpt plot ckpt -o dense.png --scope dense/      only tensors under dense/
  tfckpt plot ckpt -o scopes.png --by-scope         one histogram per scope
  tfckpt plot train/ -o norms.png                   L2 norm of each tensor across the saved checkpoints
  tfckpt plot train/ -o norms.png --by-scope        ... of each scope

needs matplotlib: pip install tfckpt[plot]
"""


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UnimplementedError("plotting needs matplotlib: pip install tfckpt[plot]") from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _group(name: str, by_scope: bool) -> str:
    if not by_scope:
        return name
    return name.rsplit("/", 1)[0] + "/" if "/" in name else "(root)"


def _numeric_names(reader: CheckpointReader, scope: str) -> list[str]:
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    return [n for n in sorted(shapes) if n.startswith(scope) and dtypes[n].is_fixed_size
            and dtypes[n].name != "bool" and shapes[n] and math.prod(shapes[n]) > 0]


def _as_float(arr: Any) -> np.ndarray[Any, Any]:
    a = np.asarray(arr)
    if a.dtype.kind == "c":
        a = np.abs(a)
    return a.astype(np.float64)


def _sample(arr: Any) -> np.ndarray[Any, Any]:
    flat = np.asarray(arr).reshape(-1)
    step = max(1, flat.size // _SAMPLE)
    x = _as_float(flat[::step])
    out: np.ndarray[Any, Any] = x[np.isfinite(x)]
    return out


def plot_histograms(path: str, out: str, *, scope: str = "", by_scope: bool = False, max_plots: int = 36,
                    bins: int = 50) -> dict[str, Any]:
    """Write a PNG grid of value histograms (per tensor, or per scope); return what was plotted."""
    with load_checkpoint(path) as r:
        names = _numeric_names(r, scope)
        if not names:
            raise InvalidArgumentError(f"no numeric tensors{' under ' + repr(scope) if scope else ''} in {path}")
        groups: dict[str, list[np.ndarray[Any, Any]]] = {}
        for n in progress(names, len(names), "reading"):
            groups.setdefault(_group(n, by_scope), []).append(_sample(r.get_tensor(n, copy=False)))
        prefix = r.prefix
    keys = list(groups)[:max_plots]
    cols = min(4, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = _figure(4.2 * cols, 2.8 * rows + 0.6)
    for i, k in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        x = np.concatenate(groups[k])
        if x.size:
            try:
                ax.hist(x, bins=bins, color="#3b75af")
            except ValueError:  # (numpy cannot cut the range of a constant huge value into bins)
                ax.text(0.5, 0.5, f"all in [{x.min():.6g}, {x.max():.6g}]:\ntoo narrow a range to bin",
                        transform=ax.transAxes, ha="center", va="center", fontsize=8)
        ax.set_title(_short(k), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.text(0.98, 0.95, f"n={x.size:,}\nμ={x.mean() if x.size else 0:.3g}\nσ={x.std() if x.size else 0:.3g}",
                transform=ax.transAxes, ha="right", va="top", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    more = f" (first {len(keys)} of {len(groups)})" if len(groups) > len(keys) else ""
    fig.suptitle(f"{os.path.basename(prefix)}: value histograms{more}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out)
    return {"kind": "histograms", "path": prefix, "output": out, "plots": keys, "omitted": len(groups) - len(keys)}


def _short(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def plot_norms(directory: str, out: str, *, scope: str = "", by_scope: bool = False,
               max_plots: int = 20) -> dict[str, Any]:
    """Write a PNG of each tensor's (or scope's) L2 norm against the step, over a directory's checkpoints."""
    listing = scan(directory)
    ckpts = [c for c in listing.checkpoints if c.format != "?" and not c.problems and "missing" not in c.status]
    if not ckpts:
        raise NotFoundError(f"no complete checkpoints in {directory}", path=directory)
    steps: list[int] = []
    series: dict[str, list[float]] = {}
    for idx, c in enumerate(progress(ckpts, len(ckpts), "checkpoints")):
        steps.append(c.step if c.step is not None else idx)
        sq: dict[str, float] = {}
        with CheckpointReader(os.path.join(directory, c.name)) as r:
            for n in _numeric_names(r, scope):
                x = _as_float(r.get_tensor(n, copy=False))
                g = _group(n, by_scope)
                sq[g] = sq.get(g, 0.0) + float(np.square(x).sum())
        for g, v in sq.items():
            series.setdefault(g, [math.nan] * idx).append(math.sqrt(v))
        for g in series:
            if len(series[g]) < idx + 1:
                series[g].append(math.nan)
    if not series:
        raise InvalidArgumentError(f"no numeric tensors{' under ' + repr(scope) if scope else ''} in {directory}")

    def change(v: list[float]) -> float:
        f = [x for x in v if not math.isnan(x)]
        return abs(f[-1] - f[0]) / (abs(f[0]) + 1e-12) if len(f) > 1 else 0.0

    keys = sorted(series, key=lambda k: -change(series[k]))[:max_plots]
    fig = _figure(11, 6)
    ax = fig.add_subplot(1, 1, 1)
    for k in sorted(keys):
        ax.plot(steps, series[k], marker="o", markersize=3, label=_short(k))
    ax.set_xlabel("step")
    ax.set_ylabel("L2 norm")
    ax.set_yscale("log" if all(v > 0 for k in keys for v in series[k] if not math.isnan(v)) else "linear")
    ax.grid(True, alpha=0.3)
    more = f" ({len(keys)} of {len(series)} that changed most)" if len(series) > len(keys) else ""
    ax.set_title(f"{os.path.basename(os.path.abspath(directory))}: L2 norm across {len(steps)} checkpoints{more}",
                 fontsize=11)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(out)
    return {"kind": "norms", "directory": directory, "output": out, "steps": steps,
            "series": {k: series[k] for k in keys}, "omitted": len(series) - len(keys)}


def _output(path: str) -> str:
    """``path``, given ``.png`` if it has no extension (matplotlib would add it); an error for a
    format matplotlib cannot write."""
    ext = os.path.splitext(path)[1][1:].lower()
    if not ext:
        return path + ".png"
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise UnimplementedError("plotting needs matplotlib: pip install tfckpt[plot]") from None
    supported = FigureCanvasBase.get_supported_filetypes()
    if ext not in supported:
        raise InvalidArgumentError(f"cannot write {path}: .{ext} is not an image format matplotlib writes "
                                   f"(choose one of {', '.join('.' + e for e in sorted(supported))})", path=path)
    return path


def run(args: argparse.Namespace) -> int:
    args.output = _output(args.output)
    if os.path.isdir(args.path):
        info = plot_norms(args.path, args.output, scope=args.scope, by_scope=args.by_scope,
                          max_plots=args.max_plots or 20)
    else:
        info = plot_histograms(args.path, args.output, scope=args.scope, by_scope=args.by_scope,
                               max_plots=args.max_plots or 36, bins=args.bins)
    if args.json:
        dump_json(info)
    else:
        print_line(f"wrote {args.output}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plot",
        help="histograms of weights, or norms across checkpoints (PNG)",
        description="For a checkpoint: a grid of value histograms, per tensor or per scope. For a directory: "
                    "how each tensor's (or scope's) L2 norm moved across the saved checkpoints, by step.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="a checkpoint prefix (histograms) or a training directory (norms)")
    p.add_argument("-o", "--output", required=True, help="output image (.png; .svg/.pdf also work)")
    p.add_argument("--scope", default="", help="only tensors whose name starts with this")
    p.add_argument("--by-scope", action="store_true", help="one histogram/line per scope instead of per tensor")
    p.add_argument("--max-plots", type=positive_int, default=0, help="at most this many panels/lines (36 / 20)")
    p.add_argument("--bins", type=positive_int, default=50, help="histogram bins (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=run)
