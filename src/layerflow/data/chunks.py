"""Chunks, the unit that flows through a Dataset: dicts of equal-length numpy arrays."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

Chunk = dict[str, np.ndarray]
ROWS, BATCHES, PREPARED = "rows", "batches", "prepared"


def chunk_length(chunk: Chunk) -> int:
    """Rows in a chunk (0 for an empty dict)."""
    return len(next(iter(chunk.values()))) if chunk else 0


def slice_chunk(chunk: Chunk, start: int, stop: int | None = None) -> Chunk:
    """Rows ``start:stop`` of every column (views, no copy)."""
    return {name: values[start:stop] for name, values in chunk.items()}


def take_rows(chunk: Chunk, index: np.ndarray) -> Chunk:
    """The rows at ``index`` (a boolean mask or positions) of every column."""
    return {name: values[index] for name, values in chunk.items()}


def concat_chunks(chunks: Sequence[Chunk]) -> Chunk:
    """One chunk holding the rows of ``chunks`` in order (copied once; a single chunk is returned as is)."""
    if len(chunks) == 1:
        return chunks[0]
    return {name: _concat_column([c[name] for c in chunks]) for name in chunks[0]}


def _concat_column(parts: list[np.ndarray]) -> np.ndarray:
    if len({part.ndim for part in parts}) == 1:
        return np.concatenate(parts)
    # fixed-size rows (2-D) meeting ragged ones (objects): one object array of per-row arrays
    return ragged([row for part in parts for row in part])


def rows_of(chunk: Chunk) -> Iterator[dict[str, Any]]:
    """The rows of a chunk as dicts of scalars."""
    names = list(chunk)
    for values in zip(*(chunk[n] for n in names)):
        yield dict(zip(names, values))


def chunk_of_rows(rows: list[dict[str, Any]]) -> Chunk:
    """A chunk from a non-empty list of row dicts."""
    return {name: np.asarray([row[name] for row in rows]) for name in rows[0]}


def ragged(sequences: Sequence[Any]) -> np.ndarray:
    """A column of sequences of different lengths (an object array of arrays), e.g. for ``padded_batch``.

    Example:
        >>> lf.data.ragged([[1], [2, 3]])[1].tolist()
        [2, 3]
    """
    column = np.empty(len(sequences), dtype=object)
    for i, sequence in enumerate(sequences):
        column[i] = np.asarray(sequence)
    return column
