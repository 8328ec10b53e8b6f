"""Fast ``fit``/``evaluate``/``predict`` for Keras models on the torch backend.

Installed by ``layerflow.backend.load_keras`` (so ``from layerflow import keras`` is enough):
Keras's own loops keep running, with their callbacks, History, validation and weighting,
but the function they call once per batch replays a torch graph traced once from the
model's step (see ``trace``), and Adam steps with torch's fused kernel (see ``optimizer``).
Over NumPy arrays, ``evaluate`` and ``predict`` run their batch loop without Keras's epoch
iterator, with the same callbacks and results (see ``loops``).
A model whose step cannot be traced (data-dependent Python, seeded random layers, a custom
``train_step``...) stays on Keras's path, with one line on stderr saying why.
``LAYERFLOW_FAST_FIT=0`` turns the fast path off.

Example:
    >>> import numpy as np
    >>> import layerflow as lf
    >>> from layerflow import keras                   # the fast path is installed
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(loss="mse", optimizer="adam")
    >>> _ = model.fit(np.zeros((8, 4)), np.zeros(8), verbose=0)
    >>> lf.fast_fit_status(model)["train"]
    'fast'
"""

from __future__ import annotations

from typing import Any

from layerflow.errors import LayerflowError
from layerflow.fastfit.guard import ENV_SWITCH, fallback_reason, switched_off, version_problem

__all__ = ["ENV_SWITCH", "FastFitError", "fast_fit_status", "install", "one_time_seconds", "switched_off", "version_problem"]



class FastFitError(LayerflowError, TypeError):
    """A fast-fit function was given something other than what it works on."""


def _check_model(model: Any) -> None:
    if not all(hasattr(model, name) for name in ("fit", "make_train_function", "trainable_variables")):
        raise FastFitError(f"expected a Keras model (torch backend); got {type(model).__name__}")


_KINDS = {"train": "train_function", "test": "test_function", "predict": "predict_function"}
_installed = False


def _wrap(kind: str, original: Any) -> Any:
    from layerflow.fastfit.guard import model_problem, report_fallback
    from layerflow.fastfit.steps import FastStep

    attribute = _KINDS[kind]

    def make_function(self, force=False):
        current = getattr(self, attribute, None)
        if current is not None and not force:
            if isinstance(current, FastStep):
                current.refresh()
            return current
        original(self, force=force)
        keras_function = getattr(self, attribute)
        if switched_off():
            return keras_function
        reason = model_problem(self, kind)
        if reason is not None:
            report_fallback(self, kind, reason)
            return keras_function
        fast = FastStep(self, kind, keras_function)
        fast.refresh()
        setattr(self, attribute, fast)
        return fast

    make_function.__wrapped__ = original
    make_function.__name__ = original.__name__
    return make_function


def install(keras: Any) -> bool:
    """Makes Keras's torch trainer use the fast per-step functions (idempotent).

    Args:
        keras: the imported ``keras`` module.

    Returns:
        True when installed (the torch backend), False on another backend.

    Example:
        >>> import layerflow.fastfit
        >>> layerflow.fastfit.install(keras)
        True
    """
    global _installed
    if not hasattr(getattr(keras, "backend", None), "backend"):
        raise FastFitError(f"install() expects the imported keras module; got {type(keras).__name__}")
    if keras.backend.backend() != "torch":
        return False
    if _installed:
        return True
    from layerflow.fastfit import _keras_internals as ki

    trainer = ki.torch_trainer_class()
    for kind in _KINDS:
        name = f"make_{kind}_function"
        setattr(trainer, name, _wrap(kind, getattr(trainer, name)))
    ki.skip_unheard_batch_ends(lambda: not switched_off())
    ki.slice_numpy_batches_directly(lambda: not switched_off())
    from layerflow.fastfit import loops

    ki.run_batch_loops_directly(loops.test_loop, loops.predict_loop, lambda: not switched_off())
    from layerflow.fastfit import distributed

    distributed.install(keras)
    _installed = True
    return True


def fast_fit_status(model: Any) -> dict[str, str]:
    """Which path each of the model's loops took: "fast", "keras: <reason>" or "not run yet".

    Args:
        model: a Keras model that has been fit, evaluated or used to predict.

    Returns:
        ``{"train": ..., "test": ..., "predict": ...}``.

    Example:
        >>> fast_fit_status(model)
        {'train': 'fast', 'test': 'fast', 'predict': 'not run yet'}
    """
    from layerflow.fastfit.steps import FastStep

    _check_model(model)
    status = {}
    for kind, attribute in _KINDS.items():
        function = getattr(model, attribute, None)
        if function is None:
            status[kind] = "not run yet"
        elif isinstance(function, FastStep):
            status[kind] = "fast" if function.active else f"keras: {function.fallback_reason or ENV_SWITCH + '=0'}"
        else:
            status[kind] = f"keras: {fallback_reason(model, kind) or ENV_SWITCH + '=0'}"
    return status


def one_time_seconds(model: Any) -> dict[str, float]:
    """Seconds spent tracing the model's steps so far (the fast path's one-time cost).

    Args:
        model: a Keras model.

    Returns:
        ``{"train": s, "test": s, "predict": s}`` (0 for loops not on the fast path).

    Example:
        >>> one_time_seconds(model)["train"] < 1.0
        True
    """
    from layerflow.fastfit.steps import FastStep

    _check_model(model)
    return {kind: (f.trace_seconds if isinstance(f := getattr(model, attr, None), FastStep) else 0.0)
            for kind, attr in _KINDS.items()}
