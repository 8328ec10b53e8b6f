"""The Keras and torch releases layerflow is tested on, and the private Keras APIs it uses.

One owner for both (``tests/test_keras_versions.py`` checks them all: the installed releases,
pyproject's pins, that each API below exists, and that only the modules named here import
``keras.src``). A leaf module, so that ``backend`` and the fast path
(``fastfit/_keras_internals.py``) read the same values without importing each other.
"""

from __future__ import annotations

# The specifiers are pyproject's keras and torch dependencies; the fast path
# (layerflow/fastfit/_keras_internals.py) reads its (major, minor) from them with ``minor_release``.
# Any other Keras release fails that test until the suite has passed on it and the range is widened.
TESTED_KERAS_VERSIONS = ">=3.15,<3.16"
TESTED_TORCH_VERSIONS = ">=2.13,<2.14"
# The modules allowed to import private Keras APIs (``keras.src``), one per feature that needs them.
KERAS_PRIVATE_API_MODULES = ("data/keras_feeding.py", "fastfit/_keras_internals.py")
KERAS_PRIVATE_APIS = (
    # a layerflow Dataset is a Keras DataAdapter (layerflow/data/keras_feeding.py)
    "keras.src.trainers.data_adapters.data_adapter.DataAdapter",
    "keras.src.trainers.data_adapters.data_adapter_utils.get_numpy_iterator",
    "keras.src.trainers.data_adapters.data_adapter_utils.get_jax_iterator",
    "keras.src.trainers.data_adapters.data_adapter_utils.get_torch_dataloader",
    # the fast training path (layerflow/fastfit/_keras_internals.py)
    "keras.src.backend.torch.trainer.TorchTrainer",
    "keras.src.callbacks.callback_list.CallbackList",
    "keras.src.utils.python_utils.is_default",
    "keras.src.trainers.data_adapters.array_data_adapter.ArrayDataAdapter",
    "keras.src.trainers.data_adapters.array_slicing.NumpySliceable",
    "keras.src.backend.torch.core.convert_to_tensor",
    "keras.src.optimizers.loss_scale_optimizer.LossScaleOptimizer",
    "keras.src.backend.torch.optimizers.torch_parallel_optimizer.TorchParallelOptimizer",
    "keras.src.optimizers.schedules.learning_rate_schedule.LearningRateSchedule",
    "keras.src.tree.map_structure",
    "keras.src.tree.map_structure_up_to",
    # the direct evaluate/predict loops (layerflow/fastfit/_keras_internals.py, copied from Keras 3.15)
    "keras.src.backend.torch.trainer.TorchEpochIterator",
    "keras.src.backend.torch.core.convert_to_numpy",
    "keras.src.callbacks.CallbackList",
    "keras.src.utils.traceback_utils.filter_traceback",
    "keras.src.utils.python_utils.pythonify_logs",
)


def minor_release(specifier: str) -> tuple[int, int]:
    """The (major, minor) release a ``">=X.Y,<X.Z"`` specifier of the tested versions names.

    Args:
        specifier: ``TESTED_KERAS_VERSIONS`` or ``TESTED_TORCH_VERSIONS``.

    Returns:
        ``(X, Y)`` of its lower bound.

    Example:
        >>> minor_release(">=3.15,<3.16")
        (3, 15)
    """
    lower = next(part.strip()[2:] for part in specifier.split(",") if part.strip().startswith(">="))
    major, minor = lower.split(".")[:2]
    return int(major), int(minor)
