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
