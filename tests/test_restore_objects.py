"""Restoring into objects with state_dict(): load_state_dict always runs (hooks, objects that hand
out copies), Python scalars keep the stored value, lists in state dicts keep their length, torch
tensors that cannot take values in place are refused before anything is written, autograd sees
the in-place writes. Each case was a silent wrong value or a builtin error (review of 2026-12-03)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfckpt
from tfckpt.errors import InvalidArgumentError

torch = pytest.importorskip("torch")


def _save(state: object, tmp_path: Path, name: str = "ck") -> str:
    return tfckpt.Saver().save(state, str(tmp_path / name), write_meta_graph=False)


class _Ema:
    """state_dict() hands out copies; load_state_dict() is the only way in."""

    def __init__(self, v: float) -> None:
        self.shadow = torch.full((3,), v)

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": self.shadow.clone()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.shadow.copy_(sd["shadow"])


@pytest.mark.parametrize("with_scalar", [False, True])
def test_an_object_whose_state_dict_returns_copies_gets_the_values(tmp_path: Path, with_scalar: bool) -> None:
    extra = {"epoch": 3} if with_scalar else {}
    p = _save({"ema": _Ema(5.0), **extra}, tmp_path)
    e = _Ema(0.0)
    tfckpt.Saver().restore({"ema": e, **({"epoch": 0} if with_scalar else {})}, p)
    assert e.shadow.tolist() == [5.0, 5.0, 5.0]


class _Cached(torch.nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(3))
        self.register_buffer("weight_sq", self.weight.detach() ** 2, persistent=False)
        self.register_load_state_dict_post_hook(_Cached.refresh)

    @staticmethod
    def refresh(mod: Any, keys: Any) -> None:
        mod.weight_sq.copy_(mod.weight.detach() ** 2)


@pytest.mark.parametrize("state", ["module only", "with a scalar"])
def test_load_state_dict_hooks_run_whatever_else_the_state_holds(tmp_path: Path, state: str) -> None:
    src = _Cached()
    with torch.no_grad():
        src.weight.fill_(3.0)
    extra = {"epoch": 1} if state == "with a scalar" else {}
    p = _save({"m": src, **extra}, tmp_path)
    dst = _Cached()
    tfckpt.Saver().restore({"m": dst, **extra}, p)
    assert dst.weight.tolist() == [3.0, 3.0, 3.0]
    assert dst.weight_sq.tolist() == [9.0, 9.0, 9.0]  # (the hook ran, as with torch's load_state_dict)


@pytest.mark.parametrize("kind", ["tensor", "module"])
def test_autograd_sees_a_restore_as_an_in_place_write(tmp_path: Path, kind: str) -> None:
    if kind == "tensor":
        w = torch.nn.Parameter(torch.ones(3))
        state: Any = {"w": w}
        p = _save({"w": torch.full((3,), 2.0)}, tmp_path)
    else:
        lin = torch.nn.Linear(3, 1)
        w = lin.weight
        state = {"m": lin}
        p = _save({"m": torch.nn.Linear(3, 1)}, tmp_path)
    y = (w * w).sum()
    tfckpt.Saver().restore(state, p)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()  # (torch's own error: the graph used the old values; it must not mix them)


def test_python_scalar_hyperparameters_take_the_stored_value(tmp_path: Path) -> None:
    def make() -> tuple[Any, Any]:
        o = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1)  # an int lr, as people write it
        return o, torch.optim.lr_scheduler.StepLR(o, 1, 0.5)

    o, s = make()
    for _ in range(3):
        o.step()
        s.step()
    p = _save({"o": o, "s": s, "x": 2.75}, tmp_path)
    o2, s2 = make()
    state = {"o": o2, "s": s2, "x": 0}
    tfckpt.Saver().restore(state, p)
    assert o2.param_groups[0]["lr"] == 0.125  # (was int(0.125) == 0: training resumed with lr 0)
    assert s2.get_last_lr() == [0.125]
    assert state["x"] == 2.75


def _lbfgs() -> tuple[Any, Any]:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3))
    return w, torch.optim.LBFGS([w], max_iter=1, history_size=10)


def _lbfgs_step(w: Any, o: Any) -> None:
    def closure() -> Any:
        o.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    o.step(closure)


def test_lists_in_optimizer_state_come_back_as_lists_of_their_stored_length(tmp_path: Path) -> None:
    w, o = _lbfgs()
    for _ in range(4):
        _lbfgs_step(w, o)
    p = _save({"o": o}, tmp_path)
    want = o.state_dict()["state"][0]
    _, fresh = _lbfgs()
    tfckpt.Saver().restore({"o": fresh}, p)
    got = fresh.state_dict()["state"][0]
    assert isinstance(got["old_dirs"], list)  # (was {0: t, 1: t})
    assert len(got["old_dirs"]) == len(want["old_dirs"])
    assert all(torch.equal(a, b) for a, b in zip(got["old_dirs"], want["old_dirs"]))
    assert got["n_iter"] == want["n_iter"]
    assert isinstance(got["n_iter"], int)  # (was a 0-d tensor)
    w3, shorter = _lbfgs()
    _lbfgs_step(w3, shorter)
    _lbfgs_step(w3, shorter)  # one pair of history: the checkpoint has more
    tfckpt.Saver().restore({"o": shorter}, p)
    assert len(shorter.state_dict()["state"][0]["old_dirs"]) == len(want["old_dirs"])  # (was cut to 1)


def test_an_optimizer_of_another_shape_is_an_error_not_a_silent_half_restore(tmp_path: Path) -> None:
    params = [torch.nn.Parameter(torch.ones(2)) for _ in range(3)]
    big = torch.optim.Adam(params)
    sum(p.sum() for p in params).backward()
    big.step()
    p = _save({"o": big}, tmp_path)
    two = torch.optim.Adam([torch.nn.Parameter(torch.ones(2)) for _ in range(2)])
    with pytest.raises(InvalidArgumentError, match=r"Adam\.load_state_dict at 'o' refused the checkpoint's values"):
        tfckpt.Saver().restore({"o": two}, p)  # (the checkpoint's 3 parameters were cut to 2, no error)
    groups = torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5}], lr=0.1)
    p2 = _save({"o": groups}, tmp_path, "groups")
    one = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    with pytest.raises(InvalidArgumentError, match="different number of parameter groups"):
        tfckpt.Saver().restore({"o": one}, p2)  # (the second group was dropped, no error)


def test_state_dict_lists_shared_between_objects_are_not_overwritten(tmp_path: Path) -> None:
    def make() -> tuple[Any, Any]:
        o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        lr = torch.optim.lr_scheduler
        return o, lr.SequentialLR(o, [lr.LinearLR(o, 0.1, total_iters=3), lr.ExponentialLR(o, 0.9)], milestones=[3])

    o, s = make()
    for _ in range(5):
        o.step()
        s.step()
    p = _save({"o": o, "s": s}, tmp_path)
    o2, s2 = make()
    tfckpt.Saver().restore({"o": o2, "s": s2}, p)
    assert s2.get_last_lr() == pytest.approx(s.get_last_lr())  # (a fresh SequentialLR shares _last_lr lists)


def test_restore_sequentially_into_a_fresh_optimizer(tmp_path: Path) -> None:
    m = torch.nn.Linear(4, 2)
    o = torch.optim.Adam(m.parameters())
    m(torch.randn(3, 4)).sum().backward()
    o.step()
    p = _save({"opt": o}, tmp_path)
    o2 = torch.optim.Adam(torch.nn.Linear(4, 2).parameters())
    tfckpt.Saver(restore_sequentially=True).restore({"opt": o2}, p)  # (torch's KeyError 'step' before)
    assert torch.equal(o2.state_dict()["state"][0]["exp_avg"], o.state_dict()["state"][0]["exp_avg"])


def test_a_module_extra_state_list_longer_in_the_checkpoint(tmp_path: Path) -> None:
    class WithVocab(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, vocab: list[str]) -> None:
            super().__init__()
            self.vocab = vocab
            self.lin = torch.nn.Linear(1, 1)

        def get_extra_state(self) -> dict[str, Any]:
            return {"vocab": self.vocab}

        def set_extra_state(self, st: dict[str, Any]) -> None:
            self.vocab = st["vocab"]

    p = _save({"m": WithVocab(["a", "b", "c", "d", "e"])}, tmp_path)
    m = WithVocab(["x", "y"])
    tfckpt.Saver().restore({"m": m}, p)
    assert m.vocab == ["a", "b", "c", "d", "e"]  # (was cut to ['a', 'b'])


@pytest.mark.parametrize("odd", ["expanded", "sparse", "meta"])
def test_tensors_that_cannot_take_values_are_refused_before_anything_is_written(tmp_path: Path, odd: str) -> None:
    p = _save({"a": torch.ones(3), "w": torch.ones(4, 3)}, tmp_path)
    bad = {"expanded": torch.zeros(3).expand(4, 3), "sparse": torch.zeros(4, 3).to_sparse(),
           "meta": torch.empty(4, 3, device="meta")}[odd]
    a = torch.zeros(3)
    with pytest.raises(InvalidArgumentError, match=f"restoring w from checkpoint {p}: cannot restore into") as e:
        tfckpt.Saver().restore({"a": a, "w": bad}, p)
    assert e.value.key == "w"
    assert a.tolist() == [0.0, 0.0, 0.0]  # (an expanded target raised torch's RuntimeError after writing a)
    with pytest.raises(InvalidArgumentError, match="cannot restore into"):
        tfckpt.restore_partial(p, {"a": a, "w": bad})


def test_a_module_built_on_the_meta_device_takes_the_checkpoint_tensors(tmp_path: Path) -> None:
    src = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    p = _save({"m": src, "epoch": 2}, tmp_path)
    with torch.device("meta"):  # (a big model: built without memory, then loaded)
        m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    state = {"m": m, "epoch": 0}
    tfckpt.Saver().restore(state, p)  # (did nothing and said nothing: the weights stayed on meta)
    for (name, a), b in zip(m.state_dict().items(), src.state_dict().values()):
        assert a.device.type == "cpu", name
        assert torch.equal(a, b), name
    assert isinstance(m[0].weight, torch.nn.Parameter)
    assert m[0].weight.requires_grad
    assert state["epoch"] == 2
    lin = torch.nn.Linear(3, 2, device="meta")
    tfckpt.restore_partial(p, lin, rules=tfckpt.Rules().strip_prefix("m/0."), strict=False)
    assert torch.equal(lin.weight, src[0].weight)


def test_lazy_and_meta_values_are_clear_errors(tmp_path: Path) -> None:
    p = _save({"m": torch.nn.Linear(3, 2)}, tmp_path)
    with pytest.raises(InvalidArgumentError, match="uninitialized parameter of a lazy module"):
        tfckpt.Saver().restore({"m": torch.nn.LazyLinear(2)}, p)  # (was numpy/torch ValueError)
    with pytest.raises(InvalidArgumentError, match="tensor 'm/bias': cannot store an uninitialized parameter"):
        _save({"m": torch.nn.LazyLinear(2)}, tmp_path, "lazy")
    with pytest.raises(InvalidArgumentError, match="tensor 'm/bias': cannot store a tensor on the meta device"):
        _save({"m": torch.nn.Linear(3, 2, device="meta")}, tmp_path, "meta")


def test_manager_of_a_top_level_scheduler_keeps_its_save_counter_to_itself(tmp_path: Path) -> None:
    def make() -> Any:
        return torch.optim.lr_scheduler.StepLR(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0), 2)

    s = make()
    m = tfckpt.CheckpointManager(s, str(tmp_path), max_to_keep=2)
    m.save()
    m.close()
    s2 = make()
    m2 = tfckpt.CheckpointManager(s2, str(tmp_path), max_to_keep=2)
    m2.restore_or_initialize()
    assert "save_counter" not in s2.state_dict()  # (the manager's counter was loaded into the scheduler)
    assert m2.save() == str(tmp_path / "ckpt-2")  # (was 'Adding duplicate key: save_counter')
    m2.close()


def test_fixed_width_string_arrays_are_not_cut(tmp_path: Path) -> None:
    p = _save({"labels": np.array(["horse", "zebra"]), "raw": np.array([b"gazelle"])}, tmp_path)
    state = {"labels": np.array(["cat", "dog"]), "raw": np.array([b"gnu"])}
    tfckpt.Saver().restore(state, p)
    assert state["labels"].tolist() == ["horse", "zebra"]  # (was ['hor', 'zeb'])
    assert state["raw"].tolist() == [b"gazelle"]
    wide = np.array(["cattle", "donkey"])
    tfckpt.Saver().restore({"labels": wide, "raw": np.array([b"antelope"])}, p)
    assert wide.tolist() == ["horse", "zebra"]  # (fits: written in place)
    narrow = np.array(["cat", "dog"])
    with pytest.raises(InvalidArgumentError, match="longer than the <U3 array"):
        tfckpt.Saver(var_list={"labels": narrow}).restore(None, p)  # (a var_list array cannot be replaced)


@pytest.mark.parametrize("layout", ["contiguous", "one transposed weight"])
def test_a_stock_module_is_written_in_place_without_load_state_dict(
        tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # torch's load_state_dict scans every key once per submodule: a flat Sequential of 20,000
    # layers took minutes; a stock module's state dict tensors are its own memory, written directly
    src = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(50)])
    p = _save({"m": src}, tmp_path)
    dst = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(50)])
    if layout == "one transposed weight":  # (not read in place: written from a new array)
        with torch.no_grad():
            dst[7].weight = torch.nn.Parameter(torch.zeros(2, 2).t())
    calls: list[object] = []
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", lambda self, *a, **k: calls.append(self))
    tfckpt.Saver().restore({"m": dst}, p)
    assert calls == []
    for a, b in zip(src.state_dict().values(), dst.state_dict().values()):
        assert torch.equal(a, b)


def test_a_module_with_an_overridden_state_dict_still_gets_load_state_dict(tmp_path: Path) -> None:
    class Copies(torch.nn.Linear):  # type: ignore[misc]
        def state_dict(self, *a: Any, **k: Any) -> Any:
            return {n: t.clone() for n, t in super().state_dict(*a, **k).items()}

    src = Copies(3, 2)
    p = _save({"m": src}, tmp_path)
    dst = Copies(3, 2)
    tfckpt.Saver().restore({"m": dst}, p)
    assert torch.equal(dst.weight, src.weight)
    assert torch.equal(dst.bias, src.bias)


class _Counter:
    """A non-torch object whose state grows: a dict keyed by class index."""

    def __init__(self) -> None:
        self.counts: dict[int, Any] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts)} if self.counts else {}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.counts = dict(sd.get("counts", {}))


def test_an_int_keyed_dict_of_a_non_torch_object_stays_a_dict(tmp_path: Path) -> None:
    c = _Counter()
    c.counts = {0: np.array(5), 1: np.array(7)}
    p = _save({"c": c}, tmp_path)
    fresh = _Counter()
    tfckpt.Saver().restore({"c": fresh}, p)
    assert isinstance(fresh.counts, dict)
    assert sorted(fresh.counts) == [0, 1]
    assert int(fresh.counts[1]) == 7


def test_a_user_defined_optimizer_subclass_gets_its_lists_back(tmp_path: Path) -> None:
    class MyLbfgs(torch.optim.LBFGS):  # type: ignore[misc]
        pass

    w = torch.nn.Parameter(torch.tensor([1.5, -0.5]))
    o = MyLbfgs([w], history_size=3, max_iter=2)
    for _ in range(3):
        _lbfgs_step(w, o)
    p = _save({"o": o}, tmp_path)
    fresh = MyLbfgs([torch.nn.Parameter(torch.zeros(2))], history_size=3, max_iter=2)
    tfckpt.Saver().restore({"o": fresh}, p)
    dirs = fresh.state_dict()["state"][0]["old_dirs"]
    assert isinstance(dirs, list)
    assert all(isinstance(t, torch.Tensor) for t in dirs)  # (were numpy arrays: step() failed)


def test_an_int_counter_stored_as_a_float_comes_back_an_int(tmp_path: Path) -> None:
    p = tfckpt.write({"epoch": np.float32(7.0), "lr": np.float32(0.25)}, str(tmp_path / "tf"))
    state: dict[str, Any] = {"epoch": 0, "lr": 1}
    tfckpt.Saver().restore(state, p)
    assert state["epoch"] == 7
    assert type(state["epoch"]) is int  # (range(state["epoch"], ...) works)
    assert state["lr"] == 0.25  # (not cut to the int the leaf held)


class _History:
    """A non-torch object whose list grows: [[loss, acc], ...]."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def state_dict(self) -> dict[str, Any]:
        return {"items": list(self.items)}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.items = list(sd["items"])


