"""``evaluate``'s and ``predict``'s batch loops over NumPy arrays, without Keras's epoch iterator.

Keras's loops stay in charge everywhere else (see ``_keras_internals.direct_loops``):
these run only when every batch is a slice of NumPy arrays sliced straight into a tensor, one
batch per step (no ``steps``, no ``steps_per_execution``). They call the same callbacks with
the same arguments as Keras's loops (a batch hook no callback overrides is skipped, as
``skip_unheard_batch_ends`` does for Keras's loops), honour ``stop_evaluating`` /
``stop_predicting``, and leave the same result: the last batch's logs, or the predictions of
every batch in one NumPy array, written in place as each batch comes instead of gathered and
concatenated at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from layerflow.fastfit import _keras_internals as ki
from layerflow.fastfit.steps import FastStep


def _fast_step(function: Any) -> FastStep | None:
    return function if isinstance(function, FastStep) and function.active else None


def test_loop(model: Any, batches: Any, callbacks: Any) -> Any:
    """Runs ``evaluate``'s batches; returns the last batch's logs (NotImplemented: use Keras's loop)."""
    step = _fast_step(model.test_function)
    if step is None:
        return NotImplemented
    begin_heard, end_heard = ki.batch_hooks_heard(callbacks, "test")
    lean = not end_heard
    run = step.run_batch
    logs: Any = {}
    with torch.no_grad():
        for index, batch in enumerate(batches):
            if begin_heard:
                callbacks.on_test_batch_begin(index)
                ki.take_unread_logs("test")  # the flag Keras's loop hands its step: this loop decided above
            logs = run(batch, None, lean)
            if end_heard:
                callbacks.on_test_batch_end(index, logs)
            if model.stop_evaluating:
                break
        else:
            _next_epoch_iterator(batches)
    return logs


def predict_loop(model: Any, batches: Any, callbacks: Any) -> Any:
    """Runs ``predict``'s batches; returns the predictions (NotImplemented: use Keras's loop)."""
    step = _fast_step(model.predict_function)
    if step is None:
        return NotImplemented
    begin_heard, end_heard = ki.batch_hooks_heard(callbacks, "predict")
    run = step.run_batch
    gathered = _Gathered(batches.num_samples)
    with torch.no_grad():
        for index, batch in enumerate(batches):
            if begin_heard:
                callbacks.on_predict_batch_begin(index)
            batch_outputs = run(batch)
            gathered.add(batch_outputs)
            if end_heard:
                callbacks.on_predict_batch_end(index, {"outputs": batch_outputs})
            if model.stop_predicting:
                break
        else:
            _next_epoch_iterator(batches)
    return gathered.result()


def _next_epoch_iterator(batches: Any) -> None:
    """Keras's epoch iterator, having run every batch, makes the next epoch's iterator at once
    (drawing a seed from torch's global generator): the same draw keeps later random numbers equal."""
    iter(batches)


class _Gathered:
    """Predictions of successive batches. A tensor per batch (a model with one output) is
    written into one preallocated array; any other structure is gathered and concatenated at
    the end, as Keras does."""

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples
        self.array: np.ndarray | None = None
        self.filled = 0
        self.gathered: Any = None  # Keras's per-leaf lists, once the outputs are not one tensor per batch
        self.last: Any = None

    def add(self, outputs: Any) -> None:
        self.last = outputs
        if self.gathered is None and type(outputs) is torch.Tensor and outputs.ndim:
            values = ki.to_numpy(outputs)
            if self.array is None:
                self.array = np.empty((self.num_samples, *values.shape[1:]), dtype=values.dtype)
            end = self.filled + len(values)
            if values.shape[1:] == self.array.shape[1:] and values.dtype == self.array.dtype and end <= len(self.array):
                self.array[self.filled : end] = values
                self.filled = end
                return
        if self.array is not None:  # unlike the batches before it: from here on, as Keras gathers
            self.gathered = [self.array[: self.filled]]
            self.array = None
        self.gathered = ki.append_predictions(outputs, self.gathered)

    def result(self) -> Any:
        if self.gathered is None:
            array = self.array
            assert array is not None, "predictions are either gathered or written into one array"
            return array if self.filled == len(array) else array[: self.filled].copy()
        return ki.concatenate_predictions(self.gathered, self.last)
