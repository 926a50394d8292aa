"""tfckpt.Saver: TensorFlow's tf.compat.v1.train.Saver semantics (spec sections 1-4, 9)."""

from __future__ import annotations

import os
import shutil
import sys
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import tfckpt
from tfckpt import Saver, Variable
from tfckpt._convert import typed
from tfckpt._format.bundle_reader import BundleReader
from tfckpt._proto import checkpoint_pb2, meta_graph_pb2
from tfckpt.errors import InvalidArgumentError, NotFoundError, TensorNotFoundError
from tfckpt.saver import SaveSliceInfo


@dataclass(frozen=True)
class FakeSpec:
    name: str
    dtype: Any
    shape: tuple[int, ...]
    trainable: bool = True
    slice_spec: str = ""


@pytest.fixture
def fake_meta(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[FakeSpec], dict[str, Any]]]:
    """Stand-in for tfckpt.meta_graph: records calls, returns b"META:<names>"."""
    calls: list[tuple[list[FakeSpec], dict[str, Any]]] = []

    def saver_meta_graph(variables: list[FakeSpec], **kw: Any) -> bytes:
        calls.append((list(variables), kw))
        return b"META:" + ",".join(v.name for v in variables).encode()

    mod = types.ModuleType("tfckpt.meta_graph")
    mod.VariableSpec = FakeSpec  # type: ignore[attr-defined]
    mod.saver_meta_graph = saver_meta_graph  # type: ignore[attr-defined]
    from tfckpt.meta_graph import is_trainable

    mod.is_trainable = is_trainable  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tfckpt.meta_graph", mod)
    monkeypatch.setattr(tfckpt, "meta_graph", mod, raising=False)
    return calls


def _vars() -> tuple[Variable, Variable]:
    return (Variable(np.array([1.0, 2.0], np.float32), name="v0"),
            Variable(np.arange(6, dtype=np.int64).reshape(2, 3), name="v1"))


def _state_text(d: Any, name: str = "checkpoint") -> str:
    with open(os.path.join(d, name)) as f:
        return f.read()


# -- naming and return values (pinned 1) ---------------------------------------

def test_save_return_values(tmp_path: Any, fake_meta: Any) -> None:
    v0, v1 = _vars()
    s = Saver([v0, v1])
    base = str(tmp_path / "model.ckpt")
    assert s.save(None, base) == base
    assert s.save(None, base, global_step=5) == base + "-5"
    assert s.save(None, base, global_step=0) == base + "-0"
    assert s.save(None, base, global_step=np.int32(6)) == base + "-6"
    assert s.save(None, base, global_step=Variable(np.int64(7), name="global_step")) == base + "-7"
    assert s.save(None, base, global_step=np.array(8)) == base + "-8"
    assert s.save({"gs": np.int64(9)}, base, global_step="gs:0") == base + "-9"
    padded = Saver([v0], pad_step_number=True)
    assert padded.save(None, base, global_step=5) == base + "-00000005"
    assert padded.save(None, base, global_step=123456789) == base + "-123456789"
    assert sorted(os.listdir(tmp_path))[:4] == ["checkpoint", "model.ckpt-0.data-00000-of-00001",
                                                "model.ckpt-0.index", "model.ckpt-0.meta"]


def test_files_of_one_save(tmp_path: Any, fake_meta: Any) -> None:
    v0, v1 = _vars()
    Saver([v0, v1]).save(None, str(tmp_path / "m"), global_step=1)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "m-1.data-00000-of-00001", "m-1.index", "m-1.meta"]
    assert (tmp_path / "m-1.meta").read_bytes() == b"META:v0,v1"
    specs, kw = fake_meta[-1]
    assert specs[1] == FakeSpec("v1", tfckpt.as_dtype("int64"), (2, 3), True, "")
    assert kw == {"sharded": False, "max_to_keep": 5, "keep_checkpoint_every_n_hours": 10000.0, "version": 2,
                  "filename": "model", "strip_default_attrs": False}


def test_meta_graph_cached_between_saves(tmp_path: Any, fake_meta: Any) -> None:
    v0, v1 = _vars()
    s = Saver([v0, v1])
    for i in range(3):
        s.save(None, str(tmp_path / "m"), global_step=i)
    assert len(fake_meta) == 1
    s.save(None, str(tmp_path / "m"), global_step=9, strip_default_attrs=True)
    assert len(fake_meta) == 2


def test_no_meta_graph(tmp_path: Any, fake_meta: Any) -> None:
    v0, _ = _vars()
    Saver([v0]).save(None, str(tmp_path / "m"), write_meta_graph=False)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "m.data-00000-of-00001", "m.index"]


def test_real_meta_graph_module_writes_meta(tmp_path: Any) -> None:
    mg = pytest.importorskip("tfckpt.meta_graph")
    if not hasattr(mg, "saver_meta_graph"):
        pytest.skip("tfckpt.meta_graph has no saver_meta_graph yet")
    v0, v1 = _vars()
    Saver([v0, v1]).save(None, str(tmp_path / "m"), global_step=1)
    data = (tmp_path / "m-1.meta").read_bytes()
    meta = meta_graph_pb2.MetaGraphDef.FromString(data)
    assert meta.saver_def.max_to_keep == 5


# -- restore errors (pinned 2-4) ---------------------------------------------------

def test_restore_invalid_paths(tmp_path: Any) -> None:
    s = Saver([_vars()[0]])
    with pytest.raises(ValueError, match=r"^The passed save_path is not a valid checkpoint: .*/nope$"):
        s.restore(None, str(tmp_path / "nope"))
    with pytest.raises(ValueError, match=r"^Can't load save_path when it is None\.$"):
        s.restore(None, None)


