"""tfckpt.adapters.jax: jax arrays <-> numpy, keeping dtype and sharding."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed")
jnp = jax.numpy

import tfckpt  # noqa: E402
from tfckpt.adapters.jax import from_numpy, to_numpy  # noqa: E402
from tfckpt.errors import InvalidArgumentError  # noqa: E402


def test_to_numpy_dtypes() -> None:
    assert to_numpy(jnp.arange(3, dtype=jnp.int32)).tolist() == [0, 1, 2]
    b = to_numpy(jnp.array([1.5, 2.0], dtype=jnp.bfloat16))
    assert b.dtype.name == "bfloat16"
    assert b.astype(np.float32).tolist() == [1.5, 2.0]
    assert to_numpy(jnp.array(True)).dtype == np.bool_


def test_from_numpy_keeps_dtype_and_sharding() -> None:
    like = jnp.zeros((2, 2), jnp.float32)
    out = from_numpy(np.arange(4.0).reshape(2, 2), like=like)
    assert out.dtype == jnp.float32
    assert out.sharding == like.sharding
    assert np.asarray(out).tolist() == [[0.0, 1.0], [2.0, 3.0]]
    assert isinstance(from_numpy(np.ones(2)), jax.Array)


def test_from_numpy_shape_mismatch() -> None:
    with pytest.raises(InvalidArgumentError, match=r"lhs shape= \[2\] rhs shape= \[3\]"):
        from_numpy(np.ones(3), like=jnp.zeros(2))


def test_saver_round_trip_returns_new_pytree(tmp_path: object) -> None:
    params = {"dense": {"kernel": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3), "bias": jnp.zeros(3)},
              "step": jnp.array(4, jnp.int32)}
    saver = tfckpt.Saver()
    path = saver.save(params, f"{tmp_path}/model", write_meta_graph=False)
    fresh = jax.tree_util.tree_map(jnp.zeros_like, params)
    restored = saver.restore(fresh, path)
    assert np.asarray(restored["dense"]["kernel"]).tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert restored["dense"]["kernel"].dtype == jnp.float32
    assert int(restored["step"]) == 4
    assert tfckpt.load_checkpoint(path).get_variable_to_dtype_map()["step"].name == "int32"


def test_tuple_pytree_rebuilt(tmp_path: object) -> None:
    state = {"layers": (jnp.ones(2), jnp.full(2, 2.0))}
    saver = tfckpt.Saver()
    path = saver.save(state, f"{tmp_path}/m", write_meta_graph=False)
    restored = saver.restore({"layers": (jnp.zeros(2), jnp.zeros(2))}, path)
    assert isinstance(restored["layers"], tuple)
    assert np.asarray(restored["layers"][1]).tolist() == [2.0, 2.0]


def test_restore_keeps_weak_types(tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = {"lr": jnp.asarray(0.1), "g": jnp.ones(2, jnp.bfloat16)}  # lr: a weakly typed float32
    p = tfckpt.Saver().save(state, str(tmp_path / "ck"), write_meta_graph=False)
    r = tfckpt.Saver().restore({"lr": jnp.asarray(0.0), "g": jnp.zeros(2, jnp.bfloat16)}, p)
    assert r["lr"].weak_type
    assert float(r["lr"]) == pytest.approx(0.1)
    assert (r["lr"] * r["g"]).dtype == jnp.bfloat16  # (was float32: promotion changed, jit recompiled)


def test_typed_prng_keys_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = jax.random.split(jax.random.key(7), 3)
    p = tfckpt.Saver().save({"rng": key}, str(tmp_path / "ck"), write_meta_graph=False)
    assert tfckpt.load_checkpoint(p).get_variable_to_dtype_map()["rng"].name == "uint32"  # its key data
    r = tfckpt.Saver().restore({"rng": jax.random.split(jax.random.key(0), 3)}, p)
    assert r["rng"].dtype == key.dtype
    assert np.asarray(jax.random.key_data(r["rng"])).tolist() == np.asarray(jax.random.key_data(key)).tolist()
    assert jax.random.normal(r["rng"][0]) == jax.random.normal(key[0])


def test_registered_pytree_nodes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import dataclasses
    import functools

    @functools.partial(jax.tree_util.register_dataclass, data_fields=["params", "step"], meta_fields=["name"])
    @dataclasses.dataclass
    class TrainState:  # the flax.struct / register_dataclass pattern
        params: dict  # type: ignore[type-arg]
        step: jax.Array
        name: str

    ts = TrainState({"w": jnp.arange(3.0)}, jnp.array(3), "run")
    p = tfckpt.Saver().save({"ts": ts}, str(tmp_path / "ck"), write_meta_graph=False)
    assert tfckpt.list_variables(p) == [("ts/params/w", [3]), ("ts/step", [])]  # (was "cannot save a TrainState")
    r = tfckpt.Saver().restore({"ts": TrainState({"w": jnp.zeros(3)}, jnp.array(0), "new")}, p)["ts"]
    assert isinstance(r, TrainState)
    assert np.asarray(r.params["w"]).tolist() == [0.0, 1.0, 2.0]
    assert int(r.step) == 3
    assert r.name == "new"  # (static fields are not state)


def test_values_without_data_are_clear_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    gone = jnp.ones(3)
    gone.delete()
    with pytest.raises(InvalidArgumentError, match="tensor 'a': cannot read the jax array's values"):
        tfckpt.write({"a": gone}, str(tmp_path / "del"))

    @jax.jit
    def f(x):  # type: ignore[no-untyped-def]
        tfckpt.write({"x": x}, str(tmp_path / "traced"))
        return x

    with pytest.raises(InvalidArgumentError, match="tensor 'x': cannot save a traced value"):
        f(jnp.ones(2))
