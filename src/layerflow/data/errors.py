"""The errors lf.data raises: each a LayerflowError that keeps its builtin parent."""

from __future__ import annotations

from layerflow.errors import LayerflowError


class CsvFormatError(LayerflowError, ValueError):
    """A CSV row or value that does not parse: names the file, the line and (for a value) the column."""


class UnknownLengthError(LayerflowError, TypeError):
    """``len(ds)`` on a dataset whose length is known only by reading it (a CSV file, a filter...)."""


class DatasetKindError(LayerflowError, TypeError):
    """An operation given the wrong kind of input: rows where it needs batches (or the reverse), a list for a frame."""


class DatasetArgumentError(LayerflowError, ValueError):
    """An argument of a dataset operation outside what it accepts."""


class DatasetFileNotFoundError(LayerflowError, FileNotFoundError):
    """No file matches the pattern a dataset was asked to read."""


class DatasetColumnError(LayerflowError, KeyError):
    """A column an operation needs is not in the data."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
