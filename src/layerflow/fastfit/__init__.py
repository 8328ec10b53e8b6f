"""Fast ``fit``/``evaluate``/``predict`` for Keras models on the torch backend, per model.

``enable(model)`` puts one model on the fast path; nothing else in the process changes, and a
model built with plain ``import keras`` trains exactly as Keras does until it is enabled.
Models built with ``from layerflow import keras`` (its ``Model``, ``Sequential`` and the
functional ``Model(inputs, outputs)``, and classes derived from them) are enabled as they are
built (see ``keras_module``). ``disable(model)`` gives a model back to Keras.

An enabled model keeps Keras's own loops, with their callbacks, History, validation and
weighting, but the function they call once per batch (the model's ``make_*_function``) replays
a torch graph traced once from the model's step (see ``trace``), and Adam steps with torch's
fused kernel (see ``optimizer``). Over NumPy arrays its ``evaluate`` and ``predict`` run their
batch loop without Keras's epoch iterator, with the same callbacks and results (see ``loops``).
Two hooks on Keras classes (skipping batch-end calls no callback hears, slicing NumPy batches
straight into tensors) are installed with the first ``enable`` and act only inside an enabled
model's ``fit``/``evaluate``/``predict``; every other model runs Keras's code through them.
A model whose step cannot be traced (data-dependent Python, seeded random layers, a custom
``train_step``...) stays on Keras's path, with one line on stderr saying why.
``LAYERFLOW_FAST_FIT=0`` turns the fast path off for every model.

Example:
    >>> import numpy as np
    >>> import layerflow as lf
    >>> from layerflow import keras                   # its models are enabled as they are built
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(loss="mse", optimizer="adam")
    >>> _ = model.fit(np.zeros((8, 4)), np.zeros(8), verbose=0)
    >>> lf.fast_fit_status(model)["train"]
    'fast'
    >>> import keras as plain_keras                    # a plain Keras model: Keras's own loop
    >>> other = plain_keras.Sequential([plain_keras.Input((4,)), plain_keras.layers.Dense(1)])
    >>> lf.fastfit.enable(other) is other              # until it is enabled
    True
"""

from __future__ import annotations

import types
import weakref
from typing import Any

from layerflow.errors import LayerflowError
from layerflow.fastfit.guard import ENV_SWITCH, fallback_reason, switched_off, version_problem
from layerflow.fastfit.keras_module import layerflow_keras

__all__ = [
    "ENV_SWITCH",
    "FastFitError",
    "disable",
    "enable",
    "fast_fit_status",
    "install",
    "is_enabled",
    "layerflow_keras",
    "one_time_seconds",
    "switched_off",
    "version_problem",
]


class FastFitError(LayerflowError, TypeError):
    """A fast-fit function was given something other than what it works on."""


def _check_model(model: Any) -> None:
    if not all(hasattr(model, name) for name in ("fit", "make_train_function", "trainable_variables")):
        raise FastFitError(f"expected a Keras model (torch backend); got {type(model).__name__}")


_KINDS = {"train": "train_function", "test": "test_function", "predict": "predict_function"}
_NOT_ENABLED = "not enabled (layerflow.fastfit.enable(model), or build it with `from layerflow import keras`)"
_installed = False
_enabled: weakref.WeakSet = weakref.WeakSet()
_direct: tuple[Any, Any] | None = None


def _make_function(kind: str) -> Any:
    """The model's own ``make_<kind>_function``: Keras's, whose result becomes a ``FastStep``."""
    from layerflow.fastfit.guard import model_problem, report_fallback
    from layerflow.fastfit.steps import FastStep

    attribute = _KINDS[kind]
    name = f"make_{kind}_function"

    def make_function(self, force=False):
        current = getattr(self, attribute, None)
        if current is not None and not force:
            if isinstance(current, FastStep):
                current.refresh()
            return current
        getattr(type(self), name)(self, force=force)
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

    make_function.__name__ = name
    return make_function


def _running_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
    """The model's own ``fit``: Keras's, with the fast path's hooks acting for this model."""
    from layerflow.fastfit import _keras_internals as ki

    with ki.running(self):
        return type(self).fit(self, *args, **kwargs)


def _running(function: Any) -> Any:
    from layerflow.fastfit import _keras_internals as ki

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        with ki.running(self):
            return function(self, *args, **kwargs)

    method.__name__, method.__doc__ = function.__name__, function.__doc__
    return method


