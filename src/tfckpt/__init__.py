"""tfckpt: TensorFlow checkpoints without TensorFlow.

Read every checkpoint TensorFlow ever wrote and write byte-compatible ones
from numpy, PyTorch or JAX state, with TensorFlow's Saver semantics.

Example:
    >>> import numpy as np, tempfile, os, tfckpt
    >>> prefix = tfckpt.write({"w": np.eye(2, dtype=np.float32)}, os.path.join(tempfile.mkdtemp(), "ckpt"))
    >>> tfckpt.load_checkpoint(prefix).get_tensor("w")
    array([[1., 0.],
           [0., 1.]], dtype=float32)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tfckpt import dtypes, errors
from tfckpt._convert import typed
from tfckpt.bundle import BundleReader, BundleWriter, write
from tfckpt.checkpoint_management import (
    checkpoint_exists,
    generate_checkpoint_state_proto,
    get_checkpoint_mtimes,
    get_checkpoint_state,
    latest_checkpoint,
    meta_graph_filename,
    remove_checkpoint,
    update_checkpoint_state,
)
from tfckpt.dtypes import DType, as_dtype
from tfckpt.errors import (
    CheckpointError,
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
    UnimplementedError,
)
from tfckpt.reader import (
    CheckpointReader,
    NewCheckpointReader,
    list_variables,
    load_checkpoint,
    load_variable,
    read,
)

__version__ = "0.1.0"

# Names whose modules are imported on first use (they pull in more code).
_LAZY = {
    "Saver": "tfckpt.saver",
    "Variable": "tfckpt.variables",
    "CheckpointManager": "tfckpt.manager",
    "checkpoints_iterator": "tfckpt.manager",
    "export_meta_graph": "tfckpt.meta_graph",
    "import_meta_graph": "tfckpt.meta_graph",
    "read_meta_graph": "tfckpt.meta_graph",
    "MetaGraph": "tfckpt.meta_graph",
    "init_from_checkpoint": "tfckpt.transfer",
    "restore_partial": "tfckpt.transfer",
    "RestoreReport": "tfckpt.transfer",
    "Rules": "tfckpt.transfer",
    "TransformSet": "tfckpt.transfer",
    "save_partial": "tfckpt.transfer",
    "export_partial": "tfckpt.transfer",
    "print_tensors_in_checkpoint_file": "tfckpt.inspect_checkpoint",
}

if TYPE_CHECKING:
    from tfckpt.inspect_checkpoint import print_tensors_in_checkpoint_file
    from tfckpt.manager import CheckpointManager, checkpoints_iterator
    from tfckpt.meta_graph import MetaGraph, export_meta_graph, import_meta_graph, read_meta_graph
    from tfckpt.saver import Saver
    from tfckpt.transfer import (
        RestoreReport,
        Rules,
        TransformSet,
        export_partial,
        init_from_checkpoint,
        restore_partial,
        save_partial,
    )
    from tfckpt.variables import Variable


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tfckpt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BundleReader",
    "BundleWriter",
    "CheckpointError",
    "CheckpointManager",
    "CheckpointReader",
    "DType",
    "DataLossError",
    "InvalidArgumentError",
    "MetaGraph",
    "NewCheckpointReader",
    "NotFoundError",
    "RestoreReport",
    "Rules",
    "Saver",
    "TransformSet",
    "UnimplementedError",
    "Variable",
    "__version__",
    "as_dtype",
    "checkpoint_exists",
    "checkpoints_iterator",
    "dtypes",
    "errors",
    "export_meta_graph",
    "export_partial",
    "generate_checkpoint_state_proto",
    "get_checkpoint_mtimes",
    "get_checkpoint_state",
    "import_meta_graph",
    "init_from_checkpoint",
    "latest_checkpoint",
    "list_variables",
    "load_checkpoint",
    "load_variable",
    "meta_graph_filename",
    "print_tensors_in_checkpoint_file",
    "read",
    "read_meta_graph",
    "remove_checkpoint",
    "restore_partial",
    "save_partial",
    "typed",
    "update_checkpoint_state",
    "write",
]
