"""Dataset sources: Parquet and text files read in a stream, frames, arrays and ranges in memory.

CSV files have their own module (``csv_files``); ``csv_dataset`` is re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from layerflow.data.chunks import ROWS
from layerflow.data.csv_files import BLOCK_BYTES, CsvDataset, csv_dataset, open_text, record_batch_to_chunk
from layerflow.data.dataset import Dataset
from layerflow.data.errors import (
    CsvFormatError,
    DatasetArgumentError,
    DatasetColumnError,
    DatasetKindError,
)
from layerflow.data.files import list_files

__all__ = [
    "BLOCK_BYTES",
    "CsvDataset",
    "CsvFormatError",
    "csv_dataset",
    "file_list_dataset",
    "from_arrays",
    "from_frame",
    "list_files",
    "parquet_dataset",
    "range_dataset",
    "record_batch_to_chunk",
    "text_line_dataset",
]


def file_list_dataset(file_pattern: str | Sequence[str], shuffle: bool = False, seed: int | None = None) -> Dataset:
    """A dataset of file names (column ``filename``), e.g. to ``interleave`` readers over them."""
    files = np.asarray(list_files(file_pattern), dtype=object)
    if shuffle:
        files = np.random.default_rng(seed).permutation(files)
    return Dataset(lambda: iter([{"filename": files}]), ROWS, ["filename"], len(files))


def parquet_dataset(
    file_pattern: str | Sequence[str],
    batch_size: int | None = None,
    columns: Sequence[str] | None = None,
    rows_per_read: int = 65536,
) -> Dataset:
    """Streams rows from Parquet files, one row group slice at a time."""
    import pyarrow.parquet as pq

    files = list_files(file_pattern)

    def make():
        for path in files:
            with pq.ParquetFile(path) as parquet:
                missing = [c for c in columns or [] if c not in parquet.schema_arrow.names]
                if missing:
                    raise DatasetColumnError(f"{path} has no columns {missing}; it has {parquet.schema_arrow.names}.")
                for batch in parquet.iter_batches(batch_size=rows_per_read, columns=list(columns) if columns else None):
                    yield record_batch_to_chunk(batch)

    dataset = Dataset(make, ROWS, list(columns) if columns else None)
    return dataset.batch(batch_size) if batch_size else dataset


def text_line_dataset(file_pattern: str | Sequence[str], lines_per_chunk: int = 8192) -> Dataset:
    """Streams the lines of text files (plain, ``.gz`` or ``.bz2``) as rows of one column, ``line``.

    Args:
        file_pattern: a path, a glob pattern or a list of them.
        lines_per_chunk: lines read at a time.

    Returns:
        A dataset of rows ``{"line": str}`` (newline removed).

    Example:
        >>> [row["line"] for row in lf.data.text_line_dataset("notes.txt.gz").take(2)]
    """
    files = list_files(file_pattern)

    def make():
        for path in files:
            with open_text(path) as stream:
                while True:
                    lines = [line.rstrip("\n").rstrip("\r") for _, line in zip(range(lines_per_chunk), stream)]
                    if not lines:
                        break
                    yield {"line": np.asarray(lines, dtype=object)}

    return Dataset(make, ROWS, ["line"])


def from_frame(frame, rows_per_chunk: int = 65536) -> Dataset:
    """A dataset over a pandas DataFrame's columns (strings as objects, floats as float32)."""
    import pyarrow as pa

    if not hasattr(frame, "columns"):
        raise DatasetKindError(f"from_frame() takes a pandas DataFrame; got {type(frame).__name__}.")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return Dataset(
        lambda: (record_batch_to_chunk(b) for b in table.to_batches(rows_per_chunk)),
        ROWS,
        list(map(str, frame.columns)),
        len(frame),
    )


def from_arrays(x: Any, y: Any = None, rows_per_chunk: int = 65536) -> Dataset:
    """A dataset over arrays: ``x`` an array (column ``x``) or a dict of arrays; ``y`` column ``y``.

    Example:
        >>> ds = lf.data.from_arrays(x_train, y_train).shuffle(60000, seed=1).batch(128)
        >>> model.fit(ds.prepare(x="x", y="y"), epochs=3)
    """
    columns = {str(k): np.asarray(v) for k, v in x.items()} if isinstance(x, Mapping) else {"x": np.asarray(x)}
    if y is not None:
        columns["y"] = np.asarray(y)
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise DatasetArgumentError(f"Arrays have different numbers of rows: {lengths}.")
    n = next(iter(lengths.values()))

    def make():
        for start in range(0, n, rows_per_chunk):
            yield {name: values[start : start + rows_per_chunk] for name, values in columns.items()}

    return Dataset(make, ROWS, list(columns), n)


def range_dataset(start: int, stop: int | None = None, step: int = 1, rows_per_chunk: int = 65536) -> Dataset:
    """Rows ``{"value": i}`` for i in ``range(start, stop, step)`` (tfdatasets' ``range_dataset``).

    Args:
        start: the first value (or, alone, the stop with start 0, as ``range``).
        stop: the value not reached.
        step: the increment (non-zero, may be negative).
        rows_per_chunk: rows generated at a time.

    Returns:
        A dataset of known length with one int64 column, ``value``.

    Example:
        >>> lf.data.range_dataset(1, 10, 3).to_frame()["value"].tolist()
        [1, 4, 7]
    """
    if stop is None:
        start, stop = 0, start
    for name, value in (("start", start), ("stop", stop), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise DatasetArgumentError(f"range_dataset(): {name}={value!r} must be an integer.")
    if step == 0:
        raise DatasetArgumentError("range_dataset(): step must not be zero.")
    values = range(int(start), int(stop), int(step))

    def make():
        for offset in range(0, len(values), rows_per_chunk):
            part = values[offset : offset + rows_per_chunk]
            yield {"value": np.arange(part.start, part.stop, part.step, dtype=np.int64)}

    return Dataset(make, ROWS, ["value"], len(values))
