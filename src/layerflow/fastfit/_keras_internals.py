"""Every private Keras (and torch) API the fast training path uses, and nothing else.

Private torch APIs used (torch 2.13): ``torch.utils._pytree`` (flattening batches),
``torch.fx.experimental.proxy_tensor.make_fx`` (tracing), ``torch._foreach_copy_`` (the
kernel ``torch.optim`` itself calls), ``torch.jit.script`` of
the traced graph with aten overloads replaced by their packets (evaluate/predict replay), and
``torch._ops.OpOverload`` / ``Graph._codegen`` (simplifying the traced graph, ``simplify.py``).

Keras offers no public hook to swap the per-step function of ``fit``/``evaluate``/``predict``
on the torch backend, nor public access to the loss tracker, the optimizer's slot variables
or the trainer's own step functions. Those accesses live here, in one place, so that a Keras
upgrade breaks one module. They are tested with the versions in ``TESTED_VERSIONS`` (pinned in
pyproject.toml); on other versions the fast path stays off (see ``guard.version_problem``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch.fx.experimental.proxy_tensor import make_fx

from layerflow.tested_versions import TESTED_KERAS_VERSIONS, TESTED_TORCH_VERSIONS, minor_release

tree_flatten = pytree.tree_flatten
tree_map = pytree.tree_map
tree_leaves = pytree.tree_leaves
tree_unflatten = pytree.tree_unflatten


def trace_fake(function: Any, arguments: tuple) -> torch.fx.GraphModule:
    """Records ``function``'s torch operations on fake tensors (data-dependent Python raises)."""
    return make_fx(function, tracing_mode="fake")(*arguments)


def is_aten_overload(target: Any) -> bool:
    return isinstance(target, torch._ops.OpOverload)


def pytree_specs(module: torch.fx.GraphModule) -> tuple[Any, Any] | None:
    """The argument and output tree specs ``make_fx`` recorded, or None."""
    info = getattr(module.graph._codegen, "pytree_info", None)
    if info is None or info.in_spec is None:
        return None
    return info.in_spec, info.out_spec


def use_flat_arguments(module: torch.fx.GraphModule) -> None:
    """Makes the graph's code take its inputs and return its outputs as flat tensors
    (call ``module.recompile()`` afterwards)."""
    module.graph._codegen = torch.fx.graph.CodeGen()


def script_graph(module: torch.fx.GraphModule) -> Any:
    """``module`` compiled by TorchScript (aten overloads named by their packets), or None."""
    import copy
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = copy.deepcopy(module)
    for node in module.graph.nodes:
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            node.target = node.target.overloadpacket
    module.recompile()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.script(module)
    except Exception:  # noqa: BLE001 - anything TorchScript cannot compile stays on the Python replay
        return None


# Keras and torch (major, minor) the fast path was written and tested against: read from the
# one owner of the tested releases, ``layerflow.tested_versions`` (``TESTED_KERAS_VERSIONS``, ``TESTED_TORCH_VERSIONS``).
TESTED_VERSIONS = {"keras": minor_release(TESTED_KERAS_VERSIONS), "torch": minor_release(TESTED_TORCH_VERSIONS)}


# The model whose ``fit``/``evaluate``/``predict`` is running with the fast path enabled, or None.
# The class-level hooks below act only while it is set (see ``running``): every other model,
# in the same process, takes Keras's own code.
_running: contextvars.ContextVar[Any] = contextvars.ContextVar("layerflow_fast_model", default=None)


@contextlib.contextmanager
def running(model: Any) -> Iterator[None]:
    """Marks ``model`` as the enabled model whose loop is running (the hooks act for it only)."""
    token = _running.set(model)
    try:
        yield
    finally:
        _running.reset(token)


def running_model() -> Any:
    """The enabled model whose loop is running, or None."""
    return _running.get()


def torch_trainer_class() -> type[Any]:
    """Keras's torch trainer, whose ``make_*_function`` methods the fast path wraps."""
    from keras.src.backend.torch.trainer import TorchTrainer

    return TorchTrainer


