"""Data-parallel ``fit`` on the fast path when a torch.distributed process group exists.

The shape of keras-team/keras#23316 (DDP in Keras's torch trainer): nothing changes unless
``torch.distributed`` is initialised with a world size above 1 (Ray Train's ``TorchTrainer``
does that on each worker, see ``layerflow run --workers N``). Then, on every rank:

- ``fit`` over NumPy arrays shards them per epoch the way ``torch.utils.data.DistributedSampler``
  does (seed 0 + epoch shuffle when ``shuffle=True``, padded to equal shards, rank ``r`` takes
  every N-th sample from ``r``); ``batch_size`` is the global batch, each rank steps on
  ``batch_size / N`` samples;
- the initial weights (trainable and non-trainable) are broadcast from rank 0 when a fit starts;
- each step's gradients are all-reduced and averaged before the optimizer (the loss is a mean
  over equal local batches, so the average is the gradient of the global batch's mean loss);
- the training metrics' states (Keras metric variables: totals and counts) are summed over
  the ranks just before Keras computes an epoch's logs, so History, callbacks and layerflow's
  recording see the global values on every rank. Validation and ``evaluate`` data are not
  sharded: every rank evaluates all of it, so its values are already global.

A model that cannot train this way (a custom ``train_step``, anything that sends the fast
path back to Keras's loop) is refused before training, and a fall back mid-training raises,
so a model is never trained N times silently.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from layerflow.errors import LayerflowError

SHUFFLE_SEED = 0  # DistributedSampler's default seed


class DistributedFitError(LayerflowError, ValueError):
    """A ``fit`` that cannot run data-parallel (its model, data or batch size), said before training."""


def world() -> tuple[int, int] | None:
    """``(rank, world_size)`` when a torch.distributed process group of more than one process exists."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def _coalesced(tensors: list[torch.Tensor], operation: Any) -> None:
    """Runs ``operation`` on one flat buffer per dtype holding ``tensors``, then copies back."""
    by_dtype: dict[Any, list[torch.Tensor]] = {}
    for tensor in tensors:
        by_dtype.setdefault((tensor.dtype, tensor.device), []).append(tensor)
    for group in by_dtype.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group])
        operation(flat)
        offset = 0
        for tensor in group:
            size = tensor.numel()
            tensor.detach().copy_(flat[offset : offset + size].view_as(tensor))
            offset += size


def broadcast_weights(values: Any) -> None:
    """Gives every rank rank 0's values of the trainable and non-trainable tensors (in place)."""
    if world() is None:
        return
    with torch.no_grad():
        _coalesced([t for group in values for t in group], lambda flat: dist.broadcast(flat, src=0))


def average_gradients(grads: list[torch.Tensor | None]) -> None:
    """All-reduces the step's gradients and divides by the world size (in place)."""
    found = world()
    if found is None:
        return
    size = found[1]

    def reduce(flat: torch.Tensor) -> None:
        dist.all_reduce(flat)
        flat.div_(size)

    with torch.no_grad():
        _coalesced([g for g in grads if g is not None], reduce)


def refuse_fallback(kind: str, reason: str) -> None:
    """Raises when a data-parallel training step would leave the fast path for Keras's loop."""
    if kind == "train" and world() is not None:
        raise DistributedFitError(
            f"This model cannot train data-parallel: the fast path fell back to Keras's loop "
            f"because {reason}, and Keras's loop would train each worker's copy on its own."
        )


def _metric_tensors(model: Any) -> list[torch.Tensor]:
    return [variable.value for metric in model.metrics for variable in metric.variables]


def _reduce_training_metrics(model: Any, original: Any, state: dict) -> Any:
    @functools.wraps(original)
    def get_metrics_result_or_logs(logs):
        if not state["training"] or world() is None:
            return original(logs)
        tensors = _metric_tensors(model)
        with torch.no_grad():
            local = [t.detach().clone() for t in tensors]
            _coalesced(tensors, lambda flat: dist.all_reduce(flat))
        try:
            return original(logs)
        finally:  # the local states again: reading the logs twice must not sum twice
            with torch.no_grad():
                for tensor, value in zip(tensors, local):
                    tensor.detach().copy_(value)

    return get_metrics_result_or_logs