def test_missing_key_message(tmp_path: Any) -> None:
    a = Variable(np.zeros(1, np.float32), name="a")
    path = Saver([a]).save(None, str(tmp_path / "m"), write_meta_graph=False)
    b = Variable(np.zeros(1, np.float32), name="b")
    with pytest.raises(NotFoundError) as ei:
        Saver([a, b]).restore(None, path)
    msg = str(ei.value)
    assert isinstance(ei.value, TensorNotFoundError)
    assert msg.startswith("Restoring from checkpoint failed. This is most likely due to a Variable name or other "
                          "graph key that is missing from the checkpoint.")
    assert msg.endswith("Original error:\n\nKey b not found in checkpoint")
    assert "NewCheckpointReader" not in msg


def test_dtype_shape_reshape(tmp_path: Any) -> None:
    v = Variable(np.array([[1, 2, 3], [4, 5, 6]], np.float32), name="v")
    path = Saver([v]).save(None, str(tmp_path / "m"), write_meta_graph=False)
    wrong_dtype = Variable(np.zeros((2, 3), np.int32), name="v")
    with pytest.raises(InvalidArgumentError) as ei:
        Saver([wrong_dtype]).restore(None, path)
    assert str(ei.value).startswith("Restoring from checkpoint failed. This is most likely due to a mismatch "
                                    "between the current graph and the graph from the checkpoint.")
    assert str(ei.value).endswith("\n\ntensor_name = v; expected dtype int32 does not equal original dtype float")
    target = Variable(np.zeros((3, 2), np.float32), name="v")
    with pytest.raises(InvalidArgumentError, match=r"Assign requires shapes of both tensors to match\. "
                       r"lhs shape= \[3,2\] rhs shape= \[2,3\]\n\t \[\[restoring v from checkpoint .*/m\]\]$"):
        Saver([target]).restore(None, path)
    assert target.numpy().sum() == 0.0
    Saver([target], reshape=True).restore(None, path)
    assert target.numpy().tolist() == [[1, 2], [3, 4], [5, 6]]
    with pytest.raises(InvalidArgumentError, match="Input to reshape is a tensor with 6 values, but the requested "
                       "shape has 4"):
        Saver([Variable(np.zeros(4, np.float32), name="v")], reshape=True).restore(None, path)
    with pytest.raises(InvalidArgumentError, match="a mismatch between the current graph and the graph"):
        Saver([Variable(np.zeros(1, np.float32), name="v")]).restore(None, path)


def test_name_mapping(tmp_path: Any) -> None:
    v0 = Variable(np.full(2, 3.0, np.float32), name="v0")
    path = Saver({"save_prefix/v0": v0}).save(None, str(tmp_path / "m"), write_meta_graph=False)
    other = Variable(np.zeros(2, np.float32), name="anything")
    with pytest.raises(NotFoundError, match="not found in checkpoint"):
        Saver({"v0": other}).restore(None, path)
    Saver({"save_prefix/v0": other}).restore(None, path)
    assert other.numpy().tolist() == [3.0, 3.0]


# -- constructor checks (pinned 5-7) -------------------------------------------------

def test_same_name_errors() -> None:
    v0 = Variable(np.zeros(2), name="v0")
    v1 = Variable(np.zeros(2), name="v1")
    v2 = Variable(np.zeros(2), name="v2", save_slice_info=SaveSliceInfo("v1", (4,), (0,), (2,)))
    with pytest.raises(ValueError, match=r"^Mixing slices and non-slices with the same name: v1$"):
        Saver([v0, v1, v2])
    Saver({"vee1": v1, "other": [v2]})
    with pytest.raises(ValueError, match=r"^The same saveable will be restored with two names: v0too$"):
        Saver({"v0": v0, "v0too": v0})
    with pytest.raises(ValueError, match=r"^At least two variables have the same name: v0$"):
        Saver([v0, Variable(np.zeros(1), name="v0")])
    with pytest.raises(ValueError, match=r"^Slices must all be slices: "):
        Saver({"x": [v0]})
    with pytest.raises(TypeError, match=r"^Variables to save should be passed in a dict or a list\. Got 5$"):
        Saver(5)


def test_defer_build(tmp_path: Any) -> None:
    v0 = Variable(np.zeros(2), name="v0")
    with pytest.raises(ValueError, match="defer_build"):
        Saver([v0], defer_build=True)
    s = Saver(defer_build=True)
    with pytest.raises(RuntimeError, match=r"^`build\(\)` should be called before save if defer_build==True$"):
        s.save({"w": np.zeros(1)}, str(tmp_path / "m"))
    s.build()
    assert s.save({"w": np.zeros(1)}, str(tmp_path / "m"), write_meta_graph=False) == str(tmp_path / "m")


def test_allow_empty(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"^No variables to save$"):
        Saver([])
    s = Saver([], allow_empty=True)
    assert s.save(None, str(tmp_path / "m"), write_meta_graph=False) is None
    assert s.restore(None, str(tmp_path / "does-not-exist")) is None
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match=r"^No variables to save$"):
        Saver().save({}, str(tmp_path / "m"))


