"""How a layerflow Dataset feeds Keras: as a Keras data adapter, one fresh pass per epoch.

Keras hands any ``DataAdapter`` instance straight to its training loop, so a Dataset that
is one is accepted by ``fit``/``evaluate``/``predict`` on every backend with no wrapper.

Epochs behave as with NumPy arrays. Without ``steps_per_epoch`` each epoch is one pass; the
end of the first pass is how Keras learns the epoch's length, and the "ran out of data"
warning it then gives is not true, so it is silenced for that fit only. With
``steps_per_epoch`` Keras keeps one iterator across epochs: a pass that ended exactly at an
epoch's end starts afresh when the next epoch asks for data, and a pass that ends inside an
epoch ends it, with Keras's warning shown (it is true then).

Tested with Keras 3.15.1 (installed here): this module reads the ``steps_per_epoch`` of the Keras
``EpochIterator`` that asks for batches (there is no public way to learn it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from layerflow.backend import load_keras

load_keras()  # selects the backend before Keras' modules below are imported

from keras.src.trainers.data_adapters import data_adapter_utils  # noqa: E402
from keras.src.trainers.data_adapters.data_adapter import DataAdapter  # noqa: E402
from keras.src.trainers.epoch_iterator import EpochIterator  # noqa: E402


def _calling_epoch_iterator() -> EpochIterator | None:
    frame: FrameType | None = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, EpochIterator):
            return candidate
        frame = frame.f_back
    return None


def _quiet(*args: Any, **kwargs: Any) -> None:
    return None


class KerasFeeding(DataAdapter):
    """The Keras side of ``Dataset``: iterators of batches for each backend."""

    _learned_batches: int | None = None
    _epochs_begun: int = 0

    def _keras_batches(self) -> Iterator[Any]:
        epoch_iterator = _calling_epoch_iterator()
        fixed_steps = bool(epoch_iterator is not None and epoch_iterator.steps_per_epoch)
        if epoch_iterator is not None and not fixed_steps:
            # the end of a pass is the end of the epoch here, never data running out
            epoch_iterator._interrupted_warning = _quiet
        return self._passes(restart_at_epoch_start=fixed_steps)

    def _passes(self, restart_at_epoch_start: bool) -> Iterator[Any]:
        while True:
            count, last_epoch = 0, self._epochs_begun
            for element in self._keras_elements():
                count += 1
                last_epoch = self._epochs_begun
                yield element
            if count:
                self._learned_batches = count
            # a pass that ended where an epoch ended restarts for the next epoch (as arrays do);
            # one that ran out inside an epoch stops it: Keras then warns, truly
            if not (restart_at_epoch_start and count and self._epochs_begun != last_epoch):
                return

    def _keras_elements(self) -> Iterator[Any]:  # provided by Dataset
        raise NotImplementedError

    def get_numpy_iterator(self):
        return data_adapter_utils.get_numpy_iterator(self._keras_batches())

    def get_jax_iterator(self):
        return data_adapter_utils.get_jax_iterator(self._keras_batches())

    def get_torch_dataloader(self):
        return data_adapter_utils.get_torch_dataloader(self._keras_batches())

    def get_tf_dataset(self):
        raise NotImplementedError("layerflow datasets feed Keras on the torch or JAX backend, not TensorFlow.")

    @property
    def num_batches(self):
        return self._learned_batches

    @property
    def batch_size(self):
        return None

    @property
    def has_partial_batch(self):
        return None

    @property
    def partial_batch_size(self):
        return None

    def on_epoch_begin(self):
        self._epochs_begun += 1

    def on_epoch_end(self):
        pass
