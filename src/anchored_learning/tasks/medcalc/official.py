"""MedCalc-Bench's own scoring, rule for rule: the ``official`` score of a MedCalc item.

MedCalc-Bench (Khandekar et al., NeurIPS 2024, arXiv:2406.12036) scores a response in two steps,
``extract_answer`` in ``evaluation/run.py`` and ``check_correctness`` in ``evaluation/evaluate.py``
of https://github.com/ncbi-nlp/MedCalc-Bench.  This module re-implements those published rules
(it does not import or copy that code) so that our scores equal the benchmark's item for item:

1. **The answer field.**  Only a JSON-like ``answer": <value>}`` is read: the last match of
   ``[Aa]nswer":\\s*(.*?)\\}`` on one line, stripped of spaces and double quotes.  The prompt's
   placeholders (``str(short_and_direct_answer_of_the_question)``, ...) count as no answer.  An
   ``Answer: 5`` line, or a JSON answer whose ``}`` is on another line, scores 0.
2. **The value, by calculator id.**
   - dates (ids 13, 68): ``M/D/YYYY`` at the very start of the field, then compared as a
     calendar date (an impossible date scores 0);
   - gestational age (id 69): the first ``(weeks, days)``-like pair of digit runs; a lone
     ``16 weeks`` reads as ``(1, 6)`` there, as in the benchmark;
   - integer scores (ids 4, 15, ... 51): ``N out of``, else the *count* of a comma-separated
     list of numbers (``3, 4, 5`` is 3), else the last number; correct when Python's ``round``
     (half to even) equals the ground truth;
   - decimals (the other known ids): a ``str(<expression>)`` is evaluated (the benchmark
     ``eval``s it with ``min``, ``pow``, ``round``, ``abs``, ``int``, ``float``, ``math`` and
     ``numpy``; here a restricted arithmetic evaluator with the same names); else the number
     before ``mL/min/1.73``; else the last percentage divided by 100; else the last number.
     Correct when ``lower <= value <= upper``.
3. **What the benchmark's ``eval`` refuses scores 0**: an integer written with a leading zero
   (``05``, ``(08, 1)``), no number, an unknown calculator id.  Numbers are plain
   ``-?\\d+(\\.\\d+)?``: ``1,250`` reads as 250 and ``3-5`` as -5, as there.

Where we differ: the benchmark's ``eval`` of a ``str(...)`` expression accepts any Python
expression over those names; ours accepts arithmetic, comparisons, calls of those functions
and ``math.*`` / ``numpy`` ufuncs and constants, and refuses powers with exponents above 1000
(the benchmark would compute them).  The lenient scorer of :mod:`.scoring` is ours, not the
benchmark's.
"""

from __future__ import annotations

import ast
import datetime as _dt
import math
import operator
import re
from typing import Any

import numpy as np

from anchored_learning.tasks.base import Example

DATE_IDS = frozenset({13, 68})
WEEKS_DAYS_IDS = frozenset({69})
INTEGER_IDS = frozenset({4, 15, 16, 17, 18, 20, 21, 25, 27, 28, 29, 32, 33, 36, 43, 45, 48, 51})
DECIMAL_IDS = frozenset(
    {
        2,
        3,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        19,
        22,
        23,
        24,
        26,
        30,
        31,
        38,
        39,
        40,
        44,
        46,
        49,
        56,
        57,
        58,
        59,
        60,
        61,
        62,
        63,
        64,
        65,
        66,
        67,
    }
)

_FIELD_RE = re.compile(r'[Aa]nswer":\s*(.*?)\}')
_PLACEHOLDERS = frozenset(
    {"str(short_and_direct_answer_of_the_question)", "str(value which is the answer to the question)", "X.XX"}
)
_DATE_RE = re.compile(r"^(0?[1-9]|1[0-2])/(0?[1-9]|[12][0-9]|3[01])/(\d{4})")
_PAIR_RE = re.compile(r"""\(?["']?(\d+)\s*(weeks?)?["']?,?\s*["']?(\d+)\s*(days?)?["']?\s*\)?""")
_NUM = r"(-?\d+(\.\d+)?)"
_OUT_OF_RE = re.compile(r"(\d+) out of")
_LIST_RE = re.compile(r"-?\d+(, ?-?\d+)+")
_EXPR_RE = re.compile(r"str\((.*)\)")
_EGFR_RE = re.compile(_NUM + r"\s*mL/min/1.73")
_PERCENT_RE = re.compile(_NUM + r"\%")
_NUMBER_RE = re.compile(_NUM)
# the benchmark's rewrites of a str(...) expression before its eval, in its order
_EXPR_REWRITES = (
    ("^", "**"),
    ("is odd", "% 2 == 1"),
    ("is even", "% 2 == 0"),
    ("sqrt", "math.sqrt"),
    (".math", ""),
    ("weight", ""),
    ("height", ""),
    ("mg/dl", ""),
    ("g/dl", ""),
    ("mmol/L", ""),
    ("kg", ""),
    ("g", ""),
    ("mEq/L", ""),
)


class _Refused(Exception):
    """What the benchmark's code would raise on (its loop then marks the item incorrect)."""


def answer_field(response: str) -> str:
    """The text of the last ``answer": ...}`` field of ``response`` ("" when there is none or it
    is the prompt's placeholder), as MedCalc-Bench extracts it."""
    hits = _FIELD_RE.findall(response or "")
    if not hits:
        return ""
    value = hits[-1].strip().strip('"')
    return "" if value in _PLACEHOLDERS else value