def test_a_growing_list_of_lists_in_a_non_torch_object_keeps_its_items_lists(tmp_path: Path) -> None:
    h = _History()
    h.items = [[np.float64(1.0), np.float64(0.5)], [np.float64(0.8), np.float64(0.6)]]
    p = _save({"h": h}, tmp_path)
    fresh = _History()
    tfckpt.Saver().restore({"h": fresh}, p)
    loss, acc = fresh.items[0]  # (a dict {0: .., 1: ..} unpacked its keys: 0, 1)
    assert (float(loss), float(acc)) == (1.0, 0.5)
    assert isinstance(fresh.items[1], list)


@pytest.mark.parametrize("patched", ["state_dict", "load_state_dict"])
def test_a_module_with_a_method_patched_on_the_instance_gets_load_state_dict(tmp_path: Path, patched: str) -> None:
    src = torch.nn.Linear(3, 2)
    p = _save({"m": src}, tmp_path)
    dst = torch.nn.Linear(3, 2)
    calls: list[int] = []
    if patched == "state_dict":  # (hands out copies: only load_state_dict gets values in)
        real_sd = dst.state_dict
        dst.state_dict = lambda *a, **k: {n: t.clone() for n, t in real_sd(*a, **k).items()}
    else:
        real_load = dst.load_state_dict
        dst.load_state_dict = lambda *a, **k: (calls.append(1), real_load(*a, **k))[1]
    tfckpt.Saver().restore({"m": dst}, p)
    assert torch.equal(dst.weight, src.weight)
    assert calls == ([] if patched == "state_dict" else [1])
