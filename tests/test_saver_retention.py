"""Retention rules of Saver and CheckpointManager against plain-Python models (hypothesis state machines).

Each machine saves, moves a fake clock (forwards and, for the manager, backwards), and
"restarts" (a new Saver/manager recovering from the state file on disk), checking after
every step that the tracked list, the files on disk and the state file agree with a
straightforward model written from the spec.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import tfckpt
from tfckpt import CheckpointManager, Saver
from tfckpt._retention import ManagerRetention, SaverRetention

SETTINGS = settings(max_examples=25, stateful_step_count=14, deadline=None)
_ids = itertools.count()


def _on_disk(d: str) -> set[str]:
    return {os.path.join(d, f[: -len(".index")]) for f in os.listdir(d) if f.endswith(".index")}


class SaverMachine(RuleBasedStateMachine):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.dir = str(root / f"saver{next(_ids)}")
        self.now = 1_000_000.0
        self.max_to_keep = 2
        self.period = 3600.0 * float(np.float32(0.001))  # 3.6 s, float32-rounded as in the SaverDef
        self.w = {"w": np.zeros(2, np.float32)}
        self._new_saver()
        self.model: list[tuple[str, float]] = []
        self.next_keep = self.now + self.period
        self.files: set[str] = set()
        self.latest: str | None = None

    def _new_saver(self) -> None:
        self.saver = Saver(max_to_keep=self.max_to_keep, keep_checkpoint_every_n_hours=0.001,
                           clock=lambda: self.now, sync=False)

    @rule(step=st.integers(0, 5))
    def save(self, step: int) -> None:
        self.w["w"][:] = step
        path = self.saver.save(self.w, os.path.join(self.dir, "m"), global_step=step, write_meta_graph=False)
        assert path == os.path.join(self.dir, f"m-{step}")
        self.files.add(path)
        self.latest = path
        self.model = [e for e in self.model if e[0] != path] + [(path, self.now)]
        if len(self.model) > self.max_to_keep:
            old, ts = self.model.pop(0)
            if ts > self.next_keep:
                self.next_keep += self.period
            else:
                self.files.discard(old)

    @rule(dt=st.floats(0, 10))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule()
    def restart(self) -> None:
        self._new_saver()
        self.next_keep = self.now + self.period
        state = tfckpt.get_checkpoint_state(self.dir)
        if state is not None:
            self.saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
        paths = list(state.all_model_checkpoint_paths) if state is not None else []
        self.model = [(p, os.stat(p + ".index").st_mtime_ns / 1e9) for p in paths if p in self.files]

    @invariant()
    def agrees(self) -> None:
        assert self.saver.last_checkpoints == [p for p, _ in self.model]
        if os.path.isdir(self.dir):
            assert _on_disk(self.dir) == self.files
        assert tfckpt.latest_checkpoint(self.dir) == self.latest
        if self.latest is not None:
            assert tfckpt.read(self.latest)["w"][0] == float(self.latest.rsplit("-", 1)[1])


class ManagerMachine(RuleBasedStateMachine):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.dir = str(root / f"manager{next(_ids)}")
        self.now = 50_000.0
        self.max_to_keep = 2
        self.hours = 1.0
        self.state = {"w": np.zeros(1, np.float32)}
        self.manager = self._new_manager()
        self.active: list[tuple[str, float]] = []
        self.last_preserved = self.now - 1
        self.files: set[str] = set()
        self.counter = 0
        self.latest: str | None = None

    def _new_manager(self) -> CheckpointManager:
        return CheckpointManager(self.state, self.dir, max_to_keep=self.max_to_keep,
                                 keep_checkpoint_every_n_hours=self.hours, clock=lambda: self.now, sync=False)

    @rule()
    def save(self) -> None:
        self.counter += 1
        self.state["w"][:] = self.counter
        path = self.manager.save()
        assert path == os.path.join(self.dir, f"ckpt-{self.counter}")
        self.files.add(path)
        self.latest = path
        self.active = [e for e in self.active if e[0] != path] + [(path, self.now)]
        while len(self.active) > self.max_to_keep:
            old, ts = self.active.pop(0)
            if ts - self.hours * 3600 >= self.last_preserved:
                self.last_preserved = ts
            else:
                self.files.discard(old)
        self.file_state = (self.last_preserved, [t for _, t in self.active])

    @rule(dt=st.floats(-2000, 8000))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule()
    def restart(self) -> None:
        self.manager = self._new_manager()
        self.manager.restore_or_initialize()
        state = tfckpt.get_checkpoint_state(self.dir)
        if state is None:
            self.last_preserved = self.now - 1
            self.active = []
            return
        last = min(state.last_preserved_timestamp, self.now)
        self.last_preserved = last
        self.active = []
        for p, ts in zip(state.all_model_checkpoint_paths, state.all_model_checkpoint_timestamps):
            if min(ts, self.now) > last:
                self.active.append((p, min(ts, self.now)))

    @invariant()
    def agrees(self) -> None:
        assert self.manager.checkpoints == [p for p, _ in self.active]
        if os.path.isdir(self.dir):
            assert _on_disk(self.dir) == self.files
        assert tfckpt.latest_checkpoint(self.dir) == self.latest
        if self.latest is not None:
            st_ = tfckpt.get_checkpoint_state(self.dir)
            assert st_ is not None
            assert (st_.last_preserved_timestamp, list(st_.all_model_checkpoint_timestamps)) == self.file_state
            assert self.manager._policy.last_preserved_timestamp == self.last_preserved
            assert int(tfckpt.read(self.latest)["save_counter"]) == self.counter


def test_saver_retention_machine(tmp_path: Path) -> None:
    run_state_machine_as_test(lambda: SaverMachine(tmp_path), settings=SETTINGS)


def test_manager_retention_machine(tmp_path: Path) -> None:
    run_state_machine_as_test(lambda: ManagerMachine(tmp_path), settings=SETTINGS)


def test_pure_policies() -> None:
    p = SaverRetention(max_to_keep=1, keep_every_secs=10.0, now=0.0)
    p.record("a", 11.0)
    p.record("b", 12.0)
    assert [e.keep for e in p.evict()] == [True]
    assert p.next_keep_time == 20.0
    p.record("c", 13.0)
    assert [(e.path, e.keep) for e in p.evict()] == [("b", False)]
    neg = SaverRetention(max_to_keep=-1, keep_every_secs=1e9, now=0.0)
    neg.record("x", 1.0)
    assert [(e.path, e.keep) for e in neg.evict()] == [("x", False)]
    assert neg.paths == []
    m = ManagerRetention(3, None, 0.0)
    for i in range(5):
        m.record(f"c{i}", float(i))
    assert [(e.path, e.keep) for e in m.evict()] == [("c0", False), ("c1", False)]
    r, behind = ManagerRetention.recover(2, 1.0, 100.0, ["a", "b"], [50.0, 200.0], 150.0)
    assert behind
    assert r.last_preserved_timestamp == 100.0
    assert r.entries == []
    r, behind = ManagerRetention.recover(2, 1.0, 100.0, ["a", "b", "c"], [5.0, 60.0], 10.0)
    assert not behind
    assert r.entries == [("b", 60.0)]


def test_global_step_must_be_whole(tmp_path) -> None:
    saver = tfckpt.Saver({"w": np.zeros(2, np.float32)})
    prefix = str(tmp_path / "m")
    assert saver.save(None, prefix, global_step=np.float32(13), write_meta_graph=False).endswith("m-13")
    for bad in (12.7, np.float64("nan"), float("inf")):
        with pytest.raises(tfckpt.errors.InvalidArgumentError, match="global_step must be a whole number"):
            saver.save(None, prefix, global_step=bad, write_meta_graph=False)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "m-13.data-00000-of-00001", "m-13.index"]


def test_clock_is_read_at_each_save(tmp_path, monkeypatch) -> None:
    manager = tfckpt.CheckpointManager({"w": np.zeros(2, np.float32)}, str(tmp_path), max_to_keep=2)
    monkeypatch.setattr(time, "time", lambda: 5000.0)
    manager.save()
    manager.close()
    assert list(tfckpt.get_checkpoint_state(str(tmp_path)).all_model_checkpoint_timestamps) == [5000.0]


def test_manager_state_entry_named_save_counter(tmp_path) -> None:
    with pytest.raises(tfckpt.errors.InvalidArgumentError, match="the state has an entry 'save_counter'"):
        tfckpt.CheckpointManager({"save_counter": np.int64(1)}, str(tmp_path), max_to_keep=2)


def test_manager_restore_of_a_deleted_latest_checkpoint(tmp_path) -> None:
    state = {"w": np.zeros(2, np.float32)}
    m = tfckpt.CheckpointManager(state, str(tmp_path), max_to_keep=2)
    path = m.save()
    m.close()
    for f in os.listdir(tmp_path):
        if f.startswith("ckpt-1."):
            os.remove(tmp_path / f)
    m2 = tfckpt.CheckpointManager(state, str(tmp_path), max_to_keep=2)
    with pytest.raises(tfckpt.errors.NotFoundError, match="Failed to find any matching files for .*ckpt-1 "
                                                          r"\(the 'checkpoint' state file names it"):
        m2.restore_or_initialize()
    assert m2.latest_checkpoint == path
    m2.close()


def test_retention_in_a_directory_named_with_glob_characters_keeps_to_itself(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # (fs review: run[1]/ matched run1/ as a glob: a Saver there deleted run1's checkpoints, kept
    # all of its own, and latest_checkpoint("run[1]") was None; TensorFlow 2.21 does the same)
    import numpy as np

    import tfckpt

    other = tmp_path / "run1"
    saver = tfckpt.Saver(max_to_keep=5)
    for step in (1, 2, 3):
        saver.save({"w": np.ones(2)}, str(other / "model.ckpt"), global_step=step, write_meta_graph=False)
    before = sorted(p.name for p in other.iterdir())
    odd = tmp_path / "run[1]"
    saver = tfckpt.Saver(max_to_keep=2)
    for step in (1, 2, 3, 4):
        saver.save({"w": np.full(2, step)}, str(odd / "model.ckpt"), global_step=step)
    assert sorted(p.name for p in other.iterdir()) == before
    assert sorted(p.name for p in odd.iterdir() if p.suffix == ".index") == ["model.ckpt-3.index", "model.ckpt-4.index"]
    assert not (odd / "model.ckpt-1.meta").exists()
    assert tfckpt.latest_checkpoint(str(odd)) == str(odd / "model.ckpt-4")
    manager = tfckpt.CheckpointManager({"w": np.ones(2)}, str(tmp_path / "m[0]"), max_to_keep=1)
    tfckpt.CheckpointManager({"w": np.ones(2)}, str(tmp_path / "m0"), max_to_keep=3).save()
    manager.save()
    manager.save()
    assert sorted(p.name for p in (tmp_path / "m0").iterdir()) == ["checkpoint", "ckpt-1.data-00000-of-00001",
                                                                   "ckpt-1.index"]
    assert manager.checkpoints == [str(tmp_path / "m[0]" / "ckpt-2")]
