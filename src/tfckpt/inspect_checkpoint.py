"""TensorFlow's ``inspect_checkpoint`` tool, without TensorFlow.

Prints exactly what ``python -m tensorflow.python.tools.inspect_checkpoint``
prints, and accepts the same flags::

    python -m tfckpt.inspect_checkpoint --file_name=train/model.ckpt-7 --all_tensor_names
    python -m tfckpt.inspect_checkpoint --file_name=train/model.ckpt-7 --tensor_name=w --printoptions threshold=100

Like TensorFlow's, :func:`print_tensors_in_checkpoint_file` reports errors by
printing them (to stdout) rather than raising. ``tfckpt inspect`` is the same
output with ordinary error handling (stderr, exit code 1).

Example:
    >>> import numpy as np, tempfile, os, tfckpt
    >>> p = tfckpt.write({"w": np.ones((2, 3), np.float32), "step": np.int64(7)},
    ...                  os.path.join(tempfile.mkdtemp(), "ckpt"))
    >>> print_tensors_in_checkpoint_file(p, "", False, all_tensor_names=True)
    tensor: step (int64) []
    tensor: w (float32) [2, 3]
    # Total number of params: 7
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import numpy as np

from tfckpt.errors import InternalError, TensorNotFoundError, UnimplementedError
from tfckpt.reader import CheckpointReader, NewCheckpointReader

__all__ = ["main", "parse_numpy_printoption", "print_tensors_in_checkpoint_file"]

USAGE = (
    "Usage: inspect_checkpoint --file_name=checkpoint_file_name "
    "[--tensor_name=tensor_to_print] "
    "[--all_tensors] "
    "[--all_tensor_names] "
    "[--count_exclude_pattern] "
    "[--printoptions]"
)


def count_total_params(
    shapes: dict[str, list[int]], count_exclude_pattern: str = "", out: TextIO | None = None
) -> int:
    """Sum of the element counts of ``shapes`` (scalars count 1), printing TensorFlow's exclusion line.

    Example:
        >>> count_total_params({"a": [2, 3], "opt/a": [2, 3], "s": []}, "opt/")
        # Excluding 1 tensors (6 params) that match opt/ when counting.
        7
    """
    out = sys.stdout if out is None else out
    if count_exclude_pattern:
        pattern = re.compile(count_exclude_pattern)
        excluded = [k for k in shapes if pattern.search(k)]
        n_params = sum(_num_elements(shapes[k]) for k in excluded)
        print(
            f"# Excluding {len(excluded)} tensors ({n_params} params) that match {count_exclude_pattern} "
            "when counting.",
            file=out,
        )
        shapes = {k: v for k, v in shapes.items() if not pattern.search(k)}
    return sum(_num_elements(s) for s in shapes.values())


def _num_elements(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def print_tensors(
    reader: CheckpointReader,
    tensor_name: str | None,
    all_tensors: bool,
    all_tensor_names: bool = False,
    count_exclude_pattern: str = "",
    out: TextIO | None = None,
) -> None:
    """TensorFlow's output for an open reader; errors are raised, not printed.

    Raises:
        TensorNotFoundError: ``tensor_name`` is not in the checkpoint; the message is
            TensorFlow's ``Tensor <name> not found in checkpoint`` (nothing else is printed).
    """
    out = sys.stdout if out is None else out
    if all_tensors or all_tensor_names:
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
        for key, shape in sorted(shapes.items()):
            print(f"tensor: {key} ({dtypes[key].name}) {shape}", file=out)
            if all_tensors:
                try:
                    value = reader.get_tensor(key)
                except (InternalError, UnimplementedError):
                    print("<not convertible to a numpy dtype>", file=out)
                else:
                    print(value, file=out)
    elif not tensor_name:
        print(reader.debug_string().decode("utf-8", errors="ignore"), file=out)
    else:
        if not reader.has_tensor(tensor_name):
            raise TensorNotFoundError(f"Tensor {tensor_name} not found in checkpoint", key=tensor_name)
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
        print(f"tensor: {tensor_name} ({dtypes[tensor_name].name}) {shapes[tensor_name]}", file=out)
        print(reader.get_tensor(tensor_name), file=out)
    total = count_total_params(reader.get_variable_to_shape_map(), count_exclude_pattern, out)
    print(f"# Total number of params: {total}", file=out)


def print_tensors_in_checkpoint_file(
    file_name: str,
    tensor_name: str | None,
    all_tensors: bool,
    all_tensor_names: bool = False,
    count_exclude_pattern: str = "",
) -> None:
    """Print tensors in a checkpoint exactly as TensorFlow's function of this name does.

    Without ``tensor_name``: one ``name (DT_TYPE) [shape]`` line per tensor. With
    ``tensor_name``: that tensor's header line and value. With ``all_tensors`` /
    ``all_tensor_names``: every tensor's header (and value). Then the total
    number of parameters. Errors are printed (with TensorFlow's hints), not raised.

    Example:
        >>> import numpy as np, tempfile, os, tfckpt
        >>> p = tfckpt.write({"v": np.arange(3, dtype=np.int32)}, os.path.join(tempfile.mkdtemp(), "ckpt"))
        >>> print_tensors_in_checkpoint_file(p, "v", False)
        tensor: v (int32) [3]
        [0 1 2]
        # Total number of params: 3
        >>> print_tensors_in_checkpoint_file(p, "nope", False)
        Tensor nope not found in checkpoint
    """
    out = sys.stdout
    try:
        with NewCheckpointReader(file_name) as reader:
            print_tensors(reader, tensor_name, all_tensors, all_tensor_names, count_exclude_pattern, out)
    except TensorNotFoundError as e:
        if e.message.startswith("Tensor ") and e.message.endswith(" not found in checkpoint"):
            print(e.message, file=out)
            return
        _print_error(e, file_name, out)
    except BrokenPipeError:
        raise  # (not the checkpoint's fault: main() exits quietly)
    except Exception as e:
        _print_error(e, file_name, out)


def _print_error(e: BaseException, file_name: str, out: TextIO) -> None:
    from tfckpt.errors import DataLossError

    msg = str(e)
    print(msg, file=out)
    if "corrupted compressed block contents" in msg:
        print("It's likely that your checkpoint file has been compressed with SNAPPY.", file=out)
    if ("Data loss" in msg or isinstance(e, DataLossError)) and any(
        ext in file_name for ext in (".index", ".meta", ".data")
    ):
        proposed = ".".join(file_name.split(".")[:-1])
        print(
            "\nIt's likely that this is a V2 checkpoint and you need to provide the filename\n"
            "*prefix*.  Try removing the '.' and extension.  Try:\n"
            f"inspect checkpoint --file_name = {proposed}",
            file=out,
        )


_TRUE = ("true", "t", "1", "yes", "y")
_FALSE = ("false", "f", "0", "no", "n")


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"Non-boolean argument to boolean flag: {text!r}")


def parse_numpy_printoption(kv_str: str) -> tuple[str, Any]:
    """Parse one ``k=v`` numpy print option as TensorFlow's tool does (value typed like the current one).

    Unlike TensorFlow's, this returns the ``(key, value)`` pair instead of calling
    ``numpy.set_printoptions`` at once; :func:`main` applies them for the run only.

    Example:
        >>> parse_numpy_printoption("threshold=5")
        ('threshold', 5)
        >>> parse_numpy_printoption("suppress=true")
        ('suppress', True)

    Raises:
        argparse.ArgumentTypeError: TensorFlow's messages (``'x' is not in the form k=v.``, ...).
    """
    parts = kv_str.split("=", 1)
    if len(parts) != 2 or not parts[0]:
        raise argparse.ArgumentTypeError(f"'{kv_str}' is not in the form k=v.")
    k, v_str = parts
    current: dict[str, Any] = dict(np.get_printoptions())
    if k not in current:
        raise argparse.ArgumentTypeError(f"'{k}' is not a valid printoption.")
    v_type = type(current[k])
    if current[k] is None:
        raise argparse.ArgumentTypeError(f"Setting '{k}' from the command line is not supported.")
    try:
        value: Any = _parse_bool(v_str) if v_type is bool else v_type(v_str)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return k, value


@contextmanager
def printoptions(pairs: Sequence[tuple[str, Any]] | None) -> Iterator[None]:
    """Apply parsed ``--printoptions`` for the duration of a ``with`` block."""
    with np.printoptions(**dict(pairs or ())):
        yield


def _tf_bool(v: str) -> bool:
    return v.lower() == "true"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tfckpt.inspect_checkpoint",
        description="Print what TensorFlow's inspect_checkpoint prints, without TensorFlow.",
        epilog="Example: python -m tfckpt.inspect_checkpoint --file_name=train/model.ckpt-7 --all_tensor_names",
    )
    p.add_argument("--file_name", type=str, default="",
                   help="Checkpoint filename. Note, if using Checkpoint V2 format, file_name is the "
                        "shared prefix between all files in the checkpoint.")
    p.add_argument("--tensor_name", type=str, default="", help="Name of the tensor to inspect")
    p.add_argument("--count_exclude_pattern", type=str, default="",
                   help="Pattern to exclude tensors, e.g., from optimizers, when counting.")
    p.add_argument("--all_tensors", nargs="?", const=True, type=_tf_bool, default=False,
                   help="If True, print the names and values of all the tensors.")
    p.add_argument("--all_tensor_names", nargs="?", const=True, type=_tf_bool, default=False,
                   help="If True, print the names of all the tensors.")
    p.add_argument("--printoptions", nargs="*", type=parse_numpy_printoption,
                   help="Argument for numpy.set_printoptions(), in the form 'k=v'.")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m tfckpt.inspect_checkpoint`` entry point; returns the exit status.

    Example:
        >>> main([])
        Usage: inspect_checkpoint --file_name=checkpoint_file_name [--tensor_name=tensor_to_print] \
[--all_tensors] [--all_tensor_names] [--count_exclude_pattern] [--printoptions]
        1
    """
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.file_name:
        print(USAGE)
        return 1
    try:
        with printoptions(args.printoptions):
            print_tensors_in_checkpoint_file(
                args.file_name, args.tensor_name, args.all_tensors, args.all_tensor_names,
                count_exclude_pattern=args.count_exclude_pattern,
            )
    except BrokenPipeError:  # piped into `head`
        from tfckpt._cli_format import after_broken_pipe

        return after_broken_pipe()
    return 0


if __name__ == "__main__":
    sys.exit(main())
