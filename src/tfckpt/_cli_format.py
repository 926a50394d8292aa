"""Output helpers for the command line: tables (plain or rich), sizes, JSON, progress bars.

Rich tables and colours are used only when stdout is a terminal and ``rich`` is
importable (or when forced with ``--color always``); piped output is plain text
that scripts can rely on, and ``--json`` is the stable machine format.

Example:
    >>> human_bytes(1536)
    '1.5 KiB'
    >>> print_table(["name", "n"], [["a", "1"], ["bb", "22"]], align="lr", color=False)
    name   n
    a      1
    bb    22
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO, TypeVar

import numpy as np

__all__ = [
    "dump_json",
    "fmt_num",
    "human_bytes",
    "jsonable",
    "print_table",
    "progress",
    "use_color",
]

T = TypeVar("T")

# Cells longer than this do not widen their column in plain text.
MAX_ALIGN = 80

# Set by the CLI from --color: "auto", "always" or "never".
COLOR_MODE = "auto"


def rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def use_color(stream: TextIO | None = None) -> bool:
    """Whether to render with rich: ``--color always``, or a TTY with rich installed and NO_COLOR unset."""
    if COLOR_MODE == "never":
        return False
    if COLOR_MODE == "always":
        return rich_available()
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR"):
        return False
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and rich_available()


def human_bytes(n: int | None) -> str:
    """``1536 -> '1.5 KiB'`` (binary units); None -> ``'?'``.

    Example:
        >>> human_bytes(0), human_bytes(1023), human_bytes(10 * 2**20)
        ('0 B', '1023 B', '10.0 MiB')
    """
    if n is None:
        return "?"
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        size /= 1024.0
        if size < 1024.0 or unit == "PiB":
            break
    return f"{size:.1f} {unit}"


def fmt_num(x: float | int | None) -> str:
    """A compact number: ints as is, floats with 6 significant digits, None as ``-``.

    Example:
        >>> fmt_num(3), fmt_num(0.1234567), fmt_num(None), fmt_num(float("nan"))
        ('3', '0.123457', '-', 'nan')
    """
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    return f"{float(x):.6g}"


def display_width(text: str) -> int:
    """The columns ``text`` takes on a terminal: wide (CJK) characters take two, combining marks none.

    Example:
        >>> display_width("kernel"), display_width("層/重み"), display_width("e\u0301")
        (6, 7, 1)
    """
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align: str | None = None,
    footer: Sequence[str] | None = None,
    title: str | None = None,
    styles: Sequence[str | None] | None = None,
    out: TextIO | None = None,
    color: bool | None = None,
) -> None:
    """Print a table: aligned plain text, or a rich table when ``color`` (default: :func:`use_color`).

    ``align`` holds one ``l``/``r`` per column; ``styles`` one rich style per row (ignored in plain text).
    """
    out = sys.stdout if out is None else out
    align = align or "l" * len(headers)
    if color is None:
        color = use_color(out)
    if color:
        _rich_table(headers, rows, align, footer, title, styles, out)
        return
    widths = [display_width(h) for h in headers]
    for r in [*rows, *([footer] if footer else [])]:
        for i, c in enumerate(r):
            if len(c) <= MAX_ALIGN:  # a huge cell overflows instead of widening every line
                widths[i] = max(widths[i], display_width(c))

    def line(cells: Sequence[str]) -> str:
        pads = [" " * max(0, w - display_width(c)) for c, w in zip(cells, widths)]
        parts = [p + c if a == "r" else c + p for c, p, a in zip(cells, pads, align)]
        return "  ".join(parts).rstrip()

    if title:
        print(title, file=out)
    print(line(headers), file=out)
    for r in rows:
        print(line(r), file=out)
    if footer:
        print(line(footer), file=out)


def after_broken_pipe() -> int:
    """Exit status 0 once stdout's reader went away (output piped into ``head``): stdout is
    pointed at the null device so the flush at exit raises nothing."""
    try:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (kept open until exit)
    except OSError:
        pass
    return 0


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def tolerance(text: str) -> float:
    """An argparse ``type``: a finite number of 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _rich_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str,
    footer: Sequence[str] | None,
    title: str | None,
    styles: Sequence[str | None] | None,
    out: TextIO,
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_footer=footer is not None, header_style="bold cyan")
    for i, h in enumerate(headers):
        # The first column (names, often long) folds; the others (dtypes, shapes, numbers) keep
        # their width, or a long name would squeeze them to nothing on a narrow terminal.
        cells = [r[i] for r in rows if i < len(r)] + ([footer[i]] if footer else [])
        width = None if i == 0 else min(MAX_ALIGN, max([len(h), *map(len, cells)]))
        table.add_column(h, justify="right" if align[i] == "r" else "left", footer=footer[i] if footer else "",
                         overflow="fold" if i == 0 else "ellipsis", no_wrap=i != 0, min_width=width)
    for j, r in enumerate(rows):
        table.add_row(*r, style=styles[j] if styles else None)
    Console(file=out, force_terminal=COLOR_MODE == "always" or None, highlight=False).print(table)


def styled(text: str, style: str, out: TextIO | None = None) -> str:
    """``text`` wrapped in rich markup when colouring, else unchanged (markup in ``text`` is escaped)."""
    if not use_color(out):
        return text
    from rich.markup import escape

    return f"[{style}]{escape(text)}[/{style}]"


def print_line(text: str, out: TextIO | None = None) -> None:
    """Print one line, interpreting rich markup produced by :func:`styled` when colouring."""
    out = sys.stdout if out is None else out
    if use_color(out):
        from rich.console import Console

        Console(file=out, force_terminal=COLOR_MODE == "always" or None, highlight=False,
                soft_wrap=True).print(text)
    else:
        print(text, file=out)


def jsonable(x: Any) -> Any:
    """Convert numpy values to JSON-safe ones: non-finite floats as strings, bytes as text, complex as pairs.

    Example:
        >>> jsonable(np.array([1.5, np.nan, -np.inf], np.float32))
        [1.5, 'nan', '-inf']
        >>> jsonable(np.array([b"a", b"\\xff"], dtype=object))
        ['a', '\\\\xff']
    """
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "biu":
            return x.tolist()
        if x.ndim == 0:
            return jsonable(x[()])
        return [jsonable(v) for v in x]
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (complex, np.complexfloating)):
        return [jsonable(float(x.real)), jsonable(float(x.imag))]
    if isinstance(x, (bytes, np.bytes_)):
        return bytes(x).decode("utf-8", errors="backslashreplace")
    if isinstance(x, (float, np.floating)) or (isinstance(x, np.generic) and x.dtype.kind == "V"):
        f = float(x)  # also ml_dtypes scalars (bfloat16, float8)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    return x


def dump_json(obj: Any, out: TextIO | None = None) -> None:
    """Print ``obj`` as indented JSON (strict: no NaN literals)."""
    out = sys.stdout if out is None else out
    print(json.dumps(jsonable(obj), indent=2, allow_nan=False), file=out)


def progress(items: Iterable[T], total: int | None, description: str, *, enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` with a transient rich progress bar on stderr when it is a terminal."""
    show = enabled and COLOR_MODE != "never" and _stderr_tty() and rich_available()
    if not show:
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def _stderr_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
