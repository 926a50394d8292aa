"""Running the suite: timings in this process, peak RSS in child processes.

For each workload, each peer in turn (one at a time, its state freed before the
next): ``save`` (``os.sync()`` before every run so earlier dirty pages do not
throttle it), ``restore`` into new arrays, ``restore_into`` existing arrays and
``read_one`` (open + read one tensor, with the bytes read through syscalls taken
from ``/proc/self/io``). The page cache is warm for reads: the checkpoint was
just written. Before each timed save and restore the harness touches and frees
as much memory as the operation will take (see :func:`_prime`). Each figure is
the median of the runs.

Peak RSS is measured in a fresh child process per (workload, peer, operation):
the child builds its state, resets the kernel's high-water mark
(``/proc/self/clear_refs``), runs the operation once and reports
``VmHWM - VmRSS(before)``.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import peers as peers_mod
from benchmarks.workloads import NAMES, Workload, build, payload_size

__all__ = ["child_main", "machine", "run_suite"]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPS = ("save", "restore", "restore_into", "read_one")
_IN_PLACE_RSS = ("raw", "tfckpt", "tf-saver")
_BUDGET = 45.0  # seconds of runs per (peer, op) before the repeat count is cut short


def _status(field: str) -> int:
    return _status_of("/proc/self/status", field)


def _status_of(path: str, field: str) -> int:
    """A ``field: <n> kB`` line of a ``/proc`` file, in bytes (0 if absent)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _rchar() -> int:
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _dir_size(d: str) -> tuple[int, int]:
    total = n = 0
    for root, _, files in os.walk(d):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
            n += 1
    return total, n


def _fresh_dir(d: str) -> str:
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _prime(nbytes: int) -> None:
    """Touch ``nbytes`` of new memory (a write per page) and free it at once.

    This VM hands memory freed for a couple of seconds back to its host (virtio-balloon
    free page reporting), and memory taken again after that pays the host's page faults on
    first touch: a 1 GB save that lands on it took 1-2.5 s instead of 0.3-0.5 s here, for
    any peer, at random. Touching and freeing as much memory as the operation will take,
    right before it, hands the operation memory the guest holds, as a long-running
    training process's would be.
    """
    b = np.empty(nbytes, np.uint8)
    b[::4096] = 1
    del b


def _repeat(fn: Callable[[], Any], n: int, before: Callable[[], None] | None = None, prime: int = 0) -> list[float]:
    """Time ``fn`` up to ``n`` times (fewer once the budget is spent), after one untimed warm-up
    run; ``before`` runs untimed before each, then :func:`_prime` of ``prime`` bytes. The
    warm-up absorbs first-touch costs that would otherwise land on whichever peer runs first."""
    if before is not None:
        before()
    if prime:
        _prime(prime)
    fn()
    times: list[float] = []
    spent = 0.0
    for _ in range(n):
        if before is not None:
            before()
        _trim()  # every run starts with freed memory returned to the OS: new arrays pay their page faults
        if prime:
            _prime(prime)
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        del out
        times.append(dt)
        spent += dt
        if spent > _BUDGET:
            break
    return times


