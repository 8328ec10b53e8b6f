"""A dataset's Arrow record batches (``ArrowBatches``: the interface between ``data`` and ``features``) and re-batching.

Re-batching blocks of rows (Arrow record batches or numpy chunks): slices are views, a batch
spanning blocks is copied once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from layerflow.errors import InvalidValueError


@dataclass(frozen=True)
class ArrowBatches:
    """The Arrow record batches behind a dataset's elements, and how one becomes the chunk the dataset yields.

    What ``Dataset.arrow_batches()`` returns for a dataset read from Arrow (a CSV file), kept through
    ``batch``, ``prefetch`` and ``cache``. It is the one interface ``lf.feature_spec`` uses to read
    a dataset's columns as Arrow arrays, so strings are encoded by pyarrow kernels without a Python
    object per row. The contract:

    - ``record_batches()`` starts a new pass on each call and yields ``pyarrow.RecordBatch`` es holding
      the same rows, in the same order and the same blocks, as the dataset's ``chunks()``: record
      batch *i* is chunk *i* (after ``batch(n)``, every record batch is one batch of ``n`` rows);
    - ``to_chunk(record_batch)`` is the numpy chunk (column name -> array) the dataset yields for it;
      it also converts a ``select`` of some of its columns (as a label is read).

    Attributes:
        record_batches: ``() -> Iterator[pyarrow.RecordBatch]``.
        to_chunk: ``pyarrow.RecordBatch -> dict[str, numpy.ndarray]``.

    Example:
        >>> arrow = lf.data.csv_dataset("data.csv", batch_size=256).arrow_batches()
        >>> first = next(arrow.record_batches())
        >>> first.num_rows, sorted(arrow.to_chunk(first))
        (256, ['age', 'city'])
    """

    record_batches: Callable[[], Iterator[Any]]
    to_chunk: Callable[[Any], dict[str, Any]]


def rebatch(
    blocks: Iterable[Any],
    batch_size: int,
    drop_remainder: bool = False,
    *,
    length: Callable[[Any], int] | None = None,
    take: Callable[..., Any] | None = None,
    concat: Callable[[list], Any] | None = None,
) -> Iterator[Any]:
    """Blocks of exactly ``batch_size`` rows (the last one smaller unless ``drop_remainder``).

    A batch inside one block is a slice of it (a view); only a batch spanning blocks is copied,
    once. Blocks are Arrow record batches unless ``length``, ``take(block, start, stop=None)`` and
    ``concat(blocks)`` say how to measure, slice and join another kind (the numpy chunks of
    ``Dataset.batch``).

    Example:
        >>> [b.num_rows for b in rebatch(iter([pa.record_batch({"a": list(range(5))})]), 2)]
        [2, 2, 1]
    """
    if length is None:
        import pyarrow as pa

        length, concat = (lambda block: block.num_rows), pa.concat_batches
        take = lambda block, start, stop=None: block.slice(start, None if stop is None else stop - start)  # noqa: E731
    elif take is None or concat is None:
        raise InvalidValueError(
            "rebatch: pass `take` and `concat` along with `length` (they say how to slice and join "
            "blocks that are not Arrow record batches)."
        )
    pending: list[Any] = []
    count = 0
    for block in blocks:
        n, offset = length(block), 0
        if count:
            need = batch_size - count
            if n < need:
                pending.append(block)
                count += n
                continue
            pending.append(take(block, 0, need))
            yield concat(pending)
            pending, count, offset = [], 0, need
        while offset + batch_size <= n:
            yield take(block, offset, offset + batch_size)
            offset += batch_size
        if offset < n:
            pending, count = [take(block, offset)], n - offset
    if count and not drop_remainder:
        yield concat(pending) if len(pending) > 1 else pending[0]
