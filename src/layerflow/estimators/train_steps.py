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
        >>> steps = TrainSteps(model)
        >>> losses = [steps(x, y, None) for x, y in batches]
        >>> TrainSteps.mean(losses)
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

    @staticmethod
    def mean(losses: list[Any]) -> float:
        """The mean of the batch losses (added in order, as Python floats)."""
        total = 0.0
        for loss in losses:
            total += loss if isinstance(loss, float) else float(loss.item())
        return total / len(losses)


def _zeroable_metric_tensors(model: Any) -> list[Any] | None:
    """The tensors of the model's metrics when resetting them is zeroing them all (each metric is
    a plain ``keras.metrics.Mean``, as the loss tracker is); None otherwise."""
    import keras

    metrics = list(model.metrics)
    if not all(type(m) is keras.metrics.Mean for m in metrics):
        return None
    return [v.value for m in metrics for v in m.variables]

