"""The ``.meta`` file: MetaGraphDefs TensorFlow 1 can import, and TensorFlow's ``.meta`` files read back.

* :func:`saver_meta_graph` / :func:`export_meta_graph` write the MetaGraphDef a
  ``tf.compat.v1.train.Saver`` writes next to a checkpoint: one ``VariableV2``
  per variable, the Saver's save/restore subgraph and ``SaverDef``, and the
  ``variables`` / ``trainable_variables`` collections. TensorFlow 1 can
  ``import_meta_graph`` it, restore, ``sess.run("w:0")`` and save again.
* :func:`read_meta_graph` describes any ``.meta`` TensorFlow wrote
  (:class:`MetaGraph`: variables, operations, collections, signatures, saver).
* :func:`import_meta_graph` returns a :class:`tfckpt.Saver` restoring every
  variable the graph's saver restores, as TensorFlow's does -- without the model code.

Example:
    >>> import numpy as np, os, tempfile, tfckpt
    >>> d = tempfile.mkdtemp()
    >>> prefix = tfckpt.write({"w": np.ones(2, np.float32)}, os.path.join(d, "model"))
    >>> _ = export_meta_graph(prefix + ".meta", state={"w": np.ones(2, np.float32)})
    >>> mg = read_meta_graph(prefix + ".meta")
    >>> [str(v) for v in mg.variables], mg.checkpoint_keys()
    (['w:0 float32 [2] (ref, trainable)'], {'w': 'w'})
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import message as _message
from google.protobuf import text_format

from tfckpt._graph_builder import VariableSpec, build_meta_graph_def
from tfckpt._graph_reader import MetaGraph, parse_meta_graph
from tfckpt._graph_values import MetaInfo, Operation, SaveSliceInfo, SignatureInfo, TensorInfo, VariableInfo
from tfckpt._paths import PathLike, as_path
from tfckpt._proto import meta_graph_pb2
from tfckpt._storage import read_whole_file, write_bytes_atomic
from tfckpt.dtypes import DType
from tfckpt.errors import InvalidArgumentError, InvalidTypeError, NotFoundError

__all__ = [
    "MetaGraph",
    "MetaInfo",
    "Operation",
    "SaveSliceInfo",
    "SignatureInfo",
    "TensorInfo",
    "VariableInfo",
    "VariableSpec",
    "export_meta_graph",
    "import_meta_graph",
    "read_meta_graph",
    "saver_meta_graph",
]


@functools.lru_cache(maxsize=8)
def _serialized(variables: tuple[VariableSpec, ...], options: tuple[object, ...]) -> bytes:
    sharded, max_to_keep, hours, version, filename, strip, clear = options
    mg = build_meta_graph_def(
        variables,
        sharded=bool(sharded),
        max_to_keep=max_to_keep,  # type: ignore[arg-type]
        keep_checkpoint_every_n_hours=hours,  # type: ignore[arg-type]
        version=version,  # type: ignore[arg-type]
        filename=str(filename),
        strip_default_attrs=bool(strip),
        clear_devices=bool(clear),
    )
    data: bytes = mg.SerializeToString(deterministic=True)
    return data


def saver_meta_graph(
    variables: Sequence[VariableSpec],
    *,
    sharded: bool = False,
    max_to_keep: int = 5,
    keep_checkpoint_every_n_hours: float = 10000.0,
    version: int = 2,
    filename: str = "model",
    strip_default_attrs: bool = False,
    clear_devices: bool = False,
) -> bytes:
    """The serialized MetaGraphDef a TF1 ``Saver`` over ``variables`` writes to ``<prefix>.meta``.

    TensorFlow 1 can ``tf.compat.v1.train.import_meta_graph`` it, restore every
    variable with the imported saver, ``sess.run("<name>:0")`` them and save again.
    Results are cached while the arguments are unchanged, so re-saving costs nothing.

    Raises:
        InvalidArgumentError: bad variable specs (duplicate keys, slice/shape mismatch) or options.

    Example:
        >>> from tfckpt._proto import meta_graph_pb2
        >>> data = saver_meta_graph([VariableSpec("w", "float32", (2,))], max_to_keep=3)
        >>> meta_graph_pb2.MetaGraphDef.FromString(data).saver_def.max_to_keep
        3
    """
    opts = (sharded, max_to_keep, keep_checkpoint_every_n_hours, version, filename, strip_default_attrs, clear_devices)
    return _serialized(tuple(variables), opts)


def _flatten(state: object) -> list[tuple[str, object]]:
    from tfckpt._state import flatten

    if isinstance(state, Mapping) and all(isinstance(v, VariableSpec) for v in state.values()):
        return [(str(k), v) for k, v in state.items()]
    return list(flatten(state).items())


_FLOATING = ("float", "bfloat", "complex", "half")


def is_trainable(name: str, value: object, dtype: DType) -> bool:
    """Whether a value goes into the ``.meta``'s ``trainable_variables``: its own ``trainable``
    (a Variable's), else floating point values but ``global_step``. What TF1 code sums over
    (``tf.add_n([tf.nn.l2_loss(v) for v in tf.trainable_variables()])``) must be floats. (The
    Saver also leaves out what :func:`tfckpt._state.untrainable_paths` names: buffers,
    optimizer state, Python numbers, frozen parameters.)

    Example:
        >>> import numpy as np
        >>> from tfckpt.dtypes import as_dtype
        >>> f32, i64 = as_dtype("float32"), as_dtype("int64")
        >>> is_trainable("w", np.zeros(2), f32), is_trainable("global_step", 0, i64), is_trainable("n", 0, i64)
        (True, False, False)
    """
    own = getattr(value, "trainable", None)
    if isinstance(own, bool):
        return own
    return not (name == "global_step" or name.endswith("/global_step") or not dtype.name.startswith(_FLOATING))


def _spec_for(name: str, value: object) -> VariableSpec:
    if isinstance(value, VariableSpec):
        return value
    dtype = getattr(value, "dtype", None)
    shape = getattr(value, "shape", None)
    if getattr(type(value), "_is_tfckpt_variable", False) and dtype is not None and shape is not None:
        return VariableSpec(name, dtype, tuple(shape), trainable=bool(getattr(value, "trainable", True)))
    from tfckpt._convert import to_array

    dt, arr = to_array(value, name)
    return VariableSpec(name, dt, tuple(arr.shape), trainable=is_trainable(name, value, dt))


def _specs(state: object, var_list: object) -> list[VariableSpec]:
    if state is not None and var_list is not None:
        raise InvalidArgumentError("pass state or var_list, not both")
    src = state if state is not None else var_list
    if src is None:
        return []
    if (
        isinstance(src, Sequence)
        and not isinstance(src, (str, bytes))
        and all(isinstance(v, VariableSpec) for v in src)
    ):
        return list(src)
    return [_spec_for(name, value) for name, value in _flatten(src)]


def export_meta_graph(
    filename: PathLike | None = None,
    *,
    state: object = None,
    var_list: object = None,
    sharded: bool = False,
    max_to_keep: int = 5,
    keep_checkpoint_every_n_hours: float = 10000.0,
    version: int = 2,
    saver_filename: str = "model",
    as_text: bool = False,
    clear_devices: bool = False,
    strip_default_attrs: bool = False,
) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef a TF1 Saver over ``state`` / ``var_list`` writes; written to ``filename`` if given.

    ``state`` is anything :func:`tfckpt._state.flatten` accepts (mapping of name ->
    array, nested dicts, torch modules, ...), ``var_list`` a mapping of checkpoint
    key -> value or a list of :class:`VariableSpec`. The file is binary unless
    ``as_text``; writing is atomic.

    Raises:
        InvalidArgumentError: both or bad inputs.

    Example:
        >>> import numpy as np
        >>> mg = export_meta_graph(var_list={"dense/kernel": np.zeros((3, 2), np.float32)})
        >>> mg.saver_def.filename_tensor_name, mg.graph_def.node[1].name
        ('save/Const:0', 'dense/kernel')
    """
    specs = _specs(state, var_list)
    mg = build_meta_graph_def(
        specs,
        sharded=sharded,
        max_to_keep=max_to_keep,
        keep_checkpoint_every_n_hours=keep_checkpoint_every_n_hours,
        version=version,
        filename=saver_filename,
        strip_default_attrs=strip_default_attrs,
        clear_devices=clear_devices,
    )
    if filename is not None:
        path = as_path(filename, "filename")
        data = text_format.MessageToString(mg).encode("utf-8") if as_text else mg.SerializeToString(deterministic=True)
        write_bytes_atomic(path, data)
    return mg


def _load(meta_graph_or_file: object) -> MetaGraph:
    if isinstance(meta_graph_or_file, MetaGraph):
        return meta_graph_or_file
    if isinstance(meta_graph_or_file, meta_graph_pb2.MetaGraphDef):
        return MetaGraph(meta_graph_or_file)
    if isinstance(meta_graph_or_file, (bytes, bytearray, memoryview)):
        return parse_meta_graph(bytes(meta_graph_or_file))
    if isinstance(meta_graph_or_file, _message.Message):
        # A MetaGraphDef of another protobuf package (TensorFlow's own): same wire format.
        if meta_graph_or_file.DESCRIPTOR.name != "MetaGraphDef":
            raise InvalidArgumentError(f"expected a MetaGraphDef, got a {meta_graph_or_file.DESCRIPTOR.full_name}")
        return parse_meta_graph(meta_graph_or_file.SerializeToString())
    if isinstance(meta_graph_or_file, (str, os.PathLike)):
        path = as_path(meta_graph_or_file, "meta_graph_or_file")
        if not os.path.isfile(path):
            raise NotFoundError(f"File does not exist. Received: {path}.", path=path)
        return parse_meta_graph(read_whole_file(path), path=path)
    raise InvalidTypeError(f"expected a path, serialized bytes or a MetaGraphDef, got "
                           f"{type(meta_graph_or_file).__name__}: {meta_graph_or_file!r:.80}")


def read_meta_graph(meta_graph_or_file: object) -> MetaGraph:
    """Describe a ``.meta`` file (path), serialized bytes or ``MetaGraphDef`` proto.

    Binary protos are tried first, then text protos, as TensorFlow does.

    Raises:
        NotFoundError: the file does not exist.
        DataLossError: the contents are not a MetaGraphDef.
        InvalidTypeError: not a path, bytes or a ``MetaGraphDef``.

    Example:
        >>> from tfckpt._graph_builder import VariableSpec
        >>> mg = read_meta_graph(saver_meta_graph([VariableSpec("b", "int64", ())]))
        >>> mg.get_tensor_by_name("b:0").dtype, mg.saver_def.version
        (tfckpt.int64, 2)
    """
    return _load(meta_graph_or_file)


def import_meta_graph(
    meta_graph_or_file: object,
    clear_devices: bool = False,
    import_scope: str | None = None,
    **kwargs: Any,
) -> Any:
    """A :class:`tfckpt.Saver` restoring every variable of a ``.meta`` graph, or None if it has none.

    The saver's ``var_list`` maps each checkpoint key to the graph variable's name
    (prefixed with ``import_scope/``), so ``saver.restore(None, prefix)`` returns
    ``{graph_name: array}``. ``max_to_keep``, ``keep_checkpoint_every_n_hours``
    and ``sharded`` come from the graph's SaverDef. ``saver.meta_graph`` is the
    :class:`MetaGraph`. ``clear_devices`` is accepted for compatibility (nothing
    is placed on devices); other keyword arguments go to ``Saver``.

    Raises:
        NotFoundError: the file does not exist.
        DataLossError: not a MetaGraphDef.

    Example:
        >>> import numpy as np, os, tempfile, tfckpt
        >>> d = tempfile.mkdtemp()
        >>> prefix = tfckpt.write({"w": np.arange(3.0)}, os.path.join(d, "model"))
        >>> _ = export_meta_graph(prefix + ".meta", var_list={"w": np.arange(3.0)})
        >>> saver = import_meta_graph(prefix + ".meta")
        >>> saver.restore(None, prefix)["w"]
        array([0., 1., 2.])
    """
    del clear_devices
    mg = _load(meta_graph_or_file)
    keys = mg.checkpoint_keys()
    if not keys:
        return None
    scope = import_scope.rstrip("/") + "/" if import_scope else ""
    var_list = {key: scope + name for key, name in keys.items()}
    from tfckpt.saver import Saver

    options: dict[str, Any] = {}
    sd = mg.saver_def
    if sd is not None:
        options = {
            "max_to_keep": sd.max_to_keep,
            "keep_checkpoint_every_n_hours": float(sd.keep_checkpoint_every_n_hours),
            "sharded": sd.sharded,
        }
        if sd.version in (1, 2):
            options["write_version"] = int(sd.version)
    try:
        accepted = set(inspect.signature(Saver).parameters)
    except (TypeError, ValueError):  # pragma: no cover
        accepted = set(options)
    options = {k: v for k, v in options.items() if k in accepted}
    options.update(kwargs)
    saver = Saver(var_list=var_list, **options)
    setattr(saver, "meta_graph", mg)  # noqa: B010
    return saver
