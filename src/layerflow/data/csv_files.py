"""``csv_dataset``: CSV files (plain, .gz, .bz2) streamed by pyarrow, with typed columns and bad rows located.

The fast path is pyarrow's threaded streaming reader. Only when something does not parse
(a row with the wrong number of fields, a value not of its column's type) does this module
go back to the file: to find the line to report, or, with ``skip_malformed=True``, to
re-read that file carefully (every column as text, converted here) and drop the bad rows.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layerflow.data.arrow_batches import ArrowBatches
from layerflow.data.chunks import ROWS, Chunk
from layerflow.data.dataset import Dataset
from layerflow.data.errors import CsvFormatError, DatasetArgumentError
from layerflow.data.files import list_files

BLOCK_BYTES = 1 << 20

#: the type names ``column_types`` accepts, and the numpy dtype each gives
TYPE_NAMES: dict[str, str] = {
    "float": "float32",
    "float32": "float32",
    "double": "float64",
    "float64": "float64",
    "int": "int64",
    "int64": "int64",
    "int32": "int32",
    "bool": "bool",
    "string": "string",
    "str": "string",
    "category": "string",
}

_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\S+): invalid value '(.*)'", re.DOTALL
)


def open_text(path: str):
    """A text stream over a file, decompressed when it ends in ``.gz`` or ``.bz2``."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    if path.endswith(".bz2"):
        return bz2.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def _numpy_type(name: str, type_name: Any) -> str:
    key = str(type_name).lower()
    if key not in TYPE_NAMES:
        raise DatasetArgumentError(
            f"column_types[{name!r}] = {type_name!r} is not a known type; "
            f"expected one of {', '.join(sorted(TYPE_NAMES))}."
        )
    return TYPE_NAMES[key]


def _arrow_type(numpy_type: str):
    import pyarrow as pa

    return pa.string() if numpy_type == "string" else pa.from_numpy_dtype(np.dtype(numpy_type))


def record_batch_to_chunk(batch, explicit: Mapping[str, str] | None = None) -> Chunk:
    """Arrow columns -> numpy.

    Columns typed in ``explicit`` (name -> numpy dtype name or "string") keep that dtype;
    inferred ones become float32 (floats), int64 (ints; float32 with NaN where missing),
    bool, or object arrays of str (None where missing).
    """
    import pyarrow as pa

    explicit = explicit or {}
    chunk: Chunk = {}
    for name, column in zip(batch.schema.names, batch.columns):
        kind, wanted = column.type, explicit.get(name)
        if wanted is not None and wanted != "string":
            values = column.to_numpy(zero_copy_only=False).astype(wanted, copy=False)
        elif pa.types.is_floating(kind):
            values = column.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        elif pa.types.is_integer(kind):
            values = (
                column.to_numpy(zero_copy_only=False).astype(np.float32)
                if column.null_count
                else column.to_numpy().astype(np.int64, copy=False)
            )
        elif pa.types.is_boolean(kind):
            values = column.to_numpy(zero_copy_only=False)
        elif pa.types.is_null(kind):
            values = (
                np.full(len(column), np.nan, dtype=np.float32)
                if wanted is None
                else np.full(len(column), None, dtype=object)
            )
        else:
            values = column.cast(pa.string()).to_numpy(zero_copy_only=False)
        chunk[name] = values
    return chunk


@dataclass
class CsvOptions:
    """What ``csv_dataset`` was asked for, resolved once."""

    delimiter: str
    header: bool
    column_names: list[str] | None
    explicit: dict[str, str]  # column -> numpy dtype name or "string"
    select_columns: list[str]
    na_values: list[str]
    block_bytes: int
    skip_malformed: bool
    non_null: set[str] = field(default_factory=set)  # explicit int/bool columns: a missing value is bad

    def read_options(self, use_threads: bool = True):
        import pyarrow.csv as pcsv

        return pcsv.ReadOptions(
            block_size=self.block_bytes,
            column_names=self.column_names,
            use_threads=use_threads,
            skip_rows=1 if self.header and self.column_names else 0,
        )

    def convert_options(self, types: Mapping[str, Any] | None = None):
        import pyarrow.csv as pcsv

        if types is None:
            types = {name: _arrow_type(t) for name, t in self.explicit.items()}
        return pcsv.ConvertOptions(
            column_types=dict(types),
            include_columns=self.select_columns,
            null_values=self.na_values,
            strings_can_be_null=True,
        )