def all_layers(model: Any) -> list[Any]:
    """Every layer inside ``model``, nested ones included (Keras has no public walk)."""
    return list(model._flatten_layers(include_self=False))


def call_model(model: Any, x: Any, training: bool) -> Any:
    """The forward pass exactly as Keras's torch ``train_step``/``test_step`` make it."""
    if model._call_has_training_arg:
        return model(x, training=training)
    return model(x)


def compute_loss(model: Any, x: Any, y: Any, y_pred: Any, sample_weight: Any, training: bool) -> Any:
    """Keras's loss (compiled loss + the model's added losses), honouring user overrides."""
    return model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)


def metric_names(model: Any) -> list[str]:
    """The names ``Trainer._get_metrics_result_or_logs`` compares a step's logs with."""
    return list(model.get_metrics_result().keys())


def update_loss_tracker(model: Any, loss: Any, batch_size: int) -> None:
    model._loss_tracker.update_state(loss, sample_weight=batch_size)


def compiled_state_ids(model: Any) -> tuple[int, int, int]:
    """Identities of what ``compile`` creates: a recompile changes them."""
    return (
        id(getattr(model, "_compile_loss", None)),
        id(getattr(model, "_compile_metrics", None)),
        id(getattr(model, "optimizer", None)),
    )


def has_loss_tracker(model: Any) -> bool:
    return getattr(model, "_loss_tracker", None) is not None


def jit_compile(model: Any) -> bool:
    return bool(getattr(model, "jit_compile", False))


def is_loss_scale_optimizer(optimizer: Any) -> bool:
    from keras.src.optimizers.loss_scale_optimizer import LossScaleOptimizer

    return isinstance(optimizer, LossScaleOptimizer)


def learning_rate_is_schedule(optimizer: Any) -> bool:
    from keras.src.optimizers.schedules.learning_rate_schedule import LearningRateSchedule

    return isinstance(optimizer._learning_rate, LearningRateSchedule) or callable(optimizer._learning_rate)


def iterations_tensor(optimizer: Any) -> torch.Tensor:
    return optimizer._iterations.value


def uses_gradient_accumulation(optimizer: Any) -> bool:
    return bool(getattr(optimizer, "gradient_accumulation_steps", None))


