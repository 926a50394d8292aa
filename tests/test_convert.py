"""tfckpt.convert and `tfckpt convert`: TF <-> safetensors <-> npz <-> torch, bit-exact round trips."""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import tfckpt
from tfckpt.cli import main
from tfckpt.convert import DTYPES_MEMBER, convert, detect_format
from tfckpt.errors import DataLossError, InvalidArgumentError, UnimplementedError

TENSORS = {
    "dense/kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
    "dense/bias": np.array([0.5, -1.0], np.float64),
    "bf": np.array([1.5, -2.0, 3.0], ml_dtypes.bfloat16),
    "f8": np.array([1.0, -0.5], ml_dtypes.float8_e4m3fn),
    "half": np.array([[1.5]], np.float16),
    "step": np.int64(42),
    "i8": np.array([-1, 2], np.int8),
    "u16": np.array([65535], np.uint16),
    "flag": np.array([True, False]),
    "c64": np.array([1 + 2j], np.complex64),
}


@pytest.fixture
def ckpt(tmp_path):
    return tfckpt.write(TENSORS, str(tmp_path / "ckpt"))


def _same(prefix, expected):
    got = tfckpt.read(prefix)
    assert sorted(got) == sorted(expected)
    for k, v in expected.items():
        v = np.asarray(v)
        assert (got[k].dtype, got[k].shape, got[k].tobytes()) == (v.dtype, v.shape, v.tobytes()), k


@pytest.mark.parametrize("ext", [".safetensors", ".npz", ".pt"])
def test_round_trip_bit_exact(ckpt, tmp_path, ext):
    if ext == ".pt":
        pytest.importorskip("torch")
    mid = str(tmp_path / f"mid{ext}")
    rep = convert(ckpt, mid)
    assert (rep.tensors, rep.dst_format) == (len(TENSORS), detect_format(mid))
    back = str(tmp_path / "back")
    convert(mid, back)
    _same(back, TENSORS)


def test_safetensors_read_by_safetensors(ckpt, tmp_path):
    safetensors = pytest.importorskip("safetensors")
    torch = pytest.importorskip("torch")
    out = str(tmp_path / "m.safetensors")
    assert main(["convert", ckpt, out]) == 0
    with safetensors.safe_open(out, framework="pt") as f:
        assert sorted(f.keys()) == sorted(TENSORS)
        assert f.get_tensor("bf").dtype == torch.bfloat16
        assert f.get_tensor("bf").float().tolist() == [1.5, -2.0, 3.0]
        assert f.get_tensor("step").shape == ()
        assert int(f.get_tensor("step")) == 42
        assert f.get_tensor("dense/kernel").tolist() == [[0, 1, 2], [3, 4, 5]]
        assert f.metadata() == {"format": "pt", "producer": "tfckpt"}
        assert f.get_tensor("dense/bias").tolist() == [0.5, -1.0]
        assert f.get_tensor("f8").dtype == torch.float8_e4m3fn
    hlen = struct.unpack("<Q", Path(out).read_bytes()[:8])[0]
    assert hlen % 8 == 0