class _BadValue(CsvFormatError):
    """A value not of its column's type (internal: becomes a located CsvFormatError or a skipped row)."""

    def __init__(self, column: str, value: str | None, type_name: str):
        super().__init__(column)
        self.column, self.value, self.type_name = column, value, type_name


def _first_record(path: str, delimiter: str) -> list[str] | None:
    with open_text(path) as stream:
        return next(csv.reader(stream, delimiter=delimiter), None)


def _records(path: str, options: CsvOptions) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each data record, as pyarrow sees them (empty lines skipped)."""
    with open_text(path) as stream:
        reader = csv.reader(stream, delimiter=options.delimiter)
        previous_end = 0
        for index, record in enumerate(reader):
            start, previous_end = previous_end + 1, reader.line_num
            if index == 0 and options.header:
                continue
            if record:
                yield start, record


def _locate(path: str, options: CsvOptions, names: list[str], bad: _BadValue) -> str:
    """``line N`` of the first record whose ``bad.column`` holds ``bad.value`` (None: a missing value)."""
    column_index = names.index(bad.column) if bad.column in names else None
    if column_index is None:
        return "a line"
    for line, record in _records(path, options):
        if len(record) != len(names):
            continue
        value = record[column_index]
        if (value in options.na_values) if bad.value is None else (value == bad.value):
            return f"line {line}"
    return "a line"


def _check_missing(batch, options: CsvOptions) -> None:
    for name in options.non_null:
        if name in batch.schema.names and batch.column(name).null_count:
            raise _BadValue(name, None, options.explicit[name])


def _valid_mask(column, target, allow_null: bool) -> np.ndarray:
    """Which values of a string column convert to ``target`` (bisecting: vectorised casts only)."""
    import pyarrow.compute as pc

    mask = np.ones(len(column), dtype=bool)
    if not allow_null:
        mask &= ~column.is_null().to_numpy(zero_copy_only=False)

    def check(start: int, stop: int) -> None:
        part = column.slice(start, stop - start)
        try:
            pc.cast(part, target)
            return
        except (ValueError, TypeError, NotImplementedError):  # ArrowInvalid is a ValueError
            pass
        if stop - start == 1:
            mask[start] = False
            return
        middle = (start + stop) // 2
        check(start, middle)
        check(middle, stop)

    if len(column):
        check(0, len(column))
    return mask


def _inferred_type(column):
    import pyarrow as pa
    import pyarrow.compute as pc

    for candidate in (pa.int64(), pa.float64(), pa.bool_()):
        try:
            pc.cast(column, candidate)
            return candidate
        except (ValueError, TypeError, NotImplementedError):
            continue
    return pa.string()


def _careful_chunks(
    path: str, options: CsvOptions, known_schema, skip_rows: int, counts: dict[str, int]
) -> Iterator[Any]:
    """Re-reads ``path`` with every column as text, dropping (and counting) rows that do not convert."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    first = _first_record(path, options.delimiter) or []
    names = options.column_names or first
    as_text = {name: pa.string() for name in names}

    def on_invalid(row):
        counts["malformed"] += 1
        return "skip"

    reader = pcsv.open_csv(
        path,
        read_options=options.read_options(),
        parse_options=pcsv.ParseOptions(delimiter=options.delimiter, invalid_row_handler=on_invalid),
        convert_options=options.convert_options(as_text),
    )
    targets: dict[str, Any] = {}
    for batch in reader:
        if not batch.num_rows:
            continue
        keep = np.ones(batch.num_rows, dtype=bool)
        for name, column in zip(batch.schema.names, batch.columns):
            if name not in targets:
                if name in options.explicit:
                    targets[name] = _arrow_type(options.explicit[name])
                elif known_schema is not None and name in known_schema.names:
                    targets[name] = known_schema.field(name).type
                else:
                    targets[name] = _inferred_type(column)
            if not pa.types.is_string(targets[name]):
                keep &= _valid_mask(column, targets[name], allow_null=name not in options.non_null)
        counts["bad_values"] += int((~keep).sum())
        batch = batch.filter(pa.array(keep))
        if skip_rows:
            dropped = min(skip_rows, batch.num_rows)
            batch, skip_rows = batch.slice(dropped), skip_rows - dropped
        if batch.num_rows:
            converted = pa.RecordBatch.from_arrays(
                [column.cast(targets[name]) for name, column in zip(batch.schema.names, batch.columns)],
                names=batch.schema.names,
            )
            yield converted