def _literal(text: str) -> float | int:
    """``eval`` of a ``-?\\d+(\\.\\d+)?`` string: an int with a leading zero is a SyntaxError there."""
    digits = text.lstrip("-")
    if "." in digits:
        return float(text)
    if len(digits) > 1 and digits[0] == "0" and digits.strip("0"):
        raise _Refused(f"leading zero in {text!r}")
    return int(text)


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCTIONS = {"min": min, "pow": pow, "round": round, "abs": abs, "int": int, "float": float}
_MODULES = {"math": math, "np": np, "numpy": np}


def _attribute(node: ast.Attribute) -> Any:
    if not (isinstance(node.value, ast.Name) and node.value.id in _MODULES) or node.attr.startswith("_"):
        raise _Refused("only math.* and numpy functions")
    value = getattr(_MODULES[node.value.id], node.attr, None)
    if node.value.id == "math" and (callable(value) or isinstance(value, float)):
        return value
    if isinstance(value, (np.ufunc, float)):
        return value
    raise _Refused(f"{node.value.id}.{node.attr} is not allowed")


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1000:
            raise _Refused("exponent too large")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _eval(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            right = _eval(comparator)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call) and not node.keywords:
        if isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
            fn = _FUNCTIONS[node.func.id]
        elif isinstance(node.func, ast.Attribute):
            fn = _attribute(node.func)
        else:
            raise _Refused("unknown function")
        return fn(*[_eval(arg) for arg in node.args])
    if isinstance(node, ast.Attribute):
        return _attribute(node)
    raise _Refused(f"{type(node).__name__} is not allowed")


def _expression(text: str) -> Any:
    for old, new in _EXPR_REWRITES:
        text = text.replace(old, new)
    text = text.split("#")[0]
    opened, closed = text.count("("), text.count(")")
    text = text + ")" * (opened - closed) if opened > closed else "(" * (closed - opened) + text
    try:
        return _eval(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, _Refused, TypeError, ValueError, ArithmeticError, RecursionError):
        return None  # the benchmark prints "Error in evaluating expression" and answers N/A


def _decimal(field: str) -> float | None:
    m = _EXPR_RE.search(field)
    if m:
        value = _expression(m.group(1))
        try:
            value = None if value is None else float(value)
        except (TypeError, OverflowError):  # not a number, or an int beyond every limit
            return None
        # N/A, or "inf"/"nan", which its eval of str(value) cannot read back
        return value if value is not None and math.isfinite(value) else None
    m = _EGFR_RE.search(field)
    if m:
        return float(_literal(m.group(1)))
    hits = _PERCENT_RE.findall(field)
    if hits:
        return _literal(hits[-1][0]) / 100
    hits = _NUMBER_RE.findall(field)
    return float(_literal(hits[-1][0])) if hits else None


def _integer(field: str) -> float | None:
    m = _OUT_OF_RE.search(field)
    if m:
        return _literal(m.group(1))
    m = _LIST_RE.search(field)
    if m:
        return len(m.group(0).split(","))
    hits = _NUMBER_RE.findall(field)
    return _literal(hits[-1][0]) if hits else None


def _date(field: str) -> _dt.date | None:
    m = _DATE_RE.search(field)
    if not m:
        return None
    try:
        return _dt.date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
    except ValueError:  # strptime refuses 02/30/2024 and year 0
        return None


def _weeks_days(field: str) -> tuple[int, int] | None:
    if not _PAIR_RE.search(field):
        raise _Refused("no (weeks, days) pair")  # the benchmark's match.group on None raises
    cleaned = field.replace("[", "(").replace("]", ")").replace("'", "").replace('"', "")
    m = _PAIR_RE.search(cleaned)
    return (int(_literal(m.group(1))), int(_literal(m.group(3))))


def _as_date(answer: Any) -> _dt.date:
    if isinstance(answer, _dt.date):
        return answer
    month, day, year = (int(p) for p in str(answer).split("/"))
    return _dt.date(year, month, day)


def official_correct(response: str, calculator_id: int, answer: Any, lower: Any = None, upper: Any = None) -> bool:
    """MedCalc-Bench's verdict on ``response`` for one item.

    Args:
        response: the model's generated text.
        calculator_id: the item's MedCalc-Bench calculator id (selects the output type).
        answer: the ground truth: a number, ``"MM/DD/YYYY"`` or :class:`datetime.date`, or a
            ``(weeks, days)`` pair.
        lower, upper: the accepted interval (decimal calculators).

    Returns:
        ``True`` when the benchmark's ``extract_answer`` + ``check_correctness`` mark it Correct.
        Source: ``evaluation/run.py`` and ``evaluation/evaluate.py`` of ncbi-nlp/MedCalc-Bench.
    """
    field = answer_field(response)
    cid = int(calculator_id)
    try:
        if cid in DATE_IDS:
            value = _date(field)
            return value is not None and value == _as_date(answer)
        if cid in WEEKS_DAYS_IDS:
            return _weeks_days(field) == (int(answer[0]), int(answer[1]))
        if cid in INTEGER_IDS:
            value = _integer(field)
            return value is not None and round(value) == float(answer)
        if cid in DECIMAL_IDS:
            value = _decimal(field)
            return value is not None and float(lower) <= value <= float(upper)
    except _Refused:
        return False
    return False  # an unknown calculator id raises there


def official_score(example: Example, prediction: str) -> float:
    """:func:`official_correct` for a MedCalc :class:`Example` (1.0 or 0.0), reading its
    ``meta["calculator_id"]``, ``meta["lower_limit"]`` and ``meta["upper_limit"]``.

    Raises:
        ValueError: the example has no ``meta["calculator_id"]``.
    """
    cid = example.meta.get("calculator_id")
    if cid is None:
        raise ValueError(f"example {example.uid!r} has no meta['calculator_id']")
    ok = official_correct(prediction, cid, example.answer, example.meta.get("lower_limit"), example.meta.get("upper_limit"))
    return 1.0 if ok else 0.0
