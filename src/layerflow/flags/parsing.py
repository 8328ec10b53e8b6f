"""Turning flag values from the command line, YAML or Python into their declared types."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from layerflow.errors import LayerflowError

FLAG_TYPES: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}

_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}
_EXAMPLES = {bool: "true or false", int: "a whole number, e.g. 128", float: "a number, e.g. 0.4", str: "text"}


class FlagError(LayerflowError, ValueError):
    """A flag that is unknown, declared wrongly, or given a value of the wrong type.

    The message names the flag, the value and the type expected.

    Example:
        >>> try:
        ...     lf.flags(argv=["--flag", "units=many"], units=32)
        ... except lf.FlagError as error:
        ...     print(error)
        Flag 'units' (command line): value 'many' is not a valid int; expected a whole number, e.g. 128.
    """


class UnknownFlagError(FlagError, AttributeError, KeyError):
    """A flag looked up on ``Flags`` (``FLAGS.name`` or ``FLAGS["name"]``) that was never declared."""

    def __str__(self) -> str:  # KeyError quotes its message; show it as written
        return str(self.args[0]) if self.args else ""


def type_name(kind: type) -> str:
    return kind.__name__


def resolve_type(kind: Any, flag: str) -> type:
    """Accepts a type or its name (``"float"``) and returns the Python type."""
    if isinstance(kind, str) and kind in FLAG_TYPES:
        return FLAG_TYPES[kind]
    if kind in FLAG_TYPES.values():
        return kind
    raise FlagError(f"Flag {flag!r}: type {kind!r} is not supported; expected one of {', '.join(FLAG_TYPES)}.")


def infer_type(default: Any, flag: str) -> type:
    """The type of a flag from its default value."""
    for kind in (bool, int, float, str):
        if type(default) is kind:
            return kind
    raise FlagError(
        f"Flag {flag!r}: default {default!r} is a {type(default).__name__}; flags hold "
        f"bool, int, float or str values (give type= explicitly for a None default)."
    )


def _wrong(flag: str, value: Any, kind: type, source: str) -> FlagError:
    return FlagError(
        f"Flag {flag!r} ({source}): value {value!r} is not a valid {type_name(kind)}; expected {_EXAMPLES[kind]}."
    )


def coerce(flag: str, value: Any, kind: type, source: str) -> Any:
    """Converts ``value`` to ``kind`` or raises a FlagError naming the flag, value and type.

    Strings (from a command line) are parsed; Python values must already be of the type
    (an int is accepted for a float flag).
    """
    if value is None:
        return None
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise _wrong(flag, value, kind, source)
        try:
            return kind(text)
        except ValueError:
            raise _wrong(flag, value, kind, source) from None
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise _wrong(flag, value, kind, source)


def parse_assignment(text: str) -> tuple[str, str]:
    """Splits ``name=value`` (from ``--flag name=value``) into its two parts."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise FlagError(f"--flag {text!r} is malformed; expected --flag name=value, e.g. --flag dropout=0.3.")
    return name.strip(), value


def parse_flag_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["dropout=0.3", "units=64"]`` (from repeated ``--flag``) -> ``{"dropout": "0.3", "units": "64"}``.

    Args:
        items: ``name=value`` strings.

    Returns:
        The values by flag name, still strings (the script's declared types convert them).

    Raises:
        FlagError: an item without ``=`` or without a name.

    Example:
        >>> parse_flag_assignments(["dropout=0.3"])
        {'dropout': '0.3'}
    """
    return dict(parse_assignment(item) for item in items)


def extract_cli_flags(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Takes ``--flag name=value`` (or ``--flag=name=value``) pairs out of ``argv``.

    Returns the flag strings and the remaining arguments.
    """
    flags: dict[str, str] = {}
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--flag":
            item = next(args, None)
            if item is None:
                raise FlagError("--flag at the end of the command line has no value; expected --flag name=value.")
        elif arg.startswith("--flag="):
            item = arg[len("--flag=") :]
        else:
            rest.append(arg)
            continue
        name, value = parse_assignment(item)
        flags[name] = value
    return flags, rest