class _ShardedArrays:
    """A Keras ``PyDataset`` of this rank's shard of arrays, re-drawn each epoch (DistributedSampler's rule).

    Args (of the dataset made): arrays ``(x, y, sample_weight)``, the local batch size, this
    rank, the world size, whether to shuffle, and fit's ``initial_epoch``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        import keras

        class ShardedArrays(keras.utils.PyDataset):
            def __init__(self, arrays, local_batch, rank, world_size, shuffle, initial_epoch=0):
                super().__init__()
                self.arrays, self.local_batch = arrays, local_batch
                self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
                self.count = _length(arrays[0])
                self.total = math.ceil(self.count / world_size) * world_size
                self.initial_epoch, self.epoch, self.begun = initial_epoch, initial_epoch, 0
                self._draw()

            def _draw(self):
                if self.shuffle:
                    generator = torch.Generator()
                    generator.manual_seed(SHUFFLE_SEED + self.epoch)
                    order = torch.randperm(self.count, generator=generator).numpy()
                else:
                    order = np.arange(self.count)
                padding = self.total - self.count
                if padding:
                    order = np.concatenate([order, np.resize(order, padding)])
                self.indices = order[self.rank : self.total : self.world_size]

            def __len__(self):
                return math.ceil(len(self.indices) / self.local_batch)

            def __getitem__(self, index):
                chosen = self.indices[index * self.local_batch : (index + 1) * self.local_batch]
                batch = tuple(None if a is None else _take(a, chosen) for a in self.arrays)
                x, y, sample_weight = batch
                if sample_weight is not None:
                    return x, y, sample_weight
                return (x, y) if y is not None else (x,)

            def on_epoch_begin(self):  # Keras calls it once per epoch; DistributedSampler.set_epoch
                self.begun += 1
                if self.epoch != self.initial_epoch + self.begun - 1:
                    self.epoch = self.initial_epoch + self.begun - 1
                    self._draw()

        return ShardedArrays(*args, **kwargs)


def _take(value: Any, indices: np.ndarray) -> Any:
    if isinstance(value, dict):
        return {k: _take(v, indices) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_take(v, indices) for v in value)
    return value[indices]


def _is_arrays(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_is_arrays(v) for v in value.values()) and bool(value)
    if isinstance(value, (list, tuple)):
        return all(_is_arrays(v) for v in value) and bool(value)
    return isinstance(value, np.ndarray)


def _length(value: Any) -> int:
    if isinstance(value, dict):
        return _length(next(iter(value.values())))
    if isinstance(value, (list, tuple)):
        return _length(value[0])
    return len(value)


def _split(value: Any, at: int) -> tuple[Any, Any]:
    if value is None:
        return None, None
    return _take(value, np.arange(at)), _take(value, np.arange(at, _length(value)))


def _fit_arguments(model: Any, original_fit: Any, args: tuple, kwargs: dict, rank: int, size: int) -> dict:
    """``fit``'s arguments for this rank: its shard of the arrays, its share of the batch."""
    from layerflow.fastfit.guard import model_problem, switched_off

    bound = inspect.signature(original_fit).bind(model, *args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("self", None)
    arguments.update(arguments.pop("kwargs", {}) or {})
    problem = "the fast path is switched off" if switched_off() else model_problem(model, "train")
    if problem is not None:
        raise DistributedFitError(
            f"This model cannot train data-parallel on {size} workers: {problem} "
            "(Keras's own loop would train each worker's copy on its own)."
        )
    x, y, sample_weight = arguments.get("x"), arguments.get("y"), arguments.get("sample_weight")
    if (
        not _is_arrays(x)
        or not (y is None or _is_arrays(y))
        or not (sample_weight is None or _is_arrays(sample_weight))
    ):
        raise DistributedFitError(
            f"fit() on {size} workers shards NumPy arrays only; got x of type {type(x).__name__}"
            f"{'' if y is None else f', y of type {type(y).__name__}'}. A generator, PyDataset or DataLoader "
            "cannot be sharded: pass arrays, or run with one worker."
        )
    if arguments.get("class_weight") is not None:
        raise DistributedFitError("class_weight is not supported on several workers; pass sample_weight instead.")
    if arguments.get("steps_per_epoch") is not None:
        raise DistributedFitError(
            "steps_per_epoch is not supported on several workers: each epoch is one pass over this worker's shard."
        )
    batch_size = arguments.get("batch_size") or 32
    if batch_size % size:
        raise DistributedFitError(
            f"batch_size={batch_size} is the global batch and must divide evenly over the "
            f"{size} workers (e.g. {batch_size - batch_size % size or size})."
        )
    split = arguments.get("validation_split") or 0.0
    if split and arguments.get("validation_data") is None:
        at = int(math.floor(_length(x) * (1.0 - split)))  # Keras keeps the last fraction for validation
        (x, x_val), (y, y_val), (sample_weight, sw_val) = _split(x, at), _split(y, at), _split(sample_weight, at)
        arguments["validation_data"] = (x_val, y_val) if sw_val is None else (x_val, y_val, sw_val)
    arguments["validation_split"] = 0.0
    arguments["x"] = _ShardedArrays(
        (x, y, sample_weight),
        batch_size // size,
        rank,
        size,
        bool(arguments.get("shuffle")),
        int(arguments.get("initial_epoch") or 0),
    )
    arguments.update({"y": None, "sample_weight": None, "batch_size": None, "shuffle": False})
    return arguments


def install(keras: Any) -> None:
    """Wraps ``keras.Model.fit`` so that under a process group of several ranks it trains data-parallel."""
    model_class = keras.Model
    if getattr(model_class, "_layerflow_data_parallel", False):
        return
    original_fit = model_class.fit

    @functools.wraps(original_fit)
    def fit(self, *args, **kwargs):
        found = world()
        if found is None:
            return original_fit(self, *args, **kwargs)
        arguments = _fit_arguments(self, original_fit, args, kwargs, *found)
        state = {"training": False}

        class TrainingPhase(keras.callbacks.Callback):
            """Marks when Keras's metrics hold the training epoch's states (not validation's)."""

            def on_epoch_begin(self, epoch, logs=None):
                state["training"] = True

            def on_test_begin(self, logs=None):
                state["training"] = False

        arguments["callbacks"] = [TrainingPhase(), *(arguments.get("callbacks") or [])]
        original = self._get_metrics_result_or_logs
        self._get_metrics_result_or_logs = _reduce_training_metrics(self, original, state)
        try:
            return original_fit(self, **arguments)
        finally:
            del self._get_metrics_result_or_logs

    model_class.fit = fit
    model_class._layerflow_data_parallel = True
