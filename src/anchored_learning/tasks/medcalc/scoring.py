"""Our lenient MedCalc answer extraction and scoring (the ``lenient`` metric), not the benchmark's.

MedCalc-Bench's own rules are in :mod:`.official` (the task's score).  This scorer reads more:
``Answer:`` lines as well as the JSON field, ISO and written-out dates, thousands separators,
the first value of an answer rather than the last.  It parses a model's free-text response into
a number, a date or a ``(weeks, days)`` pair (:func:`extract_answer`), applies MedCalc-Bench's
correctness rule to that value (:func:`is_correct`, :func:`score_prediction`), and renders gold
answers (:func:`format_answer`).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any

from anchored_learning.tasks.base import Example

OUTPUT_TYPES = ("decimal", "integer", "date", "weeks_days")


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------

_MONTHS = {
    name: i + 1
    for i, name in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ]
    )
}
_MONTHS.update({k[:3]: v for k, v in list(_MONTHS.items())})
_MONTHS["sept"] = 9

# A number: optional sign (not glued to a preceding word/number, so "3-5" is not "-5"),
# thousands separators, decimals, optional exponent.
_NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<sign>[-\u2212])?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<exp>[eE][-+]?\d+)?(?![\d])"
)
# Digits glued to letters are part of names/units (kg/m^2, m2, CURB-65, CHA2DS2-VASc, HbA1c).
_GLUED_DIGITS_RE = re.compile(r"(?<=[A-Za-z])(?:\^|-|_)?\d+")
_BSA_UNIT_RE = re.compile(r"/\s*1\.73\s*m", re.IGNORECASE)

_DATE_PATTERNS = [
    # 02/14/2024, 2/4/2024, 02-14-2024 (US month-first as in MedCalc-Bench)
    (re.compile(r"(?<!\d)(\d{1,2})[/-](\d{1,2})[/-](\d{4})(?!\d)"), ("m", "d", "y")),
    # 2024-02-14, 2024/02/14
    (re.compile(r"(?<!\d)(\d{4})[/-](\d{1,2})[/-](\d{1,2})(?!\d)"), ("y", "m", "d")),
    # February 14, 2024 / Feb 14 2024
    (
        re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b"),
        ("M", "d", "y"),
    ),
    # 14 February 2024
    (
        re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\b"),
        ("d", "M", "y"),
    ),
]

_WEEKS_DAYS_RES = [
    # ('16 weeks', '1 days') / (16, 1) / [16, 1]
    re.compile(
        r"[(\[]\s*['\"]?(\d+)\s*(?:weeks?|wks?|w)?\s*['\"]?\s*,\s*['\"]?(\d+)\s*"
        r"(?:days?|d)?\s*['\"]?\s*[)\]]",
        re.IGNORECASE,
    ),
    # 16 weeks and 1 day / 16 weeks, 1 day / 16 wk 1 d / 16w1d
    re.compile(r"(\d+)\s*(?:weeks?|wks?|w)\b\.?\s*(?:,|and|\+)?\s*(\d+)\s*(?:days?|d)\b", re.IGNORECASE),
    re.compile(r"(\d+)\s*(?:weeks?|wks?|w)(\d+)\s*(?:days?|d)\b", re.IGNORECASE),
    # 16 weeks (0 days)
    re.compile(r"(\d+)\s*(?:weeks?|wks?)\b()", re.IGNORECASE),
]

_ANSWER_LINE_RE = re.compile(
    r"^[\s>*#_`-]*(?:final\s+)?answer\s*[*_`]*\s*[:=]\s*[*_`]*\s*(?P<rest>.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_JSON_ANSWER_RE = re.compile(r"""["']?answer["']?\s*:\s*(?P<val>"(?:[^"\\]|\\.)*"|'[^']*'|[^,}\n]+)""", re.IGNORECASE)


def _numbers(text: str) -> list[float]:
    """All numbers in ``text`` (units' exponents and names' digits removed first)."""
    text = _BSA_UNIT_RE.sub("/BSA", text)
    text = _GLUED_DIGITS_RE.sub("", text).replace("²", "").replace("³", "")
    out = []
    for m in _NUMBER_RE.finditer(text):
        raw = m.group("num").replace(",", "") + (m.group("exp") or "")
        try:
            value = float(raw)
        except ValueError:  # pragma: no cover - regex guarantees a float literal
            continue
        if m.group("sign"):
            value = -value
        if math.isfinite(value):
            out.append(value)
    return out


def _parse_number(text: str, *, last: bool) -> float | None:
    """The first (or last) number in ``text``; with ``=``, only what follows the last ``=``."""
    if "=" in text and not last:
        text = text.rsplit("=", 1)[1]
    nums = _numbers(text)
    if not nums:
        return None
    return nums[-1] if last else nums[0]


def _dates(text: str) -> list[tuple[int, _dt.date]]:
    found: list[tuple[int, _dt.date]] = []
    taken: list[tuple[int, int]] = []
    for pattern, order in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            parts = dict(zip(order, m.groups()))
            try:
                if "M" in parts:
                    month = _MONTHS.get(parts["M"].lower().rstrip("."))
                    if month is None:
                        continue
                else:
                    month = int(parts["m"])
                date = _dt.date(int(parts["y"]), month, int(parts["d"]))
            except ValueError:
                continue
            found.append((m.start(), date))
            taken.append((m.start(), m.end()))
    found.sort(key=lambda t: t[0])
    return found


def _parse_date(text: str, *, last: bool = False) -> _dt.date | None:
    dates = _dates(text)
    if not dates:
        return None
    return dates[-1][1] if last else dates[0][1]


def _parse_weeks_days(text: str, *, last: bool = False) -> tuple[int, int] | None:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    hits: list[tuple[int, tuple[int, int]]] = []
    taken: list[tuple[int, int]] = []
    for pattern in _WEEKS_DAYS_RES:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            weeks = int(m.group(1))
            days = int(m.group(2)) if m.group(2) else 0
            hits.append((m.start(), (weeks, days)))
            taken.append((m.start(), m.end()))
    if not hits:
        return None
    hits.sort(key=lambda t: t[0])
    return hits[-1][1] if last else hits[0][1]


_OUT_OF_RE = re.compile(r"(?<![\w.])(-?\d+)\s*(?:points?\s+)?out of\s+\d+", re.IGNORECASE)


def _parse_value(text: str, output_type: str, *, last: bool) -> Any:
    if output_type == "integer":  # "3 out of 5" -> 3 (MedCalc-Bench rule for scores)
        hits = _OUT_OF_RE.findall(text)
        if hits:
            return float(hits[-1] if last else hits[0])
    if output_type == "date":
        return _parse_date(text, last=last)
    if output_type == "weeks_days":
        return _parse_weeks_days(text, last=last)
    return _parse_number(text, last=last)


def _check_output_type(output_type: str) -> None:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"unknown output type {output_type!r}; expected one of {OUTPUT_TYPES}")


def extract_answer(text: str, output_type: str) -> Any:
    """Extract the final answer from a model's free-text response (lenient; not the benchmark's rule).

    Order of preference: the last explicit ``Answer: ...`` line (``**Answer:**``,
    ``Final answer =`` also count), then a JSON-ish ``{"answer": ...}`` field (the format
    MedCalc-Bench prompts for), then the whole text.  Inside an ``Answer:`` line or JSON field
    the first value is taken (after the last ``=`` for numbers, so ``1 + 1 = 2`` gives 2;
    for integer scores ``3 out of 5`` gives 3);
    from the whole text the *last* value is taken.  Units glued to numbers are ignored
    (``23.4 kg/m^2`` -> 23.4, ``45 mL/min/1.73 m²`` -> 45), thousands separators are
    accepted (``1,250`` -> 1250), and a minus sign counts only when it is not a range dash.

    Args:
        text: the generated response.
        output_type: one of ``"decimal"``, ``"integer"``, ``"date"``, ``"weeks_days"``.

    Returns:
        ``float`` for decimal/integer, :class:`datetime.date` for dates, ``(weeks, days)`` for
        gestational age, or ``None`` when nothing parsable was found.

    Raises:
        ValueError: unknown ``output_type``.
    """
    _check_output_type(output_type)
    if not text:
        return None
    lines = [m.group("rest") for m in _ANSWER_LINE_RE.finditer(text)]
    for rest in reversed(lines):
        rest = rest.strip().strip("*_`").strip()
        value = _parse_value(rest, output_type, last=False)
        if value is not None:
            return value
    for m in reversed(list(_JSON_ANSWER_RE.finditer(text))):
        val = m.group("val").strip()
        if val[:1] in "\"'":
            val = val[1:-1]
        value = _parse_value(val, output_type, last=False)
        if value is not None:
            return value
    return _parse_value(text, output_type, last=True)


def _coerce_answer(answer: Any, output_type: str) -> Any:
    if output_type == "date":
        if isinstance(answer, _dt.date):
            return answer
        return _parse_date(str(answer))
    if output_type == "weeks_days":
        if isinstance(answer, (tuple, list)) and len(answer) == 2:
            return (int(answer[0]), int(answer[1]))
        return _parse_weeks_days(str(answer))
    return float(answer)


def is_correct(
    predicted: Any,
    answer: Any,
    output_type: str,
    lower: float | None = None,
    upper: float | None = None,
) -> bool:
    """Apply the MedCalc-Bench correctness rule to an already-extracted value.

    Args:
        predicted: value from :func:`extract_answer` (``None`` is never correct).
        answer: the ground truth (float / int / ``"MM/DD/YYYY"`` / ``(weeks, days)``).
        output_type: one of ``"decimal"``, ``"integer"``, ``"date"``, ``"weeks_days"``.
        lower, upper: the accepted interval for decimal answers (required for ``"decimal"``).

    Returns:
        ``True`` when correct: decimals within ``[lower, upper]``, integers exact after
        ``round()``, dates equal as calendar dates, ``(weeks, days)`` equal.

    Raises:
        ValueError: unknown ``output_type``, or a decimal answer without limits.
    """
    _check_output_type(output_type)
    if predicted is None:
        return False
    if output_type == "decimal":
        if lower is None or upper is None:
            raise ValueError("decimal answers need lower and upper limits")
        return float(lower) <= float(predicted) <= float(upper)
    if output_type == "integer":
        return round(float(predicted)) == round(float(answer))
    return predicted == _coerce_answer(answer, output_type)


def score_prediction(example: Example, prediction: str) -> float:
    """Score one response against a MedCalc :class:`Example` (1.0 correct, 0.0 otherwise).

    Uses ``example.meta["output_type"]``, ``["lower_limit"]`` and ``["upper_limit"]``; a
    response without a parsable answer scores 0.

    Raises:
        ValueError: the example's meta lacks ``output_type`` or has an unknown one.
    """
    output_type = example.meta.get("output_type")
    if output_type is None:
        raise ValueError(f"example {example.uid!r} has no meta['output_type']")
    predicted = extract_answer(prediction, output_type)
    ok = is_correct(
        predicted,
        example.answer,
        output_type,
        example.meta.get("lower_limit"),
        example.meta.get("upper_limit"),
    )
    return 1.0 if ok else 0.0


def format_answer(answer: Any, output_type: str) -> str:
    """Render a ground-truth answer the way the gold responses' ``Answer:`` line shows it.

    Raises:
        ValueError: unknown ``output_type``.
    """
    _check_output_type(output_type)
    if output_type == "weeks_days":
        weeks, days = answer
        return f"{weeks} weeks, {days} days"
    if output_type == "date":
        return answer.strftime("%m/%d/%Y") if isinstance(answer, _dt.date) else str(answer)
    if output_type == "integer":
        return str(int(answer))
    text = f"{float(answer):.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
