"""Crash consistency: a child process saving in a loop is SIGKILLed at random instants.

After every kill: ``latest_checkpoint`` names a complete checkpoint that
restores bit for bit (its values are a function of its step), it is at least as
new as the last save the child reported as done, every earlier checkpoint the
state file lists is intact, and ``tfckpt.cleanup`` removes what the killed save
left behind. The next child continues in the same directory.

Timing: the parent never sleeps. It waits on the child's stdout until the
child reports a completed save (so it is inside the save loop), then spins for
a random fraction of a measured save's duration and kills it: the kill lands
anywhere in a save, including inside a write or an fsync.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfckpt
from tfckpt.cleanup import cleanup

# A "zygote" imports everything once, then forks one saving worker per kill on
# request (a fresh interpreter per kill would spend most of the test importing).
CHILD = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import tfckpt
    from tfckpt.checkpoint_management import update_checkpoint_state_internal
    sys.path.insert(0, sys.argv[3])
    from test_crash import tensors

    d, mode = sys.argv[1], sys.argv[2]

    def say(*words):
        os.write(1, (" ".join(map(str, words)) + "\\n").encode())

    def worker():
        latest = tfckpt.latest_checkpoint(d)
        step = int(latest.rsplit("-", 1)[1]) + 1 if latest else 1
        if mode == "saver":
            values = tensors(step)
            variables = {k: tfckpt.Variable(v, name=k) for k, v in values.items() if k != "names"}
            saver = tfckpt.Saver(list(variables.values()), max_to_keep=3, save_relative_paths=True)
        state = tfckpt.get_checkpoint_state(d)
        paths = list(state.all_model_checkpoint_paths) if state else []
        say("ready")
        while True:
            t0 = time.perf_counter()
            if mode == "saver":
                for k, v in tensors(step).items():
                    if k in variables:
                        variables[k].assign(v)
                saver.save(None, os.path.join(d, "model.ckpt"), global_step=step, write_meta_graph=step % 2 == 0)
            else:
                prefix = tfckpt.write(tensors(step), os.path.join(d, f"model.ckpt-{step}"), num_shards=1 + step % 3)
                paths = [*paths, prefix][-4:]
                update_checkpoint_state_internal(d, prefix, list(paths), save_relative_paths=True)
            say("saved", step, time.perf_counter() - t0)
            step += 1

    say("zygote")
    for cmd in sys.stdin:
        words = cmd.split()
        if words == ["fork"]:
            pid = os.fork()
            if pid == 0:
                try:
                    worker()
                finally:
                    os._exit(1)
            say("forked", pid)
        elif words[:1] == ["reap"]:
            os.waitpid(int(words[1]), 0)
            say("reaped", words[1])
    """
)


def tensors(step: int) -> dict[str, Any]:
    """The values saved at ``step`` (the same in the child and in the checks)."""
    rng = np.random.default_rng(step)
    return {
        "big": rng.standard_normal(300_000).astype(np.float32),
        "layer/kernel": rng.standard_normal((64, 32)),
        "names": np.array([f"step-{step}".encode(), b""], dtype=object),
        "step": np.int64(step),
    }


def assert_restores(prefix: str, step: int, *, saver: bool) -> None:
    got = tfckpt.read(prefix)
    want = tensors(step)
    if saver:
        del want["names"]
    assert sorted(got) == sorted(want), prefix
    for k, v in want.items():
        if k == "names":
            assert list(got[k]) == list(v)
        else:
            assert got[k].dtype == np.asarray(v).dtype, (prefix, k)
            assert got[k].tobytes() == np.asarray(v).tobytes(), (prefix, k)


