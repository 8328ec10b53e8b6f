"""A lazy, streaming dataset: a pipeline of transformations over blocks of columns.

Data flows as *chunks*: dicts of equal-length numpy arrays, one per column. Before
``batch()`` the elements of a dataset are rows and chunks are arbitrary blocks of them
(as the reader produced them); after ``batch()`` every chunk is one batch; after
``prepare()`` every element is a ``(features, label)`` pair ready for Keras. Nothing is
read until the dataset is iterated, and each iteration (each Keras epoch) starts afresh.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from layerflow.data.arguments import non_negative_int, positive_int
from layerflow.data.arrow_batches import ArrowBatches, rebatch
from layerflow.data.caching import FileCache, MemoryCache
from layerflow.data.chunks import (
    BATCHES,
    PREPARED,
    ROWS,
    Chunk,
    chunk_length,
    chunk_of_rows,
    concat_chunks,
    rows_of,
    slice_chunk,
)
from layerflow.data.combining import CombiningOps
from layerflow.data.errors import DatasetArgumentError, DatasetColumnError, DatasetKindError, UnknownLengthError
from layerflow.data.keras_feeding import KerasFeeding


class Dataset(CombiningOps, KerasFeeding):
    """A streamed dataset; build one with ``lf.data.csv_dataset``, ``from_frame``, ...

    Transformations return new datasets and read nothing. A dataset is accepted by
    Keras ``fit``/``evaluate``/``predict`` once its elements are ``(features, label)``
    pairs (``prepare()``) or feature batches.

    Example:
        >>> ds = lf.data.csv_dataset("data/*.csv").shuffle(10_000, seed=1).batch(256)
        >>> model.fit(ds.prepare(y="label"), epochs=5)
    """

    def __init__(
        self,
        make_chunks: Callable[[], Iterable[Any]],
        kind: str = ROWS,
        columns: list[str] | None = None,
        length: int | None = None,
    ):
        self._make_chunks = make_chunks
        self.kind = kind
        self._columns = columns
        self._length = length
        # set by sources that read Arrow (CSV), kept by batch/prefetch/cache: see arrow_batches()
        self._arrow: ArrowBatches | None = None

    def __bool__(self) -> bool:
        return True  # a dataset is truthy even when its length is unknown (or 0), as any object

    def __len__(self) -> int:
        """The number of elements (rows, or batches after ``batch()``) when known without reading.

        Known for ``from_arrays``, ``from_frame``, ``range_dataset`` and what is derived from them
        by ``map``, ``batch``, ``take``, ``skip``, ``repeat(n)``, ``shuffle``, ``concatenate``, ``zip``,
        ``shard``, ``window``...; unknown for files (CSV, text, Parquet), ``filter``, ``unique``,
        ``take_while`` and ``repeat()`` forever, where it raises ``UnknownLengthError`` (a TypeError).

        Example:
            >>> len(lf.data.range_dataset(10).batch(4))
            3
        """
        if self._length is None:
            raise UnknownLengthError(
                "The length of this dataset is not known without reading it (it comes from files, a filter, "
                "unique(), take_while() or an endless repeat()); count it with ds.reduce(0, lambda n, _: n + 1) "
                "after batch(), or sum(1 for _ in ds)."
            )
        return self._length

    @property
    def known_length(self) -> int | None:
        """The number of elements when known without reading (as ``len()`` gives it), else None.

        Example:
            >>> lf.data.range_dataset(10).batch(4).known_length
            3
        """
        return self._length

    def arrow_batches(self) -> ArrowBatches | None:
        """The Arrow record batches behind this dataset's elements, or None when it has none.

        A dataset read from Arrow (``csv_dataset``) has them, and keeps them through ``batch``,
        ``prefetch`` and ``cache``; any other transformation (``map``, ``filter``, ``shuffle``...)
        and every other source give None, and then only ``chunks()`` holds the data. This is the
        interface between ``lf.data`` and ``lf.feature_spec`` (which encodes these batches with
        pyarrow kernels, no Python string per row); ``ArrowBatches`` states its contract.

        Returns:
            An ``ArrowBatches`` whose record batch *i* is this dataset's chunk *i*, or None.

        Example:
            >>> arrow = lf.data.csv_dataset("data.csv").batch(256).arrow_batches()
            >>> next(arrow.record_batches()).num_rows
            256
        """
        return self._arrow

    # -- reading -------------------------------------------------------------------------
    def chunks(self) -> Iterator[Any]:
        """Iterates the raw chunks (blocks of rows, batches, or (x, y) pairs)."""
        return iter(self._make_chunks())

    def __iter__(self) -> Iterator[Any]:
        """Rows (dicts) before ``batch()``, batches after it, (x, y) pairs after ``prepare()``."""
        if self.kind == ROWS:
            return (row for chunk in self.chunks() for row in rows_of(chunk))
        return self.chunks()

    @property
    def columns(self) -> list[str]:
        """Column names (read from the first chunk when the source did not declare them)."""
        if self._columns is None:
            first = next(self.chunks(), None)
            self._columns = list(first) if isinstance(first, dict) else []
        return list(self._columns)

    def _derive(
        self,
        make_chunks: Callable[[], Iterable[Any]],
        kind: str | None = None,
        columns: list[str] | None = None,
        length: int | None = None,
    ) -> Dataset:
        """A dataset made from this one; ``length`` None means unknown (never inherited silently)."""
        return Dataset(make_chunks, kind or self.kind, columns if columns is not None else self._columns, length)

    def to_frame(self, max_rows: int | None = None):
        """Reads the rows (or batches, concatenated) into a pandas DataFrame."""
        import pandas as pd

        if self.kind == PREPARED:
            raise DatasetKindError("to_frame() reads rows or batches; call it before prepare().")
        taken, total = [], 0
        for chunk in self.chunks():
            taken.append(chunk)
            total += chunk_length(chunk)
            if max_rows is not None and total >= max_rows:
                break
        if not taken:
            return pd.DataFrame(columns=self._columns or [])
        columns = concat_chunks(taken)
        frame = {k: (list(v) if v.ndim > 1 else v) for k, v in columns.items()}
        return pd.DataFrame(frame).head(max_rows) if max_rows is not None else pd.DataFrame(frame)

    # -- transformations -------------------------------------------------------------------
    def map(self, fn: Callable[[Any], Any], num_parallel_calls: int = 1) -> Dataset:
        """Applies ``fn`` to every element (a row dict, a batch dict, or an (x, y) pair).

        On rows this calls Python once per row: map after ``batch()`` for speed.
        ``num_parallel_calls`` > 1 runs ``fn`` on that many threads, keeping the order.
        """
        if not isinstance(num_parallel_calls, int) or num_parallel_calls < 1:
            raise DatasetArgumentError(f"num_parallel_calls={num_parallel_calls!r} must be at least 1.")
        source, kind = self, self.kind

        def apply(chunk):
            if kind == ROWS:
                rows = [fn(row) for row in rows_of(chunk)]
                return chunk_of_rows(rows) if rows else chunk
            return fn(chunk)

        def make():
            if num_parallel_calls == 1:
                return (apply(chunk) for chunk in source.chunks())
            return _ordered_parallel_map(apply, source.chunks(), num_parallel_calls)

        # fn may change the columns: they are read from the first chunk
        return Dataset(make, self.kind, None, self._length)

    def filter(self, predicate: Callable[[Any], Any]) -> Dataset:
        """Keeps the elements for which ``predicate(element)`` is true (a row, or a whole batch)."""
        source, kind = self, self.kind

        def make():
            for chunk in source.chunks():
                if kind == ROWS:
                    mask = np.fromiter((bool(predicate(row)) for row in rows_of(chunk)), bool, chunk_length(chunk))
                    if mask.any():
                        yield {k: v[mask] for k, v in chunk.items()}
                elif predicate(chunk):
                    yield chunk

        return self._derive(make)

    def batch(self, batch_size: int, drop_remainder: bool = False) -> Dataset:
        """Groups rows into batches of ``batch_size`` (dicts of arrays).

        A batch inside one block of rows is a view of it (no copy); a batch spanning blocks is
        copied once.

        Example:
            >>> [len(b["value"]) for b in lf.data.range_dataset(10).batch(4)]
            [4, 4, 2]
        """
        batch_size = positive_int("batch_size", batch_size)
        if self.kind != ROWS:
            raise DatasetKindError("batch() groups rows; this dataset is already batched.")
        source = self

        def make():
            return rebatch(
                source.chunks(), batch_size, drop_remainder, length=chunk_length, take=slice_chunk, concat=concat_chunks
            )

        length = None
        if self._length is not None:
            length = self._length // batch_size if drop_remainder else -(-self._length // batch_size)
        if self._arrow is not None:  # re-batch the Arrow record batches, convert each batch once
            arrow = self._arrow
            batches = ArrowBatches(lambda: rebatch(arrow.record_batches(), batch_size, drop_remainder), arrow.to_chunk)
            derived = self._derive(lambda: map(arrow.to_chunk, batches.record_batches()), kind=BATCHES, length=length)
            derived._arrow = batches
            return derived
        return self._derive(make, kind=BATCHES, length=length)

    def unbatch(self) -> Dataset:
        """Turns batches back into rows."""
        if self.kind != BATCHES:
            raise DatasetKindError("unbatch() needs a batched dataset (of dicts).")
        return self._derive(self.chunks, kind=ROWS)

    def shuffle(self, buffer_size: int, seed: int | None = None, reshuffle_each_iteration: bool = True) -> Dataset:
        """Shuffles elements through a buffer of ``buffer_size`` (seeded when ``seed`` is given).

        Each element leaving the buffer is drawn at random from the buffer and the newly
        read elements, as in tf.data; memory stays bounded by the buffer.
        """
        buffer_size = positive_int("buffer_size", buffer_size)
        source, kind = self, self.kind
        epoch = itertools.count()

        def make():
            offset = next(epoch) if reshuffle_each_iteration else 0
            rng = np.random.default_rng(None if seed is None else seed + offset)
            if kind != ROWS:
                yield from _shuffle_elements(source.chunks(), buffer_size, rng)
                return
            buffer: Chunk | None = None
            for chunk in source.chunks():
                block = chunk if buffer is None else concat_chunks([buffer, chunk])
                n = chunk_length(block)
                order = rng.permutation(n)
                if n > buffer_size:
                    out, keep = order[: n - buffer_size], order[n - buffer_size :]
                    yield {k: v[out] for k, v in block.items()}
                    buffer = {k: v[keep] for k, v in block.items()}
                else:
                    buffer = {k: v[order] for k, v in block.items()}
            if buffer is not None and chunk_length(buffer):
                order = rng.permutation(chunk_length(buffer))
                yield {k: v[order] for k, v in buffer.items()}

        return self._derive(make, length=self._length)

    def repeat(self, count: int | None = None) -> Dataset:
        """Repeats the dataset ``count`` times (forever when None)."""
        if count is not None:
            count = non_negative_int("count", count)
        source = self

        def make():
            passes = itertools.count() if count is None else range(count)
            for _ in passes:
                yield from source.chunks()

        known = count is not None and (self._length is not None or count == 0)
        return self._derive(make, length=(self._length or 0) * count if known and count is not None else None)

    def take(self, count: int) -> Dataset:
        """The first ``count`` elements (rows, or batches after ``batch()``)."""
        return self._window(count, take=True)

    def skip(self, count: int) -> Dataset:
        """All but the first ``count`` elements."""
        return self._window(count, take=False)

    def _window(self, count: int, take: bool) -> Dataset:
        count = non_negative_int("count", count)
        source, kind = self, self.kind

        def make():
            seen = 0
            if take and count == 0:
                return
            for chunk in source.chunks():
                size = chunk_length(chunk) if kind == ROWS else 1
                if take:
                    if seen + size > count:
                        chunk = slice_chunk(chunk, 0, count - seen)
                    seen += size
                    yield chunk
                    if seen >= count:
                        return  # without reading a block more
                else:
                    if seen >= count:
                        yield chunk
                    elif seen + size > count:
                        yield slice_chunk(chunk, count - seen)
                    seen += size

        length = None
        if self._length is not None:
            length = min(count, self._length) if take else max(self._length - count, 0)
        elif take and count == 0:
            length = 0
        return self._derive(make, length=length)

    def prefetch(self, buffer_size: int = 2) -> Dataset:
        """Reads ahead on a background thread, keeping up to ``buffer_size`` chunks ready."""
        buffer_size = positive_int("buffer_size", buffer_size)
        source = self
        derived = self._derive(lambda: read_ahead(source.chunks, buffer_size), length=self._length)
        if self._arrow is not None:
            arrow = self._arrow
            derived._arrow = ArrowBatches(lambda: read_ahead(arrow.record_batches, buffer_size), arrow.to_chunk)
        return derived

    def cache(self, path: str | os.PathLike[str] | None = None) -> Dataset:
        """Keeps the elements of the first complete pass, so that later passes (epochs) skip reading.

        Args:
            path: None keeps them in memory; a file path writes them to an Arrow IPC file there
                (for data larger than memory), read back memory-mapped in later passes. A pass
                that stops early (``take``, an error) caches nothing.

        Returns:
            A dataset yielding the same elements, read from the cache after the first pass.

        Example:
            >>> ds = lf.data.csv_dataset("big.csv").cache().shuffle(10_000, seed=1).batch(256)
            >>> model.fit(ds.prepare(y="label"), epochs=5)   # the file is parsed once
        """
        if path is not None and self.kind == PREPARED:
            raise DatasetKindError("cache(path) stores columns; call it before prepare() (or cache() in memory).")
        if self._arrow is not None:  # keep Arrow record batches: replayed zero-copy, encoded without numpy objects
            arrow = self._arrow
            store = (
                MemoryCache(arrow.record_batches)
                if path is None
                else FileCache(arrow.record_batches, Path(path), record_batches=True)
            )
            derived = self._derive(lambda: map(arrow.to_chunk, store.chunks()), length=self._length)
            derived._arrow = ArrowBatches(store.chunks, arrow.to_chunk)
            return derived
        store = MemoryCache(self.chunks) if path is None else FileCache(self.chunks, Path(path))
        return self._derive(store.chunks, length=self._length)

    def interleave(self, fn: Callable[[Any], Dataset], cycle_length: int = 2, block_length: int = 1) -> Dataset:
        """Maps each element (e.g. a file name) to a dataset and mixes their chunks round-robin."""
        positive_int("cycle_length", cycle_length)
        positive_int("block_length", block_length)
        source = self

        def make():
            sources = iter(source)
            active: list[Iterator[Any]] = []
            while True:
                while len(active) < cycle_length:
                    element = next(sources, None)
                    if element is None:
                        break
                    active.append(fn(element).chunks())
                if not active:
                    return
                for iterator in list(active):
                    for _ in range(block_length):
                        chunk = next(iterator, None)
                        if chunk is None:
                            active.remove(iterator)
                            break
                        yield chunk

        return Dataset(make, ROWS)

    def prepare(
        self, x: str | Sequence[str] | None = None, y: str | Sequence[str] | None = None, batch_size: int | None = None
    ) -> Dataset:
        """Splits each batch into ``(features, label)`` for Keras.

        Args:
            x: a column name (its array is the input), a list of names (a dict of arrays,
                for a functional model with named inputs), or None for all but ``y``.
            y: the label column(s); None for unlabelled data (predict).
            batch_size: batch the rows first (when the dataset is not batched yet).
        """
        dataset = self
        if dataset.kind == ROWS:
            if batch_size is None:
                raise DatasetKindError("prepare() needs batches: call batch(n) first or pass batch_size=.")
            dataset = dataset.batch(batch_size)
        elif dataset.kind == PREPARED:
            raise DatasetKindError("This dataset is already prepared.")
        labels = [y] if isinstance(y, str) else list(y or [])

        def split(batch: Chunk):
            missing = [c for c in ([x] if isinstance(x, str) else list(x or [])) + labels if c not in batch]
            if missing:
                raise DatasetColumnError(f"Columns {missing} are not in the data; it has {sorted(batch)}.")
            if isinstance(x, str):
                features: Any = batch[x]
            else:
                names = list(x) if x is not None else [c for c in batch if c not in labels]
                features = {name: batch[name] for name in names}
            if not labels:
                return (features,)
            label = batch[labels[0]] if len(labels) == 1 else {name: batch[name] for name in labels}
            return features, label

        return Dataset(lambda: (split(batch) for batch in dataset.chunks()), PREPARED, None, dataset._length)

    def _keras_elements(self) -> Iterator[Any]:
        if self.kind == ROWS:
            raise DatasetKindError("Keras trains on batches: call .batch(n) and .prepare(x=..., y=...) first.")
        # a batch of features alone (for predict), or an (x, y[, sample_weight]) tuple
        return (element if isinstance(element, tuple) else (element,) for element in self.chunks())

    def __repr__(self) -> str:
        return f"<lf.data.Dataset of {self.kind}{', columns ' + str(self._columns) if self._columns else ''}>"


def _shuffle_elements(elements: Iterator[Any], buffer_size: int, rng: np.random.Generator) -> Iterator[Any]:
    buffer: list[Any] = []
    for element in elements:
        if len(buffer) < buffer_size:
            buffer.append(element)
            continue
        index = int(rng.integers(buffer_size))
        yield buffer[index]
        buffer[index] = element
    order = rng.permutation(len(buffer))
    for index in order:
        yield buffer[index]


def _ordered_parallel_map(fn: Callable[[Any], Any], items: Iterator[Any], workers: int) -> Iterator[Any]:
    with ThreadPoolExecutor(workers) as pool:
        pending: queue.SimpleQueue = queue.SimpleQueue()
        in_flight = 0
        for item in items:
            pending.put(pool.submit(fn, item))
            in_flight += 1
            if in_flight >= 2 * workers:
                yield pending.get().result()
                in_flight -= 1
        while in_flight:
            yield pending.get().result()
            in_flight -= 1


_END = object()


def read_ahead(make: Callable[[], Iterator[Any]], size: int) -> Iterator[Any]:
    """The items of ``make()``, produced on a background thread up to ``size`` ahead; errors re-raised here."""
    buffer: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def produce():
        try:
            for item in make():
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            buffer.put(error)

    thread = threading.Thread(target=produce, daemon=True, name="layerflow-prefetch")
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
