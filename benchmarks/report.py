"""Turning measurements into ``BENCHMARKS.md`` (tables, targets, machine) and a ratio plot.

Every ratio is ``tfckpt time / peer time`` measured in the same run, with tfckpt
at ``sync=False`` (the peers do not fsync either); ``tfckpt-sync`` rows show the
cost of the default ``sync=True``. Below 1.0 means tfckpt is faster.
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["find", "median", "noise", "plot", "ratios", "render_markdown", "targets"]

MB = 1e6
_OPS = ("save", "restore", "restore_into", "read_one")
_PRIMED = (
    "Right before each timed save and restore, the harness writes to and frees as much new memory as "
    "the operation will take (the workload's bytes and a quarter): this VM hands memory that stays "
    "free for a couple of seconds back to its host, and a run that lands on such memory pays the "
    "host's page faults (a 1 GB save took 1-2.5 s instead of 0.3-0.5 s, for any peer, at random). "
)


def median(rec: dict[str, Any] | None, op: str) -> float | None:
    if rec is None or rec.get("skipped"):
        return None
    xs = rec.get(op) or []
    return statistics.median(xs) if xs else None


def find(results: dict[str, Any], workload: str, peer: str) -> dict[str, Any] | None:
    for r in results["runs"]:
        if r["workload"] == workload and r["peer"] == peer:
            rec: dict[str, Any] = r
            return rec
    return None


def _ratio(results: dict[str, Any], workload: str, op: str, peer: str, ours: str = "tfckpt",
           peer_op: str | None = None) -> float | None:
    a = median(find(results, workload, ours), op)
    b = median(find(results, workload, peer), peer_op or op)
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratios(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{workload: {op: {peer: tfckpt/peer}}}`` for save and restore."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    peers = sorted({r["peer"] for r in results["runs"]} - {"tfckpt"})
    for w in results["workloads"]:
        out[w] = {op: {p: _ratio(results, w, op, p) for p in peers} for op in _OPS}
    return out


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if x >= 0.01 else f"{x * 1000:.2f} ms"


def _fmt_r(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _fmt_mb(x: float | int | None) -> str:
    return "-" if x is None else f"{x / MB:.0f}" if abs(x) >= 10 * MB else f"{x / MB:.1f}"


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, str, bool | None]]:
    """``(target, workload, measured, goal, met)`` rows for the issue's targets."""
    rows: list[tuple[str, str, str, str, bool | None]] = []

    def ratio_row(what: str, w: str, op: str, peer: str, goal: float, peer_op: str | None = None,
                  ours: str = "tfckpt") -> None:
        r = _ratio(results, w, op, peer, ours=ours, peer_op=peer_op)
        if r is not None:
            rows.append((what, w, f"{r:.2f}x", f"<= {goal}x", r <= goal))

    for w in results["workloads"]:
        ratio_row("save vs raw floor", w, "save", "raw", 1.15)
        ratio_row("save vs TF SaveV2", w, "save", "tf-savev2", 0.7)
        ratio_row("save vs safetensors save_file", w, "save", "safetensors", 0.9)
        ratio_row("restore vs raw floor (CRC on)", w, "restore", "raw", 1.2)
        ratio_row("restore vs TF RestoreV2", w, "restore", "tf-savev2", 1.0)
        ratio_row("restore vs safetensors load_file", w, "restore", "safetensors", 1.0)
        ratio_row("restore in place vs raw readinto", w, "restore_into", "raw", 1.2)
        ratio_row("save vs TF1 Saver", w, "save", "tf-saver", 0.7)
        ratio_row("restore in place vs TF1 Saver restore", w, "restore_into", "tf-saver", 1.0)
        ratio_row("tfckpt.Saver save vs TF1 Saver save", w, "save", "tf-saver", 0.7, ours="tfckpt-saver")
        ratio_row("tfckpt.Saver restore vs TF1 Saver restore", w, "restore_into", "tf-saver", 1.0,
                  ours="tfckpt-saver")
    meta = results["workloads"]
    for w, info in meta.items():
        rec = find(results, w, "tfckpt")
        if rec is None or rec.get("skipped"):
            continue
        extra = rec.get("save_extra_rss")
        if extra is not None:
            allowed = max(64 * MB, info["largest"])
            rows.append(("save extra peak RSS", w, f"{extra / MB:.0f} MB", f"<= {allowed / MB:.0f} MB",
                         extra <= allowed))
        extra = rec.get("restore_extra_rss")
        if extra is not None and rec.get("ckpt_bytes"):
            rows.append(("restore peak RSS / checkpoint size", w, f"{extra / rec['ckpt_bytes']:.2f}x", "<= 1.1x",
                         extra <= 1.1 * rec["ckpt_bytes"]))
        extra = rec.get("restore_into_extra_rss")
        if extra is not None:
            rows.append(("restore in place: extra peak RSS", w, f"{extra / MB:.1f} MB",
                         f"<= {max(8 * MB, 0.02 * info['nbytes']) / MB:.1f} MB (no copy)",
                         extra <= max(8 * MB, 0.02 * info["nbytes"])))
    rec = find(results, "index100k", "tfckpt")
    if rec is not None and not rec.get("skipped"):
        t = median(rec, "read_one")
        if t is not None:
            rows.append(("open + read one tensor", "index100k", f"{t:.3f} s", "< 0.5 s", t < 0.5))
        got = rec.get("read_one_bytes")
        idx = rec.get("file_sizes", {}).get("ckpt.index")
        if got is not None and got >= 0 and idx is not None:
            want = idx + meta["index100k"]["target_bytes"]
            rows.append(("bytes read by open + read one", "index100k", f"{got:,}",
                         f"index + tensor = {want:,}", got <= want + 4096))
    for w in ("small", "index100k"):
        ours, raw = find(results, w, "tfckpt"), find(results, w, "raw")
        if ours is None or raw is None or w not in meta:
            continue
        n = meta[w]["count"]
        for op in ("save", "restore"):
            a, b = median(ours, op), median(raw, op)
            if a is not None and b is not None:
                us = (a - b) / n * 1e6
                rows.append((f"per-tensor overhead over raw, {op}", w, f"{us:.1f} us", "< 20 us", us < 20))
    return rows