def test_latest_filename_checks(tmp_path: Any) -> None:
    v0 = Variable(np.zeros(2), name="v0")
    s = Saver([v0])
    with pytest.raises(ValueError, match=r"^'latest_filename' must not contain path components$"):
        s.save(None, str(tmp_path / "m"), latest_filename="a/b")
    with pytest.raises(ValueError, match=r"^'latest_filename' collides with 'save_path': 'checkpoint' and '.*"):
        s.save(None, str(tmp_path / "checkpoint"))
    s.save(None, str(tmp_path / "checkpoint"), global_step=1, write_meta_graph=False)
    # sharded: no "collides" check, but the state file writer refuses the path (as in TensorFlow)
    with pytest.raises(RuntimeError, match=r"conflicts with path used for checkpoint state.  Please use a "):
        Saver([v0], sharded=True).save(None, str(tmp_path / "checkpoint"), write_meta_graph=False)
    Saver([v0], sharded=True).save(None, str(tmp_path / "checkpoint"), write_meta_graph=False, write_state=False)
    s.save(None, str(tmp_path / "x"), latest_filename="mystate", write_meta_graph=False)
    assert tfckpt.latest_checkpoint(str(tmp_path), "mystate") == str(tmp_path / "x")


def test_parent_directory_missing(tmp_path: Any) -> None:
    (tmp_path / "file").write_bytes(b"")
    v0 = Variable(np.zeros(2), name="v0")
    bad = str(tmp_path / "file" / "path")
    with pytest.raises(ValueError, match=r"^Parent directory of .*/file/path doesn't exist, can't save\.$"):
        Saver([v0]).save(None, bad, write_meta_graph=False)
    ok = str(tmp_path / "nonexisting_dir" / "path")  # one missing level is created, as TensorFlow does
    assert Saver([v0]).save(None, ok, write_meta_graph=False) == ok


# -- retention (pinned 10, 12, 13) -------------------------------------------------------

def test_max_to_keep_sequence(tmp_path: Any, fake_meta: Any) -> None:
    v0, _ = _vars()
    s = Saver({"v0": v0}, max_to_keep=2)
    s1, s2, s3 = (str(tmp_path / f"s{i}") for i in (1, 2, 3))

    def exists(p: str) -> bool:
        return tfckpt.checkpoint_exists(p) and os.path.exists(p + ".meta")

    def state() -> list[str]:
        st = tfckpt.get_checkpoint_state(str(tmp_path))
        assert st is not None
        assert st.model_checkpoint_path == st.all_model_checkpoint_paths[-1]
        return list(st.all_model_checkpoint_paths)

    s.save(None, s1)
    assert s.last_checkpoints == [s1] == state()
    s.save(None, s2)
    assert s.last_checkpoints == [s1, s2] == state()
    s.save(None, s3)
    assert s.last_checkpoints == [s2, s3] == state()
    assert not exists(s1)
    assert not os.path.exists(s1 + ".meta")
    assert exists(s2)
    assert exists(s3)
    s.save(None, s2)
    assert s.last_checkpoints == [s3, s2] == state()
    s.save(None, s1)
    assert s.last_checkpoints == [s2, s1] == state()
    assert not exists(s3)
    assert not os.path.exists(s3 + ".meta")
    assert exists(s1)
    assert exists(s2)

    fresh = Saver(saver_def=s.as_saver_def())
    assert fresh.last_checkpoints == []
    fresh.save({"v0": v0.numpy()}, s2)
    assert fresh.last_checkpoints == [s2] == state()


def test_no_max_to_keep(tmp_path: Any) -> None:
    v0, _ = _vars()
    for mtk in (None, 0):
        d = tmp_path / str(mtk)
        s = Saver([v0], max_to_keep=mtk)
        for i in range(3):
            s.save(None, str(d / "m"), global_step=i, write_meta_graph=False)
        assert s.last_checkpoints == []
        assert all(tfckpt.checkpoint_exists(str(d / f"m-{i}")) for i in range(3))
        assert _state_text(d) == (f'model_checkpoint_path: "{d}/m-2"\nall_model_checkpoint_paths: "{d}/m-2"\n')


def test_keep_checkpoint_every_n_hours(tmp_path: Any, fake_meta: Any) -> None:
    now = [1000.0]
    v0, _ = _vars()
    s = Saver([v0], max_to_keep=2, keep_checkpoint_every_n_hours=0.7 / 3600, clock=lambda: now[0])
    now[0] += 1.0
    paths = [s.save(None, str(tmp_path / f"s{i}")) for i in range(1, 5)]
    assert s.last_checkpoints == paths[2:]
    assert tfckpt.checkpoint_exists(paths[0])
    assert os.path.exists(paths[0] + ".meta")
    assert not tfckpt.checkpoint_exists(paths[1])  # 1 <= 1.4: deleted


def test_set_last_checkpoints(tmp_path: Any) -> None:
    v0, _ = _vars()
    s = Saver([v0], max_to_keep=1)
    old = s.save(None, str(tmp_path / "old"), write_meta_graph=False, write_state=False)
    assert s.last_checkpoints == []
    s.set_last_checkpoints([old])
    s.save(None, str(tmp_path / "new"), write_meta_graph=False)
    assert s.last_checkpoints == [str(tmp_path / "new")]
    assert tfckpt.checkpoint_exists(old)  # +inf timestamp: never deleted
    with pytest.raises(AssertionError):
        s.set_last_checkpoints((old,))  # type: ignore[arg-type]
    s.set_last_checkpoints_with_time([("a", 1.0)])
    assert s.last_checkpoints == ["a"]


