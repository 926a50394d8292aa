"""The tfckpt error hierarchy.

Every error tfckpt raises on purpose derives from :class:`CheckpointError`. The
subclasses carry TensorFlow's names (``tf.errors.NotFoundError`` and friends) so
code ported from TensorFlow reads the same, and each also derives from the
builtin exception it means, so ``except FileNotFoundError`` or
``except KeyError`` keep working.

Errors carry structured context where it is known: ``path`` (the file),
``key`` (the tensor or checkpoint key) and ``offset`` (a byte offset in
``path``).

Example:
    >>> import tfckpt
    >>> try:
    ...     tfckpt.load_checkpoint("/nonexistent/dir/model.ckpt")
    ... except tfckpt.errors.NotFoundError as e:
    ...     print(type(e).__name__, isinstance(e, FileNotFoundError))
    NotFoundError True
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "DataLossError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "TensorNotFoundError",
    "UnimplementedError",
]


class CheckpointError(Exception):
    """Root of every error tfckpt raises.

    Attributes:
        message: the human-readable message (also ``str(error)``).
        path: the file the error is about, if any.
        key: the tensor name or checkpoint key the error is about, if any.
        offset: a byte offset in ``path``, if meaningful.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.key = key
        self.offset = offset

    def __str__(self) -> str:
        return self.message


class NotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint, file or directory does not exist."""



class CheckpointNotFoundError(NotFoundError, ValueError):
    """A directory holds no checkpoint (also a ``ValueError``: TensorFlow's ``load_checkpoint``,
    ``list_variables`` and ``load_variable`` raise one there)."""


class TensorNotFoundError(NotFoundError, KeyError):
    """A tensor name is not in the checkpoint (also a ``KeyError``)."""


class InvalidArgumentError(CheckpointError, ValueError):
    """An argument or a stored value is invalid (wrong shape, bad name, ...)."""


class InvalidTypeError(InvalidArgumentError, TypeError):
    """An argument has the wrong type (also a ``TypeError``, as TensorFlow raises there)."""


class DataLossError(CheckpointError, ValueError):
    """The stored bytes are corrupt: CRC mismatch, truncation, bad magic, ..."""


class UnimplementedError(CheckpointError, NotImplementedError):
    """The checkpoint uses something tfckpt cannot represent (e.g. DT_VARIANT values)."""


class FailedPreconditionError(CheckpointError, RuntimeError):
    """The operation is not allowed in the current state."""


class AlreadyExistsError(CheckpointError, FileExistsError):
    """Something that must be unique exists already (e.g. a held directory lock)."""



class PermissionDeniedError(CheckpointError, PermissionError):
    """The file system refused access."""



class ResourceExhaustedError(CheckpointError, OSError):
    """A resource ran out: the disk is full, a file size limit was hit."""



class OutOfRangeError(CheckpointError, IndexError):
    """A slice or index lies outside a tensor."""


class InternalError(CheckpointError, RuntimeError):
    """An I/O error or an invariant broken inside tfckpt."""
