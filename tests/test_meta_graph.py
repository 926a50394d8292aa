"""tfckpt.meta_graph without TensorFlow: golden .meta files TF 2.21 wrote, round trips, node bytes."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfckpt
from tfckpt import errors
from tfckpt._graph_builder import GRAPH_PRODUCER
from tfckpt._op_registry import op_def
from tfckpt._proto import meta_graph_pb2
from tfckpt.meta_graph import (
    MetaGraph,
    VariableInfo,
    VariableSpec,
    export_meta_graph,
    import_meta_graph,
    read_meta_graph,
    saver_meta_graph,
)

GOLDEN = Path(__file__).parent / "golden_meta" / "tf2.21"
CASES = ["mlp_ref", "resource", "partitioned", "sharded_renamed", "v1_sharded", "simple_stripped"]
# Attributes TF adds for colocation/bookkeeping that tfckpt does not write.
TF_ONLY_ATTRS = {"_class", "_has_manual_control_dependencies", "_output_shapes"}


def _expected(case: str) -> dict[str, Any]:
    with open(GOLDEN / case / "expected.json") as f:
        return json.load(f)  # type: ignore[no-any-return]


def _meta(case: str) -> MetaGraph:
    return read_meta_graph(GOLDEN / case / _expected(case)["meta"])


def _decode(v: dict[str, Any]) -> np.ndarray[Any, Any]:
    if v["dtype"] == "string":
        flat = [base64.b64decode(s) for s in v["strings_b64"]]
        return np.array(flat, dtype=object).reshape(v["shape"])
    dt = tfckpt.as_dtype(v["dtype"]).numpy_dtype
    return np.frombuffer(base64.b64decode(v["data_b64"]), dtype=dt).reshape(v["shape"])


# ------------------------------------------------------------------------------------------------
# Golden .meta files written by TensorFlow 2.21, checked against what tf.compat.v1 reported


@pytest.mark.parametrize("case", CASES)
def test_golden_variables(case: str) -> None:
    exp, mg = _expected(case), _meta(case)
    got = [
        {
            "name": v.name,
            "op_name": v.op_name,
            "op_type": v.op_type,
            "dtype": v.dtype.name if v.dtype else None,
            "shape": list(v.shape) if v.shape is not None else None,
            "trainable": v.trainable,
            "is_resource": v.is_resource,
            "initializer_name": v.initializer_name,
            "snapshot_name": v.snapshot_name,
            "initial_value_name": v.initial_value_name,
            "save_slice_info": None
            if v.save_slice_info is None
            else {
                "full_name": v.save_slice_info.full_name,
                "full_shape": list(v.save_slice_info.full_shape),
                "var_offset": list(v.save_slice_info.var_offset),
                "var_shape": list(v.save_slice_info.var_shape),
            },
            "device": v.device,
        }
        for v in mg.variables
    ]
    assert got == exp["variables"]
    assert [v.name for v in mg.trainable_variables] == exp["trainable_variables"]
    assert [v.name for v in mg.local_variables] == exp["local_variables"]


@pytest.mark.parametrize("case", CASES)
def test_golden_collections(case: str) -> None:
    exp, mg = _expected(case), _meta(case)

    def norm(x: object) -> object:
        if isinstance(x, VariableInfo):
            return x.name
        if isinstance(x, bytes):
            return {"bytes_b64": base64.b64encode(x).decode()}
        return x

    assert {k: [norm(x) for x in v] for k, v in mg.collections.items()} == exp["collections"]
    kinds = {k: c.WhichOneof("kind") for k, c in mg.proto.collection_def.items()}
    assert kinds == exp["collection_kinds"]


@pytest.mark.parametrize("case", CASES)
def test_golden_operations(case: str) -> None:
    exp, mg = _expected(case), _meta(case)

    def tensor(inp: str) -> str:
        return inp if inp.startswith("^") or ":" in inp else inp + ":0"

    def split(inputs: list[str]) -> tuple[list[str], list[str]]:
        # Data inputs keep their order; TF's op.control_inputs has no defined order.
        return [i for i in inputs if not i.startswith("^")], sorted(i for i in inputs if i.startswith("^"))

    got = [(o.name, o.type, split([tensor(i) for i in o.inputs]), o.device) for o in mg.operations]
    want = [(o["name"], o["type"], split(o["inputs"]), o["device"]) for o in exp["operations"]]
    assert got == want


def _tensor_info(t: Any) -> list[Any]:
    shape = None if t.shape is None else [-1 if d is None else d for d in t.shape]
    return [t.name, t.dtype.name if t.dtype else None, shape]


@pytest.mark.parametrize("case", CASES)
def test_golden_saver_def_signatures_meta_info(case: str) -> None:
    exp, mg = _expected(case), _meta(case)
    sd = mg.saver_def
    assert sd is not None
    got_sd = {k: getattr(sd, k) for k in exp["saver_def"]}
    assert got_sd == exp["saver_def"]
    sigs = {
        name: {
            "method_name": s.method_name,
            "inputs": {k: _tensor_info(t) for k, t in s.inputs.items()},
            "outputs": {k: _tensor_info(t) for k, t in s.outputs.items()},
        }
        for name, s in mg.signature_def.items()
    }
    assert sigs == exp["signature_def"]
    assert list(mg.meta_info.tags) == exp["meta_info"]["tags"]
    assert mg.meta_info.tensorflow_version == exp["meta_info"]["tensorflow_version"] == "2.21.0"
    assert list(mg.meta_info.op_names) == exp["meta_info"]["stripped_op_list"]
    assert mg.meta_info.stripped_default_attrs is exp["meta_info"]["stripped_default_attrs"]


@pytest.mark.parametrize("case", CASES)
def test_golden_checkpoint_keys_and_import_restore(case: str) -> None:
    exp, mg = _expected(case), _meta(case)
    keys = mg.checkpoint_keys()
    assert keys == exp["checkpoint_keys"]
    saver = import_meta_graph(GOLDEN / case / exp["meta"])
    assert saver.meta_graph.checkpoint_keys() == keys
    assert saver.saver_def.max_to_keep == exp["saver_def"]["max_to_keep"]
    assert saver.saver_def.sharded == exp["saver_def"]["sharded"]
    values = saver.restore(None, str(GOLDEN / case / exp["prefix"]))
    assert sorted(values) == sorted(keys.values())
    for key, graph_name in keys.items():
        want = _decode(exp["values"][key])
        got = values[graph_name]
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        if want.dtype == object:
            assert got.tolist() == want.tolist()
        else:
            assert got.tobytes() == want.tobytes()


def test_golden_import_scope_and_restored_values() -> None:
    exp = _expected("mlp_ref")
    saver = import_meta_graph(GOLDEN / "mlp_ref" / exp["meta"], import_scope="imported")
    values = saver.restore(None, str(GOLDEN / "mlp_ref" / exp["prefix"]))
    assert sorted(values) == sorted("imported/" + k for k in exp["restored"])
    for op_name, v in exp["restored"].items():  # what TF's own restored session held
        assert values["imported/" + op_name].tobytes() == _decode(v).tobytes()
    assert int(values["imported/global_step"]) == 1  # one training step; 1000 was only the file name


def test_golden_get_tensor_by_name() -> None:
    mg = _meta("mlp_ref")
    w = mg.get_tensor_by_name("w_h:0")
    assert (w.op_name, w.dtype, w.shape, w.is_resource, w.trainable) == (
        "w_h",
        tfckpt.dtypes.float32,
        (8, 6),
        False,
        True,
    )
    assert mg.get_tensor_by_name("w_h/read:0") is w
    with pytest.raises(errors.UnimplementedError) as ei:
        mg.get_tensor_by_name("output:0")
    assert str(ei.value) == "tfckpt restores variables and does not execute graphs: 'output:0' is a MatMul op"
    with pytest.raises(errors.TensorNotFoundError, match="The operation, 'nope', does not exist in the graph"):
        mg.get_tensor_by_name("nope:0")
    with pytest.raises(errors.InvalidArgumentError, match="refers to an Operation, not a Tensor"):
        mg.get_tensor_by_name("w_h")
    res = _meta("resource")
    k = res.get_tensor_by_name("dense/kernel:0")
    assert (k.op_type, k.is_resource, k.snapshot_name) == ("VarHandleOp", True, "dense/kernel/Read/ReadVariableOp:0")
    with pytest.raises(errors.UnimplementedError, match="'X:0' is a Placeholder op"):
        res.get_tensor_by_name("X:0")


def test_golden_summary_text() -> None:
    text = str(_meta("resource"))
    assert "dense/kernel:0 float32 [4,3] (resource, trainable)" in text
    assert "counter:0 int64 [] (resource)" in text
    assert "collection my_ints: [42]" in text
    assert "signature serving_default (tensorflow/serving/predict): (x=X:0) -> (y=output:0)" in text
    part = str(_meta("partitioned"))
    assert "part/part_1:0 float32 [2,2] (ref, trainable) slice 5 2 3,0:2,2 of part" not in part
    assert "part/part_1:0 float32 [2,2] (ref, trainable) slice 5 2 3,2:0,2 of part" in part


def test_golden_op_defs_match_tensorflow_registry() -> None:
    seen = set()
    for case in CASES:
        for name, b64 in _expected(case)["meta_info"]["op_defs_b64"].items():
            try:
                ours = op_def(name)
            except errors.UnimplementedError:
                continue
            assert ours.SerializeToString(deterministic=True) == base64.b64decode(b64), name
            seen.add(name)
    assert len(seen) == 16  # every op tfckpt writes was checked against TF's registry


def _node_map(mg: meta_graph_pb2.MetaGraphDef) -> dict[str, meta_graph_pb2.NodeDef]:
    out = {}
    for n in mg.graph_def.node:
        c = meta_graph_pb2.NodeDef()
        c.CopyFrom(n)
        for k in TF_ONLY_ATTRS:
            if k in c.attr:
                del c.attr[k]
        out[n.name] = c
    return out


def test_nodes_equal_tensorflows_unsharded_stripped() -> None:
    exp = _expected("simple_stripped")
    tf_mg = meta_graph_pb2.MetaGraphDef.FromString((GOLDEN / "simple_stripped" / exp["meta"]).read_bytes())
    specs = [
        VariableSpec("a", "float32", (2, 2)),
        VariableSpec("scope/b", "string", ()),
        VariableSpec("scope/inner/c", "int64", (3,)),
        VariableSpec("d", "float64", (), trainable=False),
        VariableSpec("p", "float32", (3, 2), slice_spec="5 2 0,3:0,2"),
        VariableSpec("p", "float32", (2, 2), slice_spec="5 2 3,2:0,2"),
    ]
    ours_mg = meta_graph_pb2.MetaGraphDef.FromString(saver_meta_graph(specs, strip_default_attrs=True))
    tf_nodes, ours = _node_map(tf_mg), _node_map(ours_mg)
    save_nodes = [n for n in ours if n.startswith("save/")]
    assert len(save_nodes) == 17
    for name in [*save_nodes, "a", "scope/b", "p/part_1", "a/Assign", "a/read", "p/part_0/read"]:
        assert ours[name].SerializeToString(deterministic=True) == tf_nodes[name].SerializeToString(
            deterministic=True
        ), name
    assert ours_mg.saver_def.SerializeToString() == tf_mg.saver_def.SerializeToString()
    assert ours_mg.meta_info_def.stripped_default_attrs is True
    assert ours_mg.meta_info_def.stripped_op_list.SerializeToString(
        deterministic=True
    ) == tf_mg.meta_info_def.stripped_op_list.SerializeToString(deterministic=True)
    assert ours_mg.graph_def.versions.producer == tf_mg.graph_def.versions.producer == GRAPH_PRODUCER
    # The collections hold the same VariableDefs, byte for byte, except the partitions'
    # initial values (TF names them p/part_0/Initializer/zeros).
    for col in ("variables", "trainable_variables"):
        mine = list(ours_mg.collection_def[col].bytes_list.value)
        theirs = list(tf_mg.collection_def[col].bytes_list.value)
        assert mine[: 4 if col == "variables" else 3] == theirs[: 4 if col == "variables" else 3]
        assert len(mine) == len(theirs)


def test_nodes_equal_tensorflows_sharded_renamed() -> None:
    exp = _expected("sharded_renamed")
    tf_mg = meta_graph_pb2.MetaGraphDef.FromString((GOLDEN / "sharded_renamed" / exp["meta"]).read_bytes())
    specs = [
        VariableSpec("renamed/a", "float32", (2, 3), var_name="outer/inner/a", device="/device:CPU:0"),
        VariableSpec("names", "string", (2,), device="/device:CPU:1"),
        VariableSpec("flags_key", "bool", (2,), var_name="flags", device="/device:CPU:1"),
    ]
    ours_mg = meta_graph_pb2.MetaGraphDef.FromString(saver_meta_graph(specs, sharded=True, max_to_keep=3))
    tf_nodes, ours = _node_map(tf_mg), _node_map(ours_mg)
    same = [n for n in ours if n.startswith("save/") and n != "save/restore_all"]
    assert len(same) == 35
    for name in same:
        assert ours[name].SerializeToString(deterministic=True) == tf_nodes[name].SerializeToString(
            deterministic=True
        ), name
    assert ours_mg.saver_def.SerializeToString() == tf_mg.saver_def.SerializeToString()
    assert read_meta_graph(ours_mg).checkpoint_keys() == exp["checkpoint_keys"]


def test_variable_def_bytes_match_tensorflow() -> None:
    # saver_sequence-style variable `v` as TF 2.21 serialized it into the collections.
    tf_bytes = b"\n\003v:0\022\010v/Assign\032\010v/read:02\021v/initial_value:08\001"
    mg = meta_graph_pb2.MetaGraphDef.FromString(saver_meta_graph([VariableSpec("v", "float32", (2, 2))]))
    assert list(mg.collection_def["variables"].bytes_list.value) == [tf_bytes]
    assert list(mg.collection_def["trainable_variables"].bytes_list.value) == [tf_bytes]


# ------------------------------------------------------------------------------------------------
# Round trips and options


ALL_DTYPES = [
    "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "bool", "complex64", "complex128", "string", "qint8", "quint8", "qint32",
]  # fmt: skip


def test_round_trip_all_dtypes() -> None:
    specs = [VariableSpec(f"v_{d}", d, (2, 1), trainable=i % 2 == 0) for i, d in enumerate(ALL_DTYPES)]
    mg = read_meta_graph(saver_meta_graph(specs))
    assert [(v.name, v.dtype.name if v.dtype else None, v.shape) for v in mg.variables] == [
        (f"v_{d}:0", d, (2, 1)) for d in ALL_DTYPES
    ]
    assert [v.name for v in mg.trainable_variables] == [f"v_{d}:0" for d in ALL_DTYPES[::2]]
    assert mg.checkpoint_keys() == {f"v_{d}": f"v_{d}" for d in ALL_DTYPES}
    restore = mg.proto.graph_def.node
    rv2 = next(n for n in restore if n.name == "save/RestoreV2")
    assert [tfckpt.as_dtype(t).name for t in rv2.attr["dtypes"].list.type] == sorted(ALL_DTYPES, key=lambda d: f"v_{d}")


def test_round_trip_partitioned_sharded_v1() -> None:
    specs = [
        VariableSpec("emb", "float32", (3, 4), slice_spec="5 4 0,3:-", device="/cpu:0"),
        VariableSpec("emb", "float32", (2, 4), slice_spec="5 4 3,2:0,4", device="/cpu:1"),
        VariableSpec("w", "int64", (), device="/cpu:1"),
    ]
    for version in (1, 2):
        proto = meta_graph_pb2.MetaGraphDef.FromString(saver_meta_graph(specs, sharded=True, version=version))
        mg = read_meta_graph(proto)
        assert mg.checkpoint_keys() == {"emb": "emb", "w": "w"}
        parts = [v.save_slice_info for v in mg.variables]
        assert parts[0] is not None
        assert parts[0].spec == "5 4 0,3:0,4"
        assert parts[1] is not None
        assert (parts[1].var_offset, parts[1].var_shape) == ((3, 0), (2, 4))
        assert parts[2] is None
        assert [v.op_name for v in mg.variables] == ["emb/part_0", "emb/part_1", "w"]
        sd = mg.saver_def
        assert sd is not None
        assert sd.sharded
        assert sd.version == version
        assert sd.save_tensor_name == ("save/Identity:0" if version == 2 else "save/ShardedFilespec:0")
        ops = {o.name: o for o in mg.operations}
        assert ops["save/num_shards"].attrs["value"] == "Tensor<int32 []>"
        assert ops["emb/part_0"].device == "/cpu:0"


def test_clear_devices_and_strip_defaults() -> None:
    specs = [VariableSpec("w", "float32", (1,), device="/cpu:0")]
    mg = read_meta_graph(saver_meta_graph(specs, clear_devices=True, strip_default_attrs=True))
    assert all(o.device == "" for o in mg.operations)
    assert mg.meta_info.stripped_default_attrs
    assert mg.node("w").attr.keys() == {"dtype", "shape"}
    assert mg.node("w/Assign").attr.keys() == {"T"}
    full = read_meta_graph(saver_meta_graph(specs))
    assert full.node("w").attr.keys() == {"dtype", "shape", "container", "shared_name"}
    assert full.node("w").device == "/cpu:0"
    assert full.node("save/RestoreV2").device == "/device:CPU:0"


def test_names_sanitized_and_saver_scope_avoids_clash() -> None:
    specs = [
        VariableSpec("layer 1:w", "float32", (1,)),
        VariableSpec("save", "float32", (1,)),
        VariableSpec("_x", "int32", ()),
    ]
    mg = read_meta_graph(saver_meta_graph(specs))
    assert [v.op_name for v in mg.variables] == ["layer_1_w", "save", "v_x"]
    assert mg.saver_def is not None
    assert mg.saver_def.restore_op_name == "save_1/restore_all"
    assert mg.checkpoint_keys() == {"_x": "v_x", "layer 1:w": "layer_1_w", "save": "save"}


def test_saver_options_and_cache() -> None:
    specs = [VariableSpec("w", "float32", (2,))]
    a = saver_meta_graph(specs, max_to_keep=2, keep_checkpoint_every_n_hours=0.5, filename="ckpt")
    assert saver_meta_graph(list(specs), max_to_keep=2, keep_checkpoint_every_n_hours=0.5, filename="ckpt") is a
    mg = read_meta_graph(a)
    sd = mg.saver_def
    assert sd is not None
    assert (sd.max_to_keep, sd.keep_checkpoint_every_n_hours, sd.sharded, sd.version) == (2, 0.5, False, 2)
    assert (sd.filename_tensor_name, sd.save_tensor_name) == ("save/Const:0", "save/control_dependency:0")
    assert mg.node("save/filename/input").attr["value"].tensor.string_val == [b"ckpt"]


def test_empty_graph_has_no_saver() -> None:
    mg = read_meta_graph(saver_meta_graph([]))
    assert mg.saver_def is None
    assert mg.variables == []
    assert mg.checkpoint_keys() == {}
    assert import_meta_graph(mg) is None


@pytest.mark.parametrize(
    ("specs", "kwargs", "exc", "match"),
    [
        (
            [VariableSpec("w", "float32", (1,)), VariableSpec("w", "float32", (1,))],
            {},
            errors.InvalidArgumentError,
            "appears twice",
        ),
        ([VariableSpec("w", "float32", (1,))], {"version": 3}, errors.InvalidArgumentError, "version must be"),
        (
            [VariableSpec("w", "float32", (1,)), VariableSpec("w", "float32", (1, 1), slice_spec="2 1 0,1:-")],
            {},
            errors.InvalidArgumentError,
            "both a whole and a partitioned",
        ),
    ],
)
def test_builder_errors(specs: list[VariableSpec], kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        saver_meta_graph(specs, **kwargs)


def test_variable_spec_errors() -> None:
    with pytest.raises(
        errors.InvalidArgumentError, match="slice '5 2 0,3:0,2' has shape \\[3, 2\\], the spec says \\[5, 2\\]"
    ):
        VariableSpec("p", "float32", (5, 2), slice_spec="5 2 0,3:0,2")
    with pytest.raises(errors.UnimplementedError, match="resource cannot be a graph variable"):
        VariableSpec("r", "resource", ())
    with pytest.raises(errors.InvalidArgumentError, match="non-empty string"):
        VariableSpec("", "float32", ())
    with pytest.raises(errors.InvalidArgumentError, match="negative"):
        VariableSpec("w", "float32", (-1,))
    with pytest.raises(errors.InvalidArgumentError, match="not a valid TensorFlow op name"):
        saver_meta_graph([VariableSpec("w", "float32", (), var_name="a b")])


def test_export_meta_graph_state_text_and_binary(tmp_path: Path) -> None:
    state = {"dense": {"kernel": np.zeros((3, 2), np.float32), "bias": np.zeros(2, np.float32)}, "step": np.int64(3)}
    mg = export_meta_graph(tmp_path / "m.meta", state=state)
    back = read_meta_graph(tmp_path / "m.meta")
    assert back.proto == mg
    assert [(v.op_name, v.dtype.name if v.dtype else None, v.shape) for v in back.variables] == [
        ("dense/kernel", "float32", (3, 2)),
        ("dense/bias", "float32", (2,)),
        ("step", "int64", ()),
    ]
    export_meta_graph(tmp_path / "t.meta", var_list={"names": np.array(["a", "b"])}, as_text=True)
    text = (tmp_path / "t.meta").read_text()
    assert text.startswith("meta_info_def {")
    tmg = read_meta_graph(tmp_path / "t.meta")
    assert [(v.name, v.dtype, v.shape) for v in tmg.variables] == [("names:0", tfckpt.dtypes.string, (2,))]
    specs = [VariableSpec("x", "float32", (1,))]
    assert export_meta_graph(var_list=specs).graph_def.node[1].name == "x"
    with pytest.raises(errors.InvalidArgumentError, match="not both"):
        export_meta_graph(state=state, var_list=state)


def test_export_meta_graph_torch_state() -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(3, 2)
    mg = read_meta_graph(export_meta_graph(state={"model": model}))
    assert [(v.op_name, v.dtype, v.shape) for v in mg.variables] == [
        ("model/weight", tfckpt.dtypes.float32, (2, 3)),
        ("model/bias", tfckpt.dtypes.float32, (2,)),
    ]


def test_read_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.meta"
    with pytest.raises(errors.NotFoundError, match=r"File does not exist\. Received: "):
        read_meta_graph(missing)
    bad = tmp_path / "bad.meta"
    bad.write_bytes(b"\xff\xff\xff\xff garbage")
    with pytest.raises(errors.DataLossError, match="Cannot parse file"):
        read_meta_graph(bad)
    with pytest.raises(errors.InvalidTypeError, match="expected a path, serialized bytes or a MetaGraphDef"):
        read_meta_graph(3.5)
    with pytest.raises(errors.InvalidArgumentError, match="expected a MetaGraphDef"):
        read_meta_graph(meta_graph_pb2.SaverDef())


def test_unknown_collection_kinds_and_fields_do_not_crash() -> None:
    mg = meta_graph_pb2.MetaGraphDef()
    mg.collection_def["odd"].SetInParent()  # no kind set
    mg.collection_def["variables"].bytes_list.value.append(b"\xff\xff garbage")  # undecodable VariableDef
    mg.collection_def["savers"].bytes_list.value.append(meta_graph_pb2.SaverDef(max_to_keep=7).SerializeToString())
    mg.collection_def["anys"].any_list.value.add(type_url="x/y", value=b"1")
    raw = mg.SerializeToString() + b"\xa2\x06\x03abc"  # unknown field 100 of MetaGraphDef
    node = b"\x0a\x01w\x12\x0aVariableV2\xaa\x06\x02zz"  # NodeDef with an unknown field 101
    raw += b"\x12" + bytes([len(node) + 2]) + b"\x0a" + bytes([len(node)]) + node
    back = read_meta_graph(raw)
    assert back.collections["odd"] == []
    assert back.collections["variables"] == [b"\xff\xff garbage"]
    assert back.collections["savers"][0].max_to_keep == 7
    assert back.collections["anys"] == [("x/y", b"1")]
    assert [v.name for v in back.variables] == ["w:0"]  # from the graph's variable ops
    assert back.checkpoint_keys() == {"w": "w"}


def test_import_meta_graph_from_proto_without_saver_def() -> None:
    mg = meta_graph_pb2.MetaGraphDef.FromString(saver_meta_graph([VariableSpec("a/b", "float32", (1,))]))
    mg.ClearField("saver_def")
    saver = import_meta_graph(mg, import_scope="s/")
    assert saver.meta_graph.checkpoint_keys() == {"a/b": "a/b"}


def test_end_to_end_tutorial(tmp_path: Path) -> None:
    prefix = str(tmp_path / "model.ckpt-1000")
    values = {"w_h": np.arange(6, dtype=np.float32).reshape(2, 3), "names": np.array([b"a", b"bc"], dtype=object)}
    tfckpt.write(values, prefix)
    export_meta_graph(prefix + ".meta", var_list=values)
    tfckpt.update_checkpoint_state(str(tmp_path), prefix)
    saver = tfckpt.import_meta_graph(os.path.join(tmp_path, "model.ckpt-1000.meta"))
    got = saver.restore(None, tfckpt.latest_checkpoint(str(tmp_path)))
    assert got["w_h"].tobytes() == values["w_h"].tobytes()
    assert got["names"].tolist() == [b"a", b"bc"]
    trainable = {v.op_name: got[v.op_name].shape for v in saver.meta_graph.trainable_variables}
    assert trainable == {"w_h": (2, 3)}  # (strings have no gradient: not trainable)


SHARED = Path(__file__).parent / "golden" / "tf2.21"
SHARED_META = [
    "saver_partitioned/model.ckpt.meta",
    "saver_sharded3/model.ckpt-7.meta",
    "saver_v1/model.ckpt.meta",
    "saver_v1_sharded/model.ckpt-3.meta",
    "tf1_mlp_meta/model.ckpt-1000.meta",
    "tf1_resource_meta/model.ckpt.meta",
]


@pytest.mark.parametrize("rel", SHARED_META)
def test_shared_golden_meta_files(rel: str) -> None:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{rel} not generated")
    with open(path.parent / "expected.json") as f:
        exp = json.load(f)
    mg = read_meta_graph(path)
    keys = mg.checkpoint_keys()
    assert sorted(keys) == sorted(exp["tensors"])
    saver = import_meta_graph(path)
    values = saver.restore(None, str(path.parent / exp["prefix"]))
    for key, graph_name in keys.items():
        want = exp["tensors"][key]
        got = values[graph_name]
        assert got.dtype == tfckpt.as_dtype(want["dtype"]).numpy_dtype
        assert list(got.shape) == want["shape"]
        if want["dtype"] != "string":
            assert got.tobytes() == base64.b64decode(want["data_b64"])


def test_saver_meta_lists_only_float_trainable_values_as_trainable(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(3, 2)).sum().backward()
    opt.step()
    state = {"model": model, "opt": opt, "global_step": np.int64(3), "w": np.ones(2, np.float32),
             "vocab": np.array([b"a"], dtype=object), "frozen": torch.nn.Parameter(torch.ones(1), requires_grad=False)}
    prefix = tfckpt.Saver().save(state, str(tmp_path / "m"))
    mg = tfckpt.read_meta_graph(prefix + ".meta")
    # TF1 code sums l2 losses over trainable_variables: buffers, optimizer state, counters and
    # strings were all listed (an int64 made tf.add_n fail)
    assert sorted(v.op_name for v in mg.trainable_variables) == [
        "model/0.bias", "model/0.weight", "model/1.bias", "model/1.weight", "w"]
    assert len(mg.variables) > len(mg.trainable_variables)


def test_a_tied_weight_is_trainable_under_both_of_its_names(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    class Tied(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(5, 3)
            self.out = torch.nn.Linear(3, 5, bias=False)
            self.out.weight = self.embed.weight  # (named_parameters() lists it once)

    prefix = tfckpt.Saver().save({"m": Tied()}, str(tmp_path / "m"))
    mg = tfckpt.read_meta_graph(prefix + ".meta")
    assert sorted(v.op_name for v in mg.trainable_variables) == ["m/embed.weight", "m/out.weight"]
