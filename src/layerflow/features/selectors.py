"""Column selectors for feature specs: ``all_numeric()``, ``all_nominal()``, ``starts_with(...)``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Selector:
    """Chooses columns by what they hold; resolved when the spec is fitted."""

    description: str
    choose: Callable[[str, str], bool]  # (column name, "numeric" | "nominal") -> keep?

    def __repr__(self) -> str:
        return self.description


def all_numeric() -> Selector:
    """Every numeric column of the dataset (the label excluded)."""
    return Selector("all_numeric()", lambda name, kind: kind == "numeric")


def all_nominal() -> Selector:
    """Every string column of the dataset, or every categorical column for indicator/embedding."""
    return Selector("all_nominal()", lambda name, kind: kind == "nominal")


def starts_with(prefix: str) -> Selector:
    """Columns whose name starts with ``prefix``."""
    return Selector(f"starts_with({prefix!r})", lambda name, kind: name.startswith(prefix))


def matches(pattern: str) -> Selector:
    """Columns whose name matches the regular expression ``pattern``."""
    compiled = re.compile(pattern)
    return Selector(f"matches({pattern!r})", lambda name, kind: bool(compiled.search(name)))
