"""Reader for the IDX format of the MNIST family (plain or gzip-compressed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from layerflow.errors import InvalidValueError, LayerflowError

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(LayerflowError, ValueError):
    """An IDX file whose header or size does not match the format."""


def read_idx(path: str | Path) -> np.ndarray:
    """Reads one IDX file (``.gz`` or not) into a numpy array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        data = stream.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxFormatError(f"{path} is not an IDX file: it does not start with two zero bytes.")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise IdxFormatError(f"{path} declares an unknown IDX element type 0x{type_code:02x}.")
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise IdxFormatError(f"{path} is truncated inside its header.")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header_end != expected:
        raise IdxFormatError(
            f"{path} holds {len(data) - header_end} bytes of data; its header (shape {shape}) expects {expected}."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_end).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Writes a numpy array as an IDX file (gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in _IDX_DTYPES.items()}
    native = np.asarray(array)
    code = codes.get(native.dtype.newbyteorder("=").str)
    if code is None:
        raise InvalidValueError(f"dtype {native.dtype} cannot be written as IDX.")
    header = bytes([0, 0, code, native.ndim]) + b"".join(d.to_bytes(4, "big") for d in native.shape)
    payload = header + native.astype(np.dtype(_IDX_DTYPES[code])).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as stream:
        stream.write(payload)
    return path
