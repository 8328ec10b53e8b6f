"""Reading a script's flag declarations without running it (to check values before launching)."""

from __future__ import annotations

import ast
from pathlib import Path

from layerflow.flags.flags import FLAGS_FILE, Flag, flag, read_flags_file
from layerflow.flags.parsing import FlagError


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _flag_from_call(call: ast.Call) -> Flag | None:
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
        return flag(*args, **kwargs)
    except (ValueError, TypeError, SyntaxError):
        return None


def declared_flags(script: str | Path) -> dict[str, Flag | None] | None:
    """The flags a script declares in ``lf.flags(...)`` and its ``flags.yml``, read without running it.

    A flag whose default is not a literal maps to None (its name is known, its type is
    not). Returns None when the script has no ``flags(...)`` call and no ``flags.yml``.
    """
    script = Path(script)
    try:
        tree = ast.parse(script.read_text(), filename=str(script))
    except SyntaxError as error:
        raise FlagError(f"{script} is not valid Python ({error.msg}, line {error.lineno}).") from None
    declared: dict[str, Flag | None] = {}
    found = False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _called_name(node) != "flags":
            continue
        found = True
        for arg in node.args:
            if isinstance(arg, ast.Call) and _called_name(arg) == "flag":
                item = _flag_from_call(arg)
                if item is not None:
                    declared[item.name] = item
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg in ("file", "argv"):
                continue
            value = keyword.value
            if isinstance(value, ast.Call) and _called_name(value) == "flag":
                declared[keyword.arg] = _flag_from_call(value)
                continue
            try:
                declared[keyword.arg] = flag(keyword.arg, ast.literal_eval(value))
            except (ValueError, TypeError, SyntaxError):
                declared[keyword.arg] = None
    yml = script.parent / FLAGS_FILE
    if yml.is_file():
        found = True
        for name, spec in read_flags_file(yml).items():
            declared.setdefault(name, spec)
    return declared if found else None