def test_recover_last_checkpoints(tmp_path: Any) -> None:
    v0, _ = _vars()
    s = Saver([v0], max_to_keep=10)
    paths = [s.save(None, str(tmp_path / f"s{i}"), write_meta_graph=False) for i in (1, 2, 3)]
    tfckpt.remove_checkpoint(paths[0])
    s2 = Saver([v0], max_to_keep=10)
    s2.recover_last_checkpoints(paths)
    assert s2.last_checkpoints == paths[1:]
    s4 = s2.save(None, str(tmp_path / "s4"), write_meta_graph=False)
    assert tfckpt.get_checkpoint_state(str(tmp_path)).all_model_checkpoint_paths == [*paths[1:], s4]


# -- state file, relative paths ------------------------------------------------------------

def test_state_file_bytes_relative(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    v0, _ = _vars()
    s = Saver([v0], max_to_keep=2)
    for i in (1, 2, 3):
        assert s.save(None, "train/snapshot", global_step=i, write_meta_graph=False) == f"train/snapshot-{i}"
    assert _state_text("train") == ('model_checkpoint_path: "snapshot-3"\n'
                                    'all_model_checkpoint_paths: "snapshot-2"\n'
                                    'all_model_checkpoint_paths: "snapshot-3"\n')
    assert tfckpt.latest_checkpoint("train") == "train/snapshot-3"
    v0.assign(np.zeros(2, np.float32))
    s.restore(None, tfckpt.latest_checkpoint("train"))
    assert v0.numpy().tolist() == [1.0, 2.0]
    # a save path without a directory
    assert Saver([v0]).save(None, "plain", write_meta_graph=False) == "plain"
    assert _state_text(".") == 'model_checkpoint_path: "plain"\nall_model_checkpoint_paths: "plain"\n'


def test_state_file_absolute_and_save_relative_paths(tmp_path: Any) -> None:
    v0, _ = _vars()
    d = tmp_path / "a"
    s = Saver([v0], save_relative_paths=True)
    s.save(None, str(d / "m"), global_step=1, write_meta_graph=False)
    s.save(None, str(d / "m"), global_step=2, write_meta_graph=False)
    assert _state_text(d) == ('model_checkpoint_path: "m-2"\nall_model_checkpoint_paths: "m-1"\n'
                              'all_model_checkpoint_paths: "m-2"\n')
    shutil.copytree(d, tmp_path / "b")
    latest = tfckpt.latest_checkpoint(str(tmp_path / "b"))
    assert latest == str(tmp_path / "b" / "m-2")
    v0.assign(np.zeros(2, np.float32))
    s.restore(None, latest)
    assert v0.numpy().tolist() == [1.0, 2.0]
    Saver([v0]).save(None, str(d / "abs"), write_meta_graph=False)
    assert _state_text(d) == f'model_checkpoint_path: "{d}/abs"\nall_model_checkpoint_paths: "{d}/abs"\n'


# -- sharded, V1, SaverDef ------------------------------------------------------------------

def test_sharded_v2_and_v1(tmp_path: Any, fake_meta: Any) -> None:
    v0, v1 = _vars()
    s = Saver({"v0": v0, "v1": v1}, sharded=True)
    assert s.as_saver_def().sharded
    p = s.save(None, str(tmp_path / "v2" / "m"))
    assert p == str(tmp_path / "v2" / "m")
    assert sorted(os.listdir(tmp_path / "v2")) == ["checkpoint", "m.data-00000-of-00002", "m.data-00001-of-00002",
                                                    "m.index", "m.meta"]
    assert tfckpt.meta_graph_filename(p) == p + ".meta"
    s1 = Saver({"v0": v0, "v1": v1}, sharded=True, write_version=1)
    p1 = s1.save(None, str(tmp_path / "v1" / "m"), global_step=3)
    assert p1 == str(tmp_path / "v1" / "m-3-?????-of-00002")
    assert tfckpt.latest_checkpoint(str(tmp_path / "v1")) == p1
    assert sorted(os.listdir(tmp_path / "v1")) == ["checkpoint", "m-3-00000-of-00002", "m-3-00001-of-00002",
                                                    "m-3.meta"]
    v0.assign(np.zeros(2, np.float32))
    s1.restore(None, p1)
    assert v0.numpy().tolist() == [1.0, 2.0]
    assert tfckpt.CheckpointReader(p1).format == "V1"


def test_v1_unsharded(tmp_path: Any) -> None:
    v0, v1 = _vars()
    p = Saver([v0, v1], write_version=1).save(None, str(tmp_path / "m"), write_meta_graph=False)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "m"]
    assert tfckpt.read(p)["v1"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_saver_def(tmp_path: Any) -> None:
    s = Saver({"w": np.zeros(1)}, max_to_keep=3, keep_checkpoint_every_n_hours=2.0)
    sd = s.as_saver_def()
    assert sd is s.as_saver_def()
    assert (sd.filename_tensor_name, sd.save_tensor_name, sd.restore_op_name) == (
        "save/Const:0", "save/control_dependency:0", "save/restore_all")
    assert (sd.max_to_keep, sd.keep_checkpoint_every_n_hours, sd.version, sd.sharded) == (3, 2.0, 2, False)
    assert s.to_proto() is sd
    assert s.to_proto("other") is None
    assert s.to_proto("save").filename_tensor_name == "Const:0"
    imported = Saver.from_proto(meta_graph_pb2.SaverDef.FromString(sd.SerializeToString()), "scope")
    assert imported.as_saver_def().restore_op_name == "scope/save/restore_all"
    assert imported.as_saver_def().max_to_keep == 3
    with pytest.raises(ValueError, match=r"saver_def must be a saver_pb2\.SaverDef"):
        Saver(saver_def="nope")
    with pytest.raises(ValueError, match="saver_def must specify the save_tensor_name"):
        Saver(saver_def=meta_graph_pb2.SaverDef(restore_op_name="r"))
    with pytest.raises(ValueError, match="saver_def must specify the restore_op_name"):
        Saver(saver_def=meta_graph_pb2.SaverDef(save_tensor_name="s"))


# -- partitioned variables ---------------------------------------------------------------------

def test_partitioned_variable(tmp_path: Any) -> None:
    full = np.arange(20, dtype=np.float32).reshape(5, 4)
    p0 = Variable(full[:3], name="w/part_0", save_slice_info=SaveSliceInfo("w", (5, 4), (0, 0), (3, 4)))
    p1 = Variable(full[3:], name="w/part_1", save_slice_info=SaveSliceInfo("w", (5, 4), (3, 0), (2, 4)))
    path = Saver([p0, p1]).save(None, str(tmp_path / "m"), write_meta_graph=False)
    r = tfckpt.load_checkpoint(path)
    assert r.get_variable_to_shape_map() == {"w": [5, 4]}
    assert r.get_slices("w") == ["0,3:0,4", "3,2:0,4"]
    assert r.get_tensor("w").tolist() == full.tolist()
    # restore into a different partitioning
    q0 = Variable(np.zeros((5, 2), np.float32), name="q0", save_slice_info=SaveSliceInfo("w", (5, 4), (0, 0), (5, 2)))
    q1 = Variable(np.zeros((5, 2), np.float32), name="q1", save_slice_info=SaveSliceInfo("w", (5, 4), (0, 2), (5, 2)))
    Saver([q0, q1]).restore(None, path)
    assert q1.numpy().tolist() == full[:, 2:].tolist()
    bad = Variable(np.zeros((2, 4), np.float32), name="b", save_slice_info=SaveSliceInfo("w", (6, 4), (0, 0), (2, 4)))
    with pytest.raises(InvalidArgumentError, match=r"tensor_name = w; shape in shape_and_slice spec \[6,4\] does "
                       r"not match the shape stored in checkpoint: \[5,4\]"):
        Saver([bad]).restore(None, path)


# -- state-based saving ---------------------------------------------------------------------------

def test_numpy_state_in_place(tmp_path: Any) -> None:
    w = np.arange(4, dtype=np.float32)
    state = {"model": {"dense": {"kernel": w}}, "step": 3, "name": "run"}
    s = Saver()
    path = s.save(state, str(tmp_path / "m"), global_step="step", write_meta_graph=False)
    assert path.endswith("m-3")
    assert tfckpt.list_variables(path) == [("model/dense/kernel", [4]), ("name", []), ("step", [])]
    w2 = np.zeros(4, np.float32)
    state2 = {"model": {"dense": {"kernel": w2}}, "step": 0, "name": ""}
    out = s.restore(state2, path)
    assert out is state2
    assert w2.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert state2["step"] == 3
    assert state2["name"] == "run"
    with pytest.raises(NotFoundError, match="Key extra not found in checkpoint"):
        s.restore({**state2, "extra": np.zeros(1)}, path)


def test_var_list_of_names_without_sess(tmp_path: Any) -> None:
    """What import_meta_graph builds: {ckpt_key: graph_name}; restore(None) returns {graph_name: array}."""
    path = tfckpt.write({"w_h": np.ones((2, 2), np.float32), "global_step": np.int64(4)}, str(tmp_path / "m"))
    s = Saver(var_list={"w_h": "w_h", "global_step": "global_step"}, max_to_keep=3, sharded=False)
    out = s.restore(None, path)
    assert sorted(out) == ["global_step", "w_h"]
    assert int(out["global_step"]) == 4
    s2 = Saver(var_list={"model/w": "w"})
    assert s2.restore(None, tfckpt.write({"model/w": np.zeros(1)}, str(tmp_path / "n")))["w"].tolist() == [0.0]
    saved = s2.save({"w": np.full(2, 5.0)}, str(tmp_path / "o"), write_meta_graph=False)
    assert list(tfckpt.read(saved)) == ["model/w"]
    assert tfckpt.read(saved)["model/w"].tolist() == [5.0, 5.0]
    with pytest.raises(NotFoundError, match="'w' is not a value of the state"):
        s2.save({"x": 1}, str(tmp_path / "p"))


def test_object_based_checkpoint_by_names(tmp_path: Any) -> None:
    graph = checkpoint_pb2.TrackableObjectGraph()
    root = graph.nodes.add()
    root.children.add(node_id=1, local_name="v")
    attr = graph.nodes.add().attributes.add()
    attr.name, attr.full_name, attr.checkpoint_key = "VARIABLE_VALUE", "v", "v/.ATTRIBUTES/VARIABLE_VALUE"
    path = tfckpt.write({"v/.ATTRIBUTES/VARIABLE_VALUE": np.array([7.0], np.float32),
                         "_CHECKPOINTABLE_OBJECT_GRAPH": graph.SerializeToString()}, str(tmp_path / "tf2"))
    v = Variable(np.zeros(1, np.float32), name="v")
    Saver([v]).restore(None, path)
    assert v.numpy().tolist() == [7.0]
    w = Variable(np.zeros(1, np.float32), name="w")
    with pytest.raises(NotFoundError, match=r"^\n\nExisting variables not in the checkpoint: w\n\n"):
        Saver([v, w]).restore(None, path)
    target = Variable(np.zeros(1, np.float32), name="x")
    Saver({"v/.ATTRIBUTES/VARIABLE_VALUE": target}).restore(None, path)
    assert target.numpy().tolist() == [7.0]


def test_restore_sequentially(tmp_path: Any) -> None:
    state = {"a": np.ones(2, np.float32), "b": np.ones(2, np.int32)}
    s = Saver(restore_sequentially=True)
    path = s.save(state, str(tmp_path / "m"), write_meta_graph=False)
    target = {"a": np.zeros(2, np.float32), "b": np.zeros(2, np.int32)}
    s.restore(target, path)
    assert target["a"].tolist() == [1.0, 1.0]
    assert target["b"].tolist() == [1, 1]


def test_variable_basics() -> None:
    v = Variable(lambda: np.zeros(3, np.float32), name="v1:0")
    assert (v.name, v.op_name, v.shape, v.dtype.name, v.trainable) == ("v1:0", "v1", (3,), "float32", True)
    assert Variable(1.0).name == "Variable:0"
    assert Variable(np.int32(3), dtype="int64").dtype.name == "int64"
    with pytest.raises(InvalidArgumentError, match="Shape mismatch"):
        v.assign(np.zeros(2))
    v.assign_add(np.ones(3))
    assert v.numpy().tolist() == [1.0, 1.0, 1.0]
    assert np.asarray(v).dtype == np.float32
    assert "v1:0" in repr(v)


GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "tf2.21")


