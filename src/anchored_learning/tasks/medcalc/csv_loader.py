"""Loader for real MedCalc-Bench CSV files kept locally (nothing is ever downloaded)."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

from anchored_learning.tasks.base import Example
from anchored_learning.tasks.medcalc.formatting import _prompt, _response
from anchored_learning.tasks.medcalc.scoring import _parse_date, _parse_weeks_days

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


# --------------------------------------------------------------------------------------------
# CSV loader
# --------------------------------------------------------------------------------------------


def _normalise_output_type(raw: str, calculator_id: int | None, ground_truth: str) -> str:
    raw = (raw or "").strip().lower()
    if calculator_id in _WEEKS_DAYS_CALCULATOR_IDS or (
        raw != "date" and re.search(r"weeks?", ground_truth, re.IGNORECASE) and _parse_weeks_days(ground_truth) is not None
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
    response = _response(explanation, answer, output_type)
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
    ``(weeks, days)`` tuples.  The prompt is MedCalc-Bench's zero-shot prompt and the gold response
    its JSON dict (the ground-truth explanation as ``step_by_step_thinking``; see
    :mod:`~anchored_learning.tasks.medcalc.formatting`).

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
