"""One training step of a Keras estimator's model, as ``train_on_batch`` takes it, with less around it.

``Model.train_on_batch`` runs, per batch: a check that the model is built, the lookup of
its train function (on torch, layerflow's fast path re-reads every variable there), a reset
of every metric through Keras's ``assign``, the step, and a conversion of the logs to
Python floats (a host sync per batch). On the torch backend ``TrainSteps`` calls
``train_on_batch`` for the first batch of a ``train()`` call (which builds the model and
its train function) and then the train function itself for every later batch, with the
metrics reset on their tensors and the batch loss left as a tensor until the epoch ends.
The step is the same function (layerflow's traced step where it applies, else Keras's own
``train_step``), so the weights it gives are the same. Other backends keep
``train_on_batch``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class TrainSteps:
    """Trains ``model`` one batch at a time; each call returns that batch's loss.

    Args:
        model: a compiled Keras model.

    Example:
        >>> steps, loss = TrainSteps(model), EpochLoss()
        >>> for x, y in batches:
        ...     loss.add(steps(x, y, None))
        >>> loss.mean()
    """

    def __init__(self, model: Any) -> None:
        import keras

        self.model = model
        self.direct = keras.backend.backend() == "torch"
        self.function = None
        self.metric_tensors: list[Any] | None = None
        self.device = None

    def __call__(self, features: dict[str, np.ndarray], targets: np.ndarray, weights: np.ndarray | None) -> Any:
        if self.function is None or not self.direct:
            logs = self.model.train_on_batch(features, targets, sample_weight=weights, return_dict=True)
            if self.direct:
                self.function = self.model.train_function
                self.metric_tensors = _zeroable_metric_tensors(self.model)
                self.device = self.model.variables[0].value.device  # where Keras puts what it converts
            return logs["loss"]
        self._reset_metrics()
        features = {name: self._tensor(values) for name, values in features.items()}
        batch = (features, self._tensor(targets), None if weights is None else self._tensor(weights))
        loss = self.function([batch])["loss"]
        return loss.detach() if hasattr(loss, "detach") else loss  # its autograd graph is not kept per step

    def _tensor(self, values: np.ndarray) -> Any:
        """The tensor Keras's ``convert_to_tensor`` makes of a batch array (same dtype and device),
        sharing the array's memory instead of copying it."""
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "biuf" or values.dtype == np.uint32:
            return values  # left to Keras's conversion
        import torch

        if not values.flags.writeable:  # a view of Arrow's memory: torch takes writable arrays only
            values = values.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(values))
        return tensor if self.device is None or self.device.type == "cpu" else tensor.to(self.device)

    def _reset_metrics(self) -> None:
        if self.metric_tensors is None:
            self.model.reset_metrics()
            return
        import torch

        with torch.no_grad():
            for tensor in self.metric_tensors:
                tensor.zero_()


class EpochLoss:
    """The mean of an epoch's batch losses, summed as it goes without keeping the batches' losses.

    The sum is the one adding the losses in order as Python floats gives (float64 additions of
    the float32 losses), but a loss that is a torch tensor is added on its device into one
    float64 tensor, so no step waits for the host. Nothing of a batch is kept: an epoch of
    20,000 batches used to keep 20,000 loss tensors until its end, and those small blocks,
    scattered among the batches' freed memory, kept the heap from shrinking (the process grew
    ~7 bytes per training row).

    Example:
        >>> loss = EpochLoss()
        >>> loss.add(0.5); loss.add(torch.tensor(0.25))
        >>> loss.mean(), loss.count
        (0.375, 2)
    """

    def __init__(self) -> None:
        self.total = 0.0
        self.tensor: Any = None  # the float64 sum on the losses' device, from the first tensor loss on
        self.count = 0

    def add(self, loss: Any) -> None:
        """Adds one batch's loss (a Python float, a numpy scalar or a 0-d tensor)."""
        self.count += 1
        if self.tensor is None and hasattr(loss, "detach"):
            import torch

            self.tensor = torch.tensor(self.total, dtype=torch.float64, device=loss.device)
        if self.tensor is None:
            self.total += float(loss)
        else:
            self.tensor.add_(loss.detach() if hasattr(loss, "detach") else float(loss))

    def mean(self) -> float:
        """The mean of the losses added (raises ZeroDivisionError when none were)."""
        total = self.total if self.tensor is None else float(self.tensor.item())
        return total / self.count


def _zeroable_metric_tensors(model: Any) -> list[Any] | None:
    """The tensors of the model's metrics when resetting them is zeroing them all (each metric is
    a plain ``keras.metrics.Mean``, as the loss tracker is); None otherwise."""
    import keras

    metrics = list(model.metrics)
    if not all(type(m) is keras.metrics.Mean for m in metrics):
        return None
    return [v.value for m in metrics for v in m.variables]