def test_golden_partitioned_is_byte_identical(tmp_path: Any) -> None:
    case = os.path.join(GOLDEN, "saver_partitioned")
    if not os.path.exists(os.path.join(case, "model.ckpt.index")):
        pytest.skip("golden fixture saver_partitioned not generated")
    ref = tfckpt.load_checkpoint(os.path.join(case, "model.ckpt"))
    part, plain = ref.get_tensor("part"), ref.get_tensor("plain")
    p0 = Variable(part[:3], name="part/part_0", save_slice_info=SaveSliceInfo("part", (5, 2), (0, 0), (3, 2)))
    p1 = Variable(part[3:], name="part/part_1", save_slice_info=SaveSliceInfo("part", (5, 2), (3, 0), (2, 2)))
    pl = Variable(plain, name="plain")
    out = Saver([p0, p1, pl]).save(None, str(tmp_path / "model.ckpt"), write_meta_graph=False)
    for suffix in (".index", ".data-00000-of-00001"):
        with open(os.path.join(case, "model.ckpt" + suffix), "rb") as f:
            assert (tmp_path / ("model.ckpt" + suffix)).read_bytes() == f.read(), suffix
    v = Variable(np.zeros((2, 2), np.float32), name="x", save_slice_info=SaveSliceInfo("part", (5, 2), (3, 0), (2, 2)))
    Saver([v]).restore(None, out)
    assert v.numpy().tolist() == part[3:].tolist()


