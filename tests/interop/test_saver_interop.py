"""The Saver against real TensorFlow (graph mode through tf.compat.v1).

* the same save sequence (max_to_keep=2, steps 1..4; absolute and relative paths) gives the
  same file names and the same ``checkpoint`` state file with TensorFlow's Saver and ours;
* TensorFlow restores what ours saved (numpy and torch state, several dtypes);
* ours restores what TensorFlow saved (TF1 names, TF2 object-based keys, and an object-based
  checkpoint through the name-based fallback).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tfckpt

pytestmark = pytest.mark.interop
import tensorflow as tf  # noqa: E402 (collected only where TensorFlow imports: see conftest)

v1 = tf.compat.v1


def _has_meta_writer() -> bool:
    try:
        from tfckpt import meta_graph
    except ImportError:
        return False
    return hasattr(meta_graph, "saver_meta_graph")


def _listing(d: Path) -> list[str]:
    names = sorted(os.listdir(d))
    if not _has_meta_writer():  # until tfckpt.meta_graph exists, ours writes no .meta
        names = [n for n in names if not n.endswith(".meta")]
    return names


def _tf_sequence(prefix: str) -> list[str]:
    g = tf.Graph()
    with g.as_default():
        v = v1.Variable(np.arange(3, dtype=np.float32), name="v")
        saver = v1.train.Saver(max_to_keep=2)
        with v1.Session(graph=g) as sess:
            sess.run(v.initializer)
            return [saver.save(sess, prefix, global_step=s) for s in (1, 2, 3, 4)]


def _our_sequence(prefix: str) -> list[str]:
    v = tfckpt.Variable(np.arange(3, dtype=np.float32), name="v")
    saver = tfckpt.Saver([v], max_to_keep=2)
    return [saver.save(None, prefix, global_step=s) for s in (1, 2, 3, 4)]


def test_same_files_and_state_absolute(tmp_path: Path) -> None:
    tf_paths = _tf_sequence(str(tmp_path / "tf" / "model.ckpt"))
    our_paths = _our_sequence(str(tmp_path / "ours" / "model.ckpt"))
    assert [p.replace("/tf/", "/ours/") for p in tf_paths] == our_paths
    assert _listing(tmp_path / "tf") == _listing(tmp_path / "ours")
    tf_state = (tmp_path / "tf" / "checkpoint").read_text().replace("/tf/", "/ours/")
    assert (tmp_path / "ours" / "checkpoint").read_text() == tf_state
    for a, b in zip(sorted(os.listdir(tmp_path / "tf")), sorted(os.listdir(tmp_path / "ours"))):
        if a.endswith((".index", ".data-00000-of-00001")):
            assert (tmp_path / "tf" / a).read_bytes() == (tmp_path / "ours" / b).read_bytes(), a


def test_same_files_and_state_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tf_paths = _tf_sequence("tf/model.ckpt")
    our_paths = _our_sequence("ours/model.ckpt")
    assert [p.replace("tf/", "ours/") for p in tf_paths] == our_paths
    assert _listing(tmp_path / "tf") == _listing(tmp_path / "ours")
    assert (tmp_path / "ours" / "checkpoint").read_text() == (tmp_path / "tf" / "checkpoint").read_text()
    assert (tmp_path / "ours" / "checkpoint").read_text() == (
        'model_checkpoint_path: "model.ckpt-4"\n'
        'all_model_checkpoint_paths: "model.ckpt-3"\n'
        'all_model_checkpoint_paths: "model.ckpt-4"\n'
    )
    assert tfckpt.latest_checkpoint("ours") == "ours/model.ckpt-4"


VALUES: dict[str, Any] = {
    "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
    "f64": np.array([1.5, -2.5]),
    "f16": np.array([0.5, 2.0], np.float16),
    "bf16": np.array([1.5, -3.0], ml_dtypes.bfloat16),
    "i32": np.array([[1, -2]], np.int32),
    "i64": np.int64(7),
    "u8": np.array([255, 0], np.uint8),
    "b": np.array([True, False]),
    "c64": np.array([1 + 2j], np.complex64),
    "s": np.array([b"ab", b""], dtype=object),
}


def _tf_restore(path: str, values: dict[str, Any]) -> dict[str, Any]:
    g = tf.Graph()
    with g.as_default():
        tvars = {}
        for name, val in values.items():
            arr = np.asarray(val)
            dtype = tf.string if arr.dtype == object else tf.as_dtype(arr.dtype)
            tvars[name] = v1.Variable(tf.zeros(arr.shape, dtype=dtype), name=name)
        saver = v1.train.Saver(tvars)
        with v1.Session(graph=g) as sess:
            saver.restore(sess, path)
            return {k: sess.run(v) for k, v in tvars.items()}


def test_tf_restores_our_numpy_state(tmp_path: Path) -> None:
    state = {"net": {k: v for k, v in VALUES.items()}}
    path = tfckpt.Saver().save(state, str(tmp_path / "m"), global_step=3)
    got = _tf_restore(path, {f"net/{k}": v for k, v in VALUES.items()})
    for k, v in VALUES.items():
        want = np.asarray(v)
        assert got[f"net/{k}"].dtype == want.dtype, k
        assert got[f"net/{k}"].tolist() == want.tolist(), k
    assert tf.train.latest_checkpoint(str(tmp_path)) == path


def test_tf_restores_our_sharded_and_v1(tmp_path: Path) -> None:
    state = {k: VALUES[k] for k in ("f32", "i64", "s")}
    for i, kw in enumerate(({"sharded": True}, {"write_version": 1}, {"write_version": 1, "sharded": True})):
        path = tfckpt.Saver(**kw).save(state, str(tmp_path / f"c{i}" / "m"), write_meta_graph=False)
        got = _tf_restore(path, state)
        assert got["f32"].tolist() == VALUES["f32"].tolist(), kw
        assert got["s"].tolist() == [b"ab", b""], kw


def test_tf_restores_our_torch_state(tmp_path: Path) -> None:
    import torch
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.5, -0.5]))
    extra = {"half": torch.tensor([1.5], dtype=torch.bfloat16), "steps": torch.tensor(11, dtype=torch.int64)}
    path = tfckpt.Saver().save({"model": model, "extra": extra}, str(tmp_path / "t"))
    got = _tf_restore(path, {"model/weight": np.zeros((2, 3), np.float32), "model/bias": np.zeros(2, np.float32),
                             "extra/half": np.zeros(1, ml_dtypes.bfloat16), "extra/steps": np.int64(0)})
    assert got["model/weight"].tolist() == model.weight.detach().numpy().tolist()
    assert got["model/bias"].tolist() == [0.5, -0.5]
    assert got["extra/half"].astype(np.float32).tolist() == [1.5]
    assert int(got["extra/steps"]) == 11


def test_we_restore_tf1_checkpoint(tmp_path: Path) -> None:
    g = tf.Graph()
    with g.as_default():
        v1.Variable(np.arange(4, dtype=np.float32).reshape(2, 2), name="layer/a")
        v1.Variable(np.int64(42), name="global_step")
        saver = v1.train.Saver(max_to_keep=2)
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            path = saver.save(sess, str(tmp_path / "model.ckpt"), global_step=5)
    va = tfckpt.Variable(np.zeros((2, 2), np.float32), name="layer/a")
    vs = tfckpt.Variable(np.int64(0), name="global_step")
    tfckpt.Saver([va, vs]).restore(None, tfckpt.latest_checkpoint(str(tmp_path)))
    assert va.numpy().tolist() == [[0.0, 1.0], [2.0, 3.0]]
    assert int(vs.numpy()) == 42
    state = {"layer": {"a": np.zeros((2, 2), np.float32)}, "global_step": np.int64(0)}
    restored = tfckpt.Saver().restore(state, path)
    assert restored["global_step"] == 42
    assert state["layer"]["a"][1, 1] == 3.0
    bad = tfckpt.Variable(np.zeros((2, 2), np.int32), name="layer/a")
    with pytest.raises(tfckpt.InvalidArgumentError, match="expected dtype int32 does not equal original dtype float"):
        tfckpt.Saver([bad]).restore(None, path)


def test_we_restore_tf2_object_based(tmp_path: Path) -> None:
    class Model(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = tf.Variable(np.full((2, 3), 0.25, np.float32), name="kernel")
            self.count = tf.Variable(np.int64(9), name="count")

    ckpt = tf.train.Checkpoint(model=Model())
    path = ckpt.save(str(tmp_path / "ckpt"))
    kernel = np.zeros((2, 3), np.float32)
    out = tfckpt.Saver({"model/kernel/.ATTRIBUTES/VARIABLE_VALUE": kernel,
                        "save_counter/.ATTRIBUTES/VARIABLE_VALUE": "save_counter"}).restore(None, path)
    assert kernel.tolist() == [[0.25] * 3] * 2
    assert int(out["save_counter"]) == 1
    # name-based restore of an object-based checkpoint: remapped through the object graph
    count = tfckpt.Variable(np.int64(0), name="count")
    tfckpt.Saver([count]).restore(None, path)
    assert int(count.numpy()) == 9


def test_our_manager_resumes_from_a_tf2_manager(tmp_path: Path) -> None:
    class Model(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = tf.Variable(np.full((2, 3), 0.5, np.float32))  # (graph name "Variable": no match)

    ckpt = tf.train.Checkpoint(model=Model(), v=tf.Variable(np.arange(3, dtype=np.float32)))
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path), max_to_keep=2)
    manager.save()
    manager.save()
    state = {"model": {"kernel": np.zeros((2, 3), np.float32)}, "v": np.zeros(3, np.float32)}
    ours = tfckpt.CheckpointManager(state, str(tmp_path), max_to_keep=2)
    assert ours.restore_or_initialize() == str(tmp_path / "ckpt-2")  # (matched by object path)
    assert state["model"]["kernel"].tolist() == [[0.5] * 3] * 2
    assert state["v"].tolist() == [0.0, 1.0, 2.0]
    assert ours.save() == str(tmp_path / "ckpt-3")  # (numbering continues from TF's save_counter)
    ours.close()


def test_tf_imports_our_meta_and_restores(tmp_path: Path) -> None:
    if not _has_meta_writer():
        pytest.skip("tfckpt.meta_graph.saver_meta_graph is not available")
    w = tfckpt.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="layer/w")
    step = tfckpt.Variable(np.int64(5), name="global_step")
    path = tfckpt.Saver([w, step], max_to_keep=3).save(None, str(tmp_path / "model.ckpt"), global_step=step)
    g = tf.Graph()
    with g.as_default():
        saver = v1.train.import_meta_graph(path + ".meta")
        assert saver.as_saver_def().max_to_keep == 3
        with v1.Session(graph=g) as sess:
            saver.restore(sess, path)
            assert sess.run("layer/w:0").tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
            assert int(sess.run("global_step:0")) == 5


def test_tf_restores_the_demo_checkpoint(tmp_path: Path) -> None:
    from tfckpt import demo

    d = str(tmp_path / "ckpt_dir")
    assert demo.main(["--ckpt-dir", d, "--epochs", "1", "--train-size", "64", "--quiet"]) == 0
    path = tf.train.latest_checkpoint(d)
    assert path == os.path.join(d, "model.ckpt-1")
    g = tf.Graph()
    with g.as_default():
        shapes = {"w_h": (784, 625), "w_h2": (625, 625), "w_o": (625, 10)}
        tvars = {n: v1.Variable(tf.zeros(s), name=n) for n, s in shapes.items()}
        gs = v1.Variable(0, name="global_step", trainable=False)  # int32, as in the tutorial
        opt = v1.train.RMSPropOptimizer(0.001, 0.9)
        opt.minimize(tf.add_n([tf.reduce_sum(v) for v in tvars.values()]), var_list=list(tvars.values()))
        saver = v1.train.Saver()
        with v1.Session(graph=g) as sess:
            saver.restore(sess, path)
            assert int(sess.run(gs)) == 1
            want = tfckpt.load_variable(path, "w_h2/RMSProp")
            by_name = {v.op.name: v for v in v1.global_variables()}
            assert {"w_h2/RMSProp", "w_h2/RMSProp_1"} <= set(by_name)
            assert np.array_equal(sess.run(by_name["w_h2/RMSProp"]), want)
