"""Dataset sources: CSV, Parquet and text files read in a stream, frames and arrays in memory."""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from layerflow.data.dataset import ROWS, Chunk, Dataset
from layerflow.errors import InvalidTypeError, InvalidValueError, LayerflowError, MissingFileError, MissingKeyError

BLOCK_BYTES = 1 << 20
_TYPE_NAMES = {
    "float": "float32", "float32": "float32", "double": "float64", "float64": "float64",
    "int": "int64", "int64": "int64", "int32": "int32", "bool": "bool",
    "string": "string", "str": "string", "category": "string",
}


class CsvFormatError(LayerflowError, ValueError):
    """A CSV row that does not parse: names the file and the line."""


def list_files(file_pattern: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files matching a glob pattern (or a list of patterns), sorted; an error if none."""
    patterns = [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else list(file_pattern)
    files: list[str] = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.fspath(pattern), recursive=True))
        files += [f for f in matched if os.path.isfile(f)]
    if not files:
        raise MissingFileError(f"No files match {file_pattern!r} (looked from {Path.cwd()}).")
    return files


def file_list_dataset(file_pattern: str | Sequence[str], shuffle: bool = False, seed: int | None = None) -> Dataset:
    """A dataset of file names (column ``filename``), e.g. to ``interleave`` readers over them."""
    files = np.asarray(list_files(file_pattern), dtype=object)
    if shuffle:
        files = np.random.default_rng(seed).permutation(files)
    return Dataset(lambda: iter([{"filename": files}]), ROWS, ["filename"])


def _arrow_type(name: str, type_name: str):
    import pyarrow as pa

    key = str(type_name).lower()
    if key not in _TYPE_NAMES:
        raise InvalidValueError(f"column_types[{name!r}] = {type_name!r} is not a known type; "
                         f"expected one of {', '.join(sorted(set(_TYPE_NAMES)))}.")
    return pa.string() if _TYPE_NAMES[key] == "string" else pa.from_numpy_dtype(np.dtype(_TYPE_NAMES[key]))


def record_batch_to_chunk(batch) -> Chunk:
    """Arrow columns -> numpy: floats as float32, ints as int64 (float32 with NaN where missing), strings as objects."""
    import pyarrow as pa

    chunk: Chunk = {}
    for name, column in zip(batch.schema.names, batch.columns):
        kind = column.type
        if pa.types.is_floating(kind):
            values = column.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        elif pa.types.is_integer(kind):
            values = (column.to_numpy(zero_copy_only=False).astype(np.float32) if column.null_count
                      else column.to_numpy().astype(np.int64, copy=False))
        elif pa.types.is_boolean(kind):
            values = column.to_numpy(zero_copy_only=False)
        elif pa.types.is_null(kind):
            values = np.full(len(column), np.nan, dtype=np.float32)
        else:
            values = column.cast(pa.string()).to_numpy(zero_copy_only=False)
        chunk[name] = values
    return chunk


def _find_line(path: str, text: str) -> int | None:
    """The 1-based number of the first line of ``path`` equal to ``text`` (only on the error path)."""
    with open(path, encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            if line.rstrip("\r\n") == text:
                return number
    return None


class _RowCounter:
    def __init__(self) -> None:
        self.skipped = 0
        self.first_bad: tuple[int | None, str] | None = None


def _read_csv_file(path: str, options: dict[str, Any], skip_malformed: bool,
                   stats: dict[str, int]) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if os.path.getsize(path) == 0:
        warnings.warn(f"{path} is empty and was skipped.", stacklevel=3)
        stats["empty_files"] = stats.get("empty_files", 0) + 1
        return
    counter = _RowCounter()

    def on_invalid(row):
        if skip_malformed:
            counter.skipped += 1
            return "skip"
        counter.first_bad = (row.number, row.text)
        return "error"

    parse = pcsv.ParseOptions(delimiter=options["delimiter"], invalid_row_handler=on_invalid)
    header_lines = 1 if options["header"] else 0
    try:
        reader = pcsv.open_csv(path, read_options=options["read"], parse_options=parse,
                               convert_options=options["convert"])
        for batch in reader:
            if batch.num_rows:
                yield record_batch_to_chunk(batch)
    except pa.ArrowInvalid as error:
        if counter.first_bad is not None:
            number, text = counter.first_bad
            # pyarrow knows the row number only when parsing on one thread; else look it up
            line_number = number + header_lines if number is not None else _find_line(path, text)
            line = f"line {line_number}" if line_number is not None else "a line"
            raise CsvFormatError(
                f"{path}, {line}: malformed row {text[:200]!r} ({error}). "
                "Fix the row, or pass skip_malformed=True to skip and count such rows."
            ) from None
        message = str(error)
        if "Empty CSV file" in message:
            warnings.warn(f"{path} holds no header line and was skipped.", stacklevel=3)
            return
        raise CsvFormatError(f"{path}: {message}") from None
    finally:
        stats["malformed_rows_skipped"] = stats.get("malformed_rows_skipped", 0) + counter.skipped


class CsvDataset(Dataset):
    """A dataset streamed from CSV files; ``stats`` counts skipped rows and empty files."""

    def __init__(self, files: list[str], options: dict[str, Any], skip_malformed: bool, columns: list[str] | None):
        self.files = files
        self.stats: dict[str, int] = {"malformed_rows_skipped": 0, "empty_files": 0}

        def make():
            self.stats.update(malformed_rows_skipped=0, empty_files=0)
            for path in files:
                yield from _read_csv_file(path, options, skip_malformed, self.stats)

        super().__init__(make, ROWS, columns)


def csv_dataset(
    file_pattern: str | os.PathLike[str] | Sequence[str],
    batch_size: int | None = None,
    column_names: Sequence[str] | None = None,
    column_types: Mapping[str, str] | None = None,
    select_columns: Sequence[str] | None = None,
    na_values: Sequence[str] = ("", "NA", "NaN", "null"),
    header: bool = True,
    delimiter: str = ",",
    skip_malformed: bool = False,
    block_bytes: int = BLOCK_BYTES,
) -> Dataset:
    """Streams rows from CSV files (pyarrow's streaming reader: memory stays bounded).

    Args:
        file_pattern: a path, a glob pattern (``"data/*.csv"``) or a list of them.
        batch_size: batch the rows (dicts of arrays of this many rows); None keeps rows.
        column_names: names when the files have no header (``header=False``).
        column_types: explicit types by column: ``float``, ``double``, ``int``, ``bool``, ``string``.
            Other columns are inferred (floats become float32).
        select_columns: read only these columns.
        na_values: strings read as missing (NaN for numbers).
        header: whether the first line of each file names the columns.
        delimiter: the field separator.
        skip_malformed: skip rows with the wrong number of fields (counted in ``.stats``)
            instead of failing with the file and line number.
        block_bytes: bytes parsed at a time.

    Example:
        >>> ds = lf.data.csv_dataset("big.csv", batch_size=4096, column_types={"a": "float", "city": "string"})
    """
    import pyarrow.csv as pcsv

    files = list_files(file_pattern)
    if not header and not column_names:
        raise InvalidValueError("header=False needs column_names=[...] to name the columns.")
    types = {name: _arrow_type(name, t) for name, t in (column_types or {}).items()}
    read = pcsv.ReadOptions(block_size=block_bytes, column_names=list(column_names) if column_names else None,
                            use_threads=True)
    convert = pcsv.ConvertOptions(column_types=types, include_columns=list(select_columns or []),
                                  null_values=list(na_values), strings_can_be_null=True)
    options = {"read": read, "convert": convert, "delimiter": delimiter, "header": header}
    columns = list(select_columns) if select_columns else (list(column_names) if column_names else None)
    dataset: Dataset = CsvDataset(files, options, skip_malformed, columns)
    return dataset.batch(batch_size) if batch_size else dataset


def parquet_dataset(file_pattern: str | Sequence[str], batch_size: int | None = None,
                    columns: Sequence[str] | None = None, rows_per_read: int = 65536) -> Dataset:
    """Streams rows from Parquet files, one row group slice at a time."""
    import pyarrow.parquet as pq

    files = list_files(file_pattern)

    def make():
        for path in files:
            with pq.ParquetFile(path) as parquet:
                missing = [c for c in columns or [] if c not in parquet.schema_arrow.names]
                if missing:
                    raise MissingKeyError(f"{path} has no columns {missing}; it has {parquet.schema_arrow.names}.")
                for batch in parquet.iter_batches(batch_size=rows_per_read, columns=list(columns) if columns else None):
                    yield record_batch_to_chunk(batch)

    dataset = Dataset(make, ROWS, list(columns) if columns else None)
    return dataset.batch(batch_size) if batch_size else dataset


def text_line_dataset(file_pattern: str | Sequence[str], lines_per_chunk: int = 8192) -> Dataset:
    """Streams the lines of text files as rows with one column, ``line`` (newline removed)."""
    files = list_files(file_pattern)

    def make():
        for path in files:
            with open(path, encoding="utf-8", errors="replace") as stream:
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
        raise InvalidTypeError(f"from_frame() takes a pandas DataFrame; got {type(frame).__name__}.")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return Dataset(lambda: (record_batch_to_chunk(b) for b in table.to_batches(rows_per_chunk)), ROWS,
                   list(map(str, frame.columns)))


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
        raise InvalidValueError(f"Arrays have different numbers of rows: {lengths}.")
    n = next(iter(lengths.values()))

    def make():
        for start in range(0, n, rows_per_chunk):
            yield {name: values[start:start + rows_per_chunk] for name, values in columns.items()}

    return Dataset(make, ROWS, list(columns))
