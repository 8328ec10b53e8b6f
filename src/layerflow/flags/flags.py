"""Declaring a script's flags: defaults < flags.yml < command line < training_run(flags=)."""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layerflow.errors import training_stack
from layerflow.flags.parsing import (
    FlagError,
    UnknownFlagError,
    coerce,
    extract_cli_flags,
    infer_type,
    resolve_type,
    type_name,
)

FLAGS_ENV = "LAYERFLOW_FLAGS"
FLAGS_FILE = "flags.yml"


@dataclass(frozen=True)
class Flag:
    """One flag: its name, default, type and description.

    Use it inside ``lf.flags(...)`` when the type cannot be inferred from the default
    or when the flag deserves a description; ``lf.flag(...)`` makes one with its type checked.

    Args:
        name: the flag's name, a Python identifier.
        default: its default value.
        type: ``bool``, ``int``, ``float`` or ``str``.
        description: what the flag controls (shown in ``Flags.to_frame()``).

    Example:
        >>> FLAGS = lf.flags(lf.flag("learning_rate", 1e-3, description="Adam step"), epochs=10)
    """

    name: str
    default: Any
    type: type
    description: str = ""


def flag(name: str, default: Any = None, type: Any = None, description: str = "") -> Flag:
    """Declares a flag explicitly (type inferred from ``default`` unless given).

    Args:
        name: the flag's name, a Python identifier.
        default: its default value (``None`` needs ``type``).
        type: ``bool``, ``int``, ``float`` or ``str``, or its name (``"float"``).
        description: what the flag controls.

    Returns:
        A ``Flag`` to pass to ``lf.flags(...)``.

    Raises:
        FlagError: a name that is not an identifier, an unsupported type, or a default of another type.

    Example:
        >>> FLAGS = lf.flags(lf.flag("learning_rate", 1e-3, description="Adam step"), epochs=10)
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise FlagError(f"Flag name {name!r} is not a valid identifier; expected e.g. 'dropout'.")
    kind = resolve_type(type, name) if type is not None else infer_type(default, name)
    return Flag(name, coerce(name, default, kind, "default"), kind, description)


class Flags(Mapping[str, Any]):
    """The resolved flag values of a run: ``FLAGS.dropout`` or ``FLAGS["dropout"]``.

    Made by ``lf.flags(...)``; a read-only mapping of flag names to values. An undeclared
    name raises ``UnknownFlagError`` (an ``AttributeError``/``KeyError``) naming the close ones.

    Args:
        declared: the declared flags by name.
        values: the resolved values by name.
        sources: where each value came from (default, flags.yml, command line...).

    Example:
        >>> FLAGS = lf.flags(argv=["--flag", "units=64"], units=32, dropout=0.4)
        >>> FLAGS.units, FLAGS["dropout"], FLAGS.to_frame()["source"].tolist()
        (64, 0.4, ['command line', 'default'])
    """

    def __init__(self, declared: Mapping[str, Flag], values: Mapping[str, Any], sources: Mapping[str, str]):
        self._declared = dict(declared)
        self._values = dict(values)
        self._sources = dict(sources)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise UnknownFlagError(
                _unknown_message(name, self.__dict__.get("_values", {}), "attribute access")
            ) from None

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            raise UnknownFlagError(_unknown_message(name, self._values, "lookup"))
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Flags({inner})"

    @training_stack("Flags.to_frame")
    def to_frame(self):
        """A DataFrame of name, value, default, type, source and description."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "name": name,
                    "value": self._values[name],
                    "default": spec.default,
                    "type": type_name(spec.type),
                    "source": self._sources[name],
                    "description": spec.description,
                }
                for name, spec in self._declared.items()
            ]
        )

    def as_record(self) -> dict[str, Any]:
        """The JSON-ready description recorded with a run."""
        return {
            "values": dict(self._values),
            "types": {k: type_name(s.type) for k, s in self._declared.items()},
            "sources": dict(self._sources),
        }