def step_of(prefix: str) -> int:
    return int(prefix.rsplit("-", 1)[1])


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def run_kills(d: Path, kills: int, mode: str, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    tests_dir = str(Path(__file__).parent)
    durations = [0.02]
    reported = 0
    stats = {"kills": 0, "saves": 0, "removed": 0}
    zygote = subprocess.Popen([sys.executable, "-c", CHILD, str(d), mode, tests_dir], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert zygote.stdin is not None
    assert zygote.stdout is not None
    stdin, stdout = zygote.stdin, zygote.stdout

    def line() -> list[str]:
        text = stdout.readline()
        assert text, "the child process died"
        return text.split()

    def saw_save(words: list[str]) -> None:
        nonlocal reported
        reported = int(words[1])
        durations.append(float(words[2]))
        stats["saves"] += 1

    worker = 0
    try:
        assert line() == ["zygote"]
        for _ in range(kills):
            stdin.write("fork\n")
            stdin.flush()
            seen: set[str] = set()
            while seen != {"forked", "ready"}:
                words = line()
                seen.add(words[0])
                if words[0] == "forked":
                    worker = int(words[1])
            for _ in range(rng.choice([1, 1, 2])):
                words = line()
                assert words[0] == "saved", words
                saw_save(words)
            spin(rng.random() * 1.2 * sorted(durations)[len(durations) // 2])
            os.kill(worker, signal.SIGKILL)
            stdin.write(f"reap {worker}\n")
            stdin.flush()
            while (words := line()) != ["reaped", str(worker)]:
                assert words[0] == "saved", words
                saw_save(words)  # completed while we spun
            worker = 0
            stats["kills"] += 1
            check(d, reported, mode == "saver")
            stats["removed"] += len(cleanup(d))
            assert not [n for n in os.listdir(d) if "tempstate" in n or ".tmp" in n or n.endswith("_temp")]
            latest = tfckpt.latest_checkpoint(str(d))
            assert latest is not None
            assert step_of(latest) >= reported
    finally:
        if worker:
            os.kill(worker, signal.SIGKILL)
        stdin.close()
        zygote.wait(timeout=60)
        stdout.close()
    return stats


def check(d: Path, reported: int, saver: bool) -> None:
    latest = tfckpt.latest_checkpoint(str(d))
    assert latest is not None, sorted(os.listdir(d))
    assert step_of(latest) >= reported, (latest, reported)
    assert_restores(latest, step_of(latest), saver=saver)
    state = tfckpt.get_checkpoint_state(str(d))
    assert state is not None
    for p in state.all_model_checkpoint_paths:
        assert os.path.exists(p + ".index"), (p, sorted(os.listdir(d)))
        assert_restores(p, step_of(p), saver=saver)


def test_sigkill_during_write_and_state_update(tmp_path: Path) -> None:
    stats = run_kills(tmp_path, 30, "write", seed=1)
    print(stats)
    assert stats["kills"] == 30
    assert stats["saves"] >= 30


def test_sigkill_during_saver_save(tmp_path: Path) -> None:
    pytest.importorskip("tfckpt.saver")
    stats = run_kills(tmp_path, 15, "saver", seed=2)
    assert stats["kills"] == 15


@pytest.mark.slow
def test_sigkill_many_times(tmp_path: Path) -> None:
    stats = run_kills(tmp_path, 200, "write", seed=3)
    assert stats["kills"] == 200
    # Some kills must land mid-save, leaving litter for cleanup to find.
    assert stats["removed"] > 0


@pytest.mark.slow
def test_sigkill_many_times_saver(tmp_path: Path) -> None:
    pytest.importorskip("tfckpt.saver")
    stats = run_kills(tmp_path, 200, "saver", seed=4)
    assert stats["kills"] == 200
    assert stats["removed"] > 0


def test_cleanup_removes_the_temp_of_a_custom_state_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # (fs review: save(..., latest_filename="best") killed mid-update left best.tmp<hex> forever)
    from tfckpt.cleanup import cleanup

    (tmp_path / ("best.tmp" + "0123456789abcdef" * 2)).write_bytes(b"model_checkpoint_path: ...")
    (tmp_path / "best").write_bytes(b"kept")
    (tmp_path / "notes.tmp").write_bytes(b"not ours")
    assert [p.rsplit("/", 1)[-1] for p in cleanup(str(tmp_path))] == ["best.tmp" + "0123456789abcdef" * 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "notes.tmp"]
