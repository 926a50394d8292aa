"""Command line: ``python -m benchmarks run [--quick] [--only NAME ...] [--peers P,...] [--out DIR]``.

Writes ``<out>/BENCHMARKS.md``, ``<out>/benchmarks/results.json`` and
``<out>/benchmarks/ratios.png`` (``--out`` defaults to the repository root).
Checkpoints go to a temporary directory (``--workdir`` to choose it) that is
removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks import harness, report
from benchmarks.workloads import NAMES

__all__ = ["main"]


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v for item in values for v in item.split(",") if v]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the suite and write BENCHMARKS.md")
    run.add_argument("--quick", action="store_true", help="tiny sizes (checks the harness, not the timings)")
    run.add_argument("--only", action="append", metavar="NAME",
                     help=f"workload(s) to run (repeatable or comma-separated): {', '.join(NAMES)}")
    run.add_argument("--peers", action="append", metavar="PEER", help="peer(s) to run (default: all)")
    run.add_argument("--out", default=harness.REPO, help="directory for BENCHMARKS.md and benchmarks/ outputs")
    run.add_argument("--workdir", default=None, help="directory for the checkpoints (default: a temp dir)")
    run.add_argument("--no-rss", action="store_true", help="skip the child-process peak-RSS measurements")
    run.add_argument("--repeats", type=int, default=None, help="override the number of timed runs")
    run.add_argument("--rounds", type=int, default=None,
                     help="times each peer runs per workload, each round from a different peer, the timed runs "
                          "shared out and pooled (default: 3; 1 with --quick)")
    run.add_argument("--same-process", action="store_true",
                     help="run every workload in this process (default: one fresh process per workload)")
    run.add_argument("--no-plot", action="store_true", help=argparse.SUPPRESS)
    rep = sub.add_parser("report", help="re-render BENCHMARKS.md and the plot from <out>/benchmarks/results.json")
    rep.add_argument("--out", default=harness.REPO)
    rep.add_argument("--command", default="python -m benchmarks run", help="the command that produced the results")
    child = sub.add_parser("_child", help=argparse.SUPPRESS)
    child.add_argument("spec")
    return p


def _write_report(results: dict[str, Any], out: str, command: str, plot: bool = True) -> None:
    out_dir = os.path.join(out, "benchmarks")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot_rel = "benchmarks/ratios.png"
    has_plot = plot and report.plot(results, os.path.join(out, plot_rel))
    with open(os.path.join(out, "BENCHMARKS.md"), "w") as f:
        f.write(report.render_markdown(results, command, plot_rel if has_plot else None))
    print(f"wrote {os.path.join(out, 'BENCHMARKS.md')}")


def _run_isolated(selected: list[str], args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """Each workload in a fresh interpreter (its peers still share one process), so one
    workload's leftovers (heap, framework thread pools, memory handed back to the host) do
    not slow the next; the results are merged."""
    merged: dict[str, Any] | None = None
    t0 = time.perf_counter()
    for name in selected:
        out = tempfile.mkdtemp(prefix=f"tfckpt-bench-{name}-")
        try:
            cmd = [sys.executable, "-m", "benchmarks", "run", "--only", name, "--out", out,
                   "--workdir", os.path.join(workdir, name), "--no-plot"]
            cmd += ["--peers", ",".join(_split(args.peers) or [])] if args.peers else []
            cmd += ["--no-rss"] if args.no_rss else []
            cmd += ["--repeats", str(args.repeats)] if args.repeats is not None else []
            cmd += ["--quick"] if args.quick else []
            cmd += ["--rounds", str(args.rounds)] if args.rounds is not None else []
            subprocess.run(cmd, check=True, cwd=harness.REPO)
            with open(os.path.join(out, "benchmarks", "results.json")) as f:
                part = json.load(f)
        finally:
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
        if merged is None:
            merged = part
        else:
            merged["workloads"].update(part["workloads"])
            merged["runs"] += part["runs"]
    assert merged is not None
    merged["meta"]["elapsed"] = f"{time.perf_counter() - t0:.0f} s"
    return merged


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "_child":
        print(json.dumps(harness.child_main(json.loads(args.spec))))
        return 0
    if args.cmd == "report":
        with open(os.path.join(args.out, "benchmarks", "results.json")) as f:
            _write_report(json.load(f), args.out, args.command)
        return 0
    if args.rounds is not None and args.rounds < 1:
        print("--rounds must be at least 1", file=sys.stderr)
        return 2
    only = _split(args.only)
    for name in only or []:
        if name not in NAMES:
            print(f"unknown workload {name!r}; choose from {', '.join(NAMES)}", file=sys.stderr)
            return 2
    own_workdir = args.workdir is None
    workdir = tempfile.mkdtemp(prefix="tfckpt-bench-") if own_workdir else args.workdir
    os.makedirs(workdir, exist_ok=True)
    selected = only or list(NAMES)
    try:
        if len(selected) > 1 and not args.same_process:
            results = _run_isolated(selected, args, workdir)
        else:
            results = harness.run_suite(quick=args.quick, workloads=selected, peers=_split(args.peers),
                                        workdir=workdir, rss=not args.no_rss, repeats=args.repeats,
                                        rounds=args.rounds or (1 if args.quick else 3),
                                        log=lambda s: print(s, flush=True))
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    argv_shown = sys.argv[1:] if argv is None else argv
    shown: list[str] = []
    skip = False
    for a in argv_shown:  # where files go is not part of the measurement
        if skip:
            skip = False
        elif a in ("--out", "--workdir"):
            skip = True
        elif not a.startswith(("--out=", "--workdir=")):
            shown.append(a)
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in shown)
    results["meta"]["command"] = command
    _write_report(results, args.out, command, plot=not args.no_plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