def read_csv_file(path: str, options: CsvOptions, stats: dict[str, int]) -> Iterator[Any]:
    """The Arrow record batches of one CSV file; bad rows raise ``CsvFormatError`` naming the line, or are
    skipped and counted."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if os.path.getsize(path) == 0:
        warnings.warn(f"{path} is empty and was skipped.", stacklevel=4)
        stats["empty_files"] = stats.get("empty_files", 0) + 1
        return
    _check_header(path, options)
    malformed: list[tuple[int | None, str]] = []
    skipped = [0]

    def on_invalid(row):
        if options.skip_malformed:
            skipped[0] += 1
            return "skip"
        malformed.append((row.number, row.text))
        return "error"

    parse = pcsv.ParseOptions(delimiter=options.delimiter, invalid_row_handler=on_invalid)
    rows_done, schema = 0, None
    try:
        reader = pcsv.open_csv(
            path, read_options=options.read_options(), parse_options=parse, convert_options=options.convert_options()
        )
        schema = reader.schema
        for batch in reader:
            if batch.num_rows:
                _check_missing(batch, options)
                yield batch
                rows_done += batch.num_rows
    except (pa.ArrowInvalid, _BadValue) as error:
        bad = error if isinstance(error, _BadValue) else _conversion_error(str(error), path, options)
        if malformed:
            number, text = malformed[0]
            raise CsvFormatError(
                f"{path}, {_malformed_line(path, options, number, text)}: malformed row "
                f"{text[:200]!r} ({error}). Fix the row, or pass skip_malformed=True to skip and "
                "count such rows."
            ) from None
        if bad is None:
            message = str(error)
            if "Empty CSV file" in message:
                warnings.warn(f"{path} holds no header line and was skipped.", stacklevel=4)
                return
            raise CsvFormatError(f"{path}: {message}") from None
        if not options.skip_malformed:
            where = _locate(path, options, _file_columns(path, options), bad)
            what = "a missing value" if bad.value is None else f"value {bad.value!r}"
            raise CsvFormatError(
                f"{path}, {where}, column {bad.column!r}: {what} is not a valid {bad.type_name}. Fix the value, "
                "give the column another type in column_types, or pass skip_malformed=True to skip and count "
                "such rows."
            ) from None
        skipped[0] = 0  # the careful pass counts every skipped row of the file again
        counts = {"malformed": 0, "bad_values": 0}
        try:
            yield from _careful_chunks(path, options, schema, rows_done, counts)
        finally:
            stats["malformed_rows_skipped"] = stats.get("malformed_rows_skipped", 0) + sum(counts.values())
            stats["bad_values_skipped"] = stats.get("bad_values_skipped", 0) + counts["bad_values"]
    finally:
        stats["malformed_rows_skipped"] = stats.get("malformed_rows_skipped", 0) + skipped[0]


def _file_columns(path: str, options: CsvOptions) -> list[str]:
    """All the file's column names, in file order (how pyarrow numbers columns in its errors)."""
    return list(options.column_names or _first_record(path, options.delimiter) or [])


def _conversion_error(message: str, path: str, options: CsvOptions) -> _BadValue | None:
    match = _CONVERSION.search(message)
    if not match:
        return None
    index, type_name, value = int(match.group(1)), match.group(2), match.group(3)
    names = _file_columns(path, options)
    column = names[index] if index < len(names) else f"#{index}"
    return _BadValue(column, value, options.explicit.get(column, type_name))


def _malformed_line(path: str, options: CsvOptions, number: int | None, text: str) -> str:
    # pyarrow knows the row number only when parsing on one thread; else look the text up
    if number is not None and number >= 0:
        return f"line {number + (1 if options.header else 0)}"
    with open_text(path) as stream:
        for line_number, line in enumerate(stream, start=1):
            if line.rstrip("\r\n") == text:
                return f"line {line_number}"
    return "a line"