def test_golden_tf1_checkpoints_restore() -> None:
    for case, _prefix in (("saver_sharded3", None), ("saver_v1", None)):
        d = os.path.join(GOLDEN, case)
        if not os.path.exists(os.path.join(d, "checkpoint")):
            continue
        path = tfckpt.latest_checkpoint(d)
        assert path is not None, case
        names = [n for n, _ in tfckpt.list_variables(path)]
        out = Saver(var_list={n: n for n in names}).restore(None, path)
        ref = tfckpt.read(path)
        assert sorted(out) == sorted(ref)
        for n in names:
            assert np.array_equal(np.asarray(out[n]), np.asarray(ref[n])), (case, n)


def test_restore_everything_as_dict(tmp_path: Any) -> None:
    path = tfckpt.write({"a": np.arange(3), "b/c": "text"}, str(tmp_path / "m"))
    out = Saver().restore(None, path)
    assert sorted(out) == ["a", "b/c"]
    assert out["a"].tolist() == [0, 1, 2]
    assert out["b/c"][()] == b"text"


def test_variable_python_value_dtypes() -> None:
    assert Variable(1.0).dtype.name == "float32"
    assert Variable([1, 2]).dtype.name == "int32"
    assert Variable(2**40).dtype.name == "int64"
    assert Variable(True).dtype.name == "bool"
    assert Variable(np.float64(1.0)).dtype.name == "float64"


def test_sharded_by_device(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import tfckpt.saver as saver_mod

    devices = {"a": "cuda:0", "b": "cpu", "c": "cuda:0", "d": "cuda:1"}
    state = {k: np.full(3, i, np.float32) for i, k in enumerate(devices)}
    by_id = {id(v): devices[k] for k, v in state.items()}
    monkeypatch.setattr(saver_mod, "_device_of", lambda v: by_id[id(v)])
    path = Saver(sharded=True).save(state, str(tmp_path / "m"), write_meta_graph=False)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "m.data-00000-of-00003", "m.data-00001-of-00003",
                                            "m.data-00002-of-00003", "m.index"]
    from tfckpt._format.bundle_reader import BundleReader

    with BundleReader(path) as r:
        shards = {k: r.entry(k).shard_id for k in devices}
    assert shards == {"b": 0, "a": 1, "c": 1, "d": 2}  # devices sorted: cpu, cuda:0, cuda:1
    assert tfckpt.read(path)["d"].tolist() == [3.0, 3.0, 3.0]


