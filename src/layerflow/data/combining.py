"""Dataset operations that combine, number, split, window, pad or fold elements (tf.data's set).

A mixin of ``Dataset``: each method returns a new dataset (``reduce`` a value) and streams,
holding at most a block of rows at a time, except ``unique`` (which remembers the distinct
rows it has seen).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from layerflow.data.arguments import positive_int
from layerflow.data.chunks import (
    BATCHES,
    PREPARED,
    ROWS,
    Chunk,
    chunk_length,
    concat_chunks,
    rows_of,
    slice_chunk,
    take_rows,
)
from layerflow.data.errors import DatasetArgumentError, DatasetColumnError, DatasetKindError

if TYPE_CHECKING:
    from layerflow.data.dataset import Dataset


def _check_dataset(value: Any, operation: str) -> CombiningOps:
    # Every Dataset is a CombiningOps (this mixin is its base), so the check needs no import of dataset.py.
    if not isinstance(value, CombiningOps):
        raise DatasetArgumentError(f"{operation}() takes lf.data datasets; got {type(value).__name__}.")
    return value


def _merge_columns(parts: Sequence[Chunk]) -> Chunk:
    merged: Chunk = {}
    for part in parts:
        for name, values in part.items():
            if name in merged:
                raise DatasetArgumentError(
                    f"zip(): column {name!r} is in more than one dataset; rename it first "
                    "(e.g. with map) so that every column has one source."
                )
            merged[name] = values
    return merged


def _aligned_row_blocks(iterators: list[Iterator[Chunk]]) -> Iterator[list[Chunk]]:
    """Blocks of equally many rows, one from each iterator, until the shortest ends."""
    pending: list[Chunk | None] = [None] * len(iterators)
    offsets = [0] * len(iterators)
    while True:
        ready: list[Chunk] = []
        for i, iterator in enumerate(iterators):
            chunk = pending[i]
            while chunk is None or offsets[i] >= chunk_length(chunk):
                chunk = pending[i] = next(iterator, None)
                offsets[i] = 0
                if chunk is None:
                    return
            ready.append(chunk)
        n = min(chunk_length(chunk) - offset for chunk, offset in zip(ready, offsets))
        yield [slice_chunk(chunk, offset, offset + n) for chunk, offset in zip(ready, offsets)]
        offsets = [offset + n for offset in offsets]


def _pad_column(values: np.ndarray, name: str, length: int | None, padding: Any) -> np.ndarray:
    items = [np.asarray(v) for v in values]
    longest = max((len(v) for v in items), default=0)
    target = longest if length is None else length
    if longest > target:
        raise DatasetArgumentError(
            f"padded_batch(): a value of column {name!r} has {longest} elements, more than "
            f"its padded_shapes length {target}."
        )
    dtype = np.result_type(*[v.dtype for v in items if v.size]) if any(v.size for v in items) else np.float32
    inner = next((v.shape[1:] for v in items if v.size), ())
    out = np.full((len(items), target, *inner), padding, dtype=dtype)
    for row, value in enumerate(items):
        out[row, : len(value)] = value
    return out


def _is_ragged(values: np.ndarray) -> bool:
    return values.dtype == object and len(values) > 0 and all(isinstance(v, (list, tuple, np.ndarray)) for v in values)


class CombiningOps:
    """concatenate, zip, enumerate, shard, window, padded_batch, unique, take_while, reduce."""

    kind: str
    _length: int | None
    _columns: list[str] | None

    if TYPE_CHECKING:

        def chunks(self) -> Iterator[Any]: ...
        def _derive(self, make_chunks, kind=None, columns=None, length=None) -> Dataset: ...
        def batch(self, batch_size: int, drop_remainder: bool = False) -> Dataset: ...

    def concatenate(self, other: Dataset) -> Dataset:
        """The elements of this dataset, then those of ``other`` (same kind and columns).

        Args:
            other: a dataset of the same kind (rows, batches or prepared pairs).

        Returns:
            A dataset whose length is the sum of both, when both are known.

        Example:
            >>> ds = lf.data.range_dataset(3).concatenate(lf.data.range_dataset(10, 12))
            >>> ds.to_frame()["value"].tolist()
            [0, 1, 2, 10, 11]
        """
        _check_dataset(other, "concatenate")
        if other.kind != self.kind:
            raise DatasetKindError(
                f"concatenate(): this dataset holds {self.kind}, the other {other.kind}; "
                "batch or unbatch one of them first."
            )
        first = self

        def make():
            names = None
            for source in (first, other):
                for chunk in source.chunks():
                    if isinstance(chunk, dict):
                        if names is None:
                            names = set(chunk)
                        elif set(chunk) != names:
                            raise DatasetArgumentError(
                                f"concatenate(): columns {sorted(chunk)} differ from the "
                                f"first dataset's {sorted(names)}."
                            )
                    yield chunk

        length = None if self._length is None or other._length is None else self._length + other._length
        return self._derive(make, length=length)

    def zip(self, *others: Dataset) -> Dataset:
        """Pairs this dataset's elements with those of ``others``, stopping at the shortest.

        Rows (or batches) are joined column-wise into one dict (a column name may come from only
        one dataset); prepared datasets give tuples of their elements.

        Args:
            *others: datasets of the same kind.

        Returns:
            A dataset as long as the shortest input (when their lengths are known).

        Example:
            >>> a = lf.data.from_arrays({"x": [1, 2, 3]})
            >>> b = lf.data.from_arrays({"y": [10, 20]})
            >>> a.zip(b).to_frame().values.tolist()
            [[1, 10], [2, 20]]
        """
        sources = [self, *(_check_dataset(o, "zip") for o in others)]
        if not others:
            raise DatasetArgumentError("zip() needs at least one other dataset.")
        kinds = {s.kind for s in sources}
        if len(kinds) > 1:
            raise DatasetKindError(
                f"zip(): the datasets hold different kinds of elements ({sorted(kinds)}); batch them all or none."
            )
        kind = self.kind

        def make():
            iterators = [s.chunks() for s in sources]
            if kind == ROWS:
                for parts in _aligned_row_blocks(iterators):
                    yield _merge_columns(parts)
                return
            for elements in zip(*iterators):
                if kind == PREPARED:
                    yield tuple(elements)
                    continue
                sizes = {chunk_length(e) for e in elements}
                if len(sizes) > 1:
                    raise DatasetArgumentError(
                        f"zip(): batches of different sizes {sorted(sizes)}; zip the rows and batch afterwards."
                    )
                yield _merge_columns(elements)

        lengths = [s._length for s in sources]
        known = [n for n in lengths if n is not None]
        columns: list[str] | None = None
        if all(s._columns for s in sources):
            columns = [c for s in sources for c in (s._columns or [])]
        return self._derive(make, columns=columns, length=min(known) if len(known) == len(lengths) else None)

    def enumerate(self, start: int = 0, name: str = "index") -> Dataset:
        """Adds a column ``name`` holding each row's position in the stream (from ``start``).

        On a batched dataset the column is added to each batch (still one number per row).

        Example:
            >>> lf.data.from_arrays({"x": [5, 6, 7]}).enumerate(start=1).to_frame()["index"].tolist()
            [1, 2, 3]
        """
        if self.kind == PREPARED:
            raise DatasetKindError("enumerate() numbers rows; call it before prepare().")
        if not isinstance(start, (int, np.integer)) or isinstance(start, bool):
            raise DatasetArgumentError(f"start={start!r} must be an integer.")
        source = self

        def make():
            position = int(start)
            for chunk in source.chunks():
                if name in chunk:
                    raise DatasetArgumentError(f"enumerate(): the data already has a column {name!r}; pass name=.")
                n = chunk_length(chunk)
                yield {**chunk, name: np.arange(position, position + n, dtype=np.int64)}
                position += n

        columns = [*self._columns, name] if self._columns else None
        return self._derive(make, columns=columns, length=self._length)

    def shard(self, num_shards: int, index: int) -> Dataset:
        """Every ``num_shards``-th element starting at ``index`` (one worker's share, as tf.data's shard).

        Args:
            num_shards: how many shards the data is split into (>= 1).
            index: which shard this is, in ``[0, num_shards)``.

        Example:
            >>> lf.data.range_dataset(10).shard(3, 1).to_frame()["value"].tolist()
            [1, 4, 7]
        """
        num_shards = positive_int("num_shards", num_shards)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < num_shards:
            raise DatasetArgumentError(f"index={index!r} must be an integer in [0, {num_shards}).")
        source, kind = self, self.kind

        def make():
            position = 0
            for chunk in source.chunks():
                if kind == ROWS:
                    n = chunk_length(chunk)
                    keep = (np.arange(position, position + n) % num_shards) == index
                    position += n
                    if keep.any():
                        yield take_rows(chunk, keep)
                else:
                    if position % num_shards == index:
                        yield chunk
                    position += 1

        length = None if self._length is None else len(range(index, self._length, num_shards))
        return self._derive(make, length=length)

    def window(self, size: int, shift: int | None = None, stride: int = 1, drop_remainder: bool = True) -> Dataset:
        """Rows of windows: each output row holds ``size`` consecutive values of every column.

        Windows start every ``shift`` rows (default ``size``: no overlap) and take every
        ``stride``-th row. Columns of the result are 2-D (rows, size). A final window shorter
        than ``size`` is dropped unless ``drop_remainder=False`` (then those rows hold shorter
        arrays, which ``padded_batch`` pads).

        Example:
            >>> [r["value"].tolist() for r in lf.data.range_dataset(6).window(3, shift=2)]
            [[0, 1, 2], [2, 3, 4]]
        """
        size = positive_int("size", size)
        shift = size if shift is None else positive_int("shift", shift)
        stride = positive_int("stride", stride)
        if self.kind != ROWS:
            raise DatasetKindError("window() groups rows; call it before batch().")
        span = (size - 1) * stride + 1
        source = self

        def windows(block: Chunk, starts: np.ndarray) -> Chunk:
            picks = starts[:, None] + np.arange(0, span, stride)[None, :]
            return {name: values[picks] for name, values in block.items()}

        def make():
            buffer: Chunk | None = None
            buffer_start = next_start = 0  # stream positions of the buffer's first row, of the next window
            for chunk in source.chunks():
                buffer = chunk if buffer is None else concat_chunks([buffer, chunk])
                end = buffer_start + chunk_length(buffer)
                last = end - span  # the last position a full window may start at
                if last >= next_start:
                    starts = np.arange(next_start, last + 1, shift)
                    yield windows(buffer, starts - buffer_start)
                    next_start = int(starts[-1]) + shift
                keep_from = min(next_start, end) - buffer_start
                buffer = slice_chunk(buffer, keep_from)
                buffer_start += keep_from
            if buffer is None or drop_remainder:
                return
            rows = chunk_length(buffer)
            partial = []
            for start in range(next_start - buffer_start, rows, shift):
                partial.append({name: values[start:rows:stride][:size] for name, values in buffer.items()})
            if partial:
                yield {name: _object_array([p[name] for p in partial]) for name in buffer}

        length = None
        if self._length is not None:
            full = max(0, (self._length - span) // shift + 1) if self._length >= span else 0
            length = full if drop_remainder else -(-self._length // shift)
        return self._derive(make, length=length)

    def padded_batch(
        self,
        batch_size: int,
        padded_shapes: Mapping[str, int] | None = None,
        padding_values: Any = 0,
        drop_remainder: bool = False,
    ) -> Dataset:
        """Batches rows whose columns hold sequences of different lengths, padding them.

        Args:
            batch_size: rows per batch.
            padded_shapes: a length per column to pad to; other ragged columns are padded to
                the longest value in each batch.
            padding_values: the fill value, one for all columns or a dict by column.
            drop_remainder: drop a last, smaller batch.

        Example:
            >>> ds = lf.data.from_arrays({"seq": lf.data.ragged([[1], [2, 3], [4, 5, 6]])})
            >>> next(iter(ds.padded_batch(3)))["seq"].tolist()
            [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
        """
        shapes = dict(padded_shapes or {})
        for name, length in shapes.items():
            if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
                raise DatasetArgumentError(f"padded_shapes[{name!r}]={length!r} must be a non-negative integer.")

        def pad(batch: Chunk) -> Chunk:
            out = dict(batch)
            for name, values in batch.items():
                if name in shapes or _is_ragged(values):
                    fill = padding_values.get(name, 0) if isinstance(padding_values, Mapping) else padding_values
                    out[name] = _pad_column(values, name, shapes.get(name), fill)
            return out

        batched = self.batch(batch_size, drop_remainder)
        return batched._derive(lambda: (pad(b) for b in batched.chunks()), length=batched._length)

    def unique(self, columns: Sequence[str] | None = None) -> Dataset:
        """Keeps the first occurrence of each distinct row (over ``columns``, default all).

        Memory grows with the number of distinct rows, which are remembered.

        Example:
            >>> lf.data.from_arrays({"x": [3, 1, 3, 2, 1]}).unique().to_frame()["x"].tolist()
            [3, 1, 2]
        """
        if self.kind != ROWS:
            raise DatasetKindError("unique() compares rows; call it before batch().")
        source = self
        keys = list(columns) if columns is not None else None

        def make():
            seen: set = set()
            for chunk in source.chunks():
                names = keys if keys is not None else list(chunk)
                missing = [n for n in names if n not in chunk]
                if missing:
                    raise DatasetColumnError(
                        f"unique(): columns {missing} are not in the data; it has {sorted(chunk)}."
                    )
                keep = np.zeros(chunk_length(chunk), dtype=bool)
                for i, key in enumerate(zip(*(_hashable(chunk[n]) for n in names))):
                    if key not in seen:
                        seen.add(key)
                        keep[i] = True
                if keep.any():
                    yield take_rows(chunk, keep)

        return self._derive(make)

    def take_while(self, predicate: Callable[[Any], Any]) -> Dataset:
        """The elements up to (not including) the first for which ``predicate`` is false.

        Example:
            >>> lf.data.range_dataset(10).take_while(lambda r: r["value"] < 3).to_frame()["value"].tolist()
            [0, 1, 2]
        """
        if not callable(predicate):
            raise DatasetArgumentError(f"take_while() takes a function; got {type(predicate).__name__}.")
        source, kind = self, self.kind

        def make():
            for chunk in source.chunks():
                if kind != ROWS:
                    if not predicate(chunk):
                        return
                    yield chunk
                    continue
                for i, row in enumerate(rows_of(chunk)):
                    if not predicate(row):
                        if i:
                            yield slice_chunk(chunk, 0, i)
                        return
                yield chunk

        return self._derive(make)

    def reduce(self, initial: Any, fn: Callable[[Any, Any], Any]) -> Any:
        """Folds every element into one value: ``state = fn(state, element)``, starting at ``initial``.

        Reads the whole dataset (rows one by one: reduce batches for speed).

        Example:
            >>> lf.data.range_dataset(5).batch(2).reduce(0, lambda total, b: total + int(b["value"].sum()))
            10
        """
        if not callable(fn):
            raise DatasetArgumentError(f"reduce() takes a function of (state, element); got {type(fn).__name__}.")
        state = initial
        for element in self:  # type: ignore[attr-defined]
            state = fn(state, element)
        return state


def _hashable(values: np.ndarray) -> Iterator[Any]:
    if values.ndim > 1 or values.dtype == object:
        return (v.tobytes() if isinstance(v, np.ndarray) else v for v in values)
    return iter(values.tolist())


def _object_array(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


__all__ = ["CombiningOps", "BATCHES"]
