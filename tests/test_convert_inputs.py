"""tfckpt.convert on awkward inputs: nested torch checkpoints, hostile safetensors and .npz
metadata, malformed rules files, missing output directories and rules that match nothing."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tfckpt
from tfckpt import Rules
from tfckpt.cli import main
from tfckpt.convert import DTYPES_MEMBER, convert
from tfckpt.errors import DataLossError, InvalidArgumentError, UnimplementedError

# -- 1. nested torch checkpoints ---------------------------------------------------


def _training_checkpoint(path: Path) -> dict[str, Any]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    full = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "arch": "linear",
            "best": None}
    torch.save(full, path)
    return full


def test_nested_torch_dicts_are_flattened_like_the_saver(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    m = torch.nn.Linear(2, 3)
    src = tmp_path / "nested.pt"
    torch.save({"enc": m.state_dict(), "head": {"w": torch.ones(2)}, "scale": torch.tensor(2.0), "n": 3,
                "pair": (torch.zeros(1), 0.5)}, src)
    rep = convert(src, tmp_path / "out")
    got = tfckpt.read(str(tmp_path / "out"))
    assert sorted(got) == ["enc/bias", "enc/weight", "head/w", "n", "pair/0", "pair/1", "scale"]
    assert rep.tensors == 7
    assert rep.skipped == []
    assert rep.not_stored == {}
    assert got["enc/weight"].tobytes() == m.weight.detach().numpy().tobytes()
    assert (got["n"].dtype, got["n"].shape, int(got["n"])) == (np.int64, (), 3)
    assert (got["pair/1"].dtype, float(got["pair/1"])) == (np.float64, 0.5)


def test_full_training_checkpoint_keeps_everything(tmp_path: Path) -> None:
    src = tmp_path / "full.pt"
    full = _training_checkpoint(src)
    rep = convert(src, tmp_path / "ck")
    got = tfckpt.read(str(tmp_path / "ck"))
    # The same names tfckpt's Saver gives {"model": module, "optimizer": opt, "epoch": 3}.
    expect = {name for name in tfckpt._state.flatten(full) if name != "arch"}
    assert set(got) == expect | {"arch"}
    assert "optimizer/state/0/exp_avg" in got
    assert "optimizer/param_groups/0/betas/1" in got
    assert float(got["optimizer/param_groups/0/lr"]) == 0.01
    assert got["arch"] == b"linear"  # TF checkpoints hold strings
    assert int(got["epoch"]) == 3
    none_names = {"best", "optimizer/param_groups/0/foreach", "optimizer/param_groups/0/fused"}
    assert none_names <= set(rep.not_stored)
    assert all(rep.not_stored[n] == "None" for n in none_names)
    assert set(rep.skipped) == set(rep.not_stored)


def test_strings_the_destination_cannot_hold_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "full.pt"
    _training_checkpoint(src)
    out = tmp_path / "w.safetensors"
    rep = convert(src, out)
    assert rep.not_stored["arch"] == "a str; safetensors cannot store strings"
    assert "arch" in rep.skipped
    assert "model/weight" not in rep.skipped
    assert main(["convert", str(src), str(out)]) == 0
    cap = capsys.readouterr()
    assert "4 entries not stored" in cap.err
    assert "'arch' (a str; safetensors cannot store strings)" in cap.err
    assert "'best' (None)" in cap.err
    assert main(["convert", str(src), str(out), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["not_stored"]["arch"] == "a str; safetensors cannot store strings"


def test_sole_state_dict_wrapper_is_unwrapped(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    src = tmp_path / "sd.pt"
    torch.save({"state_dict": {"w": torch.arange(3.0)}}, src)
    convert(src, tmp_path / "ck")
    assert sorted(tfckpt.read(str(tmp_path / "ck"))) == ["w"]


def test_torch_non_scalar_objects_and_name_clashes(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    src = tmp_path / "odd.pt"
    torch.save({"w": torch.ones(1), "dt": torch.float16, "big": 2**70}, src)
    rep = convert(src, tmp_path / "ck")
    assert sorted(tfckpt.read(str(tmp_path / "ck"))) == ["w"]
    assert rep.not_stored["dt"] == "a torch.dtype, not a tensor or a scalar"
    assert "big" in rep.not_stored
    torch.save({"a/b": torch.ones(1), "a": {"b": torch.zeros(1)}}, src)
    with pytest.raises(InvalidArgumentError, match=r"odd\.pt: two entries are both named 'a/b'") as e:
        convert(src, tmp_path / "ck2")
    assert e.value.key == "a/b"
    torch.save(torch.ones(2), src)
    with pytest.raises(InvalidArgumentError, match="holds a Tensor, not a state dict"):
        convert(src, tmp_path / "ck3")


def test_rules_see_the_flattened_names(tmp_path: Path) -> None:
    src = tmp_path / "full.pt"
    _training_checkpoint(src)
    rep = convert(src, tmp_path / "m.safetensors", rules=Rules().include("model/*").strip_prefix("model/"))
    assert sorted(rep.renamed.values()) == ["bias", "weight"]
    assert rep.not_stored == {}  # dropped by the rules before anything else


# -- 2. hostile safetensors headers -------------------------------------------------


def _st(path: Path, header: Any, data: bytes = b"\x00" * 8) -> str:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return str(path)


def _entry(**kw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    e.update(kw)
    return {"a": e}


@pytest.mark.parametrize("header", [
    _entry(data_offsets=["0", "8"]),
    _entry(data_offsets=[0.0, 8.0]),
    _entry(data_offsets=[False, 8]),
    _entry(data_offsets=[0, 8, 16]),
    _entry(data_offsets=[[0], [8]]),
    _entry(data_offsets=[8, 0]),
    _entry(data_offsets=[0, 16]),
    _entry(data_offsets="0-8"),
    _entry(dtype=["F32"]),
    _entry(dtype=None),
    _entry(shape=[-1, -2]),
    _entry(shape=[True, 2]),
    _entry(shape=[2.0]),
    _entry(shape=[[2]]),
    _entry(shape="2"),
    _entry(shape={"0": 2}),
    {"a": ["F32", [2], [0, 8]]},
    {"a": {"dtype": "F32", "shape": [2]}},
])
def test_malformed_safetensors_entry(tmp_path: Path, header: Any) -> None:
    src = _st(tmp_path / "h.safetensors", header)
    with pytest.raises(DataLossError, match=r"h\.safetensors: .*'a'") as e:
        convert(src, tmp_path / "o")
    assert e.value.path == src
    assert e.value.key == "a"


@pytest.mark.parametrize(("header", "data", "message"), [
    ([1, 2], b"", "header is not an object"),
    (b'"text"', b"", "header is not an object"),
    pytest.param(b"[" * 100_000, b"", "header is not JSON", id="deeply-nested"),
    (b'{"a": 1, "a": 2}', b"", "duplicate key 'a'"),
    ({"__metadata__": 3}, b"", "__metadata__ must be an object of strings"),
    ({"__metadata__": {"k": 1}}, b"", "__metadata__ must be an object of strings"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}, b"\x00" * 8, "overlap"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\x00" * 8, "not referenced by any tensor"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\x00" * 8, "not referenced by any tensor"),
])
def test_malformed_safetensors_header(tmp_path: Path, header: Any, data: bytes, message: str) -> None:
    src = _st(tmp_path / "h.safetensors", header, data)
    with pytest.raises(DataLossError, match=message) as e:
        convert(src, tmp_path / "o")
    assert e.value.path == src
    assert src in str(e.value)


def test_safetensors_header_length_past_the_end(tmp_path: Path) -> None:
    p = tmp_path / "h.safetensors"
    p.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(DataLossError, match=r"h\.safetensors: bad safetensors header length 1000"):
        convert(str(p), tmp_path / "o")
    p.write_bytes(b"\x01\x02")
    with pytest.raises(DataLossError, match="too short"):
        convert(str(p), tmp_path / "o")


def test_unknown_safetensors_dtype_is_unimplemented(tmp_path: Path) -> None:
    src = _st(tmp_path / "h.safetensors", _entry(dtype="F4"))
    with pytest.raises(UnimplementedError, match="safetensors dtype F4"):
        convert(src, tmp_path / "o")


def test_zero_size_tensors_and_metadata_are_fine(tmp_path: Path) -> None:
    header = {"__metadata__": {"format": "pt"},
              "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
              "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    src = _st(tmp_path / "h.safetensors", header)
    convert(src, tmp_path / "o")
    got = tfckpt.read(str(tmp_path / "o"))
    assert got["e"].shape == (0, 3)
    assert got["a"].tolist() == [0.0, 0.0]


# -- 3. .npz dtype metadata -----------------------------------------------------------


def _npz(path: Path, arrays: dict[str, np.ndarray[Any, Any]], special: Any) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
        if special is not None:
            with zf.open(DTYPES_MEMBER + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asarray(special), allow_pickle=False)
    return str(path)


@pytest.mark.parametrize(("special", "message"), [
    ("{not json", "not JSON"),
    ('["a"]', "must be a JSON object"),
    ('{"a": 5}', r"tensor 'a'.*not a dtype name"),
    ('{"a": "nosuchtype"}', r"tensor 'a'.*unknown dtype 'nosuchtype'"),
    ('{"a": "bfloat16"}', r"tensor 'a' is bfloat16 \(2 bytes\), but the member holds 3 uint8 values of 1 byte"),
    ('{"a": "string"}', r"tensor 'a'.*string"),
    ('{"zz": "bfloat16"}', r"'zz'.*no such member"),
    (np.arange(3), "must be a JSON string"),
])
def test_bad_npz_dtype_metadata(tmp_path: Path, special: Any, message: str) -> None:
    src = _npz(tmp_path / "m.npz", {"a": np.arange(3, dtype=np.uint8)}, special)
    with pytest.raises(DataLossError, match=message) as e:
        convert(src, tmp_path / "o")
    assert e.value.path == src
    assert src in str(e.value)


def test_npz_float_bits_under_raw_dtype_refused(tmp_path: Path) -> None:
    src = _npz(tmp_path / "m.npz", {"a": np.ones(2, np.float16)}, '{"a": "bfloat16"}')
    with pytest.raises(DataLossError, match="raw bits"):
        convert(src, tmp_path / "o")


def test_npz_good_metadata_and_other_members(tmp_path: Path) -> None:
    src = tmp_path / "m.npz"
    _npz(src, {"a": np.array([0x3F80], np.uint16)}, '{"a": "bfloat16"}')
    with zipfile.ZipFile(src, "a") as zf:
        zf.writestr("README.txt", "hello")
    rep = convert(str(src), tmp_path / "o")
    assert tfckpt.read(str(tmp_path / "o"))["a"].astype(np.float32).tolist() == [1.0]
    assert rep.not_stored == {"README.txt": "not a .npy member"}


def test_npz_corrupt_member_names_the_tensor(tmp_path: Path) -> None:
    src = tmp_path / "m.npz"
    np.savez_compressed(src, a=np.arange(1000))
    raw = bytearray(src.read_bytes())
    raw[200] ^= 0xFF  # inside the deflated data
    src.write_bytes(bytes(raw))
    with pytest.raises(DataLossError, match=r"m\.npz: .*'a'") as e:
        convert(str(src), tmp_path / "o")
    assert e.value.key == "a"


# -- 4. rules files -------------------------------------------------------------------


@pytest.mark.parametrize(("rules", "message"), [
    ({"rules": [{"sub": ["a", 5]}]},
     r"rule 0 \(sub\): 'sub' takes \[pattern, repl\], got \['a', 5\] \(two strings\); "
     r"the rule: \{\"sub\": \[\"a\", 5\]\}"),
    ({"rules": [{"sub": ["a", "b"], "inverse": "ab"}]}, "inverse"),
    ({"rules": [{"sub": ["a", "b"], "inverse": ["a", 1]}]}, "inverse"),
    ({"rules": [{"sub": ["(a)", "\\2"]}]}, "invalid group reference"),
    ({"rules": [{"map": {"a": 1}}]}, r"map\(\) takes names \(strings\) to names, got 'a': 1"),
    ({"rules": [{"map": [["a", "b"]]}]}, "map"),
    ({"rules": [{"include": {"a": 1}}]}, "include"),
    ({"rules": [{"exclude": [1]}]}, "exclude"),
    ({"rules": [{"strip_prefix": None}]}, "strip_prefix"),
    ({"rules": [{"include": "a"}, {"add_suffix": ["x"]}]}, "rule 1"),
])
def test_bad_rules_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], rules: Any, message: str) -> None:
    f = tmp_path / "rules.json"
    f.write_text(json.dumps(rules))
    with pytest.raises(InvalidArgumentError, match=message) as e:
        Rules.from_file(f)
    assert e.value.path == str(f)
    assert str(f) in str(e.value)
    ck = tfckpt.write({"a": np.zeros(1)}, str(tmp_path / "ck"))
    assert main(["convert", ck, str(tmp_path / "o.npz"), "--rules", str(f)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tfckpt: error: rules file ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_rules_builders_check_types() -> None:
    with pytest.raises(InvalidArgumentError, match="repl"):
        Rules().sub("a", 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="inverse"):
        Rules().sub("a", "b", inverse="ab")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="string"):
        Rules().map({"a": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError, match="string"):
        Rules().strip_prefix(3)  # type: ignore[arg-type]


def test_rules_file_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "rules.json"
    f.write_bytes(b"\xff\xfe[]")
    with pytest.raises(InvalidArgumentError, match=r"rules file .* not UTF-8"):
        Rules.from_file(f)


# -- 5. missing output directories -------------------------------------------------------


@pytest.mark.parametrize("name", ["o.safetensors", "o.npz", "o.pt", "prefix"])
def test_output_directories_are_created(tmp_path: Path, name: str) -> None:
    if name.endswith(".pt"):
        pytest.importorskip("torch")
    ck = tfckpt.write({"w": np.arange(3, dtype=np.float32)}, str(tmp_path / "ck"))
    dst = tmp_path / "nodir" / "sub" / name
    assert convert(ck, dst).tensors == 1
    back = tmp_path / "back"
    convert(dst, back, src_format="tf" if name == "prefix" else None)
    assert tfckpt.read(str(back))["w"].tolist() == [0.0, 1.0, 2.0]


def test_output_parent_is_a_file(tmp_path: Path) -> None:
    ck = tfckpt.write({"w": np.zeros(1)}, str(tmp_path / "ck"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(tfckpt.errors.CheckpointError, match="file"):
        convert(ck, tmp_path / "file" / "o.npz")


# -- 6. rules that match nothing ---------------------------------------------------------


def test_unused_rules_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ck = tfckpt.write({"bert/a": np.zeros(1), "bert/b": np.zeros(1), "cls/c": np.zeros(1)}, str(tmp_path / "ck"))
    rules = (Rules().exclude("cls/*", "typo/*").strip_prefix("bert/").strip_prefix("roberta/")
             .map({"a": "A", "zz": "Z"}).sub("nomatch", "x"))
    rep = convert(ck, tmp_path / "o.npz", rules=rules)
    assert rep.unused_rules == [
        "rule 0 (exclude 'cls/*', 'typo/*'): pattern 'typo/*' matched nothing",
        "rule 2 (strip_prefix 'roberta/') matched nothing",
        "rule 3 (map of 2 names): 'zz' matched nothing",
        "rule 4 (sub 'nomatch' -> 'x') matched nothing",
    ]
    f = tmp_path / "rules.json"
    f.write_text(json.dumps(rules.to_dict()))
    assert main(["convert", ck, str(tmp_path / "o.npz"), "--rules", str(f)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("tfckpt: warning: 4 rules matched nothing: rule 0 (exclude")
    assert "rule 4 (sub 'nomatch' -> 'x') matched nothing" in err


def test_rules_usage_tracking_api() -> None:
    r = Rules().include("a*", "b*").add_prefix("x/")
    usage = r.usage()
    assert [usage.apply(n) for n in ["a1", "c"]] == ["x/a1", None]
    assert usage.unused() == ["rule 0 (include 'a*', 'b*'): pattern 'b*' matched nothing"]
    usage.apply("b")
    assert usage.unused() == []
    assert Rules().include("q").usage().unused() == ["rule 0 (include 'q') matched nothing"]
    everything = Rules().include("z").add_suffix("s").usage()
    everything.apply("a")
    assert everything.unused() == ["rule 0 (include 'z') matched nothing", "rule 1 (add_suffix 's') matched nothing"]


# -- from the TensorFlow comparison review -------------------------------------------


def test_npz_keeps_strings_ending_in_nul(tmp_path: Path) -> None:
    src = tfckpt.write({"t": b"x\x00\x00", "u": b"ok",
                        "v": np.array([b"a\x00", b"", b"b"], dtype=object)}, str(tmp_path / "ck"))
    convert(src, str(tmp_path / "s.npz"))
    convert(str(tmp_path / "s.npz"), str(tmp_path / "back"))
    r = tfckpt.load_checkpoint(str(tmp_path / "back"))
    assert r.get_tensor("t") == b"x\x00\x00"
    assert r.get_tensor("u") == b"ok"
    assert r.get_tensor("v").tolist() == [b"a\x00", b"", b"b"]
    with np.load(str(tmp_path / "s.npz")) as z:  # what other tools see: the end mark, and the table
        assert z["v"].tolist() == [b"a\x00\x01", b"\x01", b"b\x01"]
        assert z["u"].item() == b"ok"
        assert json.loads(z[DTYPES_MEMBER].item()) == {"t": "string", "v": "string"}


def test_npz_marked_string_without_its_mark_is_data_loss(tmp_path: Path) -> None:
    p = tmp_path / "m.npz"
    np.savez(p, v=np.array([b"a", b"b\x01"]), **{DTYPES_MEMBER: np.array(json.dumps({"v": "string"}))})
    with pytest.raises(DataLossError, match="lacks its end mark"):
        convert(str(p), str(tmp_path / "out"))


def test_non_utf8_tensor_name_to_file_formats(tmp_path: Path) -> None:
    src = tfckpt.write({"w\udcff": np.ones(2, np.float32)}, str(tmp_path / "ck"))
    for ext in ("npz", "safetensors", "pt"):
        with pytest.raises(UnimplementedError, match=r"tensor name b'w\\xff' is not UTF-8"):
            convert(src, str(tmp_path / f"out.{ext}"))
        assert not (tmp_path / f"out.{ext}").exists()
    convert(src, str(tmp_path / "copy"))  # (a TF checkpoint keeps it)
    assert tfckpt.list_variables(str(tmp_path / "copy")) == [("w\udcff", [2])]


def test_object_graph_is_not_stored_in_formats_without_strings(tmp_path: Path) -> None:
    src = tfckpt.write({"w": np.ones(2, np.float32), "_CHECKPOINTABLE_OBJECT_GRAPH": b"\x0a\x00"},
                       str(tmp_path / "ck"))
    rep = convert(src, str(tmp_path / "w.safetensors"))
    assert rep.tensors == 1
    assert "TensorFlow's object graph" in rep.not_stored["_CHECKPOINTABLE_OBJECT_GRAPH"]
    rep = convert(src, str(tmp_path / "w.npz"))  # (npz stores strings: kept)
    assert rep.tensors == 2
    assert not rep.not_stored
    other = tfckpt.write({"name": b"x"}, str(tmp_path / "strings"))
    with pytest.raises(UnimplementedError, match="cannot store strings"):
        convert(other, str(tmp_path / "s.safetensors"))
