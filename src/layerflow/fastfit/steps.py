"""The per-step functions that replace Keras's ``train_function``/``test_function``/``predict_function``.

Keras's own ``fit``/``evaluate``/``predict`` loops stay in charge (callbacks, History,
validation, class and sample weights, ``steps_per_epoch``, the last partial batch); only the
function they call once per batch is swapped. One graph is traced per distinct batch
signature (shapes, dtypes, structure), e.g. one for full batches and one for the last
partial batch; each later batch of that signature replays it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from layerflow.fastfit import _keras_internals as ki
from layerflow.fastfit import distributed
from layerflow.fastfit.guard import report_fallback, switched_off
from layerflow.fastfit.optimizer import GradientApplier
from layerflow.fastfit.simplify import FlatGraph
from layerflow.fastfit.trace import TraceError, VariableGroups, trace_predict, trace_train_or_test

MAX_GRAPHS = 16


class FastStep:
    """Callable standing in for one of the model's Keras step functions.

    Args:
        model: the compiled Keras model (torch backend).
        kind: "train", "test" or "predict".
        keras_function: Keras's own step function, used when the fast path cannot be.
    """

    def __init__(self, model: Any, kind: str, keras_function: Callable) -> None:
        self.model = model
        self.kind = kind
        self.keras_function = keras_function
        self.graphs: dict[Any, FlatGraph] = {}
        self.groups: VariableGroups | None = None
        self.compiled_state: tuple | None = None
        self.applier: GradientApplier | None = None
        self.fallback_reason: str | None = None
        self.trace_seconds = 0.0
        self.traces = 0
        self.fast_steps = 0
        self.untried: FlatGraph | None = None
        self.pending_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.fallback_reason is None and not switched_off()

    def refresh(self) -> None:
        """Re-reads the model's variables at the start of each fit/evaluate/predict."""
        groups = VariableGroups(self.model)
        compiled_state = ki.compiled_state_ids(self.model)
        if self.groups is None or groups.identity != self.groups.identity or compiled_state != self.compiled_state:
            self.graphs.clear()
            self.groups, self.compiled_state = groups, compiled_state
        self.values = self.groups.values()
        used = self.values if self.kind != "predict" else self.values[:2]
        self.flat_values = [t for group in used for t in group]
        self.device = _device(self.values)
        self.applier = None
        if self.kind == "train":
            distributed.broadcast_weights(self.values[:2])  # rank 0's weights on every rank (data-parallel)
        ki.unread_logs.pop(self.kind, None)  # a flag left by a loop that raised is not this one's

    def fall_back(self, reason: str) -> None:
        distributed.refuse_fallback(self.kind, reason)
        self.fallback_reason = reason
        self.graphs.clear()
        report_fallback(self.model, self.kind, reason)

    def _inputs(self, batch: Any) -> tuple[Any, Any, Any]:
        import keras

        plain = self._plain_tensors(batch)
        if plain is not None:
            return plain
        if self.kind == "predict":
            x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
            y = sample_weight = None
        else:
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        device = self.device
        return ki.tree_map(lambda value: _as_tensor(value, device), (x, y, sample_weight))

    def _plain_tensors(self, batch: Any) -> tuple[Any, Any, Any] | None:
        """``(x, y, sample_weight)`` of a batch that is a tensor or a tuple of tensors already on
        the model's device (what Keras's array and tensor loaders yield); None for anything else."""
        device = self.device
        if type(batch) is torch.Tensor:  # x alone (predict, or a loss of x only)
            return (batch, None, None) if device is None or batch.device == device else None
        if type(batch) is not tuple or not 1 <= len(batch) <= 3:
            return None
        for value in batch:
            if value is not None and (
                type(value) is not torch.Tensor or (device is not None and value.device != device)
            ):
                return None
        x, y, sample_weight = batch + (None,) * (3 - len(batch))
        if self.kind == "predict":
            return x, None, None
        return x, y, sample_weight

    def _graph(self, x: Any, y: Any, sample_weight: Any) -> FlatGraph | None:
        if (
            type(x) is torch.Tensor
            and (y is None or type(y) is torch.Tensor)
            and (sample_weight is None or type(sample_weight) is torch.Tensor)
        ):
            # The leaves tree_flatten would give, without walking the tree.
            leaves = [x, y, sample_weight]
            key: Any = tuple(None if t is None else (t.shape, t.dtype, t.device) for t in leaves)
        else:
            leaves, spec = ki.tree_flatten((x, y, sample_weight))
            key = (
                _hashable(spec),
                tuple((t.shape, t.dtype, t.device) if isinstance(t, torch.Tensor) else t for t in leaves),
            )
        self.leaves = leaves
        graph = self.graphs.get(key)
        if graph is not None:
            return graph
        if len(self.graphs) >= MAX_GRAPHS:
            self.fall_back(f"more than {MAX_GRAPHS} distinct batch shapes")
            return None
        started = time.perf_counter()
        assert self.groups is not None, "refresh() reads the variables before any batch"
        try:
            if self.kind == "predict":
                graph = trace_predict(self.model, self.groups, x)
            else:
                graph = trace_train_or_test(self.model, self.groups, self.kind == "train", x, y, sample_weight)
        except TraceError as error:
            self.pending_reason = str(error)
            return None
        graph.lean = None
        if self.kind != "predict" and set(graph.log_keys) == set(ki.metric_names(self.model)):
            # Keras reads a step's logs only in batch-end callbacks and, at the loop's end, only
            # their names (it takes the values from the metrics): a batch whose logs no callback
            # hears runs the step without computing them.
            graph.lean = graph.without_logs()
        if self.kind != "train":
            for variant in (graph, graph.lean):
                if variant is not None:
                    variant.script_for_inference()
        self.trace_seconds += time.perf_counter() - started
        self.traces += 1
        self.graphs[key] = graph
        self.untried = graph
        return graph

    def __call__(self, data: Any) -> Any:
        lean = ki.take_unread_logs(self.kind) if self.kind != "predict" else False
        return self.run_batch(data[0], data, lean)

    def run_batch(self, batch: Any, data: Any = None, lean: bool = False) -> Any:
        """One step on ``batch`` (what Keras's loader yields); Keras's step runs it when the fast
        path cannot. ``data``: Keras's list of batches, when Keras's loop calls (the env switch is
        then read per batch; ``loops`` reads it once per loop). ``lean``: no callback reads this
        batch's logs (see ``_graph``)."""
        if self.fallback_reason is not None or (data is not None and switched_off()):
            return self.keras_function([batch] if data is None else data)
        x, y, sample_weight = self._inputs(batch)
        graph = self._graph(x, y, sample_weight)
        if graph is None:
            # Keras's own step raises the user's error if the batch itself is bad (a wrong shape
            # fails tracing too); only when Keras runs it is the fast path given up for good.
            result = self.keras_function([batch] if data is None else data)
            if self.pending_reason:
                self.fall_back(self.pending_reason)
            return result
        if graph is self.untried:  # a graph's first run may still fail: then Keras runs this batch
            self.untried = None
            try:
                return self._run(graph, lean)
            except Exception as error:  # noqa: BLE001
                self.fall_back(f"its traced step failed to run ({type(error).__name__}: {str(error)[:160]})")
                return self.keras_function([batch] if data is None else data)
        return self._run(graph, lean)

    def _run(self, graph: FlatGraph, lean: bool) -> Any:
        self.fast_steps += 1
        if self.kind == "train":
            return self._train(graph, lean)
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self._infer(graph, lean)
        return self._infer(graph, lean)

    def _infer(self, graph: FlatGraph, lean: bool) -> Any:
        if self.kind == "test":
            return self._test(graph, lean)
        return graph.call_step(self.flat_values + self.leaves[:-2])

    def _train(self, graph: FlatGraph, lean: bool) -> dict:
        trainable, non_trainable, metrics = self.values
        for parameter in trainable:
            parameter.grad = None
        loss, new_non_trainable, new_metrics, logs = self._step(graph, lean)
        loss.backward()
        distributed.average_gradients([p.grad for p in trainable])
        if self.applier is None:
            assert self.groups is not None, "refresh() reads the variables before any batch"
            self.applier = GradientApplier(self.model.optimizer, self.groups.trainable)
        with torch.no_grad():
            self.applier([p.grad for p in trainable])
            _write_back(non_trainable, new_non_trainable)
            _write_back(metrics, new_metrics)
        return logs

    def _test(self, graph: FlatGraph, lean: bool) -> dict:
        trainable, non_trainable, metrics = self.values
        _, new_non_trainable, new_metrics, logs = self._step(graph, lean)
        _write_back(non_trainable, new_non_trainable)
        _write_back(metrics, new_metrics)
        return logs

    def _step(self, graph: FlatGraph, lean: bool) -> tuple:
        if lean and graph.lean is not None:
            loss, new_non_trainable, new_metrics, _ = graph.lean.call_step(self.flat_values + self.leaves)
            return loss, new_non_trainable, new_metrics, dict.fromkeys(graph.log_keys)  # names only, see _graph
        return graph.call_step(self.flat_values + self.leaves)


def _write_back(targets: list[torch.Tensor], values: list[torch.Tensor]) -> None:
    changed = [(t, v) for t, v in zip(targets, values) if v is not t]
    if changed:
        ki.foreach_copy([t for t, _ in changed], [v for _, v in changed])


def _device(values: tuple[list[torch.Tensor], ...]) -> torch.device | None:
    for group in values:
        for tensor in group:
            return tensor.device
    return None


def _as_tensor(value: Any, device: torch.device | None) -> Any:
    if isinstance(value, torch.Tensor):
        return value if device is None or value.device == device else value.to(device)
    if isinstance(value, (np.ndarray, np.generic, int, float, bool, list)):
        import keras

        return keras.ops.convert_to_tensor(value)
    return value


def _hashable(spec: Any) -> Any:
    try:
        hash(spec)
        return spec
    except TypeError:
        return str(spec)
