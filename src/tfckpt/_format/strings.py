"""DT_STRING tensor payloads in V2 data files.

Layout for N elements: N varint64 lengths, a fixed32 masked CRC-32C of the
lengths (each as a 4-byte little-endian uint32, or 8 bytes above 4 GiB), then
the element bytes back to back. The entry CRC is one running CRC over the
lengths (fixed-width), the 4 stored checksum bytes, then the element bytes.

Example:
    >>> payload, crc = encode_strings([b"xyz"])
    >>> payload.hex(), hex(crc)
    ('03633f7f2878797a', '0x7bf6ab13')
    >>> decode_strings(payload, 1, crc)
    [b'xyz']
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import numpy as np

from tfckpt._format.coding import FIXED32, FIXED64, crc32c, decode_varint, encode_varints, mask, unmask
from tfckpt.errors import DataLossError

__all__ = ["decode_strings", "encode_strings"]


def _length_bytes(lengths: Sequence[int] | np.ndarray) -> bytes:  # type: ignore[type-arg]
    """The lengths as the CRC sees them: 4-byte little-endian each (8 bytes above 4 GiB)."""
    arr = np.asarray(lengths, np.uint64)
    if not arr.size or int(arr.max()) <= 0xFFFFFFFF:
        return arr.astype("<u4").tobytes()
    return b"".join(FIXED32.pack(n) if n <= 0xFFFFFFFF else FIXED64.pack(n) for n in arr.tolist())


def encode_strings(elements: Sequence[bytes]) -> tuple[bytes, int]:
    """Payload bytes and the masked entry CRC for string elements (row-major)."""
    lengths = np.fromiter(map(len, elements), np.uint64, len(elements))
    crc_len = crc32c(_length_bytes(lengths))
    head = encode_varints(lengths) + FIXED32.pack(mask(crc_len))
    payload = b"".join([head, *elements])  # (one copy of the elements)
    crc = crc32c(memoryview(payload)[len(head) - 4 :], crc_len)  # the stored CRC, then the elements
    return payload, mask(crc)


def _decode_lengths(buf: bytes | memoryview, count: int,
                    n: int) -> tuple[np.ndarray | list[int], int, int]:  # type: ignore[type-arg]
    """The ``count`` leading varints of ``buf`` (``count <= n``: a uint8 array when each is one
    byte, else a list), their sum and the position after them."""
    head = np.frombuffer(buf, np.uint8, count)
    if not count or int(head.max()) < 0x80:  # every length fits one byte
        return head, int(head.sum(dtype=np.int64)), count
    pos = 0
    lengths: list[int] = []
    for _ in range(count):
        length, pos = decode_varint(buf, pos, n)
        lengths.append(length)
    return lengths, sum(lengths), pos


def decode_strings(
    buf: bytes | memoryview,
    count: int,
    stored_crc: int | None,
    *,
    where: str = "",
    path: str | None = None,
    key: str | None = None,
    offset: int | None = None,
) -> list[bytes]:
    """Decode ``count`` string elements from a payload; verify CRCs unless ``stored_crc`` is None.

    ``where`` is appended to messages; ``path``/``key``/``offset`` (of the payload) go on the error.

    Raises:
        DataLossError: truncated or inconsistent payload, or a CRC mismatch.
    """

    def fail(msg: str) -> DataLossError:
        return DataLossError(f"string tensor{where}: {msg}", path=path, key=key, offset=offset)

    n = len(buf)
    if count > n:
        raise fail(f"{count} elements cannot fit in {n} bytes")
    try:
        lengths, total, pos = _decode_lengths(buf, count, n)
    except DataLossError as e:
        raise fail(f"bad element length: {e.message}") from None
    if pos + 4 > n:
        raise fail("truncated length checksum")
    if pos + 4 + total != n:
        raise fail(f"lengths add up to {total} bytes but {n - pos - 4} are stored")
    if stored_crc is not None:
        lens = _length_bytes(lengths)
        crc_len = crc32c(lens)
        (stored_len_crc,) = FIXED32.unpack_from(buf, pos)
        if unmask(stored_len_crc) != crc_len:
            raise fail("length checksum mismatch")
        crc = crc32c(buf[pos:], crc_len)
        if crc != unmask(stored_crc):
            raise fail(f"checksum mismatch (stored {unmask(stored_crc):#010x}, computed {crc:#010x})")
    pos += 4
    data = bytes(buf[pos:])
    sizes = lengths.tolist() if isinstance(lengths, np.ndarray) else lengths
    return [data[end - length : end] for length, end in zip(sizes, accumulate(sizes))]