def adam_moments(optimizer: Any, variables: list[Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The Adam optimizer's first and second moment tensors for ``variables``, in order."""
    indices = [optimizer._get_variable_index(v) for v in variables]
    return ([optimizer._momentums[i].value for i in indices], [optimizer._velocities[i].value for i in indices])


def learning_rate_tensor(optimizer: Any) -> torch.Tensor:
    """The learning-rate variable's tensor (ReduceLROnPlateau assigns into it in place)."""
    return optimizer._learning_rate.value


def foreach_copy(destinations: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    torch._foreach_copy_(destinations, sources)


_BATCH_END_HOOKS = {
    "on_train_batch_end": ("on_train_batch_end", "on_batch_end"),
    "on_test_batch_end": ("on_test_batch_end",),
    "on_predict_batch_end": ("on_predict_batch_end",),
}


# Set by CallbackList.on_{train,test}_batch_begin just before Keras's loop calls the step, and
# read once by that step: True when no callback will read the batch's logs.
unread_logs: dict[str, bool] = {}


def take_unread_logs(kind: str) -> bool:
    """Whether the logs of the step about to run go to no callback (read once, then forgotten)."""
    return unread_logs.pop(kind, False)


def _acts_for(callbacks: Any) -> bool:
    """Whether ``callbacks`` (a ``CallbackList``) belong to the enabled model whose loop is running."""
    model = _running.get()
    return model is not None and callbacks._model is model


def _mark_patched(replacement: Any, original: Any) -> None:
    """Records on ``replacement`` the Keras method it patches (a ``def`` has no declared attributes
    for mypy; ``getattr(..., "_layerflow_original", None)`` reads it back)."""
    replacement._layerflow_original = original


def skip_unheard_batch_ends(enabled: Any) -> None:
    """Makes ``CallbackList`` skip a batch-end call that no callback listens to.

    Keras hands every batch end to a thread pool when its callbacks allow it, even when each
    callback's hook is the inherited no-op (History, layerflow's run recorder, a silent
    progress bar): a thread hand-off and GIL contention per step for nothing. Callbacks that
    override a batch hook (a progress bar at verbose=1, a user's callback) are called as before.

    The hook acts only for the callbacks of the enabled model whose loop is running (see
    ``running``); any other ``CallbackList`` runs Keras's code unchanged.

    Args:
        enabled: a no-argument callable; the skip applies only while it returns True.
    """
    from keras.src.callbacks.callback_list import CallbackList
    from keras.src.utils.python_utils import is_default

    for method, hooks in _BATCH_END_HOOKS.items():
        original = getattr(CallbackList, method)
        if getattr(original, "_layerflow_original", None) is not None:
            continue

        def unheard(callbacks: Any, hooks: tuple[str, ...] = hooks) -> bool:
            cache = callbacks.__dict__.setdefault("_layerflow_unheard", {})
            key = (hooks, tuple(id(c) for c in callbacks.callbacks))
            if key not in cache:
                cache.clear()
                cache[key] = all(is_default(getattr(c, h)) for c in callbacks.callbacks for h in hooks)
            return cache[key]

        def batch_end(self, batch, logs=None, _original=original, _unheard=unheard):
            if _acts_for(self) and enabled() and _unheard(self):
                return
            _original(self, batch, logs)

        _mark_patched(batch_end, original)
        batch_end.__name__ = method
        setattr(CallbackList, method, batch_end)

        kind = method.split("_")[1]
        if kind == "predict":
            continue
        begin_name = f"on_{kind}_batch_begin"
        original_begin = getattr(CallbackList, begin_name)

        def batch_begin(self, batch, logs=None, _original=original_begin, _unheard=unheard, _kind=kind):
            _original(self, batch, logs)
            if _acts_for(self):
                unread_logs[_kind] = bool(enabled() and _unheard(self))

        _mark_patched(batch_begin, original_begin)
        batch_begin.__name__ = begin_name
        setattr(CallbackList, begin_name, batch_begin)


# NumPy dtypes Keras's ``convert_to_tensor`` turns into a tensor of the same dtype (it copies the
# slice first; uint32 becomes int64 and bfloat16 float32, so those keep Keras's conversion).
_SAME_DTYPE = frozenset(
    ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64", "complex64", "complex128"]
)


def _direct_slicer(sliceable: Any, device: Any) -> Any:
    """``where -> tensor`` equal to Keras's slice-and-convert of ``sliceable``, without its copy
    and dtype checks (``torch.from_numpy`` of the slice), or None where Keras's conversion is kept.

    Only for a C-contiguous, writeable NumPy array in native byte order whose dtype Keras keeps:
    the tensor then has the dtype, shape, strides and values Keras's copy would have.
    """
    import numpy as np

    array = getattr(sliceable, "array", None)
    if (
        type(array) is not np.ndarray
        or array.dtype.name not in _SAME_DTYPE
        or not array.flags.c_contiguous
        or not array.flags.writeable
        or not array.dtype.isnative
        or array.ndim == 0
    ):
        return None
    from_numpy = torch.from_numpy
    if device.type == "cpu":
        return lambda where: from_numpy(array[where])
    return lambda where: from_numpy(array[where]).to(device)


class _ArrayBatches:
    """Keras's own batches of NumPy arrays (same sampler, same order), sliced without a DataLoader.

    Consecutive indices (no shuffling) become one slice, shuffled ones one NumPy index array,
    instead of a DataLoader call and a fancy index from a Python list per batch. Arrays Keras
    would convert to a tensor of their own dtype are sliced straight into tensors (see
    ``_direct_slicer``); a batch of a tuple of arrays stays a tuple, one array a tensor.
    """

    def __init__(self, batch_sampler: Any, sliceables: Any, sequential: bool) -> None:
        from keras.src.backend.torch.core import convert_to_tensor

        self.batch_sampler = batch_sampler
        self.sliceables = sliceables
        self.sequential = sequential
        device = convert_to_tensor(0.0).device  # where Keras puts every batch
        leaves = sliceables if type(sliceables) is tuple else (sliceables,)
        slicers = [_direct_slicer(s, device) for s in leaves]
        self.slicers = None if None in slicers else slicers
        self.single = type(sliceables) is not tuple
        self.num_samples = len(leaves[0].array) if self.slicers is not None else None

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self):
        # A DataLoader draws its base seed from the global generator when an iterator is made;
        # drawing it at the same moment keeps every later random number (shuffles, dropout) equal.
        torch.empty((), dtype=torch.int64).random_()
        return self._batches() if self.slicers is None else self._direct_batches()

    def _wheres(self):
        import numpy as np

        sampler = self.batch_sampler
        if self.sequential and type(sampler) is torch.utils.data.BatchSampler and not sampler.drop_last:
            # The slices of the index lists BatchSampler would build, without building them.
            size, total = sampler.batch_size, len(sampler.sampler)
            for start in range(0, total, size):
                yield slice(start, min(start + size, total))
            return
        sequential = self.sequential
        for indices in sampler:
            yield slice(indices[0], indices[-1] + 1) if sequential else np.asarray(indices)

    def _direct_batches(self):
        slicers = self.slicers
        if self.single:
            (slicer,) = slicers
            for where in self._wheres():
                yield slicer(where)
        else:
            for where in self._wheres():
                yield tuple([slicer(where) for slicer in slicers])

    def _batches(self):
        from keras.src import tree
        from keras.src.backend.torch.core import convert_to_tensor

        for where in self._wheres():

            def slice_and_convert(sliceable, where=where):
                return convert_to_tensor(sliceable.convert_to_torch_compatible(sliceable[where]))

            yield tree.map_structure(slice_and_convert, self.sliceables, none_is_leaf=False)


def _array_batches(loader: Any) -> Any:
    """Keras's torch loader of NumPy arrays as ``_ArrayBatches`` (the same batches), or the loader
    itself where its data is anything else."""
    from keras.src import tree
    from keras.src.trainers.data_adapters.array_slicing import NumpySliceable

    sliceables = loader.dataset.array
    leaves = tree.flatten(sliceables)
    if not leaves or not all(type(s) is NumpySliceable and hasattr(s.array, "__array__") for s in leaves):
        return loader
    sampler = getattr(loader.batch_sampler, "sampler", None)
    sequential = isinstance(sampler, torch.utils.data.SequentialSampler)
    return _ArrayBatches(loader.batch_sampler, sliceables, sequential)


def slice_numpy_batches_directly(enabled: Any) -> None:
    """Makes Keras's torch loader of NumPy arrays yield the same batches without a DataLoader.

    The hook acts only inside the loop of an enabled model (see ``running``); any other
    model's batches come from Keras's DataLoader unchanged.

    Args:
        enabled: a no-argument callable; the direct slicing applies only while it returns True.
    """
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

    original = ArrayDataAdapter.get_torch_dataloader
    if getattr(original, "_layerflow_original", None) is not None:
        return

    def get_torch_dataloader(self):
        loader = original(self)
        if _running.get() is None or not enabled():
            return loader
        return _array_batches(loader)

    _mark_patched(get_torch_dataloader, original)
    ArrayDataAdapter.get_torch_dataloader = get_torch_dataloader


def batch_hooks_heard(callbacks: Any, kind: str) -> tuple[bool, bool]:
    """Whether any of ``callbacks`` (a ``CallbackList``) overrides the ``kind`` ("test" or
    "predict") batch-begin hook, and the batch-end hook."""
    from keras.src.utils.python_utils import is_default

    listed = callbacks.callbacks
    return (
        any(not is_default(getattr(c, f"on_{kind}_batch_begin")) for c in listed),
        any(not is_default(getattr(c, f"on_{kind}_batch_end")) for c in listed),
    )


def _direct_batches(model: Any, epoch_iterator: Any) -> Any:
    """The epoch's batches as one ``_ArrayBatches`` that slices every array straight into tensors,
    when the epoch iterator would yield exactly those batches one per step; None otherwise."""
    if epoch_iterator.steps_per_epoch is not None or epoch_iterator.steps_per_execution != 1:
        return None
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

    adapter = epoch_iterator.data_adapter
    if type(adapter) is not ArrayDataAdapter or not adapter.num_batches:
        return None
    keras_loader = getattr(
        ArrayDataAdapter.get_torch_dataloader, "_layerflow_original", ArrayDataAdapter.get_torch_dataloader
    )
    batches = _array_batches(keras_loader(adapter))
    if type(batches) is not _ArrayBatches or batches.slicers is None or len(batches) != adapter.num_batches:
        return None
    return batches


def direct_loops(test_loop: Any, predict_loop: Any, enabled: Any) -> tuple[Any, Any]:
    """``evaluate`` and ``predict`` methods that hand their batch loop to ``test_loop``/``predict_loop``.

    ``layerflow.fastfit.enable`` binds them to one model (they replace no class's method).

    The replacements are Keras 3.15's ``TorchTrainer.evaluate``/``predict``, line for line,
    except their ``for ... in epoch_iterator`` loop: where the batches are NumPy arrays sliced
    straight into tensors (see ``_direct_batches``), one per step, the loop functions run the
    batches instead, given ``(model, batches, callbacks)``; they return what Keras's loop would
    leave behind (the last logs, or the gathered predictions), or ``NotImplemented`` before
    touching a batch to leave the loop to Keras.

    Args:
        test_loop: ``(model, batches, callbacks) -> logs | NotImplemented``.
        predict_loop: ``(model, batches, callbacks) -> outputs | NotImplemented``.
        enabled: a no-argument callable; the replacements apply only while it returns True
            (otherwise Keras's own ``evaluate``/``predict`` run).

    Returns:
        ``(evaluate, predict)``: functions taking the model as their first argument.
    """
    from keras.src import callbacks as callbacks_module
    from keras.src import tree
    from keras.src.backend.torch.core import convert_to_numpy
    from keras.src.backend.torch.trainer import TorchEpochIterator
    from keras.src.utils import traceback_utils
    from keras.src.utils.python_utils import pythonify_logs

    trainer = torch_trainer_class()
    original_evaluate, original_predict = trainer.evaluate, trainer.predict

    @traceback_utils.filter_traceback
    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        steps=None,
        callbacks=None,
        return_dict=False,
        **kwargs,
    ):
        if not enabled():
            return original_evaluate(
                self,
                x=x,
                y=y,
                batch_size=batch_size,
                verbose=verbose,
                sample_weight=sample_weight,
                steps=steps,
                callbacks=callbacks,
                return_dict=return_dict,
                **kwargs,
            )
        use_cached_eval_dataset = kwargs.pop("_use_cached_eval_dataset", False)
        if kwargs:
            from layerflow.errors import InvalidValueError

            raise InvalidValueError(f"evaluate(): arguments not recognized: {kwargs}")
        if use_cached_eval_dataset:
            epoch_iterator = self._eval_epoch_iterator
        else:
            epoch_iterator = TorchEpochIterator(
                x=x,
                y=y,
                sample_weight=sample_weight,
                batch_size=batch_size,
                steps_per_epoch=steps,
                shuffle=False,
                steps_per_execution=self.steps_per_execution,
            )
        self._symbolic_build(iterator=epoch_iterator)
        epoch_iterator.reset()
        if not isinstance(callbacks, callbacks_module.CallbackList):
            callbacks = callbacks_module.CallbackList(
                callbacks,
                add_progbar=verbose != 0,
                verbose=verbose,
                epochs=1,
                steps=epoch_iterator.num_batches,
                model=self,
            )
        self.eval()
        self.make_test_function()
        self.stop_evaluating = False
        callbacks.on_test_begin()
        logs = {}
        self.reset_metrics()
        batches = _direct_batches(self, epoch_iterator)
        result = NotImplemented if batches is None else test_loop(self, batches, callbacks)
        if result is NotImplemented:
            for begin_step, end_step, data in epoch_iterator:
                callbacks.on_test_batch_begin(begin_step)
                logs = self.test_function(data)
                callbacks.on_test_batch_end(end_step, logs)
                if self.stop_evaluating:
                    break
        else:
            logs = result
        logs = pythonify_logs(self._get_metrics_result_or_logs(logs))
        callbacks.on_test_end(logs)
        if return_dict:
            return logs
        return self._flatten_metrics_in_order(logs)

    @traceback_utils.filter_traceback
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        if not enabled():
            return original_predict(self, x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)
        epoch_iterator = TorchEpochIterator(
            x=x,
            batch_size=batch_size,
            steps_per_epoch=steps,
            shuffle=False,
            steps_per_execution=self.steps_per_execution,
        )
        if not isinstance(callbacks, callbacks_module.CallbackList):
            callbacks = callbacks_module.CallbackList(
                callbacks,
                add_progbar=verbose != 0,
                verbose=verbose,
                epochs=1,
                steps=epoch_iterator.num_batches,
                model=self,
            )

        def append_to_outputs(batch_outputs, outputs):
            if outputs is None:
                outputs = tree.map_structure(lambda batch_output: [batch_output], batch_outputs)
            else:
                tree.map_structure_up_to(
                    batch_outputs, lambda output, batch_output: output.append(batch_output), outputs, batch_outputs
                )
            return outputs

        self.eval()
        self.make_predict_function()
        self.stop_predicting = False
        callbacks.on_predict_begin()
        batches = _direct_batches(self, epoch_iterator)
        result = NotImplemented if batches is None else predict_loop(self, batches, callbacks)
        if result is not NotImplemented:
            callbacks.on_predict_end()
            return result
        outputs = None
        for begin_step, end_step, data in epoch_iterator:
            callbacks.on_predict_batch_begin(begin_step)
            batch_outputs = self.predict_function(data)
            outputs = append_to_outputs(batch_outputs, outputs)
            callbacks.on_predict_batch_end(end_step, {"outputs": batch_outputs})
            if self.stop_predicting:
                break
        callbacks.on_predict_end()
        outputs = tree.map_structure(convert_to_numpy, outputs)
        return tree.map_structure_up_to(batch_outputs, np.concatenate, outputs)

    import numpy as np

    for name, replacement, original in (
        ("evaluate", evaluate, original_evaluate),
        ("predict", predict, original_predict),
    ):
        replacement._layerflow_original = original
        replacement.__name__ = name
        replacement.__doc__ = original.__doc__
    return evaluate, predict


def to_numpy(tensor: torch.Tensor) -> Any:
    """A predicted tensor as a NumPy array, as Keras's ``convert_to_numpy`` makes it."""
    if tensor.device.type == "cpu" and tensor.dtype != torch.bfloat16 and not tensor.requires_grad:
        return tensor.numpy()
    from keras.src.backend.torch.core import convert_to_numpy

    return convert_to_numpy(tensor)


def append_predictions(batch_outputs: Any, outputs: Any) -> Any:
    """Keras's ``predict`` gathering of one batch's outputs (per-leaf lists)."""
    from keras.src import tree

    if outputs is None:
        return tree.map_structure(lambda batch_output: [batch_output], batch_outputs)
    tree.map_structure_up_to(
        batch_outputs, lambda output, batch_output: output.append(batch_output), outputs, batch_outputs
    )
    return outputs


def concatenate_predictions(outputs: Any, last_batch_outputs: Any) -> Any:
    """Keras's ``predict`` result from the gathered lists."""
    import numpy as np
    from keras.src import tree
    from keras.src.backend.torch.core import convert_to_numpy

    outputs = tree.map_structure(convert_to_numpy, outputs)
    return tree.map_structure_up_to(last_batch_outputs, np.concatenate, outputs)
