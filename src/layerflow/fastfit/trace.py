"""Tracing a Keras model's train/test/predict step once into a graph of torch operations.

The step runs inside a ``keras.StatelessScope`` that maps every variable to a graph input,
and ``torch.fx``'s ``make_fx`` records the torch operations Keras issues, with fake
tensors: data-dependent Python (``if tensor > 0``, ``.item()``, numpy calls) cannot be
recorded and raises, which sends the model back to Keras's own loop. Replaying the graph
runs only those operations, without Keras's per-layer Python; autograd sees ordinary
torch ops on the Keras variables' own tensors, so the Keras variables stay the truth.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from layerflow.errors import LayerflowError
from layerflow.fastfit import _keras_internals as ki
from layerflow.fastfit.simplify import FlatGraph


class TraceError(LayerflowError, RuntimeError):
    """The step could not be recorded as a static graph (the message says why)."""


def _stateless(model: Any, variables: list[Any], values: list[torch.Tensor], body: Callable[[], Any],
               updated: list[Any]) -> tuple[Any, list[torch.Tensor]]:
    import keras

    with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
        result = body()
    return result, [scope.get_current_value(v) for v in updated]


def _record(function: Callable, arguments: tuple) -> FlatGraph:
    try:
        return FlatGraph(ki.trace_fake(function, arguments))
    except Exception as error:  # noqa: BLE001 - any failure to trace means "use Keras's loop"
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise TraceError(f"{type(error).__name__}: {first[:160]}") from error


def trace_train_or_test(model: Any, groups: "VariableGroups", training: bool, x: Any, y: Any,
                        sample_weight: Any) -> FlatGraph:
    """Graph of one train (``training=True``) or test step.

    The graph takes ``(trainable, non_trainable, metrics, x, y, sample_weight)`` values and
    returns ``(loss, new non-trainable values, new metric values, logs)``.
    """
    variables = groups.trainable + groups.non_trainable + groups.metrics
    updated = groups.non_trainable + groups.metrics
    batch_size = next(t for t in ki.tree_leaves(x) if t is not None).shape[0]

    def step(trainable, non_trainable, metrics, x, y, sample_weight):
        def body():
            y_pred = ki.call_model(model, x, training)
            loss = ki.compute_loss(model, x, y, y_pred, sample_weight, training)
            ki.update_loss_tracker(model, loss, batch_size)
            logs = model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
            return loss, logs

        (loss, logs), new_values = _stateless(model, variables, list(trainable) + list(non_trainable) + list(metrics),
                                               body, updated)
        count = len(groups.non_trainable)
        return loss, new_values[:count], new_values[count:], logs

    values = groups.values()
    detached = tuple([v.detach() for v in group] for group in values)
    return _record(step, (*detached, x, y, sample_weight))


def trace_predict(model: Any, groups: "VariableGroups", x: Any) -> FlatGraph:
    """Graph of one predict step: ``(trainable, non_trainable, x) -> y_pred``."""
    variables = groups.trainable + groups.non_trainable

    def step(trainable, non_trainable, x):
        y_pred, _ = _stateless(model, variables, list(trainable) + list(non_trainable),
                               lambda: ki.call_model(model, x, False), [])
        return y_pred

    trainable, non_trainable, _ = groups.values()
    return _record(step, ([v.detach() for v in trainable], [v.detach() for v in non_trainable], x))


class VariableGroups:
    """The model's variables as the graph sees them, captured when a loop starts."""

    def __init__(self, model: Any) -> None:
        self.trainable = list(model.trainable_variables)
        self.non_trainable = list(model.non_trainable_variables)
        self.metrics = list(model.metrics_variables)
        self.identity = tuple(id(v) for v in self.trainable + self.non_trainable + self.metrics)

    def values(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        return ([v.value for v in self.trainable], [v.value for v in self.non_trainable],
                [v.value for v in self.metrics])
