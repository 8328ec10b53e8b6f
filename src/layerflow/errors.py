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

__all__ = ["LayerflowError"]


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


__all__ += ["InvalidTypeError", "InvalidValueError", "MissingDependencyError", "MissingFileError",
            "MissingKeyError", "StateError"]