def _check_header(path: str, options: CsvOptions) -> None:
    if not options.column_names:
        return
    first = _first_record(path, options.delimiter)
    if first is None:
        return
    if not options.header and [f.strip() for f in first] == options.column_names:
        raise CsvFormatError(
            f"{path}, line 1: header=False, but the first line names the columns "
            f"{first}; pass header=True (the names given then replace the file's)."
        )
    if options.header and len(first) != len(options.column_names):
        raise CsvFormatError(
            f"{path}, line 1: the header has {len(first)} columns {first}, but column_names "
            f"gives {len(options.column_names)}: {options.column_names}."
        )


class CsvDataset(Dataset):
    """A dataset streamed from CSV files; ``stats`` counts skipped rows and empty files."""

    def __init__(self, files: list[str], options: CsvOptions, columns: list[str] | None):
        self.files = files
        self.stats: dict[str, int] = {"malformed_rows_skipped": 0, "bad_values_skipped": 0, "empty_files": 0}

        def record_batches():
            self.stats.update(malformed_rows_skipped=0, bad_values_skipped=0, empty_files=0)
            for path in files:
                yield from read_csv_file(path, options, self.stats)

        def convert(batch) -> Chunk:
            return record_batch_to_chunk(batch, options.explicit)

        super().__init__(lambda: map(convert, record_batches()), ROWS, columns)
        self._arrow = ArrowBatches(record_batches, convert)


def csv_dataset(
    file_pattern: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
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
    """Streams rows from CSV files, plain or compressed (``.gz``, ``.bz2``), in bounded memory.

    Args:
        file_pattern: a path, a glob pattern (``"data/*.csv"``) or a list of them.
        batch_size: batch the rows (dicts of arrays of this many rows); None keeps rows.
        column_names: names for the columns. With ``header=True`` (the default) they replace the
            names in each file's first line; with ``header=False`` they name a file that has none.
        column_types: explicit types by column, each giving that numpy dtype: ``float``/``float32``
            (float32), ``double``/``float64`` (float64), ``int``/``int64`` (int64), ``int32``, ``bool``,
            ``string``/``str``/``category`` (str objects). Other columns are inferred: floats as
            float32, integers as int64 (float32 with NaN when a value is missing). A missing value in
            an explicit int or bool column is a bad value.
        select_columns: read only these columns.
        na_values: strings read as missing (NaN for numbers, None for strings).
        header: whether the first line of each file names the columns. With ``header=False`` a
            first line equal to ``column_names`` is an error, never a row of data.
        delimiter: the field separator.
        skip_malformed: skip rows with the wrong number of fields or a value not of its column's
            type, counting them in ``.stats["malformed_rows_skipped"]`` (bad values also in
            ``.stats["bad_values_skipped"]``), instead of failing with the file, line and column.
        block_bytes: bytes parsed at a time.

    Returns:
        A dataset of rows (or batches with ``batch_size``); it has a ``.stats`` dict when unbatched.

    Example:
        >>> ds = lf.data.csv_dataset("big.csv.gz", batch_size=4096,
        ...                          column_types={"a": "double", "n": "int32", "city": "string"})
    """
    files = list_files(file_pattern)
    if not isinstance(header, bool):
        raise DatasetArgumentError(f"header={header!r} must be True or False.")
    if not header and not column_names:
        raise DatasetArgumentError("header=False needs column_names=[...] to name the columns.")
    explicit = {name: _numpy_type(name, t) for name, t in (column_types or {}).items()}
    options = CsvOptions(
        delimiter=delimiter,
        header=header,
        column_names=list(column_names) if column_names else None,
        explicit=explicit,
        select_columns=list(select_columns or []),
        na_values=list(na_values),
        block_bytes=int(block_bytes),
        skip_malformed=bool(skip_malformed),
        non_null={n for n, t in explicit.items() if t.startswith("int") or t == "bool"},
    )
    columns = list(select_columns) if select_columns else (list(column_names) if column_names else None)
    dataset: Dataset = CsvDataset(files, options, columns)
    return dataset.batch(batch_size) if batch_size else dataset


__all__ = ["BLOCK_BYTES", "CsvDataset", "TYPE_NAMES", "csv_dataset", "open_text", "record_batch_to_chunk"]
