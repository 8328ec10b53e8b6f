"""``from layerflow import keras``: Keras itself, whose ``Model`` and ``Sequential`` build enabled models.

The module ``layerflow_keras(keras)`` returns forwards every name to the real ``keras`` module
(reading, setting and deleting), except ``Model`` and ``Sequential``. Those are Keras's classes
seen through a thin wrapper: calling one builds the Keras model exactly as Keras does (the
functional ``Model(inputs, outputs)`` included) and then ``layerflow.fastfit.enable``s it;
``isinstance``/``issubclass`` and every class attribute answer as Keras's class does; and a class
derived from one (``class Net(keras.Model)``) derives from Keras's class plus a one-method mixin
whose ``__init__`` enables the model once Keras's ``__init__`` has run. Nothing of Keras is
changed: ``import keras`` in the same process, ``keras.models.Sequential`` and models loaded
with ``keras.models.load_model`` are plain Keras models until ``enable`` is called on them.

Enabling at construction (rather than at ``compile`` or on the first ``fit``) is the one point
every model of this module passes through once, before any loop runs, without touching a
method Keras itself calls.

Example:
    >>> from layerflow import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> lf.fastfit.is_enabled(model), type(model) is keras.Sequential, isinstance(model, keras.Model)
    (True, False, True)
"""

from __future__ import annotations

import types
from typing import Any

_ENABLING = ("Model", "Sequential")


class EnabledOnInit:
    """The mixin of classes derived from ``layerflow.keras``'s ``Model``/``Sequential``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from layerflow.fastfit import enable

        enable(self)


class EnablingClass:
    """A Keras model class whose calls return enabled models (see the module docstring)."""

    def __init__(self, keras_class: type) -> None:
        object.__setattr__(self, "keras_class", keras_class)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from layerflow.fastfit import enable

        return enable(self.keras_class(*args, **kwargs))

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (EnabledOnInit, self.keras_class)

    def __instancecheck__(self, instance: Any) -> bool:
        return isinstance(instance, self.keras_class)

    def __subclasscheck__(self, subclass: type) -> bool:
        return issubclass(subclass, self.keras_class)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.keras_class, name)

    def __repr__(self) -> str:
        return f"<layerflow-enabled {self.keras_class.__module__}.{self.keras_class.__qualname__}>"


class LayerflowKeras(types.ModuleType):
    """The ``keras`` module with enabling ``Model``/``Sequential`` (see the module docstring)."""

    def __init__(self, keras: Any) -> None:
        super().__init__("layerflow.keras", keras.__doc__)
        vars(self)["_keras"] = keras
        for name in _ENABLING:
            vars(self)[name] = EnablingClass(getattr(keras, name))

    def __getattr__(self, name: str) -> Any:
        return getattr(vars(self)["_keras"], name)

    # Keras's version, read and set through to Keras (a data descriptor, so that tools which
    # set and restore a module attribute, such as pytest's monkeypatch, restore Keras's).
    __version__ = property(
        lambda self: vars(self)["_keras"].__version__,
        lambda self, value: setattr(vars(self)["_keras"], "__version__", value),
        lambda self: delattr(vars(self)["_keras"], "__version__"),
    )

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(vars(self)["_keras"], name, value)

    def __delattr__(self, name: str) -> None:
        delattr(vars(self)["_keras"], name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(vars(self)["_keras"])) | set(_ENABLING))

    def __repr__(self) -> str:
        return f"<module 'layerflow.keras': keras {vars(self)['_keras'].__version__} with enabled models>"


_modules: dict[int, LayerflowKeras] = {}


def layerflow_keras(keras: Any) -> LayerflowKeras:
    """The module ``from layerflow import keras`` gives for the imported ``keras`` (one per process).

    Args:
        keras: the imported ``keras`` module (torch backend).

    Returns:
        Keras, whose ``Model``/``Sequential`` build models with the fast path enabled.

    Example:
        >>> import keras
        >>> layerflow_keras(keras).layers.Dense is keras.layers.Dense
        True
    """
    if isinstance(keras, LayerflowKeras):
        return keras
    module = _modules.get(id(keras))
    if module is None:
        module = _modules[id(keras)] = LayerflowKeras(keras)
    return module
