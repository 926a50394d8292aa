"""Tensor names given to a reader: ``str``, or ``bytes`` as TensorFlow's reader takes them;
anything else is an InvalidTypeError, and one name where ``read_many`` wants many says so."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pytest

import tfckpt
from tfckpt.errors import InvalidTypeError


@pytest.fixture(params=["V2", "V1"])
def reader(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Any:
    state = {"layer/w": np.arange(6.0).reshape(2, 3), "b": np.ones(2, np.float32)}
    if request.param == "V2":
        prefix = tfckpt.write(state, tmp_path / "c")
    else:
        prefix = tfckpt.Saver(state, write_version=1).save(None, str(tmp_path / "v1.ckpt"))
    with tfckpt.CheckpointReader(prefix) as r:
        assert r.format == request.param
        yield r


def test_bytes_names_read_as_their_str(reader: Any) -> None:
    assert reader.has_tensor(b"layer/w")
    assert not reader.has_tensor(b"layer/x")
    np.testing.assert_array_equal(reader.get_tensor(b"layer/w"), reader.get_tensor("layer/w"))
    out = np.zeros(2, np.float32)
    assert reader.read_into(b"b", out) is out
    assert out.tolist() == [1.0, 1.0]
    assert reader.get_slice(b"layer/w", "1,1:0,2").tolist() == [[3.0, 4.0]]
    assert reader.get_slices(b"layer/w") == []


@pytest.mark.parametrize("call", ["has_tensor", "get_tensor", "get_slices"])
@pytest.mark.parametrize("name", [3, None, ["layer/w"]])
def test_a_name_that_is_no_name_is_an_invalid_type_error(reader: Any, call: str, name: Any) -> None:
    with pytest.raises(InvalidTypeError, match="a tensor name must be a str") as e:
        getattr(reader, call)(name)
    assert e.value.path == reader.prefix
    assert f"(reading checkpoint {reader.prefix})" in str(e.value)


@pytest.mark.parametrize("names", ["layer/w", b"layer/w"])
def test_read_many_of_one_name_says_to_pass_a_list(reader: Any, names: Any) -> None:
    with pytest.raises(InvalidTypeError, match="one name"):
        reader.read_many(names)
    assert list(reader.read_many([names if isinstance(names, str) else names.decode()])) == ["layer/w"]


def test_read_many_of_many_names_with_a_non_name_among_them(tmp_path: pathlib.Path) -> None:
    prefix = tfckpt.write({f"t{i:03d}": np.full(2, i) for i in range(100)}, tmp_path / "c")
    with tfckpt.CheckpointReader(prefix) as r, pytest.raises(InvalidTypeError, match="got int: 7") as e:
        r.read_many([f"t{i:03d}" for i in range(99)] + [7])  # (many names: the bulk path)
    assert f"(reading checkpoint {prefix})" in str(e.value)
