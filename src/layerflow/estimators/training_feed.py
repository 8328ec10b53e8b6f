"""The training batches of an estimator: rows encoded once per block, then shuffled and batched.

Encoding is row by row (a value's encoding does not depend on the rows around it), so
encoding each block of rows as the source yields it and then shuffling and batching the
encoded rows gives exactly the batches that shuffling, batching and then encoding give:
the same seeded shuffle (``inputs.batches``) sees blocks of the same lengths. It is much
cheaper: the shuffle and the batching move a few encoded arrays (one packed numeric
matrix, one id column per categorical feature) instead of every raw column, and a
feature spec's per-column work runs once per block instead of once per batch.

Data that is already in memory (a DataFrame) is encoded once per ``train`` call: the
encoded rows of the first full pass are kept (up to ``CACHE_MAX_BYTES``), and later
epochs shuffle and batch row numbers (in blocks of the source's lengths, so the shuffle is
the same) and gather each batch's rows from them: one copy of the data per epoch. A stream (CSV, Parquet, a lf.data pipeline, whose ``map``
may draw new random values each pass) is read and encoded afresh each epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from layerflow.data import Dataset
from layerflow.estimators.inputs import batches

# The encoded copy of in-memory data is kept only up to this size (then it is streamed).
CACHE_MAX_BYTES = 1 << 30

# Keys of the label and weight arrays inside an encoded block (beside the model's input names).
TARGETS_KEY = "\x00layerflow_targets"
WEIGHTS_KEY = "\x00layerflow_weights"
ROW_KEY = "row"

Encode = Callable[[dict[str, np.ndarray]], tuple[dict[str, np.ndarray], np.ndarray, "np.ndarray | None"]]


class TrainingFeed:
    """The (features, targets, weights) batches of each training epoch.

    Args:
        dataset: the training data (a lf.data Dataset of rows or of batches).
        encode: ``encode(raw block) -> (model inputs, targets, weights or None)``, row-wise.
        batch_size: rows per batch (a dataset of batches keeps its own).
        shuffle_buffer: rows shuffled through (None: the data's order).
        keep_encoded: keep the encoded rows of a first full pass for the later epochs
            (for data already in memory).

    Example:
        >>> feed = TrainingFeed(lf.data.from_frame(frame), est._encode, 128, 10_000, keep_encoded=True)
        >>> for features, targets, weights in feed.epoch(seed=0):
        ...     model.train_on_batch(features, targets, sample_weight=weights)
    """

    def __init__(
        self, dataset: Dataset, encode: Encode, batch_size: int, shuffle_buffer: int | None, keep_encoded: bool = False
    ) -> None:
        self.dataset = dataset
        self.encode = encode
        self.batch_size = batch_size
        self.shuffle_buffer = shuffle_buffer
        self.keep_encoded = keep_encoded
        self.encoded: dict[str, np.ndarray] | None = None  # every row encoded, after a first full pass
        self.block_rows: list[int] = []  # the lengths of the blocks the source gave

    def epoch(self, seed: int | None) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]]:
        """One epoch's batches, shuffled with ``seed`` (None: unseeded)."""
        try:
            length = len(self.dataset)
        except TypeError:
            length = None
        blocks: Iterator[dict[str, np.ndarray]]
        if self.encoded is not None:
            # shuffle and batch row numbers (blocks of the same lengths), then gather each batch once
            encoded, starts = self.encoded, np.cumsum([0] + self.block_rows[:-1])
            numbers = Dataset(
                lambda: ({ROW_KEY: np.arange(s, s + n)} for s, n in zip(starts, self.block_rows)),
                self.dataset.kind,
                None,
                length,
            )
            chosen = (batch[ROW_KEY] for batch in batches(numbers, self.batch_size, self.shuffle_buffer, seed).chunks())
            blocks = ({name: values[rows] for name, values in encoded.items()} for rows in chosen)
        else:
            encoded = Dataset(self._encoded_blocks, self.dataset.kind, None, length)
            blocks = batches(encoded, self.batch_size, self.shuffle_buffer, seed).chunks()
        for batch in blocks:
            batch = dict(batch)
            targets = batch.pop(TARGETS_KEY)
            weights = batch.pop(WEIGHTS_KEY, None)
            yield batch, targets, weights

    def _encoded_blocks(self) -> Iterator[dict[str, np.ndarray]]:
        kept: list[dict[str, np.ndarray]] | None = [] if self.keep_encoded else None
        size = 0
        for block in self.dataset.chunks():
            features, targets, weights = self.encode(block)
            encoded = {**features, TARGETS_KEY: targets}
            if weights is not None:
                encoded[WEIGHTS_KEY] = weights
            if kept is not None:
                size += sum(np.asarray(v).nbytes for v in encoded.values())
                kept = kept if size <= CACHE_MAX_BYTES else None
                if kept is not None:
                    kept.append(encoded)
            yield encoded
        if kept:  # a full pass (a pass stopped early by steps= keeps nothing)
            self.block_rows = [len(block[TARGETS_KEY]) for block in kept]
            self.encoded = {name: np.concatenate([block[name] for block in kept]) for name in kept[0]}
