"""Re-batching Arrow record batches: slices are views, a batch spanning two blocks is copied once."""

from __future__ import annotations

from typing import Any, Iterable, Iterator


def rebatch(record_batches: Iterable[Any], batch_size: int, drop_remainder: bool = False) -> Iterator[Any]:
    """Record batches of exactly ``batch_size`` rows (the last one smaller unless ``drop_remainder``).

    Example:
        >>> [b.num_rows for b in rebatch(iter([pa.record_batch({"a": list(range(5))})]), 2)]
        [2, 2, 1]
    """
    import pyarrow as pa

    pending: list[Any] = []
    count = 0
    for block in record_batches:
        n, offset = block.num_rows, 0
        if count:
            need = batch_size - count
            if n < need:
                pending.append(block)
                count += n
                continue
            pending.append(block.slice(0, need))
            yield pa.concat_batches(pending)
            pending, count, offset = [], 0, need
        while offset + batch_size <= n:
            yield block.slice(offset, batch_size)
            offset += batch_size
        if offset < n:
            pending, count = [block.slice(offset)], n - offset
    if count and not drop_remainder:
        yield pa.concat_batches(pending) if len(pending) > 1 else pending[0]
