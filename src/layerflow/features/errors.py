"""The errors feature specs raise: each a LayerflowError that keeps its builtin parent."""

from __future__ import annotations

from layerflow.errors import LayerflowError


class SpecError(LayerflowError, ValueError):
    """A feature spec declared or fitted with a value it cannot use."""


class SpecColumnError(LayerflowError, KeyError):
    """A column a feature spec needs is not in the data (or not declared in the spec)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SpecTypeError(LayerflowError, TypeError):
    """A feature spec given something of the wrong type (not a dataset, not a column name...)."""


class SpecFileError(LayerflowError, FileNotFoundError):
    """A file a feature spec reads (a vocabulary file) does not exist."""
