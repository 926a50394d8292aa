"""Path arguments: what every public function takes as a file, prefix or directory name.

A path is a ``str``, ``bytes`` (decoded as the operating system does, like TensorFlow,
which takes "binary or unicode" paths) or an :class:`os.PathLike`; anything else is an
:class:`~tfckpt.errors.InvalidTypeError` naming the argument, before any file is touched.
"""

from __future__ import annotations

import os
from typing import TypeAlias

from tfckpt.errors import InvalidTypeError

__all__ = ["PathLike", "as_path"]

PathLike: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def as_path(value: object, what: str = "path") -> str:
    """``value`` as a ``str`` path.

    Example:
        >>> import pathlib
        >>> as_path(pathlib.Path("dir") / "model.ckpt-7"), as_path(b"dir/model.ckpt-7")
        ('dir/model.ckpt-7', 'dir/model.ckpt-7')
        >>> as_path(7, "prefix")
        Traceback (most recent call last):
        ...
        tfckpt.errors.InvalidTypeError: prefix must be a path (str, bytes or os.PathLike), got int: 7

    Raises:
        InvalidTypeError: ``value`` is not a path (``what`` names it in the message).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, os.PathLike)):
        try:
            return os.fsdecode(value)
        except (TypeError, UnicodeDecodeError):  # (__fspath__ returned no path; bytes the OS cannot decode)
            pass
    raise InvalidTypeError(f"{what} must be a path (str, bytes or os.PathLike), got {type(value).__name__}: "
                           f"{value!r:.80}")
