"""Tracing a Keras model's train/test/predict step once into a graph of torch operations.

The step runs inside a ``keras.StatelessScope`` that maps every variable to a graph input,
and ``torch.fx``'s ``make_fx`` records the torch operations Keras issues, with fake
tensors: data-dependent Python (``if tensor > 0``, ``.item()``, numpy calls) cannot be
recorded and raises, which sends the model back to Keras's own loop. Replaying the graph
runs only those operations, without Keras's per-layer Python; autograd sees ordinary
torch ops on the Keras variables' own tensors, so the Keras variables stay the truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from layerflow.errors import LayerflowError
from layerflow.fastfit import _keras_internals as ki
from layerflow.fastfit.simplify import FlatGraph


class TraceError(LayerflowError, RuntimeError):
    """The step could not be recorded as a static graph (the message says why)."""


class StatefulPredictError(TraceError):
    """A model whose ``call()`` assigns variables while predicting (Keras keeps those updates)."""


def _eager_like_scope(mapping: list[tuple[Any, torch.Tensor]]) -> Any:
    """A ``keras.StatelessScope`` whose assignments behave as Keras's eager torch ones do.

    Keras's torch variables assign under ``torch.no_grad()``, so a value assigned inside
    ``call()`` (a running total, a moving statistic) carries no gradient to what computed it;
    here the assigned value is detached for the same reason. Losses added inside ``call()``
    (``add_loss``, activity regularizers) are collected, as in Keras's own stateless steps.
    """
    import keras

    class EagerLikeScope(keras.StatelessScope):
        def __init__(self) -> None:
            super().__init__(state_mapping=mapping, collect_losses=True)
            self.assigned: list[Any] = []

        def add_update(self, update: tuple[Any, Any]) -> None:
            variable, value = update
            self.assigned.append(variable)
            super().add_update((variable, value.detach() if isinstance(value, torch.Tensor) else value))

    return EagerLikeScope()


def _stateless(
    model: Any, variables: list[Any], values: list[torch.Tensor], body: Callable[[], Any], updated: list[Any]
) -> tuple[Any, list[torch.Tensor], list[Any]]:
    with _eager_like_scope(list(zip(variables, values))) as scope:
        result = body()
    return result, [scope.get_current_value(v) for v in updated], scope.assigned


def _record(function: Callable, arguments: tuple) -> FlatGraph:
    try:
        return FlatGraph(ki.trace_fake(function, arguments))
    except TraceError:
        raise
    except Exception as error:
        raise TraceError(f"its step cannot be traced into a static graph: {_cause(error)}") from error


def _cause(error: BaseException) -> str:
    """What in the model stopped the trace, in words a user can act on.

    Keras wraps a layer's exception in "Exception encountered when calling X.call()" with the
    original message below; torch's fake tensors raise bare or terse errors. The layer is taken
    from Keras's wrapper or, failing that, from the innermost ``call()`` of a Keras layer in the
    traceback; known torch errors are said in Keras terms.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    layer = _failing_layer(error)
    if lines and lines[0].startswith("Exception encountered when calling"):
        layer = layer or lines[0].removeprefix("Exception encountered when calling").strip().rstrip(".")
        lines = [line for line in lines[1:] if not line.startswith(("Arguments received", "•"))]
    detail = lines[0] if lines else ""
    where = layer or "the model"
    if "convert all Tensors to FakeTensors" in detail:
        return (
            f"{where} uses a torch tensor that is neither a Keras variable nor an input (a constant held on "
            "a layer); make it a weight (add_weight(..., trainable=False)) or a NumPy constant"
        )
    if "DataDependent" in type(error).__name__ or "data-dependent" in detail:
        return (
            f"{where} decides on a tensor's value in Python (if/float()/.item()/NumPy on a tensor), "
            "which one static graph cannot hold"
        )
    return f"{type(error).__name__} in {where}: {detail[:160]}" if detail else f"{type(error).__name__} in {where}"


def _failing_layer(error: BaseException) -> str:
    """``Layer.call() (file:line)`` of the innermost Keras layer's ``call`` the error passed through."""
    import keras

    found = ""
    traceback = error.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        owner = frame.f_locals.get("self")
        if frame.f_code.co_name == "call" and isinstance(owner, keras.layers.Layer):
            found = (
                f"{type(owner).__name__}.call() ({frame.f_code.co_filename.rsplit('/', 1)[-1]}:{traceback.tb_lineno})"
            )
        traceback = traceback.tb_next
    return found


def trace_train_or_test(
    model: Any, groups: VariableGroups, training: bool, x: Any, y: Any, sample_weight: Any
) -> FlatGraph:
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

        (loss, logs), new_values, _ = _stateless(
            model, variables, list(trainable) + list(non_trainable) + list(metrics), body, updated
        )
        count = len(groups.non_trainable)
        return loss, new_values[:count], new_values[count:], logs

    values = groups.values()
    detached = tuple([v.detach() for v in group] for group in values)
    return _record(step, (*detached, x, y, sample_weight))


def trace_predict(model: Any, groups: VariableGroups, x: Any) -> FlatGraph:
    """Graph of one predict step: ``(trainable, non_trainable, x) -> y_pred``."""
    variables = groups.trainable + groups.non_trainable

    def step(trainable, non_trainable, x):
        y_pred, _, assigned = _stateless(
            model, variables, list(trainable) + list(non_trainable), lambda: ki.call_model(model, x, False), []
        )
        if assigned:
            # Keras's predict keeps such updates (its step runs eagerly); a predict graph returns
            # predictions only, so this model predicts on Keras's loop.
            names = sorted({v.path for v in assigned})
            raise StatefulPredictError(
                f"its call() assigns {', '.join(names)} while predicting, which Keras's predict keeps"
            )
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
        return (
            [v.value for v in self.trainable],
            [v.value for v in self.non_trainable],
            [v.value for v in self.metrics],
        )
