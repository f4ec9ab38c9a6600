"""MedCalc-Bench: medical calculations from patient notes.

Source benchmark: Khandekar et al., "MedCalc-Bench: Evaluating Large Language Models for Medical
Calculations", NeurIPS 2024 Datasets & Benchmarks (arXiv:2406.12036).  Reference code:
https://github.com/ncbi-nlp/MedCalc-Bench (``evaluation/run.py`` and ``evaluate.py``).

This module offers

* :func:`load_medcalc_csv` -- a loader for the real MedCalc-Bench CSV files a user keeps locally
  (``train_data.csv`` / ``test_data.csv``); nothing is ever downloaded;
* :func:`extract_answer` / :func:`is_correct` / :func:`score_prediction` -- the MedCalc-Bench
  scoring rules (decimal answers within [Lower Limit, Upper Limit], integer scores exact after
  rounding, dates exact, gestational age as an exact ``(weeks, days)`` pair);
* :func:`generate_examples` -- an offline generator that samples plausible patient parameters,
  writes a short note and a question, and takes the ground truth *and* the step-by-step
  explanation from the real calculator implementations shipped in the ``medcalc-bench`` package
  (module ``medcalc``);
* :class:`MedCalcTask` -- the :class:`~anchored_learning.tasks.base.TargetTask` wrapper.

Normalised output types (``Example.meta["output_type"]``):

``"decimal"``     float answer, correct when ``lower <= x <= upper`` (+-5 % for generated items,
                  as in MedCalc-Bench);
``"integer"``     int score, correct when ``round(x) == answer`` (MedCalc-Bench rounds the
                  extracted number before the exact comparison);
``"date"``        ``"MM/DD/YYYY"`` string, compared as a calendar date;
``"weeks_days"``  ``(weeks, days)`` tuple, compared exactly.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import importlib
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anchored_learning.tasks.base import Example

__all__ = [
    "CALCULATORS",
    "MedCalcTask",
    "extract_answer",
    "format_answer",
    "generate_examples",
    "is_correct",
    "load_medcalc_csv",
    "score_prediction",
]

OUTPUT_TYPES = ("decimal", "integer", "date", "weeks_days")

#: MedCalc-Bench calculator ids whose answers are dates / (weeks, days) pairs (evaluation/run.py).
_DATE_CALCULATOR_IDS = {13, 68}
_WEEKS_DAYS_CALCULATOR_IDS = {69}

#: Columns every MedCalc-Bench row must have (``Ground Truth Explanation`` etc. are optional).
REQUIRED_COLUMNS = (
    "Calculator ID",
    "Calculator Name",
    "Patient Note",
    "Question",
    "Ground Truth Answer",
    "Lower Limit",
    "Upper Limit",
)

_ANSWER_INSTRUCTION = (
    "Think step by step, then give the final answer on its own last line in the form "
    "'Answer: <value>'."
)


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------

_MONTHS = {
    name: i + 1
    for i, name in enumerate(
        [
            "january", "february", "march", "april", "may", "june", "july", "august",
            "september", "october", "november", "december",
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
    re.compile(
        r"(\d+)\s*(?:weeks?|wks?|w)\b\.?\s*(?:,|and|\+)?\s*(\d+)\s*(?:days?|d)\b", re.IGNORECASE
    ),
    re.compile(r"(\d+)\s*(?:weeks?|wks?|w)(\d+)\s*(?:days?|d)\b", re.IGNORECASE),
    # 16 weeks (0 days)
    re.compile(r"(\d+)\s*(?:weeks?|wks?)\b()", re.IGNORECASE),
]

_ANSWER_LINE_RE = re.compile(
    r"^[\s>*#_`-]*(?:final\s+)?answer\s*[*_`]*\s*[:=]\s*[*_`]*\s*(?P<rest>.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_JSON_ANSWER_RE = re.compile(
    r"""["']?answer["']?\s*:\s*(?P<val>"(?:[^"\\]|\\.)*"|'[^']*'|[^,}\n]+)""", re.IGNORECASE
)


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
    """Extract the final answer from a model's free-text response, MedCalc-Bench style.

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


def _response(explanation: str, answer: Any, output_type: str) -> str:
    explanation = _clean_explanation(explanation)
    return f"{explanation}\nAnswer: {format_answer(answer, output_type)}"