def noise(results: dict[str, Any]) -> list[tuple[str, str, float, float, float]]:
    """``(workload, operation, tfckpt s, tfckpt-sync s, gap)`` for each restore both measured:
    the two peers restore with the same code (``sync`` only changes saves), so the gap between
    their medians (relative to the faster) shows how far this run's machine moved the figures."""
    rows = []
    for w in results["workloads"]:
        a, b = find(results, w, "tfckpt"), find(results, w, "tfckpt-sync")
        for op in ("restore", "restore_into"):
            x, y = median(a, op), median(b, op)
            if x and y:
                rows.append((w, op, x, y, abs(x - y) / min(x, y)))
    return rows


def render_markdown(results: dict[str, Any], command: str, plot_name: str | None) -> str:
    meta = results["meta"]
    rounds = int(meta.get("rounds", "1"))
    rounds_text = ". " if rounds == 1 else (
        f", taken in {rounds} rounds: each round runs every peer in turn, starting from a different peer, "
        "so a slow spell of the machine is shared out among the peers instead of landing on one. ")
    lines = [
        "# Benchmarks",
        "",
        "Generated by `" + command + "`" + (" (**quick size: harness check, not a measurement**)"
                                            if results["quick"] else "") + ". Do not edit by hand.",
        "",
        "All peers run in one process on the same in-memory arrays, one at a time; page cache warm "
        "(each checkpoint is read right after it is written); `os.sync()` before every timed save. "
        + (_PRIMED if meta.get("primed") else "")
        + "Times are medians of the runs shown as *n*, each operation after one untimed warm-up run"
        + rounds_text
        + "Ratios are **tfckpt time / peer time** with tfckpt at "
        "`sync=False` (no peer fsyncs); below 1.00x tfckpt is faster. `tfckpt-sync` is the default "
        "`sync=True` (fsync of data files, index and directory). tfckpt restores check every CRC-32C. "
        "Peak RSS is measured once per operation in a fresh child process: the peak above the "
        "process's RSS just before the operation (for saves that RSS already holds the state).",
        "",
        "## Machine",
        "",
    ]
    for k in ("cpu", "cores", "ram", "platform", "filesystem", "python", "versions", "started", "elapsed"):
        if k in meta:
            lines.append(f"- **{k}**: {meta[k]}")
    lines += ["", "## Targets", "", "| target | workload | measured | goal | met |", "|---|---|---|---|---|"]
    for what, w, got, goal, ok in targets(results):
        lines.append(f"| {what} | {w} | {got} | {goal} | {'yes' if ok else '**no**'} |")
    if plot_name:
        lines += ["", f"![tfckpt time / peer time]({plot_name})"]
    gaps = noise(results)
    if gaps:
        lines += ["", "## How much this run's machine moved the figures", "",
                  "`tfckpt` and `tfckpt-sync` restore with the same code (`sync` only changes saves): the gap "
                  "between their medians is noise, and a target met or missed by less than the largest gap "
                  "here could have gone the other way in this run (saves, which allocate page cache, can "
                  "move more).", "",
                  "| workload | operation | tfckpt s | tfckpt-sync s | gap |", "|---|---|---|---|---|"]
        lines += [f"| {w} | {op.replace('_', ' ')} | {_fmt_s(x)} | {_fmt_s(y)} | {100 * g:.0f}% |"
                  for w, op, x, y, g in gaps]
    rat = ratios(results)
    for w, info in results["workloads"].items():
        lines += ["", f"## {w}: {info['description']}", ""]
        lines.append("| peer | save s | tfckpt/peer | restore s | tfckpt/peer | restore into s | read one s "
                     "| read-one bytes | ckpt MB | save +RSS MB | restore +RSS MB | n |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        notes: list[str] = []
        for r in results["runs"]:
            if r["workload"] != w:
                continue
            if r.get("skipped"):
                notes.append(f"- **{r['peer']}**: {r['skipped']}")
                continue
            p = r["peer"]
            rs = "" if p == "tfckpt" else _fmt_r(rat[w]["save"].get(p))
            rr = "" if p == "tfckpt" else _fmt_r(rat[w]["restore"].get(p))
            n = max(len(r.get(op) or []) for op in _OPS)
            rb = r.get("read_one_bytes")
            rr_rss = r.get("restore_extra_rss")
            if rr_rss is None:
                rr_rss = r.get("restore_into_extra_rss")
            lines.append(
                f"| {p} | {_fmt_s(median(r, 'save'))} | {rs} | {_fmt_s(median(r, 'restore'))} | {rr} | "
                f"{_fmt_s(median(r, 'restore_into'))} | {_fmt_s(median(r, 'read_one'))} | "
                f"{'-' if rb is None else f'{rb:,}'} | {_fmt_mb(r.get('ckpt_bytes'))} | "
                f"{_fmt_mb(r.get('save_extra_rss'))} | {_fmt_mb(rr_rss)} | {n} |"
            )
            for note in r.get("notes", []):
                notes.append(f"- **{p}**: {note}")
            if r.get("restore_ok") is False or r.get("read_one_ok") is False:
                notes.append(f"- **{p}**: restored values did NOT match")
        if notes:
            lines += ["", *notes]
    lines += [
        "",
        "## Peers",
        "",
        "- **raw**: one file, `file.write(memoryview)` per tensor (unbuffered); restore: `np.empty` + "
        "`readinto`; in place: `readinto` the existing arrays; read one: `os.preadv` at a known offset. "
        "No index, no checksums: the floor.",
        "- **tfckpt**: `tfckpt.write(state, prefix, sync=False)`, `tfckpt.read(prefix)`, "
        "`CheckpointReader.read_many(out=arrays)` (in place), `CheckpointReader(prefix).get_tensor(name)`.",
        "- **tfckpt-saver**: `tfckpt.Saver(arrays, sync=False)`, called as the TF1 Saver peer is: "
        "`save(None, prefix, write_meta_graph=False, write_state=False)` and `restore(None, prefix)` into the "
        "arrays (its peak RSS is not measured separately).",
        "- **tfckpt-torch**: the same `tfckpt.Saver` calls over the **torch** peer's tensors (CPU, sharing "
        "the arrays' memory): what a PyTorch user of tfckpt does; compare it with **torch**.",
        "- **tfckpt-mmap**: `tfckpt.read(prefix, copy=False, verify_crc=False)`: read-only arrays backed by a "
        "memory map of the data files, pages read on first touch; compare its restore with **safetensors-pt**'s, "
        "which does the same (not a full restore; its save is tfckpt's).",
        "- **tf-savev2**: `tf.raw_ops.SaveV2` / `RestoreV2` on eager tensors; read one = `RestoreV2` of one name.",
        "- **tf-saver**: `tf.compat.v1.train.Saver(var_list={name: tf.Variable})` in eager mode, "
        "`save(write_meta_graph=False, write_state=False)` and `restore` into the variables; read one = "
        "`tf.train.load_checkpoint(prefix).get_tensor(name)`.",
        "- **safetensors** / **safetensors-pt**: `save_file` / `load_file` / `safe_open(...).get_tensor` "
        "with the numpy and the torch front ends. The torch `load_file` returns tensors backed by a memory map "
        "of the file: its restore time does not include reading the data (pages are read on first touch), so "
        "it is not a full restore; the numpy front end reads everything.",
        "- **torch**: `torch.save(dict)` / `torch.load(weights_only=True)`; in place: "
        "`torch.load(mmap=True)` then `copy_` into the existing tensors; read one: `torch.load(mmap=True)[name]`.",
        "- **npz**: `np.savez` / `np.load` (every member read).",
        "",
        "`read-one bytes` counts bytes read through `read`/`pread` syscalls (`/proc/self/io` rchar); "
        "memory-mapped reads (safetensors, torch mmap) do not show there.",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: str) -> bool:
    """Bar charts of tfckpt/peer for save and restore per workload; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    workloads = list(results["workloads"])
    peers = ["raw", "tf-savev2", "tf-saver", "safetensors", "safetensors-pt", "torch", "npz"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    width = 0.8 / len(peers)
    for ax, op in zip(axes, ("save", "restore")):
        for i, p in enumerate(peers):
            op_p = "restore_into" if op == "restore" and p == "tf-saver" else op
            vals = []
            for w in workloads:
                v = _ratio(results, w, "restore_into" if op_p == "restore_into" else op, p, peer_op=op_p)
                vals.append(v if v is not None else 0.0)
            ax.bar([j + i * width for j in range(len(workloads))], vals, width, label=p)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(workloads))], workloads)
        ax.set_title(f"{op}: tfckpt time / peer time (lower is better for tfckpt)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
