"""Arithmetic formulas over canonical variables, parsed (never evaluated as Python).

Grammar: numbers, variable names, ``+ - * /``, unary minus and parentheses. Used by the
indicator system (``resources/indicators.yaml``) so that each measure's formula is data that a
reader can check against the paper, and that is validated before anything runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from nqp_resilience.errors import FormulaError

__all__ = ["Formula", "FormulaError", "parse_formula"]

_GRAMMAR_HINT = (
    "a formula may use only numbers, variable names, + - * / and parentheses, "
    "e.g. 'patents / population * 10000'"
)
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


@dataclass(frozen=True)
class Formula:
    """A parsed formula: its text, the variables it uses, and its syntax tree."""

    text: str
    variables: tuple[str, ...]
    tree: ast.AST

    def evaluate(self, data):
        """Evaluate on a mapping of variable -> array (or Series); division by zero gives
        inf/nan."""
        import numpy as np

        def ev(node):
            if isinstance(node, ast.BinOp):
                left, right = ev(node.left), ev(node.right)
                op = _OPS[type(node.op)]
                if op == "+":
                    return left + right
                if op == "-":
                    return left - right
                if op == "*":
                    return left * right
                with np.errstate(divide="ignore", invalid="ignore"):
                    return left / right
            if isinstance(node, ast.UnaryOp):
                return -ev(node.operand)
            if isinstance(node, ast.Name):
                return data[node.id]
            return float(node.value)

        return ev(self.tree)


def parse_formula(text: str) -> Formula:
    """Parse ``text``; raise :class:`FormulaError` for anything but arithmetic over names."""
    try:
        tree = ast.parse(str(text), mode="eval").body
    except SyntaxError as exc:
        raise FormulaError(
            f"cannot parse formula {text!r}: {exc.msg}", hint=_GRAMMAR_HINT
        ) from None
    names: list[str] = []

    def check(node):
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            check(node.left)
            check(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            check(node.operand)
        elif isinstance(node, ast.Name):
            if node.id not in names:
                names.append(node.id)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)
        ):
            pass
        else:
            raise FormulaError(f"formula {text!r} uses {ast.unparse(node)!r}", hint=_GRAMMAR_HINT)

    check(tree)
    return Formula(str(text), tuple(names), tree)