def _clean_explanation(text: str) -> str:
    # The package's explanations contain triple-quoted indented blocks and some literal "\n".
    text = text.replace("\\n", "\n")
    lines = [line.strip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _prompt(note: str, question: str) -> str:
    return (
        f"Here is the patient note:\n{note}\n\nHere is the task:\n{question}\n\n"
        f"{_ANSWER_INSTRUCTION}"
    )


# --------------------------------------------------------------------------------------------
# CSV loader
# --------------------------------------------------------------------------------------------


def _normalise_output_type(raw: str, calculator_id: int | None, ground_truth: str) -> str:
    raw = (raw or "").strip().lower()
    if calculator_id in _WEEKS_DAYS_CALCULATOR_IDS or (
        raw != "date" and re.search(r"weeks?", ground_truth, re.IGNORECASE)
        and _parse_weeks_days(ground_truth) is not None
    ):
        return "weeks_days"
    if raw == "date" or calculator_id in _DATE_CALCULATOR_IDS:
        return "date"
    if raw in ("integer", "int"):
        return "integer"
    if raw in ("decimal", "float", ""):
        return "decimal"
    raise ValueError(f"unknown Output Type {raw!r}")


def _strict_float(text: str, what: str) -> float:
    try:
        value = float(str(text).strip().replace(",", ""))
    except ValueError:
        raise ValueError(f"unparsable {what} {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"non-finite {what} {text!r}")
    return value


def _parse_row(row: dict[str, str], path: Path, row_number: int, line: int) -> Example:
    where = f"{path}: row {row_number} (line {line})"
    for col in REQUIRED_COLUMNS:
        value = row.get(col)
        if value is None or not str(value).strip():
            raise ValueError(f"{where}: missing value for required column {col!r}")
    try:
        cid_text = row["Calculator ID"].strip()
        try:
            calculator_id: int | None = int(float(cid_text))
        except ValueError:
            raise ValueError(f"unparsable Calculator ID {cid_text!r}") from None
        gt_text = row["Ground Truth Answer"].strip()
        output_type = _normalise_output_type(row.get("Output Type", ""), calculator_id, gt_text)
        lo_text, hi_text = row["Lower Limit"].strip(), row["Upper Limit"].strip()
        if output_type == "decimal":
            answer: Any = _strict_float(gt_text, "Ground Truth Answer")
            lower: Any = _strict_float(lo_text, "Lower Limit")
            upper: Any = _strict_float(hi_text, "Upper Limit")
            if lower > upper:
                raise ValueError(f"Lower Limit {lower} > Upper Limit {upper}")
        elif output_type == "integer":
            value = _strict_float(gt_text, "Ground Truth Answer")
            answer = round(value)
            lower = _strict_float(lo_text, "Lower Limit")
            upper = _strict_float(hi_text, "Upper Limit")
            if lower > upper:
                raise ValueError(f"Lower Limit {lower} > Upper Limit {upper}")
        elif output_type == "date":
            date = _parse_date(gt_text)
            if date is None:
                raise ValueError(f"unparsable date Ground Truth Answer {gt_text!r}")
            for text, what in ((lo_text, "Lower Limit"), (hi_text, "Upper Limit")):
                if _parse_date(text) is None:
                    raise ValueError(f"unparsable date {what} {text!r}")
            answer = date.strftime("%m/%d/%Y")
            lower = upper = answer
        else:
            pair = _parse_weeks_days(gt_text)
            if pair is None:
                raise ValueError(f"unparsable (weeks, days) Ground Truth Answer {gt_text!r}")
            for text, what in ((lo_text, "Lower Limit"), (hi_text, "Upper Limit")):
                if _parse_weeks_days(text) is None:
                    raise ValueError(f"unparsable (weeks, days) {what} {text!r}")
            answer = pair
            lower = upper = list(pair)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    note = row["Patient Note"].strip()
    question = row["Question"].strip()
    explanation = (row.get("Ground Truth Explanation") or "").strip()
    response = (
        f"{explanation}\nAnswer: {format_answer(answer, output_type)}"
        if explanation
        else f"Answer: {format_answer(answer, output_type)}"
    )
    note_id = (row.get("Note ID") or "").strip()
    ident = (row.get("Row Number") or "").strip() or str(row_number)
    meta = {
        "source": "csv",
        "file": str(path),
        "row": row_number,
        "calculator_id": calculator_id,
        "calculator_name": row["Calculator Name"].strip(),
        "category": (row.get("Category") or "").strip(),
        "output_type": output_type,
        "csv_output_type": (row.get("Output Type") or "").strip(),
        "note_id": note_id,
        "lower_limit": lower,
        "upper_limit": upper,
    }
    return Example(
        prompt=_prompt(note, question),
        response=response,
        answer=answer,
        meta=meta,
        uid=f"medcalc-csv-{path.stem}-{ident}",
    )


def load_medcalc_csv(path: str | Path) -> list[Example]:
    """Load a local MedCalc-Bench CSV file (e.g. ``test_data.csv``) into examples.

    Expected columns (MedCalc-Bench v1.x): ``Calculator ID``, ``Calculator Name``, ``Category``,
    ``Output Type``, ``Note ID``, ``Patient Note``, ``Question``, ``Relevant Entities``,
    ``Ground Truth Answer``, ``Lower Limit``, ``Upper Limit``, ``Ground Truth Explanation``;
    the ones in :data:`REQUIRED_COLUMNS` are mandatory.  Date rows (estimated due date,
    conception date) are normalised to ``MM/DD/YYYY``; gestational-age rows become
    ``(weeks, days)`` tuples.  The gold response is the ground-truth explanation followed by an
    ``Answer: X`` line.

    Args:
        path: the CSV file.

    Returns:
        The examples in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a required column is absent from the header, or a row is malformed (empty
            required cell, unparsable answer or limits, lower > upper); the message names the
            file and the 1-based data row number (and the physical line).
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: row 0 (header): missing required column(s) {missing}")
        examples = []
        for i, row in enumerate(reader, start=1):
            if None in row:  # more cells than header columns
                raise ValueError(f"{path}: row {i} (line {reader.line_num}): too many fields")
            examples.append(_parse_row(row, path, i, reader.line_num))
    return examples


# --------------------------------------------------------------------------------------------
# Offline generator backed by the real calculators of the `medcalc` package
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calculator:
    """One generator-backed calculator.

    Attributes:
        key: short name used in ``MedCalcTask(calculators=[...])`` (e.g. ``"bmi"``).
        calculator_id: the MedCalc-Bench calculator id.
        name: the MedCalc-Bench calculator name.
        output_type: normalised output type.
        module, function: where the real implementation lives in the ``medcalc`` package.
        sample: draws ``(calculator_input, note_facts)`` from a ``random.Random``.
        note: writes the patient note from the facts.
        question: the question asked (MedCalc-Bench wording).
    """

    key: str
    calculator_id: int
    name: str
    output_type: str
    module: str
    function: str
    sample: Callable[[random.Random], tuple[dict[str, Any], dict[str, Any]]]
    note: Callable[[dict[str, Any], random.Random], str]
    question: str

    def compute(self, params: dict[str, Any]) -> tuple[str, Any]:
        """Run the real ``medcalc`` calculator; returns ``(explanation, answer)``."""
        fn = getattr(importlib.import_module(f"medcalc.{self.module}"), self.function)
        result = fn(dict(params))
        return result["Explanation"], result["Answer"]


def _sex(rng: random.Random) -> str:
    return rng.choice(["Male", "Female"])


def _noun(sex: str) -> str:
    return "man" if sex == "Male" else "woman"


def _pro(sex: str) -> str:
    return "He" if sex == "Male" else "She"


def _fmt(x: float) -> str:
    return f"{x:g}"


_PRESENTATIONS = [
    "presents to the clinic for a routine follow-up visit",
    "is seen in the emergency department",
    "is admitted to the medical ward",
    "comes in for a pre-operative assessment",
    "presents with fatigue of two weeks' duration",
    "is evaluated in the outpatient clinic",
]


def _a(age: int) -> str:
    return "An" if str(age).startswith("8") or age in (11, 18) else "A"


def _opening(age: int, sex: str, rng: random.Random) -> str:
    return f"{_a(age)} {age}-year-old {_noun(sex)} {rng.choice(_PRESENTATIONS)}."


def _height(rng: random.Random, sex: str) -> tuple[float, str]:
    cm = rng.gauss(176 if sex == "Male" else 163, 7)
    cm = min(max(cm, 145), 200)
    if rng.random() < 0.25:
        return round(cm / 2.54), "in"
    return round(cm), "cm"


def _weight(rng: random.Random, height_m: float) -> tuple[float, str]:
    bmi = min(max(rng.gauss(26, 5), 16), 42)
    kg = bmi * height_m**2
    if rng.random() < 0.25:
        return round(kg / 0.453592), "lbs"
    return round(kg, 1), "kg"


def _height_m(h: tuple[float, str]) -> float:
    return h[0] / 100 if h[1] == "cm" else h[0] * 0.0254


def _sample_body(rng: random.Random) -> tuple[dict, dict]:
    sex = _sex(rng)
    age = rng.randint(18, 90)
    height = _height(rng, sex)
    weight = _weight(rng, _height_m(height))
    params = {"height": height, "weight": weight, "sex": sex, "age": (age, "years")}
    return params, {"age": age, "sex": sex, "height": height, "weight": weight}


def _body_note(f: dict, rng: random.Random) -> str:
    sbp = rng.randint(105, 150)
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} has no acute complaints. "
        f"Height is {_fmt(f['height'][0])} {f['height'][1]} and weight is "
        f"{_fmt(f['weight'][0])} {f['weight'][1]}. Blood pressure is {sbp}/{rng.randint(60, 90)} "
        f"mm Hg and heart rate is {rng.randint(58, 96)} beats per minute."
    )


def _sample_ibw(rng: random.Random) -> tuple[dict, dict]:
    params, facts = _sample_body(rng)
    return {"height": params["height"], "sex": params["sex"]}, facts


def _sample_map(rng: random.Random) -> tuple[dict, dict]:
    sbp = rng.randint(80, 200)
    dbp = rng.randint(40, min(sbp - 15, 120))
    sex, age = _sex(rng), rng.randint(18, 90)
    return (
        {"sys_bp": (float(sbp), "mm hg"), "dia_bp": (float(dbp), "mm hg")},
        {"age": age, "sex": sex, "sbp": sbp, "dbp": dbp},
    )


def _map_note(f: dict, rng: random.Random) -> str:
    complaint = rng.choice(
        ["headache", "dizziness", "chest tightness", "palpitations", "shortness of breath"]
    )
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} reports {complaint}. "
        f"Vital signs: blood pressure {f['sbp']}/{f['dbp']} mm Hg, heart rate "
        f"{rng.randint(55, 120)} beats per minute, respiratory rate {rng.randint(12, 24)} breaths "
        f"per minute, temperature {rng.uniform(36.2, 38.4):.1f} °C."
    )


def _sample_anion_gap(rng: random.Random) -> tuple[dict, dict]:
    while True:  # physiologically plausible: gap 3-32 mEq/L, chloride 85-120 mEq/L
        na = rng.randint(125, 150)
        hco3 = rng.randint(8, 32)
        cl = na - hco3 - rng.randint(3, 32)
        if 85 <= cl <= 120:
            break
    unit = rng.choice(["mEq/L", "mmol/L"])
    sex, age = _sex(rng), rng.randint(18, 90)
    return (
        {"sodium": (float(na), unit), "chloride": (float(cl), unit),
         "bicarbonate": (float(hco3), unit)},
        {"age": age, "sex": sex, "na": na, "cl": cl, "hco3": hco3, "unit": unit},
    )


def _anion_gap_note(f: dict, rng: random.Random) -> str:
    u = f["unit"]
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} reports nausea and poor oral "
        f"intake. Laboratory results: sodium {f['na']} {u}, potassium "
        f"{rng.uniform(3.2, 5.4):.1f} {u}, chloride {f['cl']} {u}, bicarbonate {f['hco3']} {u}, "
        f"BUN {rng.randint(8, 40)} mg/dL, creatinine {rng.uniform(0.6, 2.0):.1f} mg/dL, glucose "
        f"{rng.randint(80, 250)} mg/dL."
    )


def _sample_crcl(rng: random.Random) -> tuple[dict, dict]:
    params, facts = _sample_body(rng)
    creat = round(rng.uniform(0.5, 3.5), 2)
    params["creatinine"] = (creat, "mg/dL")
    facts["creatinine"] = creat
    return params, facts


def _crcl_note(f: dict, rng: random.Random) -> str:
    return (
        f"{_opening(f['age'], f['sex'], rng)} A medication dose adjustment is being considered. "
        f"Height is {_fmt(f['height'][0])} {f['height'][1]} and weight is "
        f"{_fmt(f['weight'][0])} {f['weight'][1]}. Serum creatinine is {_fmt(f['creatinine'])} "
        f"mg/dL and BUN is {rng.randint(8, 45)} mg/dL."
    )


_CHA2DS2_ITEMS = [
    ("chf", "congestive heart failure"),
    ("hypertension", "hypertension"),
    ("stroke", "a prior ischemic stroke"),
    ("tia", "a transient ischemic attack"),
    ("thromboembolism", "a prior pulmonary embolism"),
    ("vascular_disease", "a prior myocardial infarction"),
    ("diabetes", "type 2 diabetes mellitus"),
]


def _sample_cha2ds2(rng: random.Random) -> tuple[dict, dict]:
    sex, age = _sex(rng), rng.randint(40, 92)
    params: dict[str, Any] = {"age": (age, "years"), "sex": sex}
    for key, _ in _CHA2DS2_ITEMS:
        params[key] = rng.random() < 0.3
    return params, {"age": age, "sex": sex, **{k: params[k] for k, _ in _CHA2DS2_ITEMS}}


def _list_phrase(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _cha2ds2_note(f: dict, rng: random.Random) -> str:
    present = [label for key, label in _CHA2DS2_ITEMS if f[key]]
    absent = [label.replace("a prior ", "").replace("a ", "") for key, label in _CHA2DS2_ITEMS
              if not f[key]]
    text = (
        f"{_opening(f['age'], f['sex'], rng)} An ECG shows atrial fibrillation with a ventricular "
        f"rate of {rng.randint(80, 140)} beats per minute. "
    )
    if present:
        text += f"{_pro(f['sex'])} has a history of {_list_phrase(present)}. "
    if absent:
        text += f"There is no history of {_list_phrase(absent)}."
    return text.strip()


def _sample_curb65(rng: random.Random) -> tuple[dict, dict]:
    sex, age = _sex(rng), rng.randint(20, 95)
    sbp = rng.randint(75, 160)
    dbp = rng.randint(40, min(sbp - 15, 100))
    rr = rng.randint(12, 38)
    bun = rng.randint(6, 45)
    confusion = rng.random() < 0.3
    params = {
        "age": (age, "years"),
        "sys_bp": (float(sbp), "mm hg"),
        "dia_bp": (float(dbp), "mm hg"),
        "respiratory_rate": (float(rr), "breaths per minute"),
        "bun": (float(bun), "mg/dL"),
        "confusion": confusion,
    }
    return params, {"age": age, "sex": sex, "sbp": sbp, "dbp": dbp, "rr": rr, "bun": bun,
                    "confusion": confusion}


def _curb65_note(f: dict, rng: random.Random) -> str:
    mental = ("is confused and disoriented to time and place" if f["confusion"]
              else "is alert and fully oriented")
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} has had a productive cough and "
        f"fever for {rng.randint(2, 7)} days; chest radiography shows a right lower lobe "
        f"consolidation. On examination {_pro(f['sex']).lower()} {mental}. Blood pressure is "
        f"{f['sbp']}/{f['dbp']} mm Hg and respiratory rate is {f['rr']} breaths per minute. "
        f"BUN is {f['bun']} mg/dL."
    )


def _sample_bazett(rng: random.Random) -> tuple[dict, dict]:
    hr = rng.randint(45, 150)
    qt = rng.randint(300, 480)
    sex, age = _sex(rng), rng.randint(18, 90)
    return (
        {"heart_rate": (float(hr), "beats per minute"), "qt_interval": (float(qt), "msec")},
        {"age": age, "sex": sex, "hr": hr, "qt": qt},
    )


def _bazett_note(f: dict, rng: random.Random) -> str:
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} was recently started on a "
        f"macrolide antibiotic. A 12-lead ECG shows sinus rhythm at a heart rate of {f['hr']} "
        f"beats per minute with a QT interval of {f['qt']} msec."
    )


def _sample_calcium(rng: random.Random) -> tuple[dict, dict]:
    alb = round(rng.uniform(1.5, 4.8), 1)
    ca = round(rng.uniform(6.5, 11.5), 1)
    sex, age = _sex(rng), rng.randint(18, 90)
    return (
        {"albumin": (alb, "g/dL"), "calcium": (ca, "mg/dL")},
        {"age": age, "sex": sex, "albumin": alb, "calcium": ca},
    )


def _calcium_note(f: dict, rng: random.Random) -> str:
    return (
        f"{_opening(f['age'], f['sex'], rng)} {_pro(f['sex'])} reports muscle cramps and "
        f"perioral tingling. Laboratory results: serum calcium {_fmt(f['calcium'])} mg/dL, "
        f"albumin {_fmt(f['albumin'])} g/dL, phosphate {rng.uniform(2.5, 5.0):.1f} mg/dL, "
        f"magnesium {rng.uniform(1.5, 2.4):.1f} mg/dL."
    )


def _sample_centor(rng: random.Random) -> tuple[dict, dict]:
    sex, age = _sex(rng), rng.randint(4, 70)
    temp = round(rng.uniform(36.5, 39.8), 1)
    params = {
        "age": (age, "years"),
        "temperature": (temp, "degrees celsius"),
        "exudate_swelling_tonsils": rng.random() < 0.5,
        "tender_lymph_nodes": rng.random() < 0.5,
        "cough_absent": rng.random() < 0.5,
    }
    facts = {"age": age, "sex": sex, "temp": temp}
    facts.update({k: params[k] for k in ("exudate_swelling_tonsils", "tender_lymph_nodes",
                                         "cough_absent")})
    return params, facts


def _centor_note(f: dict, rng: random.Random) -> str:
    who = ("boy" if f["sex"] == "Male" else "girl") if f["age"] < 18 else _noun(f["sex"])
    pro = _pro(f["sex"])
    parts = [
        f"{_a(f['age'])} {f['age']}-year-old {who} presents with a sore throat for "
        f"{rng.randint(1, 5)} days.",
        f"Temperature is {f['temp']} °C.",
        "Examination shows tonsillar exudates and swelling." if f["exudate_swelling_tonsils"]
        else "The tonsils are not enlarged and there is no exudate.",
        "The anterior cervical lymph nodes are tender and swollen." if f["tender_lymph_nodes"]
        else "There is no cervical lymphadenopathy.",
        f"{pro} denies any cough." if f["cough_absent"] else f"{pro} also reports a dry cough.",
    ]
    return " ".join(parts)


def _random_date(rng: random.Random, start: _dt.date, span_days: int) -> _dt.date:
    return start + _dt.timedelta(days=rng.randrange(span_days))


def _sample_gestational(rng: random.Random) -> tuple[dict, dict]:
    lmp = _random_date(rng, _dt.date(2015, 1, 1), 3650)
    current = lmp + _dt.timedelta(days=rng.randint(14, 290))
    age = rng.randint(18, 44)
    return (
        {"current_date": current.strftime("%m/%d/%Y"), "menstrual_date": lmp.strftime("%m/%d/%Y")},
        {"age": age, "sex": "Female", "lmp": lmp, "current": current},
    )


def _gestational_note(f: dict, rng: random.Random) -> str:
    return (
        f"A {f['age']}-year-old woman presents for a prenatal visit on "
        f"{f['current'].strftime('%m/%d/%Y')}. Her last menstrual period began on "
        f"{f['lmp'].strftime('%m/%d/%Y')}. A urine pregnancy test is positive."
    )


def _sample_lmp_cycle(rng: random.Random, *, min_cycle: int) -> tuple[dict, dict]:
    lmp = _random_date(rng, _dt.date(2015, 1, 1), 3650)
    cycle = rng.randint(min_cycle, 35)
    age = rng.randint(18, 44)
    return (
        {"menstrual_date": lmp.strftime("%m/%d/%Y"), "cycle_length": cycle},
        {"age": age, "sex": "Female", "lmp": lmp, "cycle": cycle},
    )


def _lmp_note(f: dict, rng: random.Random) -> str:
    return (
        f"A {f['age']}-year-old woman with a positive home pregnancy test presents for her first "
        f"prenatal visit. Her last menstrual period began on {f['lmp'].strftime('%m/%d/%Y')} and "
        f"her menstrual cycles are regular, lasting {f['cycle']} days."
    )


#: The generator's calculators, keyed by short name.  All answers and explanations come from
#: the ``medcalc`` package (medcalc-bench 1.7.0).  Known issues avoided: the package's
#: Estimated Due Date adds (instead of subtracting) the gap for cycles shorter than 28 days, so
#: only cycles of 28-35 days are generated for it; serum osmolality and QTc Fridericia are left
#: out because their explanation text contradicts their (correct) computation.
CALCULATORS: dict[str, Calculator] = {
    c.key: c
    for c in [
        Calculator("bmi", 6, "Body Mass Index (BMI)", "decimal", "bmi_calculator",
                   "bmi_calculator_explanation", _sample_body, _body_note,
                   "What is the patient's body mass index (BMI)? Your answer should be in terms "
                   "of kg/m²."),
        Calculator("map", 5, "Mean Arterial Pressure (MAP)", "decimal", "mean_arterial_pressure",
                   "mean_arterial_pressure_explanation", _sample_map, _map_note,
                   "What is patient's mean arterial pressure in mm Hg?"),
        Calculator("anion_gap", 39, "Anion Gap", "decimal", "anion_gap",
                   "compute_anion_gap_explanation", _sample_anion_gap, _anion_gap_note,
                   "What is the patient's anion gap in terms of mEq/L?"),
        Calculator("creatinine_clearance", 2, "Creatinine Clearance (Cockcroft-Gault Equation)",
                   "decimal", "creatinine_clearance", "generate_cockcroft_gault_explanation",
                   _sample_crcl, _crcl_note,
                   "What is the patient's Creatinine Clearance using the Cockroft-Gault Equation "
                   "in terms of mL/min? You should use the patient's adjusted body weight in kg "
                   "for the weight. The adjusted body weight formula is min(ideal body weight, "
                   "actual body weight) if the patient is normal weight, the adjusted body weight "
                   "formula if overweight or obese, and the actual weight if underweight."),
        Calculator("cha2ds2_vasc", 4, "CHA2DS2-VASc Score for Atrial Fibrillation Stroke Risk",
                   "integer", "cha2ds2_vasc_score", "generate_cha2ds2_vasc_explanation",
                   _sample_cha2ds2, _cha2ds2_note,
                   "What is the patient's CHA2DS2-VASc Score?"),
        Calculator("curb_65", 45, "CURB-65 Score for Pneumonia Severity", "integer", "curb_65",
                   "curb_65_explanation", _sample_curb65, _curb65_note,
                   "What is the patient's CURB-65 score?"),
        Calculator("qtc_bazett", 11, "QTc Bazett Calculator", "decimal", "qt_calculator_bazett",
                   "bazett_calculator_explanation", _sample_bazett, _bazett_note,
                   "Using the Bazett Formula for corrected QT interval, what is the patient's "
                   "corrected QT interval in terms of msec?"),
        Calculator("ideal_body_weight", 10, "Ideal Body Weight", "decimal", "ideal_body_weight",
                   "ibw_explanation", _sample_ibw, _body_note,
                   "Based on the patient's height and sex, what is the patient's ideal body "
                   "weight in terms of kg?"),
        Calculator("bsa", 60, "Body Surface Area Calculator", "decimal", "bsa_calculator",
                   "bsa_calculator_explaination", _sample_body, _body_note,
                   "What is the patient's body surface area? Please output your answer in terms "
                   "of m²."),
        Calculator("calcium_correction", 7, "Calcium Correction for Hypoalbuminemia", "decimal",
                   "calcium_correction", "calculate_corrected_calcium_explanation",
                   _sample_calcium, _calcium_note,
                   "Using the Calcium Correction for Hypoalbuminemia formula, what is the "
                   "patient's corrected calcium in mg/dL? The patient's normal albumin "
                   "concentration is 4 g/dL."),
        Calculator("centor", 20, "Centor Score (Modified/McIsaac) for Strep Pharyngitis",
                   "integer", "centor_score", "compute_centor_score_explanation",
                   _sample_centor, _centor_note, "What is the patient's Centor Score?"),
        Calculator("gestational_age", 69, "Estimated Gestational Age", "weeks_days",
                   "gestational_age", "compute_gestational_age_explanation",
                   _sample_gestational, _gestational_note,
                   "Based on the patient's last menstrual period and today's date, what is the "
                   "patient's estimated gestational age? Your response should be a tuple "
                   "specifying the number of weeks and days, e.g. (4 weeks, 0 days)."),
        Calculator("conception_date", 68, "Estimated of Conception", "date", "conception_date",
                   "add_2_weeks_explanation",
                   lambda rng: _sample_lmp_cycle(rng, min_cycle=21), _lmp_note,
                   "Using the patient's last menstrual period date, what is the patient's "
                   "estimated date of conception? Your response should be in the format "
                   "M/D/Y (e.g. 08/31/2023)."),
        Calculator("due_date", 13, "Estimated Due Date", "date", "estimated_due_date",
                   "add_40_weeks_explanation",
                   lambda rng: _sample_lmp_cycle(rng, min_cycle=28), _lmp_note,
                   "Using Naegele's Rule for estimated due date based on the last menstrual "
                   "period and cycle length, what is the patient's estimated due date? Your "
                   "response should be in the format M/D/Y (e.g. 08/31/2023)."),
    ]
}

_SPLIT_SALT = "anchored-learning/medcalc/v1"
_DEFAULT_SIZES = {"train": 2000, "test": 500}
_TEST_BUCKETS = 1  # out of 5: 20 % of the note space belongs to "test"


def _note_split(note: str) -> str:
    digest = hashlib.sha256(f"{_SPLIT_SALT}\n{note}".encode()).digest()
    return "test" if digest[0] % 5 < _TEST_BUCKETS else "train"


def _resolve_calculators(calculators: Iterable[str | int] | None) -> list[Calculator]:
    if calculators is None:
        return list(CALCULATORS.values())
    chosen: list[Calculator] = []
    for want in calculators:
        match = None
        for calc in CALCULATORS.values():
            if (
                str(want).strip().lower() in (calc.key, calc.name.lower())
                or str(want).strip() == str(calc.calculator_id)
            ):
                match = calc
                break
        if match is None:
            raise ValueError(
                f"unknown MedCalc calculator {want!r}; known keys: {sorted(CALCULATORS)}"
            )
        if match not in chosen:
            chosen.append(match)
    if not chosen:
        raise ValueError("calculators must name at least one calculator")
    return chosen


def _make_example(calc: Calculator, rng: random.Random, split: str) -> Example:
    params, facts = calc.sample(rng)
    note = calc.note(facts, rng)
    explanation, answer = calc.compute(params)
    if calc.output_type == "decimal":
        answer = float(answer)
        lower, upper = sorted((round(answer * 0.95, 5), round(answer * 1.05, 5)))
    elif calc.output_type == "integer":
        answer = int(answer)
        lower = upper = answer
    elif calc.output_type == "date":
        lower = upper = answer
    else:  # ('16 weeks', '1 days') -> (16, 1)
        answer = (int(str(answer[0]).split()[0]), int(str(answer[1]).split()[0]))
        lower = upper = list(answer)
    digest = hashlib.sha256(note.encode()).hexdigest()[:12]
    meta = {
        "source": "generated",
        "calculator_id": calc.calculator_id,
        "calculator_key": calc.key,
        "calculator_name": calc.name,
        "output_type": calc.output_type,
        "lower_limit": lower,
        "upper_limit": upper,
        "patient_note": note,
        "question": calc.question,
        "inputs": json.loads(json.dumps(params, default=str)),
    }
    return Example(
        prompt=_prompt(note, calc.question),
        response=_response(explanation, answer, calc.output_type),
        answer=answer,
        meta=meta,
        uid=f"medcalc-gen-{split}-{calc.key}-{digest}",
    )


def generate_examples(
    split: str,
    n: int,
    seed: int = 0,
    calculators: Iterable[str | int] | None = None,
) -> list[Example]:
    """Generate ``n`` synthetic MedCalc-Bench-style examples offline.

    Calculators are used round-robin; each example samples plausible patient parameters with
    ``random.Random`` (seeded from ``seed`` and ``split``), writes a short note, and takes the
    ground truth and the step-by-step explanation from the real ``medcalc`` calculator.  Decimal
    answers get MedCalc-Bench's +-5 % limits.  A note belongs to "train" or "test" by a salted
    SHA-256 hash of its text (80/20), so the splits never share a note, whatever the seeds;
    notes are unique within a call.

    Args:
        split: ``"train"`` or ``"test"``.
        n: number of examples (>= 0).
        seed: generator seed; same arguments give the same examples.
        calculators: keys (see :data:`CALCULATORS`), MedCalc-Bench names or ids; all by default.

    Returns:
        The examples.

    Raises:
        ValueError: unknown split or calculator, negative ``n``, or the calculators' note space
            is too small to produce ``n`` distinct notes.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    calcs = _resolve_calculators(calculators)
    rng = random.Random(f"medcalc:{seed}:{split}")
    seen: set[str] = set()
    out: list[Example] = []
    for i in range(n):
        calc = calcs[i % len(calcs)]
        for _attempt in range(1000):
            ex = _make_example(calc, rng, split)
            note = ex.meta["patient_note"]
            if note not in seen and _note_split(note) == split:
                seen.add(note)
                out.append(ex)
                break
        else:
            raise ValueError(f"could not generate a new {split} note for {calc.key!r}")
    return out


# --------------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------------


class MedCalcTask:
    """MedCalc-Bench as a :class:`~anchored_learning.tasks.base.TargetTask`.

    Source benchmark: Khandekar et al., "MedCalc-Bench" (NeurIPS 2024, arXiv:2406.12036).

    Args:
        source: ``"generated"`` (offline generator backed by the ``medcalc`` package's real
            calculators), or a path to local MedCalc-Bench data: a directory holding
            ``train_data.csv`` / ``test_data.csv``, or one CSV file.  A single file whose name
            contains ``train`` or ``test`` serves only that split; any other single file serves
            both splits (the caller is then responsible for keeping train and test apart).
        calculators: restrict to these calculators -- generator keys (``"bmi"``, ...),
            MedCalc-Bench calculator names or ids; ``None`` = all.

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        ValueError: unknown calculator (generated source).
    """

    name = "medcalc"
    max_new_tokens = 768

    def __init__(
        self,
        source: str | Path = "generated",
        calculators: Sequence[str | int] | None = None,
    ) -> None:
        self.source = source
        self.calculators = list(calculators) if calculators is not None else None
        self._files: dict[str, Path] = {}
        self._cache: dict[str, list[Example]] = {}
        if str(source) == "generated":
            _resolve_calculators(self.calculators)  # validate early
            return
        path = Path(source)
        if path.is_dir():
            for split in ("train", "test"):
                for candidate in (f"{split}_data.csv", f"{split}.csv"):
                    if (path / candidate).is_file():
                        self._files[split] = path / candidate
                        break
            if not self._files:
                raise FileNotFoundError(f"{path}: no train_data.csv or test_data.csv inside")
        elif path.is_file():
            stem = path.stem.lower()
            if "train" in stem and "test" not in stem:
                self._files["train"] = path
            elif "test" in stem and "train" not in stem:
                self._files["test"] = path
            else:
                self._files = {"train": path, "test": path}
        else:
            raise FileNotFoundError(f"MedCalc source {source!r} is neither 'generated' nor a path")

    def _csv_examples(self, split: str) -> list[Example]:
        if split not in self._files:
            raise ValueError(f"MedCalc source {self.source} has no {split!r} split")
        if split not in self._cache:
            examples = load_medcalc_csv(self._files[split])
            if self.calculators is not None:
                wanted = {str(c).strip().lower() for c in self.calculators}
                keys = {
                    c.key: (str(c.calculator_id), c.name.lower()) for c in CALCULATORS.values()
                }
                for key, (cid, cname) in keys.items():
                    if key in wanted:
                        wanted |= {cid, cname}
                examples = [
                    e for e in examples
                    if str(e.meta["calculator_id"]) in wanted
                    or e.meta["calculator_name"].lower() in wanted
                ]
            self._cache[split] = examples
        return self._cache[split]

    def examples(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        """Return ``n`` examples of ``split`` (all / the default size when ``None``).

        Generated source: ``n=None`` means 2000 train / 500 test examples.  CSV source: the
        file's rows (after the calculator filter) shuffled by ``random.Random(seed)``.

        Raises:
            ValueError: unknown split, ``n`` negative or larger than the CSV holds, or a
                malformed CSV row (see :func:`load_medcalc_csv`).
        """
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        if n is not None and n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not self._files:
            return generate_examples(
                split, _DEFAULT_SIZES[split] if n is None else n, seed, self.calculators
            )
        pool = list(self._csv_examples(split))
        random.Random(seed).shuffle(pool)
        if n is None:
            return pool
        if n > len(pool):
            raise ValueError(f"asked for {n} {split} examples but the source holds {len(pool)}")
        return pool[:n]

    def score(self, example: Example, prediction: str) -> float:
        """MedCalc-Bench correctness of ``prediction`` for ``example`` (1.0 or 0.0).

        See :func:`score_prediction`.
        """
        return score_prediction(example, prediction)
