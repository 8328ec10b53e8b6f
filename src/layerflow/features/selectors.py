"""Column selectors for feature specs: ``all_numeric()``, ``all_nominal()``, ``has_type()``, ``starts_with(...)``.

Every selector takes ``exclude=[...]``: names it never selects (tfdatasets' ``-b`` in a selection).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from layerflow.features.errors import SpecError

#: column types ``has_type`` knows, and the synonyms it accepts for them
TYPE_SYNONYMS = {
    "float": "float",
    "double": "float",
    "int": "int",
    "integer": "int",
    "bool": "bool",
    "string": "string",
    "str": "string",
}


@dataclass(frozen=True)
class Selector:
    """Chooses columns by name, kind (``"numeric"``/``"nominal"``) and type; resolved when the spec is fitted."""

    description: str
    choose: Callable[[str, str, str], bool]  # (column name, "numeric" | "nominal", "float" | "int" | ...) -> keep?
    exclude: tuple[str, ...] = ()

    def selects(self, name: str, kind: str, type_name: str) -> bool:
        """Whether this selector picks the column ``name``."""
        return name not in self.exclude and self.choose(name, kind, type_name)

    def __repr__(self) -> str:
        return self.description


def _excluding(exclude: Sequence[str] | None) -> tuple[str, ...]:
    if exclude is None:
        return ()
    if isinstance(exclude, str):
        return (exclude,)
    names = tuple(exclude)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise SpecError(f"exclude= takes column names; got {bad!r}.")
    return names


def _describe(call: str, exclude: tuple[str, ...]) -> str:
    return f"{call[:-1]}{', ' if not call.endswith('()') else ''}exclude={list(exclude)})" if exclude else call


def all_numeric(exclude: Sequence[str] | None = None) -> Selector:
    """Every numeric column of the dataset (the label excluded), but those in ``exclude``.

    Args:
        exclude: column names never selected.

    Returns:
        A selector, resolved against the dataset's columns when the spec is fitted.

    Example:
        >>> spec = lf.feature_spec(df, label="y").numeric(lf.all_numeric(exclude=["id"]))
    """
    names = _excluding(exclude)
    return Selector(_describe("all_numeric()", names), lambda name, kind, type_name: kind == "numeric", names)


def all_nominal(exclude: Sequence[str] | None = None) -> Selector:
    """Every string column of the dataset, or every categorical column for indicator/embedding.

    Args:
        exclude: column names never selected.

    Returns:
        A selector, resolved when the spec is fitted.

    Example:
        >>> spec = lf.feature_spec(df, label="y").categorical_vocab(lf.all_nominal(exclude=["name"]))
    """
    names = _excluding(exclude)
    return Selector(_describe("all_nominal()", names), lambda name, kind, type_name: kind == "nominal", names)


def has_type(type_name: str, exclude: Sequence[str] | None = None) -> Selector:
    """Columns of one type: ``"float"``, ``"int"``, ``"bool"`` or ``"string"``.

    ``"double"``, ``"integer"`` and ``"str"`` are accepted as synonyms.

    Args:
        type_name: the type to select.
        exclude: column names never selected.

    Returns:
        A selector, resolved against the dataset's column types when the spec is fitted.

    Example:
        >>> spec = lf.feature_spec(df, label="y").numeric(lf.has_type("float"), normalizer="standard")
    """
    wanted = TYPE_SYNONYMS.get(str(type_name).lower())
    if wanted is None:
        raise SpecError(f"has_type({type_name!r}): not a known type; expected one of {sorted(TYPE_SYNONYMS)}.")
    names = _excluding(exclude)
    return Selector(_describe(f"has_type({type_name!r})", names), lambda name, kind, t: t == wanted, names)


def starts_with(prefix: str, exclude: Sequence[str] | None = None) -> Selector:
    """Columns whose name starts with ``prefix``.

    Args:
        prefix: the start of the names to select.
        exclude: column names never selected.

    Returns:
        A selector, resolved when the spec is fitted.

    Example:
        >>> spec = lf.feature_spec(df, label="y").numeric(lf.starts_with("pixel_"))
    """
    names = _excluding(exclude)
    return Selector(_describe(f"starts_with({prefix!r})", names), lambda name, kind, t: name.startswith(prefix), names)


def matches(pattern: str, exclude: Sequence[str] | None = None) -> Selector:
    """Columns whose name matches the regular expression ``pattern``.

    Args:
        pattern: a regular expression searched in each name.
        exclude: column names never selected.

    Returns:
        A selector, resolved when the spec is fitted.

    Example:
        >>> spec = lf.feature_spec(df, label="y").numeric(lf.matches(r"^x\\d+$"))
    """
    compiled = re.compile(pattern)
    names = _excluding(exclude)
    return Selector(_describe(f"matches({pattern!r})", names), lambda name, kind, t: bool(compiled.search(name)), names)
