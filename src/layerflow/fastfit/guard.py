"""When the fast path may run, and the one line said when it does not."""

from __future__ import annotations

import os
import sys
import weakref
from typing import Any

from layerflow.fastfit import _keras_internals as ki

ENV_SWITCH = "LAYERFLOW_FAST_FIT"
_OFF_VALUES = {"0", "false", "no", "off"}
_reasons: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def switched_off() -> bool:
    """True when ``LAYERFLOW_FAST_FIT`` is set to 0 (or false/no/off)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() in _OFF_VALUES


def _major_minor(version: str) -> tuple[int, int] | None:
    parts = version.split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def version_problem(keras_version: str, torch_version: str) -> str | None:
    """Why these Keras and torch versions cannot use the fast path, or None if they can.

    Args:
        keras_version: ``keras.__version__``.
        torch_version: ``torch.__version__``.

    Returns:
        One sentence naming the tested versions, or None when both match them.

    Example:
        >>> version_problem("3.15.1", "2.13.0+cpu") is None
        True
    """
    found = {"keras": _major_minor(keras_version), "torch": _major_minor(torch_version)}
    given = {"keras": keras_version, "torch": torch_version}
    wrong = [name for name, tested in ki.TESTED_VERSIONS.items() if found[name] != tested]
    if not wrong:
        return None
    tested = ", ".join(f"{name} {'.'.join(map(str, v))}" for name, v in ki.TESTED_VERSIONS.items())
    return f"it is tested with {tested}; found {', '.join(f'{n} {given[n]}' for n in wrong)}"


def model_problem(model: Any, kind: str) -> str | None:
    """Why ``model``'s ``kind`` step ("train", "test", "predict") must stay on Keras's path."""
    import keras
    import torch

    problem = version_problem(keras.__version__, torch.__version__)
    if problem:
        return problem
    trainer = ki.torch_trainer_class()
    step = {"train": "train_step", "test": "test_step", "predict": "predict_step"}[kind]
    if getattr(type(model), step) is not getattr(trainer, step):
        return f"the model overrides {step}()"
    if ki.jit_compile(model):
        return "the model was compiled with jit_compile=True (Keras's torch.compile path)"
    if getattr(model, "steps_per_execution", 1) != 1:
        return "steps_per_execution is not 1"
    policy = getattr(model, "dtype_policy", None)
    if policy is not None and policy.compute_dtype != policy.variable_dtype:
        return f"mixed precision ({policy.name}) is not supported"
    if kind != "predict" and not ki.has_loss_tracker(model):
        return "the model has no compiled loss"
    if kind == "train":
        if model.optimizer is None:
            return "the model has no optimizer"
        if ki.is_loss_scale_optimizer(model.optimizer):
            return "a LossScaleOptimizer is not supported"
        if not model.trainable_weights:
            return "the model has no trainable weights"
        recurrent = [layer.name for layer in ki.all_layers(model) if isinstance(layer, keras.layers.RNN)]
        if recurrent:
            # Their traced gradients differ from Keras's eager ones in the last bits (measured on
            # LSTM and GRU: 1e-9 in the weights after 9 steps), and one rounding can grow.
            return (
                f"recurrent layer(s) {', '.join(recurrent)}: their traced gradients round differently "
                "from Keras's eager ones"
            )
    return None


def report_fallback(model: Any, kind: str, reason: str) -> None:
    """Prints, once per model and step kind, the one line saying why Keras's path is used."""
    reasons = _reasons.setdefault(model, {})
    if kind in reasons:
        return
    reasons[kind] = reason
    what = {"train": "fit", "test": "evaluate", "predict": "predict"}[kind]
    name = getattr(model, "name", type(model).__name__)
    print(
        f"layerflow: fast {what} off for model {name!r}: {reason}; using Keras's own loop "
        f"(set {ENV_SWITCH}=0 to silence)",
        file=sys.stderr,
        flush=True,
    )


def fallback_reason(model: Any, kind: str) -> str | None:
    """The reason last reported for ``model``'s ``kind`` loop staying on Keras's path."""
    return _reasons.get(model, {}).get(kind)