def test_golden_saver_sequence_same_files_and_bytes(tmp_path: Any) -> None:
    case = os.path.join(GOLDEN, "saver_sequence")
    if not os.path.exists(os.path.join(case, "checkpoint")):
        pytest.skip("golden fixture saver_sequence not generated")
    v = Variable(np.zeros((2, 2), np.float32), name="v")
    s = Saver([v], max_to_keep=2, save_relative_paths=True)
    for step in (1, 2, 3):
        v.assign(np.full((2, 2), step, np.float32))
        s.save(None, str(tmp_path / "model.ckpt"), global_step=step, write_meta_graph=False)
    theirs = sorted(f for f in os.listdir(case) if not f.endswith((".meta", ".json")))
    assert sorted(os.listdir(tmp_path)) == theirs
    for f in theirs:
        with open(os.path.join(case, f), "rb") as fh:
            assert (tmp_path / f).read_bytes() == fh.read(), f


def test_golden_tf1_mlp_restores_into_variables() -> None:
    import base64
    import json

    case = os.path.join(GOLDEN, "tf1_mlp_meta")
    if not os.path.exists(os.path.join(case, "expected.json")):
        pytest.skip("golden fixture tf1_mlp_meta not generated")
    with open(os.path.join(case, "expected.json")) as f:
        tensors = json.load(f)["tensors"]
    targets = {name: Variable(np.zeros(t["shape"], tfckpt.as_dtype(t["dtype"]).numpy_dtype), name=name)
               for name, t in tensors.items()}
    path = tfckpt.latest_checkpoint(case)
    Saver(list(targets.values())).restore(None, path)
    for name, t in tensors.items():
        assert targets[name].numpy().tobytes() == base64.b64decode(t["data_b64"]), name
    assert int(targets["global_step"].numpy()) == 1000


