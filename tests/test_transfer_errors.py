"""Partial restores and init_from_checkpoint: optimizer state, checks before any write, argument errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tfckpt
from tfckpt import Rules, init_from_checkpoint, restore_partial
from tfckpt._transforms import Concat, TorchKernel, TransformSet
from tfckpt.errors import CheckpointError, InvalidArgumentError, InvalidTypeError
from tfckpt.transfer import export_partial

torch = pytest.importorskip("torch")


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def _trained(tmp_path: Path) -> tuple[str, torch.nn.Module, torch.optim.Optimizer]:
    m = _net()
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    m(torch.randn(5, 3)).sum().backward()
    opt.step()
    return tfckpt.Saver().save({"model": m, "optimizer": opt}, str(tmp_path / "ck")), m, opt


def test_restore_partial_gives_a_fresh_optimizer_its_saved_state(tmp_path: Path) -> None:
    prefix, _m, opt = _trained(tmp_path)
    m2 = _net()
    opt2 = torch.optim.Adam(m2.parameters(), lr=0.5)
    assert len(opt2.state) == 0
    report = restore_partial(prefix, {"model": m2, "optimizer": opt2})  # strict: every tensor is used
    assert report.ok
    assert not report.unexpected
    assert len(opt2.state) == len(opt.state) == 6
    for (_, a), (_, b) in zip(sorted(opt.state_dict()["state"].items()), sorted(opt2.state_dict()["state"].items())):
        for k in a:
            assert torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])), k
    assert opt2.param_groups[0]["lr"] == 0.01
    assert any(n.startswith("optimizer/state/") for n in report.loaded)


def test_inference_tensor_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    prefix = tfckpt.write({"a": np.ones(2, np.float32), "c": np.ones(2, np.float32)}, str(tmp_path / "ck"))
    with torch.inference_mode():
        frozen = torch.zeros(2)
    for restore in (lambda s: restore_partial(prefix, s), lambda s: init_from_checkpoint(prefix, {"/": "/"}, s)):
        state = {"a": np.zeros(2, np.float32), "c": frozen}
        with pytest.raises(InvalidArgumentError, match="ck: cannot restore into an inference tensor") as e:
            restore(state)
        assert e.value.key == "c"
        assert str(e.value).startswith(f"restoring c from checkpoint {prefix}: ")  # as the Saver's says
        assert e.value.path == prefix
        assert state["a"].tolist() == [0.0, 0.0]  # untouched


def test_module_made_in_inference_mode_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    prefix, _, _ = _trained(tmp_path)
    with torch.inference_mode():
        frozen = _net()
    aux = np.zeros(2, np.float32)
    tfckpt.write({"aux": np.ones(2, np.float32), **{f"m/{k}": v.numpy() for k, v in frozen.state_dict().items()}},
                 str(tmp_path / "both"))
    with pytest.raises(InvalidArgumentError, match="inference tensor"):
        restore_partial(str(tmp_path / "both"), {"aux": aux, "m": frozen})
    assert aux.tolist() == [0.0, 0.0]
    with pytest.raises(InvalidArgumentError, match="inference tensor"):
        tfckpt.Saver().restore({"model": frozen}, prefix)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"rules": {"old/": "new/"}}, r"rules must be a tfckpt.Rules, got dict \(for renames use"),
    ({"rules": "re:.*"}, "rules must be a tfckpt.Rules, got str"),
    ({"transforms": {"*.weight": lambda a: a.T}}, "transforms for '\\*.weight': not a Transform"),
    ({"transforms": {"*.weight": [TorchKernel(), "T"]}}, "not a Transform: 'T'"),
    ({"transforms": [TorchKernel()]}, "transforms must be a TransformSet or a mapping, got list"),
])
def test_argument_types(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    prefix = tfckpt.write({"w": np.ones(2, np.float32)}, str(tmp_path / "ck"))
    with pytest.raises(InvalidTypeError, match=match):
        restore_partial(prefix, {"w": np.zeros(2, np.float32)}, **kwargs)  # type: ignore[arg-type]
    if "rules" in kwargs:
        with pytest.raises(InvalidTypeError, match=match):
            export_partial({"w": np.zeros(2, np.float32)}, **kwargs)  # type: ignore[arg-type]


def test_transform_errors_name_the_tensor_and_checkpoint(tmp_path: Path) -> None:
    m = _net()
    prefix = tfckpt.write({k: v.numpy() for k, v in m.state_dict().items()}, str(tmp_path / "ck"))
    with pytest.raises(InvalidArgumentError, match=r"restoring '1.weight' from '1.weight' of checkpoint .*ck: "
                                                   r"no TensorFlow->torch kernel layout for shape \[4\]") as e:
        restore_partial(prefix, _net(), transforms={"*.weight": TorchKernel()}, strict=False)
    assert e.value.key == "1.weight"
    assert e.value.path == prefix


@pytest.mark.parametrize("amap", ["model/", [("a",)], [("a", "b", "c")], 3, [(1, "a")]])
def test_init_from_checkpoint_assignment_map_type(tmp_path: Path, amap: object) -> None:
    prefix = tfckpt.write({"a": np.ones(2, np.float32)}, str(tmp_path / "ck"))
    with pytest.raises(InvalidTypeError, match="assignment_map must be a dict or a list of"):
        init_from_checkpoint(prefix, amap, {"a": np.zeros(2, np.float32)})  # type: ignore[arg-type]


def test_init_from_checkpoint_scope_shape_mismatch_names_both(tmp_path: Path) -> None:
    prefix = tfckpt.write({"old/b": np.ones(2, np.float32), "old/w": np.ones((4, 3), np.float32)},
                          str(tmp_path / "ck"))
    state = {"new": {"b": np.zeros(2, np.float32), "w": np.zeros((5, 3), np.float32)}}
    with pytest.raises(InvalidArgumentError, match=r"Shape of variable new/w:0 \(\(5, 3\)\) doesn't match with shape "
                                                   r"of tensor old/w \(\[4, 3\]\) from checkpoint reader\.") as e:
        init_from_checkpoint(prefix, {"old/": "new/"}, state)
    assert e.value.key == "old/w"
    assert state["new"]["b"].tolist() == [0.0, 0.0]


def test_saver_shape_mismatch_names_the_tensor_and_checkpoint(tmp_path: Path) -> None:
    prefix = tfckpt.Saver().save({"fc": {"w": np.ones((4, 3), np.float32)}}, str(tmp_path / "ck"))
    with pytest.raises(InvalidArgumentError) as e:
        tfckpt.Saver().restore({"fc": {"w": np.zeros((5, 3), np.float32)}}, prefix)
    msg = str(e.value)
    assert "Assign requires shapes of both tensors to match. lhs shape= [5,3] rhs shape= [4,3]" in msg
    assert msg.endswith(f"\n\t [[restoring fc/w from checkpoint {prefix}]]")


def test_concat_inverse_errors() -> None:
    c = Concat(["a", "b"], "ab", axis=3)
    with pytest.raises(InvalidArgumentError, match=r"concat into 'ab': no axis 3 in shape \[2, 2\]"):
        c.inverse(np.zeros((2, 2)))
    with pytest.raises(InvalidArgumentError, match="concat into 'ab'"):
        c.forward([np.zeros((2, 2)), np.zeros((2, 2))])
    with pytest.raises(InvalidArgumentError, match=r"need Concat\(..., sizes=\[...\]\) to be cut back"):
        Concat(["a", "b"], "ab").inverse(np.zeros((5, 2)))
    ts = TransformSet().concat(["a", "b"], "ab", axis=3)
    with pytest.raises(CheckpointError):
        export_partial({"ab": np.zeros((2, 2), np.float32)}, transforms=ts, rules=Rules())
    s = TransformSet().split("qkv", ["q", "k"], axis=2).splits[0]
    with pytest.raises(InvalidArgumentError, match="joining the split parts"):
        s.inverse([np.zeros(2), np.zeros(2)])


def test_report_names_rules_that_matched_nothing(tmp_path: Path) -> None:
    prefix = tfckpt.write({"bert/w": np.ones(2, np.float32)}, str(tmp_path / "ck"))
    rules = Rules().strip_prefix("bret/").strip_prefix("bert/")
    report = restore_partial(prefix, {"w": np.zeros(2, np.float32)}, rules=rules)
    assert report.ok
    assert report.unused_rules == ["rule 0 (strip_prefix 'bret/') matched nothing"]
    assert report.to_dict()["unused_rules"] == report.unused_rules
    assert "rules that matched nothing" in str(report)
