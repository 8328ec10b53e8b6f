"""The base of every error layerflow raises.

Each layerflow error also keeps the builtin parent a caller would expect (a bad value is
still a ``ValueError``, a missing run still a ``LookupError``), so ``except ValueError``
keeps working, while ``except layerflow.LayerflowError`` catches exactly what layerflow
reports about its inputs. The CLI prints these as one line; anything else shows its
traceback, because it is a bug.

Example:
    >>> import layerflow as lf
    >>> try:
    ...     lf.ls_runs(runs_dir="runs", order="no_such_column")
    ... except lf.LayerflowError as error:
    ...     print(error)                 # one line naming what is wrong
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["LayerflowError"]

TRAIN_INSTALL = "pip install 'layerflow[train]'"
# The import names of pyproject's `train` extra: what a serving-only install lacks.
TRAINING_PACKAGES = (
    "torch",
    "keras",
    "pandas",
    "matplotlib",
    "pyarrow",
    "sklearn",
    "onnx",
    "onnxmltools",
    "xgboost",
    "mmh3",
    "psutil",
    "optuna",
)


class LayerflowError(Exception):
    """Base class of the errors layerflow raises about its inputs and environment.

    Subclasses also derive from a builtin exception (``ValueError``, ``LookupError``,
    ``RuntimeError``, ``FileNotFoundError``...), so code written against the builtin keeps
    working.

    Example:
        >>> from layerflow.errors import LayerflowError
        >>> class SpecError(LayerflowError, ValueError):
        ...     pass
        >>> isinstance(SpecError("bad"), ValueError)
        True
    """


# Generic errors for checks that need no concept of their own; a package defines its own
# class (FlagError, RunNotFoundError, ClusterError...) where callers may want to catch it.


class InvalidValueError(LayerflowError, ValueError):
    """An argument or input value outside what a function accepts.

    Example:
        >>> from layerflow.errors import InvalidValueError
        >>> raise InvalidValueError("batch_size=0 must be a positive integer.")
        Traceback (most recent call last):
        ...
        layerflow.errors.InvalidValueError: batch_size=0 must be a positive integer.
    """


class InvalidTypeError(LayerflowError, TypeError):
    """An argument of a type a function does not take.

    Example:
        >>> from layerflow.errors import InvalidTypeError
        >>> isinstance(InvalidTypeError("expected a DataFrame"), TypeError)
        True
    """


class MissingKeyError(LayerflowError, KeyError):
    """A named column, key or field that is not there.

    Example:
        >>> from layerflow.errors import MissingKeyError
        >>> isinstance(MissingKeyError("no column 'age'"), KeyError)
        True
    """

    def __str__(self) -> str:  # KeyError quotes its message; show it as written
        return str(self.args[0]) if self.args else ""


class MissingFileError(LayerflowError, FileNotFoundError):
    """A file or folder the caller named that does not exist.

    Example:
        >>> from layerflow.errors import MissingFileError
        >>> isinstance(MissingFileError("no file train.py"), FileNotFoundError)
        True
    """


class MissingDependencyError(LayerflowError, ImportError):
    """An optional package a feature needs is not installed; the message says what to install.

    Example:
        >>> from layerflow.errors import MissingDependencyError
        >>> isinstance(MissingDependencyError("pip install 'layerflow[ray]'"), ImportError)
        True
    """


class StateError(LayerflowError, RuntimeError):
    """An object or environment not in the state an operation needs (e.g. not fitted yet).

    Example:
        >>> from layerflow.errors import StateError
        >>> isinstance(StateError("fit the spec first"), RuntimeError)
        True
    """


@contextlib.contextmanager
def training_stack(feature: str) -> Iterator[None]:
    """Turns a missing training-stack package into a ``MissingDependencyError`` naming the ``train`` extra.

    A serving install (``pip install 'layerflow[serve]'``) has neither torch, Keras nor pandas;
    what needs them says so instead of failing with a bare ``ModuleNotFoundError``. Usable as
    a ``with`` block or as a decorator. It lives here, in a leaf every layer may import (``runs/``
    must not import ``backend``, which knows Keras).

    Args:
        feature: what the user called, named in the message (e.g. ``"lf.plot_history"``).

    Returns:
        A context manager (also a decorator) that re-raises the missing package as
        ``MissingDependencyError``; any other error passes through unchanged.

    Example:
        >>> with training_stack("lf.data"):
        ...     import layerflow.data
    """
    try:
        yield
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in TRAINING_PACKAGES:
            raise
        raise MissingDependencyError(
            f"{feature} needs the training stack, and {error.name!r} is not installed (a serving-only "
            f"install): {TRAIN_INSTALL}"
        ) from error


__all__ += [
    "InvalidTypeError",
    "InvalidValueError",
    "MissingDependencyError",
    "MissingFileError",
    "MissingKeyError",
    "StateError",
    "training_stack",
]