class _ReadSpy:
    """Records the destination arrays the bulk reads were given (CheckpointReader.read_many, and
    BundleReader.read_planned: the Saver's path when every value goes straight into its target)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.outs: list[np.ndarray] = []  # type: ignore[type-arg]
        real = tfckpt.CheckpointReader.read_many
        real_planned = BundleReader.read_planned

        def spy(reader: Any, names: Any = None, *, out: Any = None) -> Any:
            self.outs += list((out or {}).values())
            return real(reader, names, out=out)

        def spy_planned(reader: Any, plan: Any) -> None:
            self.outs += [buf for _, _, bufs in plan for buf in bufs]
            real_planned(reader, plan)

        monkeypatch.setattr(tfckpt.CheckpointReader, "read_many", spy)
        monkeypatch.setattr(BundleReader, "read_planned", spy_planned)


def test_restore_reads_straight_into_numpy_state(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    src = {"w": rng.random((30, 20)).astype(np.float32), "b": rng.random(20), "step": np.int64(9),
           "frozen": np.arange(3.0), "strided": np.arange(8.0)}
    s = Saver()
    path = s.save(src, str(tmp_path / "m"), write_meta_graph=False)
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    dst = {"w": np.zeros((30, 20), np.float32), "b": np.zeros(20), "step": np.int64(0), "frozen": frozen,
           "strided": np.zeros(16)[::2]}
    spy = _ReadSpy(monkeypatch)
    out = s.restore(dst, path)
    assert any(o is dst["w"] for o in spy.outs)
    assert any(o is dst["b"] for o in spy.outs)
    assert not any(o is frozen for o in spy.outs)  # read-only and strided arrays take the copying path
    for k in ("w", "b", "frozen", "strided"):
        np.testing.assert_array_equal(out[k], src[k])
    assert out["step"] == 9


def test_restore_in_place_checks_every_shape_first(tmp_path: Any) -> None:
    s = Saver()
    path = s.save({"a": np.ones(3), "z": np.ones(4)}, str(tmp_path / "m"), write_meta_graph=False)
    a = np.zeros(3)
    with pytest.raises(InvalidArgumentError, match="Assign requires shapes"):
        s.restore({"a": a, "z": np.zeros(5)}, path)
    assert a.tolist() == [0.0, 0.0, 0.0]  # nothing was written


def test_restore_in_place_checks_every_batch_first(tmp_path: Any) -> None:
    # 5,000 values: the index is read in several batches; a misfit in the last one must stop the
    # read before the first batch is written (the general path then reports it).
    src = {f"v{i:05d}": np.full(3, float(i)) for i in range(5000)}
    s = Saver()
    path = s.save(src, str(tmp_path / "m"), write_meta_graph=False)
    dst = {k: np.zeros(3) for k in src}
    dst["v04999"] = np.zeros(4)
    with pytest.raises(InvalidArgumentError, match="Assign requires shapes"):
        s.restore(dst, path)
    assert all(not a.any() for a in dst.values())  # nothing was written
    dst["v04999"] = np.zeros(3)
    s.restore(dst, path)
    assert all((dst[k] == src[k]).all() for k in src)


def test_restore_in_place_corruption_is_reported(tmp_path: Any) -> None:
    s = Saver()
    path = s.save({"a": np.ones(300), "b": np.ones(300)}, str(tmp_path / "m"), write_meta_graph=False)
    with open(path + ".data-00000-of-00001", "r+b") as f:
        f.seek(2500)
        f.write(b"\x00\x01")
    with pytest.raises(tfckpt.errors.DataLossError, match="partly restored") as info:
        s.restore({"a": np.zeros(300), "b": np.zeros(300)}, path)
    assert info.value.key == "b"


def test_restore_into_variables_in_place(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    v = Variable(np.arange(5.0), name="v")
    s = Saver([v])
    path = s.save(None, str(tmp_path / "m"), write_meta_graph=False)
    v.assign(np.zeros(5))
    spy = _ReadSpy(monkeypatch)
    s.restore(None, path)
    assert np.asarray(v).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert any(np.shares_memory(o, np.asarray(v)) for o in spy.outs)


def test_restore_of_plain_arrays_skips_the_general_checks(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A state of writeable contiguous arrays (and Variables) that fit their stored tensors
    # is read straight into them without the per-entry passes of the general path.
    from tfckpt import _restore

    rng = np.random.default_rng(1)
    src = {f"layer{i:02d}/w": rng.random((i + 1, 3)).astype(np.float32) for i in range(60)}
    v = Variable(np.arange(4, dtype=np.int64), name="step")
    s = Saver([*[Variable(a, name=k) for k, a in src.items()], v])
    path = s.save(None, str(tmp_path / "m"), write_meta_graph=False)
    dst = {k: np.zeros_like(a) for k, a in src.items()}
    monkeypatch.setattr(_restore, "_stored_specs", lambda *a: pytest.fail("took the general path"))
    got = Saver(dst).restore(None, path)
    assert all(got[k] is dst[k] for k in src)
    for k, a in src.items():
        np.testing.assert_array_equal(dst[k], a)
    v.assign(np.zeros(4, np.int64))
    s.restore(None, path)
    assert np.asarray(v).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("odd", ["quantized", "strided", "float64", "missing", "shape"])
def test_restore_of_one_odd_target_among_plain_arrays(tmp_path: Any, odd: str) -> None:
    # One target the simple path cannot take sends the whole restore down the general path,
    # with the same results and TensorFlow's errors.
    src: dict[str, Any] = {f"t{i:02d}": np.full(5, i, np.int8) for i in range(40)}
    src["t07"] = typed(np.arange(5, dtype=np.int8), "qint8") if odd == "quantized" else np.arange(5, dtype=np.int8)
    path = tfckpt.write(src, str(tmp_path / "m"))
    dst = {k: np.zeros(5, np.int8) for k in src}
    dst["t07"] = {"quantized": np.zeros(5, np.int8), "strided": np.zeros(10, np.int8)[::2],
                  "float64": np.zeros(5), "missing": np.zeros(5, np.int8), "shape": np.zeros(6, np.int8)}[odd]
    if odd == "missing":
        dst["t99"] = dst.pop("t07")
    saver = Saver(dst)
    if odd in ("quantized", "float64", "shape", "missing"):
        err = {"quantized": "expected dtype int8 does not equal original dtype qint8",
               "float64": "expected dtype double does not equal original dtype int8",
               "shape": r"lhs shape= \[6\] rhs shape= \[5\]", "missing": "Key t99 not found"}[odd]
        with pytest.raises((InvalidArgumentError, TensorNotFoundError), match=err):
            saver.restore(None, path)
        assert not dst["t00"].any()  # checked before anything was written
        return
    got = saver.restore(None, path)
    for k in src:
        np.testing.assert_array_equal(got[k], np.full(5, int(k[1:]), np.int8) if k != "t07" else np.arange(5))
    np.testing.assert_array_equal(dst["t07"], np.arange(5))


def test_name_based_restore_of_object_based_checkpoint() -> None:
    # TF1 names are remapped through the object graph (TensorFlow's fallback), then read in place
    prefix = os.path.join(GOLDEN, "tf2_keras_adam", "ckpt-1")
    r = tfckpt.CheckpointReader(prefix)
    want_m = r.get_tensor("optimizer/_variables/2/.ATTRIBUTES/VARIABLE_VALUE")
    want_b = r.get_tensor("optimizer/_variables/4/.ATTRIBUTES/VARIABLE_VALUE")
    momentum = np.zeros((3, 3, 2, 3), np.float32)
    state = {"adam/conv_kernel_momentum": momentum, "adam/conv_bias_momentum": np.zeros(3, np.float32),
             "save_counter": np.int64(0)}
    got = Saver(list(state)).restore(state, prefix)
    np.testing.assert_array_equal(momentum, want_m)  # read straight into the array passed
    np.testing.assert_array_equal(got["adam/conv_bias_momentum"], want_b)
    assert int(got["save_counter"]) == 1
    with pytest.raises(InvalidArgumentError, match="expected dtype double does not equal original dtype float"):
        Saver(["adam/conv_bias_momentum"]).restore({"adam/conv_bias_momentum": np.zeros(3)}, prefix)
    with pytest.raises(NotFoundError, match="Existing variables not in the checkpoint: no/such"):
        Saver(["no/such", "save_counter"]).restore({"no/such": np.zeros(1), "save_counter": np.int64(0)}, prefix)


def test_object_graph_naming_a_missing_key(tmp_path: Any) -> None:
    r = tfckpt.CheckpointReader(os.path.join(GOLDEN, "tf2_keras_adam", "ckpt-1"))
    values = {k: r.get_tensor(k) for k in r.get_variable_to_shape_map()}
    del values["optimizer/_variables/4/.ATTRIBUTES/VARIABLE_VALUE"]  # the graph still maps a name to it
    p = tfckpt.write(values, str(tmp_path / "c"))
    with pytest.raises(TensorNotFoundError, match=r"Key optimizer/_variables/4/\.ATTRIBUTES/VARIABLE_VALUE not found"):
        Saver(["adam/conv_bias_momentum"]).restore({"adam/conv_bias_momentum": np.zeros(3, np.float32)}, p)
