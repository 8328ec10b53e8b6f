"""How a layerflow Dataset feeds Keras: as a Keras data adapter, one fresh pass per epoch.

Keras hands any ``DataAdapter`` instance straight to its training loop, so a Dataset that
is one is accepted by ``fit``/``evaluate``/``predict`` on every backend with no wrapper.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator

from layerflow.backend import load_keras

load_keras()  # selects the backend before Keras' modules below are imported

from keras.src.trainers.data_adapters import data_adapter_utils  # noqa: E402
from keras.src.trainers.data_adapters.data_adapter import DataAdapter  # noqa: E402

# With a stream of unknown length, Keras learns the epoch's size when the first pass ends
# and says so with this warning; for a layerflow Dataset that end is the normal epoch end.
_END_OF_STREAM_WARNING = "Your input ran out of data"


class KerasFeeding(DataAdapter):
    """The Keras side of ``Dataset``: iterators of batches for each backend."""

    _learned_batches: int | None = None

    def _keras_batches(self) -> Iterator[Any]:
        warnings.filterwarnings("ignore", message=_END_OF_STREAM_WARNING)
        count = 0
        for element in self._keras_elements():
            count += 1
            yield element
        self._learned_batches = count

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
        pass

    def on_epoch_end(self):
        pass
