"""How many threads torch gives each training step: its own count or one, whichever is faster here.

A canned estimator's step is many small operations (a batch of 128 rows through layers of a
few hundred units). Spread over several threads, each operation pays a hand-off between
them, and on a machine whose cores are busy with other work a thread that is not running
holds every operation up until it is scheduled again: measured on a shared 2-core machine,
breast_cancer's DNN trained 12x faster on one thread than on two, Fashion-MNIST's DNN 5x.
On idle cores and large layers the threads can win instead. So the first steps of each
``train()`` call are timed alternately on torch's thread count and on one thread, and the
rest run on the faster; torch's count is restored when training ends. The weights do not
depend on the choice (torch's matrix products split the output among threads, not the sums:
checked bitwise for the canned models).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

# Timed steps per candidate thread count before choosing.
TRIALS = 4


class StepThreads:
    """Chooses the thread count of the training steps while they run.

    Use ``before(batch_rows)`` and ``after()`` around each step, and ``close()`` (or a ``with``
    block) at the end of training to give torch its thread count back. On a backend other
    than torch, with the model on an accelerator, or when torch already runs one thread, it
    does nothing.

    Args:
        model: the Keras model trained (its variables say where it computes); None: on the CPU.

    Example:
        >>> with StepThreads(model) as threads:
        ...     for x, y in batches:
        ...         threads.before(len(y)); model.train_on_batch(x, y); threads.after()
    """

    def __init__(self, model: Any = None) -> None:
        import keras

        self.torch = None
        self.original = 1
        if keras.backend.backend() == "torch":
            import torch

            self.torch = torch
            on_cpu = model is None or all(v.value.device.type == "cpu" for v in model.variables[:1])
            self.original = torch.get_num_threads() if on_cpu else 1  # on an accelerator: nothing to choose
        self.done = self.torch is None or self.original <= 1
        self.samples: dict[int, list[float]] = {self.original: [], 1: []}
        self.shape: int | None = None  # the batch length timed (the first seen; its first step traces)
        self.trial: int | None = None
        self.started = 0.0
        self.chosen = self.original

    def __enter__(self) -> StepThreads:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def before(self, batch_rows: int) -> None:
        """Called before a step on ``batch_rows`` rows."""
        if self.done:
            return
        if self.shape is None:
            self.shape = batch_rows  # not timed: the step builds the model and traces its graph
            return
        if batch_rows != self.shape:
            return
        counts = len(self.samples[self.original]), len(self.samples[1])
        self.trial = self.original if counts[0] <= counts[1] else 1
        assert self.torch is not None, "done is True whenever torch is not the backend"
        self.torch.set_num_threads(self.trial)
        self.started = time.perf_counter()

    def after(self) -> None:
        """Called after the step."""
        if self.trial is None:
            return
        self.samples[self.trial].append(time.perf_counter() - self.started)
        self.trial = None
        if min(len(s) for s in self.samples.values()) >= TRIALS:
            many, one = (statistics.median(self.samples[n]) for n in (self.original, 1))
            self.chosen = 1 if one < many else self.original
            assert self.torch is not None, "a step is only timed when torch is the backend"
            self.torch.set_num_threads(self.chosen)
            self.done = True

    def close(self) -> None:
        """Gives torch its own thread count back."""
        if self.torch is not None and self.torch.get_num_threads() != self.original:
            self.torch.set_num_threads(self.original)