def _methods(model: Any) -> dict[str, Any]:
    """The functions ``enable`` binds to ``model``: those of Keras's trainer its class does not override."""
    global _direct
    from layerflow.fastfit import _keras_internals as ki
    from layerflow.fastfit import loops

    if _direct is None:
        evaluate, predict = ki.direct_loops(loops.test_loop, loops.predict_loop, lambda: not switched_off())
        _direct = (_running(evaluate), _running(predict))
    trainer = ki.torch_trainer_class()
    candidates = {f"make_{kind}_function": _make_function(kind) for kind in _KINDS}
    candidates.update({"fit": _running_fit, "evaluate": _direct[0], "predict": _direct[1]})
    return {
        name: function
        for name, function in candidates.items()
        if getattr(type(model), name, None) is getattr(trainer, name)
    }


def install(keras: Any) -> bool:
    """Installs the two Keras class hooks the fast path uses (idempotent; ``enable`` calls it).

    They change nothing by themselves: each acts only inside the ``fit``/``evaluate``/``predict``
    of a model ``enable`` has put on the fast path, and every other model runs Keras's code.

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

    ki.skip_unheard_batch_ends(lambda: not switched_off())
    ki.slice_numpy_batches_directly(lambda: not switched_off())
    _installed = True
    return True


def enable(model: Any) -> Any:
    """Puts one Keras model on the fast path (idempotent); no other model changes.

    The model's own ``make_train_function``/``make_test_function``/``make_predict_function``,
    ``fit``, ``evaluate`` and ``predict`` become layerflow's, bound to this model only (a
    method its class overrides is left alone). ``from layerflow import keras`` models are
    enabled as they are built; call this for a model from plain ``import keras``.

    Args:
        model: a Keras model (torch backend).

    Returns:
        The model (on another backend, unchanged: Keras compiles JAX steps itself).

    Raises:
        FastFitError: ``model`` is not a Keras model.

    Example:
        >>> import keras
        >>> model = lf.fastfit.enable(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]))
        >>> lf.fastfit.is_enabled(model)
        True
    """
    _check_model(model)
    import keras

    if not install(keras) or model in _enabled:
        return model
    for name, function in _methods(model).items():
        vars(model)[name] = types.MethodType(function, model)
    for attribute in _KINDS.values():
        if getattr(model, attribute, None) is not None:
            setattr(model, attribute, None)  # Keras's step function made before: made again, then replaced
    _enabled.add(model)
    return model


def disable(model: Any) -> Any:
    """Gives a model back to Keras: its next ``fit``/``evaluate``/``predict`` run Keras's own code.

    Args:
        model: a Keras model, enabled or not.

    Returns:
        The model.

    Raises:
        FastFitError: ``model`` is not a Keras model.

    Example:
        >>> _ = lf.fastfit.disable(model)
        >>> lf.fast_fit_status(model)["train"]
        'not run yet'
    """
    from layerflow.fastfit.steps import FastStep

    _check_model(model)
    if model not in _enabled:
        return model
    names = [f"make_{kind}_function" for kind in _KINDS] + ["fit", "evaluate", "predict"]
    for name in names:
        bound = vars(model).get(name)
        if isinstance(bound, types.MethodType) and bound.__self__ is model:
            del vars(model)[name]
    for attribute in _KINDS.values():
        if isinstance(getattr(model, attribute, None), FastStep):
            setattr(model, attribute, None)  # Keras makes its own function on the next call
    _enabled.discard(model)
    return model


def is_enabled(model: Any) -> bool:
    """Whether ``enable`` has put ``model`` on the fast path.

    Args:
        model: a Keras model.

    Returns:
        True for an enabled model (its steps may still fall back; see ``fast_fit_status``).

    Example:
        >>> lf.fastfit.is_enabled(model)
        True
    """
    _check_model(model)
    return model in _enabled


def fast_fit_status(model: Any) -> dict[str, str]:
    """Which path each of the model's loops took: "fast", "keras: <reason>" or "not run yet".

    Args:
        model: a Keras model that has been fit, evaluated or used to predict.

    Returns:
        ``{"train": ..., "test": ..., "predict": ...}``; a model never enabled says
        ``"keras: not enabled (...)"`` for each loop it has run.

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
        elif model not in _enabled:
            status[kind] = f"keras: {_NOT_ENABLED}"
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
    return {
        kind: (f.trace_seconds if isinstance(f := getattr(model, attr, None), FastStep) else 0.0)
        for kind, attr in _KINDS.items()
    }