def _unknown_message(name: str, known: Mapping[str, Any], source: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(known) or "(none)"
    return f"Unknown flag {name!r} ({source}); declared flags are: {listing}.{hint}"


def _script_dir() -> Path:
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    return Path(script).resolve().parent if script else Path.cwd()


_SPEC_KEYS = {"default", "type", "description"}
DEFAULT_PROFILE = "default"


def _load_yaml_mapping(path: Path, what: str) -> dict[Any, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FlagError(f"Flags file {path} does not exist.") from None
    except yaml.YAMLError as error:
        raise FlagError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise FlagError(f"{path} must map {what}; it holds a {type(data).__name__}.")
    return data


def _is_profiled(data: Mapping[Any, Any]) -> bool:
    """A flags.yml of named profiles: a ``default`` profile (a mapping of flags), others beside it."""
    base = data.get(DEFAULT_PROFILE)
    return (
        isinstance(base, dict)
        and not set(base) <= _SPEC_KEYS
        and all(isinstance(profile, dict) for profile in data.values())
    )


def flags_file_profiles(path: str | Path) -> list[str]:
    """The profile names of a ``flags.yml`` written in profiles (``[]`` for a plain one)."""
    data = _load_yaml_mapping(Path(path), "flag names to defaults")
    return list(data) if _is_profiled(data) else []


def read_flags_file(path: str | Path, config: str | None = None) -> dict[str, Flag]:
    """Reads a ``flags.yml``: ``name: default`` or ``name: {default, type, description}``.

    A file of named profiles (tfruns' ``config``) holds a ``default`` profile and others
    beside it; the flags of profile ``config`` are laid over the default ones.

    Args:
        path: the YAML file.
        config: the profile to use (default: the ``default`` profile).

    Returns:
        The declared flags by name, with the chosen profile's defaults.

    Example:
        >>> read_flags_file("flags.yml", config="production")["units"].default
        512
    """
    path = Path(path)
    data = _load_yaml_mapping(path, "flag names to defaults")
    if _is_profiled(data):
        if config is not None and config not in data:
            raise FlagError(f"{path} has no profile {config!r}; its profiles are: {', '.join(map(str, data))}.")
        data = {**data[DEFAULT_PROFILE], **(data[config] if config else {})}
    elif config is not None and config != DEFAULT_PROFILE:
        raise FlagError(
            f"--config {config!r} names a profile, but {path} has none; write it as profiles: "
            f"'{DEFAULT_PROFILE}:' holding the flags, '{config}:' the flags it changes."
        )
    declared = {}
    for name, entry in data.items():
        if isinstance(entry, dict):
            unknown = set(entry) - {"default", "type", "description"}
            if unknown:
                raise FlagError(
                    f"{path}: flag {name!r} has unknown keys {sorted(unknown)}; expected default, type, description."
                )
            declared[name] = flag(name, entry.get("default"), entry.get("type"), entry.get("description", ""))
        else:
            declared[name] = flag(name, entry)
    return declared


def _declare(args: tuple[Any, ...], defaults: Mapping[str, Any]) -> dict[str, Flag]:
    declared: dict[str, Flag] = {}
    for item in args:
        if not isinstance(item, Flag):
            raise FlagError(f"lf.flags() takes lf.flag(...) objects or name=default pairs; got {item!r}.")
        declared[item.name] = item
    for name, default in defaults.items():
        declared[name] = default if isinstance(default, Flag) else flag(name, default)
    return declared


def read_flag_values(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads a file of flag values (``name: value`` YAML), e.g. the best combination a tuning run found.

    Args:
        path: a YAML file mapping flag names to plain values.

    Returns:
        The values by flag name (checked against the script's flags when it runs).

    Raises:
        FlagError: a missing file, invalid YAML, or a value that is not a plain number, string or bool.

    Example:
        >>> lf.training_run("train.py", flags="tuned.yml")   # reads it with read_flag_values
    """
    path = Path(path)
    data = _load_yaml_mapping(path, "flag names to values")
    for name, value in data.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise FlagError(f"{path}: {name!r} is not a flag name.")
        if isinstance(value, (dict, list)):
            raise FlagError(
                f"{path}: flag {name!r} holds a {type(value).__name__}; a flags file gives one plain "
                "value per flag (a number, a string or true/false)."
            )
    return dict(data)


def _environment_settings() -> dict[str, Any]:
    raw = os.environ.get(FLAGS_ENV)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise FlagError(f"{FLAGS_ENV} is not valid JSON ({error}); it is set by `layerflow run`.") from None
    return data if isinstance(data, dict) else {}


def flags(
    *declared: Flag,
    file: str | Path | None = None,
    argv: list[str] | None = None,
    config: str | None = None,
    **defaults: Any,
) -> Flags:
    """Declares the script's flags and returns their resolved values.

    Precedence, lowest first: the defaults given here, ``flags.yml`` beside the script
    (its ``default`` profile, then the profile chosen with ``--config NAME`` if it is
    written in profiles), a flags file given to ``layerflow run --flags-file`` or
    ``lf.training_run(flags="tuned.yml")``, ``--flag name=value`` on the command line (of
    ``layerflow run`` or of the script run with python), and ``lf.training_run(flags={...})``.
    Inside a tracked run the resolved flags are recorded with the run.

    Args:
        *declared: ``lf.flag(...)`` objects for flags with an explicit type or description.
        file: a flags YAML file to read instead of ``flags.yml`` beside the script.
        argv: the command line to read ``--flag`` from (default ``sys.argv``; the
            ``--flag`` items are removed from it so the script's own parser never sees them).
        config: the ``flags.yml`` profile to use (default: the one ``layerflow run --config``
            chose, else ``default``).
        **defaults: ``name=default`` pairs; the type is that of the default.

    Returns:
        The resolved ``Flags``.

    Raises:
        FlagError: a flag that is unknown or whose value does not parse to its type.

    Example:
        >>> FLAGS = lf.flags(dropout=0.4, units=256, optimizer="rmsprop", augment=False)
        >>> FLAGS.units
        256
    """
    specs = _declare(declared, defaults)
    sources = {name: "default" for name in specs}
    settings = _environment_settings()
    config = config if config is not None else settings.get("config")
    yml = Path(file) if file is not None else _script_dir() / FLAGS_FILE
    if file is not None and not yml.is_file():
        raise FlagError(f"Flags file {yml} does not exist.")
    if yml.is_file():
        base = read_flags_file(yml) if config else {}
        for name, spec in read_flags_file(yml, config).items():
            from_profile = config is not None and (name not in base or base[name] != spec)
            label = f"{yml.name}[{config}]" if from_profile else yml.name
            if name in specs:
                spec = Flag(
                    name,
                    coerce(name, spec.default, specs[name].type, str(yml)),
                    specs[name].type,
                    spec.description or specs[name].description,
                )
            specs[name] = spec
            sources[name] = label
    elif config is not None:
        raise FlagError(f"--config {config!r} chooses a profile of flags.yml, but there is no {yml}.")
    values = {name: spec.default for name, spec in specs.items()}

    use_sys_argv = argv is None
    command_line, rest = extract_cli_flags(list(sys.argv[1:] if argv is None else argv))
    if use_sys_argv:
        sys.argv[1:] = rest
    layers = [
        (settings.get("file_name") or "flags file", settings.get("file") or {}),
        ("command line", command_line),
        ("command line", settings.get("command_line") or {}),
        ("training_run(flags=)", settings.get("call") or {}),
    ]
    for source, overrides in layers:
        for name, value in overrides.items():
            if name not in specs:
                raise FlagError(_unknown_message(name, specs, source))
            values[name] = coerce(name, value, specs[name].type, source)
            sources[name] = source

    resolved = Flags(specs, values, sources)
    for listener in _listeners:
        listener(resolved)
    return resolved


_listeners: list[Callable[[Flags], None]] = []


def on_flags_resolved(listener: Callable[[Flags], None]) -> None:
    """Registers a function called with every resolved ``Flags`` (the run recorder uses it)."""
    _listeners.append(listener)