def _prime_bytes(w: Workload) -> int:
    """Memory to :func:`_prime` before a save or a restore of ``w``: its bytes and a quarter
    (page cache or new arrays, and a peer's own buffers), at most half the free memory."""
    want = w.nbytes + w.nbytes // 4 + (64 << 20)
    return min(want, _status_of("/proc/meminfo", "MemAvailable") // 2)


def _check(value: Any, expected: np.ndarray[Any, Any]) -> bool:
    got = peers_mod.as_numpy(value)
    return got.shape == expected.shape and got.tobytes() == np.ascontiguousarray(expected).tobytes()


def _child(spec: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any] | None:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cmd = [sys.executable, "-m", "benchmarks", "_child", json.dumps(spec)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        log(f"    child {spec['op']} failed (rc={proc.returncode}): {proc.stderr.strip()[-300:]}")
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Inside a child process: run one operation once and report its extra peak RSS."""
    peer = next(p for p in peers_mod.all_peers() if p.name == spec["peer"])
    w = build(spec["workload"], quick=spec["quick"])
    state, _ = peer.prepare(w)
    for mod in peer.imports:  # an import is not part of the operation's memory
        importlib.import_module(mod)
    op, path = spec["op"], spec["path"]
    if op == "restore" or (op == "restore_into" and peer.name == "raw"):
        if op == "restore":
            del state
            state = None
        w.arrays.clear()
        del w
    _trim()
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    out = None
    if op == "save":
        peer.save(state, path)
    elif op == "restore":
        out = peer.restore(path)
    else:
        out = peer.restore_into(path, state)
    peak = _status("VmHWM")
    del out
    return {"extra": peak - base, "base": base}


def machine() -> dict[str, str]:
    """A description of this machine and of the software measured."""
    info: dict[str, str] = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            models = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["cpu"] = f"{models[0]} x {len(models)}" if models else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    info["cores"] = str(os.cpu_count())
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["ram"] = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    versions = {}
    for mod in ("numpy", "tfckpt", "crc32c", "tensorflow", "torch", "safetensors"):
        try:
            m = __import__(mod)
            versions[mod] = str(getattr(m, "__version__", "?"))
        except Exception:
            versions[mod] = "not installed"
    info["versions"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    return info


def _fs_of(path: str) -> str:
    best, fstype = "", "?"
    try:
        with open("/proc/mounts") as f:
            for ln in f:
                parts = ln.split()
                if len(parts) > 2 and path.startswith(parts[1]) and len(parts[1]) > len(best):
                    best, fstype = parts[1], f"{parts[2]} ({parts[0]})"
    except OSError:
        pass
    return fstype


def _bench_peer(peer: peers_mod.Peer, w: Workload, workdir: str, quick: bool, rss: bool,
                log: Callable[[str], None], repeats: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"workload": w.name, "peer": peer.name, "label": peer.label, "fsync": peer.fsync,
                           "notes": [], "skipped": None}
    reason = peer.unavailable()
    if reason is None and w.count > peer.max_tensors:
        reason = f"skipped: creating {w.count:,} tf.Variables takes minutes"
    if reason is not None:
        rec["skipped"] = reason
        log(f"  {peer.name:15s} skipped ({reason})")
        return rec
    t_prep = time.perf_counter()
    try:
        state, notes = peer.prepare(w)
    except Exception as e:  # a peer that cannot take this workload is reported, not fatal
        rec["skipped"] = f"prepare failed: {type(e).__name__}: {str(e)[:200]}"
        log(f"  {peer.name:15s} {rec['skipped']}")
        return rec
    rec["notes"] = notes
    rec["prepare_s"] = time.perf_counter() - t_prep
    d = os.path.join(workdir, w.name, peer.name)
    path = os.path.join(d, "ckpt")

    def before_save() -> None:
        _fresh_dir(d)
        os.sync()

    prime = _prime_bytes(w)
    rec["save"] = _repeat(lambda: peer.save(state, path), repeats, before_save, prime)
    rec["ckpt_bytes"], rec["files"] = _dir_size(d)
    rec["file_sizes"] = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}
    restored_ok = None
    try:
        out = peer.restore(path)
        restored_ok = _check(out[w.target] if isinstance(out, dict) else out[sorted(w.arrays).index(w.target)],
                             w.arrays[w.target])
        del out
        rec["restore"] = _repeat(lambda: peer.restore(path), repeats, prime=prime)
    except NotImplementedError:
        rec["restore"] = []
    if peer.restore_into(path, state) is not None:
        rec["restore_into"] = _repeat(lambda: peer.restore_into(path, state), repeats)
    else:
        rec["restore_into"] = []
    one = peer.read_one(path, w.target)
    rec["read_one_ok"] = _check(one, w.arrays[w.target])
    rec["restore_ok"] = restored_ok
    del one
    before = _rchar()
    peer.read_one(path, w.target)
    rec["read_one_bytes"] = _rchar() - before if before >= 0 else None
    rec["read_one"] = _repeat(lambda: peer.read_one(path, w.target), repeats)
    state = None
    _trim()
    if rss and peer.name not in ("tfckpt-sync", "tfckpt-saver", "tfckpt-torch", "tfckpt-mmap"):  # tfckpt's: once
        for op in ("save", "restore", "restore_into"):
            if (op == "restore" and not rec["restore"]) or (op == "restore_into" and not rec["restore_into"]):
                continue
            if op == "restore_into" and peer.name not in _IN_PLACE_RSS:
                continue  # children are costly (torch/TF imports): in-place RSS where it is the point
            if op == "save":
                sd = _fresh_dir(os.path.join(workdir, w.name, peer.name + "-child"))
                target = os.path.join(sd, "ckpt")
            else:
                target = path
            res = _child({"peer": peer.name, "workload": w.name, "quick": quick, "op": op, "path": target}, log)
            rec[f"{op}_extra_rss"] = None if res is None else res["extra"]
            if op == "save":
                shutil.rmtree(sd, ignore_errors=True)
    shutil.rmtree(d, ignore_errors=True)
    med = {op: _median(rec.get(op) or []) for op in OPS}
    shown = "  ".join(f"{op}={v:.4f}s" for op, v in med.items() if v is not None)
    log(f"  {peer.name:15s} {shown}  ckpt={rec['ckpt_bytes'] / 1e6:.1f}MB")
    return rec


def _merge(first: dict[str, Any], later: dict[str, Any]) -> None:
    """Pool a later round's timings of a peer into its first round's record."""
    if first.get("skipped") is None and later.get("skipped") is not None:
        first["skipped"] = later["skipped"]  # (a peer that fails in any round is reported)
    for op in OPS:
        if first.get(op) is not None and later.get(op):
            first[op] = first[op] + later[op]
    for key in ("restore_ok", "read_one_ok"):
        if later.get(key) is False:
            first[key] = False


def _rotated(peers: list[Any], k: int, rounds: int) -> list[Any]:
    """``peers`` in the order of round ``k`` of ``rounds``: each round starts further along."""
    if not peers:
        return peers
    shift = (k * -(-len(peers) // rounds)) % len(peers)
    return peers[shift:] + peers[:shift]


def run_suite(*, quick: bool, workloads: list[str] | None, peers: list[str] | None, workdir: str,
              rss: bool = True, repeats: int | None = None, rounds: int = 1,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the selected workloads against the selected peers; return every measurement.

    With ``rounds`` > 1 every peer runs that many times per workload, each round starting
    from a different peer, with the timed runs shared out between the rounds (at least one
    each) and pooled: a slow spell of the machine (a noisy neighbour, the host reclaiming
    memory) then lands on a few runs of several peers, not on every run of one. Peak RSS
    is measured in the first round only.
    """
    selected = workloads or list(NAMES)
    all_p = peers_mod.all_peers()
    chosen = [p for p in all_p if peers is None or p.name in peers]
    meta = machine()
    meta["filesystem"] = _fs_of(os.path.realpath(workdir))
    meta["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    meta["rounds"] = str(rounds)
    meta["primed"] = "yes"  # (see _prime; the report says so)
    results: dict[str, Any] = {"meta": meta, "quick": quick, "workloads": {}, "runs": []}
    t_all = time.perf_counter()
    for wname in selected:
        t0 = time.perf_counter()
        w = build(wname, quick=quick)
        if repeats is not None:
            w.repeats = repeats
        per_round = max(1, -(-w.repeats // rounds))
        log(f"[{wname}] {w.description} (built in {time.perf_counter() - t0:.1f}s)")
        results["workloads"][wname] = {"description": w.description, "count": w.count, "nbytes": w.nbytes,
                                       "repeats": per_round * rounds, "target": w.target,
                                       "largest": max(payload_size(a) for a in w.arrays.values()),
                                       "target_bytes": payload_size(w.arrays[w.target])}
        recs: dict[str, dict[str, Any]] = {}
        for k in range(rounds):
            if rounds > 1:
                log(f" round {k + 1} of {rounds}")
            for peer in _rotated(chosen, k, rounds):
                if k and recs[peer.name].get("skipped") is not None:
                    continue
                try:
                    rec = _bench_peer(peer, w, workdir, quick, rss and k == 0, log, per_round)
                except Exception as e:  # one failing peer is reported; the suite goes on
                    rec = {"workload": w.name, "peer": peer.name, "label": peer.label, "fsync": peer.fsync,
                           "notes": [], "skipped": f"FAILED: {type(e).__name__}: {str(e)[:300]}"}
                    log(f"  {peer.name:15s} {rec['skipped']}")
                    shutil.rmtree(os.path.join(workdir, w.name, peer.name), ignore_errors=True)
                if k == 0:
                    recs[peer.name] = rec
                else:
                    _merge(recs[peer.name], rec)
                _trim()
        results["runs"] += [recs[p.name] for p in chosen]
        del w
        _trim()
        shutil.rmtree(os.path.join(workdir, wname), ignore_errors=True)
    results["meta"]["elapsed"] = f"{time.perf_counter() - t_all:.0f} s"
    return results
