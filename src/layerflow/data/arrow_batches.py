"""Re-batching blocks of rows (Arrow record batches or numpy chunks): slices are views, a batch spanning blocks is copied once."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator


def rebatch(blocks: Iterable[Any], batch_size: int, drop_remainder: bool = False, *,
            length: Callable[[Any], int] | None = None, take: Callable[..., Any] | None = None,
            concat: Callable[[list], Any] | None = None) -> Iterator[Any]:
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
