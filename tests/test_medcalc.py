"""MedCalc-Bench task: scoring rules, offline generator, CSV loader."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re

import pytest

from anchored_learning.tasks.base import Example, TargetTask
from anchored_learning.tasks.medcalc import (
    CALCULATORS,
    MedCalcTask,
    extract_answer,
    format_answer,
    generate_examples,
    is_correct,
    load_medcalc_csv,
    score_prediction,
)

# ---------------------------------------------------------------------------- helpers


def _decimal_example(answer: float, lower: float, upper: float) -> Example:
    return Example(
        prompt="p",
        response="r",
        answer=answer,
        meta={"output_type": "decimal", "lower_limit": lower, "upper_limit": upper},
        uid="d",
    )


def _example(answer, output_type) -> Example:
    return Example(
        prompt="p",
        response="r",
        answer=answer,
        meta={"output_type": output_type, "lower_limit": answer, "upper_limit": answer},
        uid="x",
    )


def _num(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not found in {text!r}"
    return float(m.group(1))


def _by_key(examples, key):
    return [e for e in examples if e.meta["calculator_key"] == key]


@pytest.fixture(scope="module")
def generated():
    return generate_examples("train", 280, seed=3)


# ---------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: 23.4 kg/m^2", 23.4),
        ("Answer: 23.4 kg/m²", 23.4),
        ("The BMI works out to 23.4 kg/m^2.", 23.4),
        ("CrCl = 45.2 mL/min/1.73 m²", 45.2),
        ("Answer: 1,234.5 mL", 1234.5),
        ("The total daily dose is 12,500 units.", 12500.0),
        ("Answer: -3.5 mEq/L", -3.5),
        ("The delta gap is −2 mEq/L", -2.0),
        ("normal range is 3-5 mEq/L and the value is 7", 7.0),
        ("**Answer:** 17 (well above the normal range of 8-12)", 17.0),
        ("Answer: 2 + 3 + 1 = 6", 6.0),
        ('{"step_by_step_thinking": "140 - (100 + 24) = 16", "answer": "16"}', 16.0),
        ('{"step_by_step_thinking": "...", "answer": 93.333}', 93.333),
        ("Step 1: Na = 140. Step 2: ... Final answer: 12.0\nHope this helps, 5 stars.", 12.0),
        ("The patient's CURB-65 score is 3.", 3.0),
        ("Answer: CHA2DS2-VASc = 4", 4.0),
        ("I cannot determine this.", None),
        ("", None),
    ],
)
def test_extract_numeric(text, expected):
    got = extract_answer(text, "decimal")
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_answer_line_preferred_over_last_number():
    text = "MAP = 93.333 mm Hg.\nAnswer: 93.333\nNote: recheck in 2 weeks."
    assert extract_answer(text, "decimal") == pytest.approx(93.333)
    # without an Answer line, the last number wins (MedCalc-Bench rule)
    assert extract_answer("MAP = 93.333 mm Hg. Recheck in 2 weeks.", "decimal") == 2.0


@pytest.mark.parametrize(
    "text",
    [
        "Answer: 02/14/2024",
        "Answer: 2/14/2024",
        "Answer: 2024-02-14",
        "The estimated due date is February 14, 2024.",
        "Answer: 14 Feb 2024 (based on Naegele's rule)",
        '{"answer": "02/14/2024"}',
    ],
)
def test_extract_date_formats(text):
    assert extract_answer(text, "date") == dt.date(2024, 2, 14)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: (16 weeks, 1 days)", (16, 1)),
        ("Answer: ('16 weeks', '1 days')", (16, 1)),
        ("The gestational age is 16 weeks and 1 day.", (16, 1)),
        ("Answer: (16, 1)", (16, 1)),
        ("Answer: 16 weeks", (16, 0)),
        ("No idea.", None),
    ],
)
def test_extract_weeks_days(text, expected):
    assert extract_answer(text, "weeks_days") == expected


def test_extract_rejects_unknown_type():
    with pytest.raises(ValueError, match="unknown output type"):
        extract_answer("Answer: 1", "percent")


# ---------------------------------------------------------------------------- scoring rules


def test_decimal_within_limits_inclusive():
    ex = _decimal_example(23.543, 22.366, 24.720)
    assert score_prediction(ex, "Answer: 23.5 kg/m^2") == 1.0  # rounding is fine
    assert score_prediction(ex, "Answer: 22.366") == 1.0  # lower bound inclusive
    assert score_prediction(ex, "Answer: 24.72") == 1.0  # upper bound inclusive
    assert score_prediction(ex, "Answer: 24.8") == 0.0
    assert score_prediction(ex, "Answer: 22.3") == 0.0
    assert score_prediction(ex, "I am not sure.") == 0.0  # missing answer


def test_decimal_negative_and_thousands():
    neg = _decimal_example(-4.0, -4.2, -3.8)
    assert score_prediction(neg, "Answer: -4 mEq/L") == 1.0
    assert score_prediction(neg, "Answer: 4 mEq/L") == 0.0
    big = _decimal_example(1250.0, 1187.5, 1312.5)
    assert score_prediction(big, "The dose is 1,250 mL per day.") == 1.0
    assert score_prediction(big, "Answer: 1,400") == 0.0


def test_integer_exact_after_rounding():
    ex = _example(3, "integer")
    assert score_prediction(ex, "Answer: 3") == 1.0
    assert score_prediction(ex, "Answer: 3.0 points") == 1.0
    assert score_prediction(ex, "The score is 3 out of 5.") == 1.0  # "N out of M" rule
    assert score_prediction(ex, "Points: 1 + 2. Total 3 points out of 9 possible.") == 1.0
    assert score_prediction(ex, "Answer: 3 out of 5") == 1.0
    assert score_prediction(ex, "Answer: 4") == 0.0
    assert score_prediction(ex, "Answer: 3.6") == 0.0  # rounds to 4
    assert score_prediction(ex, "no answer") == 0.0
    neg = _example(-1, "integer")
    assert score_prediction(neg, "Answer: -1") == 1.0
    assert score_prediction(neg, "Answer: 1") == 0.0


def test_date_and_weeks_days_exact():
    ex = _example("02/14/2024", "date")
    assert score_prediction(ex, "Answer: 2024-02-14") == 1.0
    assert score_prediction(ex, "Answer: 2/14/2024") == 1.0
    assert score_prediction(ex, "Answer: 02/15/2024") == 0.0
    assert score_prediction(ex, "Answer: 14/02/2024") == 0.0  # day-first is not a valid M/D/Y
    ga = _example((16, 1), "weeks_days")
    assert score_prediction(ga, "Answer: (16 weeks, 1 days)") == 1.0
    assert score_prediction(ga, "16 weeks and 1 day") == 1.0
    assert score_prediction(ga, "Answer: (16 weeks, 2 days)") == 0.0
    assert score_prediction(ga, "Answer: 16 weeks") == 0.0


def test_is_correct_requires_limits_for_decimals():
    with pytest.raises(ValueError, match="limits"):
        is_correct(1.0, 1.0, "decimal")
    assert is_correct(None, 1, "integer") is False


# ---------------------------------------------------------------------------- generator


def test_task_protocol_and_defaults():
    task = MedCalcTask()
    assert isinstance(task, TargetTask)
    assert task.name == "medcalc"
    with pytest.raises(ValueError, match="split"):
        task.examples("validation", 1)
    with pytest.raises(ValueError, match="unknown MedCalc calculator"):
        MedCalcTask(calculators=["not_a_calculator"])


def test_generator_covers_required_calculators():
    assert len(CALCULATORS) >= 10
    for key in ("bmi", "map", "anion_gap", "creatinine_clearance", "cha2ds2_vasc", "curb_65", "qtc_bazett"):
        assert key in CALCULATORS
    assert {c.output_type for c in CALCULATORS.values()} == {"decimal", "integer", "date", "weeks_days"}


def test_generator_deterministic_and_disjoint():
    a = generate_examples("train", 60, seed=7)
    b = generate_examples("train", 60, seed=7)
    c = generate_examples("train", 60, seed=8)
    assert [e.prompt for e in a] == [e.prompt for e in b]
    assert [e.response for e in a] == [e.response for e in b]
    assert [e.prompt for e in a] != [e.prompt for e in c]
    test = generate_examples("test", 60, seed=7) + generate_examples("test", 60, seed=8)
    train_notes = {e.meta["patient_note"] for e in a + c}
    test_notes = {e.meta["patient_note"] for e in test}
    assert train_notes.isdisjoint(test_notes)
    assert len({e.uid for e in a}) == 60


def test_generated_examples_are_self_consistent(generated):
    keys = {e.meta["calculator_key"] for e in generated}
    assert keys == set(CALCULATORS)
    for e in generated:
        gold = json.loads(e.response)  # MedCalc-Bench's JSON dict
        assert gold["answer"] == format_answer(e.answer, e.meta["output_type"])
        assert score_prediction(e, e.response) == 1.0
        user = e.prompt[-1]["content"]
        assert e.meta["patient_note"] in user and e.meta["question"] in user
        if e.meta["output_type"] == "decimal":
            lo, hi = sorted((0.95 * e.answer, 1.05 * e.answer))
            assert e.meta["lower_limit"] == pytest.approx(lo, rel=1e-6, abs=1e-4)
            assert e.meta["upper_limit"] == pytest.approx(hi, rel=1e-6, abs=1e-4)
            assert score_prediction(e, f"Answer: {e.answer * 1.1:.3f}") == 0.0


def test_bmi_rederived_from_note(generated):
    for e in _by_key(generated, "bmi"):
        note = e.meta["patient_note"]
        h = re.search(r"Height is ([\d.]+) (cm|in)", note)
        w = re.search(r"weight is ([\d.]+) (kg|lbs)", note)
        height_m = float(h.group(1)) / 100 if h.group(2) == "cm" else float(h.group(1)) * 0.0254
        weight_kg = float(w.group(1)) if w.group(2) == "kg" else float(w.group(1)) * 0.453592
        assert e.answer == pytest.approx(weight_kg / height_m**2, rel=5e-3)


def test_map_rederived_from_note(generated):
    for e in _by_key(generated, "map"):
        m = re.search(r"blood pressure (\d+)/(\d+) mm Hg", e.meta["patient_note"])
        sbp, dbp = float(m.group(1)), float(m.group(2))
        assert e.answer == pytest.approx((2 * dbp + sbp) / 3, abs=1e-3)


def test_anion_gap_rederived_from_note(generated):
    for e in _by_key(generated, "anion_gap"):
        note = e.meta["patient_note"]
        na = _num(r"sodium (\d+)", note)
        cl = _num(r"chloride (\d+)", note)
        hco3 = _num(r"bicarbonate (\d+)", note)
        assert e.answer == pytest.approx(na - (cl + hco3), abs=1e-9)


def test_bazett_rederived_from_note(generated):
    for e in _by_key(generated, "qtc_bazett"):
        note = e.meta["patient_note"]
        hr = _num(r"heart rate of (\d+)", note)
        qt = _num(r"QT interval of (\d+)", note)
        assert e.answer == pytest.approx(qt / math.sqrt(60 / hr), rel=2e-3)


def test_curb65_rederived_from_note(generated):
    for e in _by_key(generated, "curb_65"):
        note = e.meta["patient_note"]
        age = _num(r"An? (\d+)-year-old", note)
        m = re.search(r"Blood pressure is (\d+)/(\d+)", note)
        sbp, dbp = float(m.group(1)), float(m.group(2))
        rr = _num(r"respiratory rate is (\d+)", note)
        bun = _num(r"BUN is (\d+)", note)
        expected = ("is confused" in note) + (bun > 19) + (rr >= 30) + (sbp < 90 or dbp <= 60) + (age >= 65)
        assert e.answer == expected


def test_gestational_age_rederived_from_note(generated):
    for e in _by_key(generated, "gestational_age"):
        dates = re.findall(r"(\d\d)/(\d\d)/(\d{4})", e.meta["patient_note"])
        visit, lmp = (dt.date(int(y), int(m), int(d)) for m, d, y in dates)
        days = (visit - lmp).days
        assert e.answer == (days // 7, days % 7)


def test_calculator_filter_and_task_sizes():
    task = MedCalcTask(calculators=["bmi", 45])  # key and MedCalc-Bench id
    ex = task.examples("test", 10, seed=1)
    assert {e.meta["calculator_key"] for e in ex} == {"bmi", "curb_65"}
    assert all(task.score(e, e.response) == 1.0 for e in ex)


def test_sample_generated_example_shape():
    e = generate_examples("train", 1, seed=0, calculators=["map"])[0]
    assert e.prompt[-1]["content"].startswith("Here is the patient note:\n")
    assert "What is patient's mean arterial pressure in mm Hg?" in e.prompt[-1]["content"]
    assert "2/3 * " in e.response and e.meta["calculator_name"] == "Mean Arterial Pressure (MAP)"
    assert e.meta["output_type"] == "decimal" and e.meta["calculator_id"] == 5


# ---------------------------------------------------------------------------- CSV loader

_HEADER = [
    "Row Number",
    "Calculator ID",
    "Calculator Name",
    "Category",
    "Output Type",
    "Note ID",
    "Note Type",
    "Patient Note",
    "Question",
    "Relevant Entities",
    "Ground Truth Answer",
    "Lower Limit",
    "Upper Limit",
    "Ground Truth Explanation",
]


def _rows():
    return [
        [
            "1",
            "6",
            "Body Mass Index (BMI)",
            "physical",
            "decimal",
            "pmc-1",
            "Extracted",
            "A 50-year-old man, 170 cm,\n80 kg.",
            "What is the patient's BMI?",
            '{"height": [170, "cm"], "weight": [80, "kg"]}',
            "27.682",
            "26.298",
            "29.066",
            "BMI = 80 / 1.7^2 = 27.682 kg/m^2.",
        ],
        [
            "2",
            "45",
            "CURB-65 Score for Pneumonia Severity",
            "risk",
            "integer",
            "pmc-2",
            "Extracted",
            "A 70-year-old woman, confused, RR 32.",
            "What is the CURB-65 score?",
            "{}",
            "3",
            "3",
            "3",
            "Age, confusion and RR give 3.",
        ],
        [
            "3",
            "13",
            "Estimated Due Date",
            "date",
            "date",
            "5",
            "Template",
            "LMP 01/10/2023, cycle 28 days.",
            "What is the due date?",
            "{}",
            "10/17/2023",
            "10/17/2023",
            "10/17/2023",
            "Add 40 weeks.",
        ],
        [
            "4",
            "69",
            "Estimated Gestational Age",
            "date",
            "integer",
            "6",
            "Template",
            "Today 04/29/2022, LMP 01/06/2022.",
            "Gestational age?",
            "{}",
            "('16 weeks', '1 days')",
            "('16 weeks', '1 days')",
            "('16 weeks', '1 days')",
            "16 weeks and 1 day.",
        ],
    ]


def _write_csv(path, rows, header=_HEADER):
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_round_trip(tmp_path):
    path = _write_csv(tmp_path / "test_data.csv", _rows())
    ex = load_medcalc_csv(path)
    assert [e.meta["output_type"] for e in ex] == ["decimal", "integer", "date", "weeks_days"]
    bmi, curb, edd, ga = ex
    assert bmi.answer == 27.682 and bmi.meta["lower_limit"] == 26.298
    assert bmi.meta["upper_limit"] == 29.066 and bmi.meta["calculator_id"] == 6
    assert "170 cm,\n80 kg." in bmi.prompt[-1]["content"]  # multi-line quoted note survives
    assert json.loads(bmi.response) == {"step_by_step_thinking": "BMI = 80 / 1.7^2 = 27.682 kg/m^2.", "answer": "27.682"}
    assert curb.answer == 3 and edd.answer == "10/17/2023" and ga.answer == (16, 1)
    assert score_prediction(bmi, "Answer: 28 kg/m^2") == 1.0
    assert score_prediction(curb, "Answer: 3") == 1.0
    assert score_prediction(edd, "Answer: 2023-10-17") == 1.0
    assert score_prediction(ga, "Answer: (16 weeks, 1 days)") == 1.0
    assert all(score_prediction(e, e.response) == 1.0 for e in ex)

    task = MedCalcTask(source=path)  # "test" in the file name: test split only
    assert len(task.examples("test")) == 4
    assert [e.uid for e in task.examples("test", 2, seed=5)] == [e.uid for e in task.examples("test", 2, seed=5)]
    with pytest.raises(ValueError, match="no 'train' split"):
        task.examples("train")
    with pytest.raises(ValueError, match="holds 4"):
        task.examples("test", 5)
    only_curb = MedCalcTask(source=path, calculators=["curb_65"])
    assert [e.answer for e in only_curb.examples("test")] == [3]


def test_csv_directory_source(tmp_path):
    _write_csv(tmp_path / "train_data.csv", _rows()[:2])
    _write_csv(tmp_path / "test_data.csv", _rows()[2:])
    task = MedCalcTask(source=tmp_path)
    assert len(task.examples("train")) == 2 and len(task.examples("test")) == 2


def test_csv_missing_column(tmp_path):
    header = [h for h in _HEADER if h != "Upper Limit"]
    rows = [[c for h, c in zip(_HEADER, r) if h != "Upper Limit"] for r in _rows()]
    path = _write_csv(tmp_path / "bad.csv", rows, header)
    with pytest.raises(ValueError, match=r"bad\.csv: row 0 \(header\).*Upper Limit"):
        load_medcalc_csv(path)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("Lower Limit", "abc", "unparsable Lower Limit 'abc'"),
        ("Upper Limit", "", "missing value for required column 'Upper Limit'"),
        ("Patient Note", "  ", "missing value for required column 'Patient Note'"),
        ("Ground Truth Answer", "twelve", "unparsable Ground Truth Answer"),
        ("Lower Limit", "30", "Lower Limit 30.0 > Upper Limit 29.066"),
        ("Calculator ID", "x", "unparsable Calculator ID"),
    ],
)
def test_csv_malformed_row_names_file_and_row(tmp_path, column, value, message):
    rows = _rows()
    rows[0][_HEADER.index(column)] = value
    rows = [rows[1], rows[0]]  # the bad row is data row 2
    path = _write_csv(tmp_path / "broken_data.csv", rows)
    with pytest.raises(ValueError) as info:
        load_medcalc_csv(path)
    text = str(info.value)
    assert "broken_data.csv: row 2 (line " in text
    assert message in text


def test_csv_bad_date_limit(tmp_path):
    rows = _rows()
    rows[2][_HEADER.index("Upper Limit")] = "soon"
    path = _write_csv(tmp_path / "d.csv", rows)
    with pytest.raises(ValueError, match=r"d\.csv: row 3 .*unparsable date Upper Limit 'soon'"):
        load_medcalc_csv(path)


def test_generation_budget_follows_the_calculators_explanations():
    """Short explanations get a short budget (measured with SmolLM2's tokenizer: MAP gold ~121
    tokens, budget 192); the long ones, and all calculators together, keep MedCalc-Bench's 768."""
    assert MedCalcTask().max_new_tokens == 768
    short = MedCalcTask(calculators=["map", "bmi"])
    assert short.max_new_tokens in range(64, 768, 64)
    for e in short.examples("test", 20, seed=4):  # held-out items, other seed than the estimate's
        assert len(e.response) / 3 * 1.2 <= short.max_new_tokens, e.uid
    assert MedCalcTask(calculators=["cha2ds2_vasc"]).max_new_tokens == 768
