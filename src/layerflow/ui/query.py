"""A ``layerflow runs --filter`` expression (a pandas query) as SQL over the UI's table of runs.

The UI filters, sorts and pages 10,000 runs inside SQLite instead of loading them into
pandas. Expressions made of column names, constants, comparisons (chained too), ``in`` /
``not in`` lists, ``and`` / ``or`` / ``not`` (``&``, ``|``, ``~``) and arithmetic translate;
anything else (``.str`` methods, functions) raises ``Untranslatable`` and the caller
evaluates it with pandas, so every filter ``layerflow runs`` takes works here too.
Missing values compare as pandas' NaN does: false, except for ``!=``.
"""

from __future__ import annotations

import ast
from typing import Any

from layerflow.errors import LayerflowError


class Untranslatable(LayerflowError, ValueError):
    """A filter that SQL cannot express the way pandas evaluates it (the caller uses pandas)."""


class UnknownColumn(LayerflowError, LookupError):
    """A name in the filter that is no column of the runs table."""


_COMPARE = {ast.Eq: "IS", ast.NotEq: "IS NOT", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}


def column_sql(name: str) -> str:
    """SQL naming column ``name`` of the UI's table of runs (a quoted identifier)."""
    return '"' + name.replace('"', '""') + '"'


def filter_to_sql(expression: str, columns: set[str]) -> tuple[str, list[Any]]:
    """Translates a pandas query over the runs table into an SQL condition and its parameters.

    Args:
        expression: e.g. ``"flag_dropout > 0.2 and status == 'completed'"``.
        columns: the table's column names.

    Returns:
        ``(sql, params)`` for a ``WHERE`` clause.

    Raises:
        UnknownColumn: a name that is not a column (the message lists the columns).
        Untranslatable: valid Python that SQL cannot express as pandas would; evaluate it with pandas.
        SyntaxError: not an expression at all.

    Example:
        >>> filter_to_sql("flag_units >= 128", {"flag_units"})
        ('("flag_units" >= ?)', [128])
    """
    tree = ast.parse(expression.replace("\n", " "), mode="eval")
    params: list[Any] = []
    return _condition(tree.body, columns, params), params


def _condition(node: ast.AST, columns: set[str], params: list[Any]) -> str:
    if isinstance(node, ast.BoolOp):
        joiner = " AND " if isinstance(node.op, ast.And) else " OR "
        return "(" + joiner.join(_condition(v, columns, params) for v in node.values) + ")"
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        joiner = " AND " if isinstance(node.op, ast.BitAnd) else " OR "
        return f"({_condition(node.left, columns, params)}{joiner}{_condition(node.right, columns, params)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
        return f"(NOT coalesce({_condition(node.operand, columns, params)}, 0))"
    if isinstance(node, ast.Compare):
        parts, left = [], node.left
        for op, right in zip(node.ops, node.comparators):
            parts.append(_comparison(left, op, right, columns, params))
            left = right
        return "(" + " AND ".join(parts) + ")"
    if isinstance(node, ast.Name):  # a boolean column on its own
        return f"({_value(node, columns, params)} IS 1)"
    raise Untranslatable(ast.dump(node)[:80])


def _comparison(left: ast.AST, op: ast.cmpop, right: ast.AST, columns: set[str], params: list[Any]) -> str:
    if isinstance(op, (ast.In, ast.NotIn)):
        if not isinstance(right, (ast.List, ast.Tuple, ast.Set)):
            raise Untranslatable("in needs a literal list")
        value = _value(left, columns, params)
        items = ", ".join(_value(item, columns, params) for item in right.elts) or "NULL"
        if isinstance(op, ast.In):
            return f"({value} IN ({items}))"
        return f"({value} IS NULL OR {value} NOT IN ({items}))"
    if type(op) not in _COMPARE:
        raise Untranslatable(type(op).__name__)
    a, b = _value(left, columns, params), _value(right, columns, params)
    if isinstance(op, (ast.Eq, ast.NotEq)):
        return f"({a} {_COMPARE[type(op)]} {b})"
    return f"({a} {_COMPARE[type(op)]} {b})"


def _value(node: ast.AST, columns: set[str], params: list[Any]) -> str:
    if isinstance(node, ast.Name):
        if node.id not in columns:
            raise UnknownColumn(f"No column {node.id!r}; columns are: {', '.join(sorted(columns))}.")
        return column_sql(node.id)
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (int, float, str))):
        params.append(node.value)
        return "?"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return f"(-{_value(node.operand, columns, params)})"
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _value(node.left, columns, params), _value(node.right, columns, params)
        if isinstance(node.op, ast.Div):
            return f"(CAST({left} AS REAL) / {right})"
        return f"({left} {_ARITHMETIC[type(node.op)]} {right})"
    raise Untranslatable(ast.dump(node)[:80])
