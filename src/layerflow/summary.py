"""A Keras model summary captured as text."""

from __future__ import annotations

from typing import Any

from layerflow.errors import InvalidTypeError


def model_summary(model: Any, line_length: int = 90) -> str:
    """Returns ``model.summary()`` as a plain-text string instead of printing it.

    Args:
        model: a Keras model.
        line_length: the width of the summary table.

    Returns:
        The summary text.

    Example:
        >>> print(lf.model_summary(model))
    """
    if not hasattr(model, "summary"):
        raise InvalidTypeError(f"Expected a Keras model with a summary() method; got {type(model).__name__}.")
    lines: list[str] = []

    def collect(line: str, *args: Any, **kwargs: Any) -> None:
        lines.append(line)

    model.summary(line_length=line_length, print_fn=collect)
    return "\n".join(lines).rstrip() + "\n"
