"""``Dataset.cache()``: the first complete pass is kept (in memory or an Arrow IPC file) and replayed."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from layerflow.data.chunks import Chunk
from layerflow.data.errors import DatasetArgumentError

_SHAPE_KEY = b"layerflow.shape"


class MemoryCache:
    """Elements of the first complete pass, kept in a list."""

    def __init__(self, make: Callable[[], Iterable[Any]]):
        self._make = make
        self._elements: list[Any] | None = None
        self._lock = threading.Lock()

    def chunks(self) -> Iterator[Any]:
        if self._elements is not None:
            return iter(self._elements)
        return self._record()

    def _record(self) -> Iterator[Any]:
        recorded = []
        for element in self._make():
            recorded.append(element)
            yield element
        with self._lock:
            if self._elements is None:
                self._elements = recorded


def _to_arrow(values: np.ndarray):
    import pyarrow as pa

    if values.ndim > 1:
        width = int(np.prod(values.shape[1:]))
        flat = pa.array(np.ascontiguousarray(values).reshape(-1))
        array = pa.FixedSizeListArray.from_arrays(flat, width)
        shape = ",".join(map(str, values.shape[1:])).encode()
        return array, {_SHAPE_KEY: shape}
    if values.dtype == object:
        return pa.array(list(values)), None
    return pa.array(values), None


def _from_arrow(column, field) -> np.ndarray:
    import pyarrow as pa

    metadata = field.metadata or {}
    if _SHAPE_KEY in metadata:
        shape = tuple(int(d) for d in metadata[_SHAPE_KEY].decode().split(","))
        return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, *shape)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_null(column.type):
        return column.to_numpy(zero_copy_only=False).astype(object, copy=False)
    if pa.types.is_list(column.type):
        return column.to_numpy(zero_copy_only=False)
    return column.to_numpy(zero_copy_only=False)


def chunk_to_record_batch(chunk: Chunk):
    """A chunk as an Arrow record batch (n-d columns as fixed-size lists with their shape kept)."""
    import pyarrow as pa

    arrays, fields = [], []
    for name, values in chunk.items():
        array, metadata = _to_arrow(np.asarray(values))
        arrays.append(array)
        fields.append(pa.field(name, array.type, metadata=metadata))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


class FileCache:
    """Elements of the first complete pass written to an Arrow IPC stream file, read back memory-mapped.

    The file is written anew by the first pass of each dataset object (a stale file from an
    earlier program is never trusted) and is kept afterwards.
    """

    def __init__(self, make: Callable[[], Iterable[Any]], path: Path, record_batches: bool = False):
        if path.exists() and path.is_dir():
            raise DatasetArgumentError(f"cache({str(path)!r}): that is a folder; give a file path.")
        if not path.parent.exists():
            raise DatasetArgumentError(f"cache({str(path)!r}): the folder {str(path.parent)!r} does not exist.")
        self._make = make
        self.path = path
        self._complete = False
        self._record_batches = record_batches  # the elements are Arrow record batches: stored and replayed as such

    def chunks(self) -> Iterator[Any]:
        return self._replay() if self._complete else self._record()

    def _record(self) -> Iterator[Any]:
        import pyarrow as pa

        partial = self.path.with_name(self.path.name + f".partial-{os.getpid()}-{threading.get_ident()}")
        writer = writer_schema = None
        try:
            for chunk in self._make():
                if self._record_batches:
                    batch = chunk
                elif not isinstance(chunk, dict):
                    raise DatasetArgumentError(
                        "cache(path) stores dicts of columns; this dataset yields "
                        f"{type(chunk).__name__}s. Use cache() (in memory)."
                    )
                else:
                    batch = chunk_to_record_batch(chunk)
                if writer is None:
                    writer, writer_schema = pa.ipc.new_stream(str(partial), batch.schema), batch.schema
                elif not batch.schema.equals(writer_schema):
                    batch = batch.cast(writer_schema)
                writer.write_batch(batch)
                yield chunk
            if writer is None:
                return
            writer.close()
            writer = None
            os.replace(partial, self.path)
            self._complete = True
        finally:
            if writer is not None:
                writer.close()
            if partial.exists():
                partial.unlink()

    def _replay(self) -> Iterator[Chunk]:
        import pyarrow as pa

        # not closed here: the arrays handed out are views of the mapping, which lives as long as they do
        reader = pa.ipc.open_stream(pa.memory_map(str(self.path)))
        for batch in reader:
            if self._record_batches:
                yield batch
                continue
            yield {field.name: _from_arrow(column, field) for field, column in zip(batch.schema, batch.columns)}
