"""The error hierarchy: TensorFlow's names, the builtin each one means, structured context."""

from __future__ import annotations

import pickle

import pytest

import tfckpt
from tfckpt import errors


@pytest.mark.parametrize(
    ("cls", "builtins"),
    [
        (errors.NotFoundError, (FileNotFoundError, OSError)),
        (errors.TensorNotFoundError, (FileNotFoundError, KeyError)),
        (errors.CheckpointNotFoundError, (FileNotFoundError, ValueError)),
        (errors.InvalidArgumentError, (ValueError,)),
        (errors.InvalidTypeError, (ValueError, TypeError)),
        (errors.DataLossError, (ValueError,)),
        (errors.UnimplementedError, (NotImplementedError,)),
        (errors.FailedPreconditionError, (RuntimeError,)),
        (errors.AlreadyExistsError, (FileExistsError,)),
        (errors.PermissionDeniedError, (PermissionError,)),
        (errors.ResourceExhaustedError, (OSError,)),
        (errors.OutOfRangeError, (IndexError,)),
        (errors.InternalError, (RuntimeError,)),
    ],
)
def test_each_class_is_a_checkpoint_error_and_its_builtin(cls: type[errors.CheckpointError],
                                                          builtins: tuple[type[BaseException], ...]) -> None:
    e = cls("what happened", path="/d/f", key="w", offset=12)
    assert isinstance(e, errors.CheckpointError)
    for b in builtins:
        assert isinstance(e, b)
    assert str(e) == "what happened"  # no quoting (KeyError) nor errno prefix (OSError)
    assert (e.path, e.key, e.offset) == ("/d/f", "w", 12)
    assert str(pickle.loads(pickle.dumps(e))) == "what happened"


def test_every_public_error_is_exported() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.CheckpointError)
    assert tfckpt.errors is errors


def test_a_directory_without_checkpoint_is_a_value_error_as_in_tensorflow(tmp_path) -> None:
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "gone"\n')  # (dangling: no such checkpoint)
    for call in (tfckpt.load_checkpoint, tfckpt.list_variables, lambda d: tfckpt.load_variable(d, "w")):
        for d in (tmp_path, tmp_path / "empty"):
            d.mkdir(exist_ok=True)
            with pytest.raises(ValueError, match="Couldn't find 'checkpoint' file or checkpoints in given directory") \
                    as e:
                call(str(d))
            assert isinstance(e.value, errors.NotFoundError)
            assert e.value.path == str(d)