def test_safetensors_from_safetensors_lib(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    src = str(tmp_path / "x.safetensors")
    st.save_file({"a": np.arange(5, dtype=np.int32), "b": np.ones((2, 2), np.float16)}, src)
    convert(src, str(tmp_path / "ck"))
    _same(str(tmp_path / "ck"), {"a": np.arange(5, dtype=np.int32), "b": np.ones((2, 2), np.float16)})


def test_torch_files(ckpt, tmp_path):
    torch = pytest.importorskip("torch")
    out = str(tmp_path / "sd.pth")
    convert(ckpt, out)
    sd = torch.load(out, weights_only=True)
    assert sd["bf"].dtype == torch.bfloat16
    assert sd["step"].shape == ()
    assert int(sd["step"]) == 42
    assert sd["c64"].dtype == torch.complex64
    nested = str(tmp_path / "nested.bin")
    torch.save({"state_dict": {"w": torch.arange(3.0)}, "epoch": 3}, nested)
    convert(nested, str(tmp_path / "n"))  # everything is kept, named as the Saver names state
    _same(str(tmp_path / "n"), {"state_dict/w": np.arange(3, dtype=np.float32), "epoch": np.int64(3)})


def test_npz_bfloat16_raw_bits_and_strings(tmp_path):
    src = tfckpt.write({"bf": np.array([1.0, 2.0], ml_dtypes.bfloat16), "s": np.array([b"ab", b"c"], object),
                        "u": np.array([1, 2], np.uint32)}, str(tmp_path / "c"))
    out = str(tmp_path / "o.npz")
    convert(src, out)
    plain = np.load(out)
    assert plain["bf"].dtype == np.uint16
    assert plain["bf"].tolist() == [0x3F80, 0x4000]
    assert plain["s"].tolist() == [b"ab", b"c"]
    assert json.loads(str(plain[DTYPES_MEMBER])) == {"bf": "bfloat16"}
    with zipfile.ZipFile(out) as z:
        assert z.getinfo("bf.npy").compress_type == zipfile.ZIP_STORED
    convert(out, str(tmp_path / "back"))
    back = tfckpt.read(str(tmp_path / "back"))
    assert back["bf"].dtype == ml_dtypes.bfloat16
    assert back["s"].tolist() == [b"ab", b"c"]


def test_npz_from_numpy_savez(tmp_path):
    src = str(tmp_path / "np.npz")
    np.savez(src, w=np.eye(2), names=np.array(["é", "b"]))
    convert(src, str(tmp_path / "ck"))
    got = tfckpt.read(str(tmp_path / "ck"))
    assert got["w"].tolist() == [[1, 0], [0, 1]]
    assert got["names"].tolist() == ["é".encode(), b"b"]


def test_unsupported_dtypes_are_clear_errors(tmp_path, capsys):
    src = tfckpt.write({"s": np.array([b"x"], object)}, str(tmp_path / "c"))
    with pytest.raises(UnimplementedError, match="'s' is a string tensor; safetensors cannot store strings"):
        convert(src, str(tmp_path / "o.safetensors"))
    assert not os.listdir(tmp_path / ".") or not any(f.startswith("o.safetensors") for f in os.listdir(tmp_path))
    assert main(["convert", src, str(tmp_path / "o.pt")]) == 1
    assert capsys.readouterr().err == (
        "tfckpt: error: tensor 's' is a string tensor; torch cannot store strings\n")
    c128 = tfckpt.write({"z": np.array([1j])}, str(tmp_path / "z"))
    with pytest.raises(UnimplementedError, match="complex128, which safetensors cannot store"):
        convert(c128, str(tmp_path / "z.safetensors"))
    nul = tfckpt.write({"n": np.array([b"a\x00"], object)}, str(tmp_path / "nul"))
    convert(nul, str(tmp_path / "n.npz"))  # (stored with an end mark: see test_convert_inputs.py)
    assert convert(str(tmp_path / "n.npz"), str(tmp_path / "n2")).tensors == 1
    assert tfckpt.load_variable(str(tmp_path / "n2"), "n").tolist() == [b"a\x00"]


def test_bad_inputs(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 4) + b"{no}")
    with pytest.raises(DataLossError, match="safetensors header is not JSON"):
        convert(str(bad), str(tmp_path / "x"))
    bad.write_bytes(struct.pack("<Q", 2) + b"{}")
    convert(str(bad), str(tmp_path / "empty.npz"))  # no tensors: fine
    over = tmp_path / "over.safetensors"
    hdr = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    over.write_bytes(struct.pack("<Q", len(hdr)) + hdr + b"\x00" * 8)
    with pytest.raises(DataLossError, match=r"bad data offsets \[0, 16\)"):
        convert(str(over), str(tmp_path / "x"))
    with pytest.raises(InvalidArgumentError, match="unknown format 'onnx'"):
        convert(str(over), str(tmp_path / "x"), dst_format="onnx")


def test_to_flag_and_json(ckpt, tmp_path, capsys):
    out = str(tmp_path / "weights.bin.st")
    assert main(["convert", ckpt, out, "--to", "safetensors", "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert (j["to"], j["tensors"]) == ("safetensors", len(TENSORS))
    assert main(["convert", out, str(tmp_path / "back"), "--from", "safetensors"]) == 0
    assert capsys.readouterr().out.endswith(f"{len(TENSORS)} tensors, 72 B\n")
    _same(str(tmp_path / "back"), TENSORS)


def test_rules(ckpt, tmp_path, capsys):
    transfer = pytest.importorskip("tfckpt.transfer", reason="tfckpt.transfer (rename rules) not available yet")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"include": ["dense/*"]}, {"sub": ["/", "."]}]}))
    assert hasattr(transfer, "Rules")
    out = str(tmp_path / "r.npz")
    assert main(["convert", ckpt, out, "--rules", str(rules)]) == 0
    assert capsys.readouterr().out.endswith("2 tensors, 40 B, 2 renamed, 8 skipped by the rules\n")
    assert sorted(np.load(out).files) == ["dense.bias", "dense.kernel"]
    rules.write_text(json.dumps([{"sub": [".*", "same"]}]))
    assert main(["convert", ckpt, out, "--rules", str(rules)]) == 1
    assert "'c64' and 'bf' would both be named 'samesame'" in capsys.readouterr().err
