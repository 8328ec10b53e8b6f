"""Flags: a script's tunable values, declared once and overridden from outside."""

from layerflow.flags.flags import (
    FLAGS_ENV,
    Flag,
    Flags,
    flag,
    flags,
    flags_file_profiles,
    on_flags_resolved,
    read_flag_values,
    read_flags_file,
)
from layerflow.flags.parsing import FlagError, UnknownFlagError, extract_cli_flags, parse_flag_assignments

__all__ = [
    "FLAGS_ENV",
    "Flag",
    "FlagError",
    "Flags",
    "extract_cli_flags",
    "flag",
    "flags",
    "flags_file_profiles",
    "on_flags_resolved",
    "parse_flag_assignments",
    "read_flag_values",
    "read_flags_file",
    "UnknownFlagError",
]
