"""MedCalc-Bench's own scoring (``official``): verdicts worked out by hand from the benchmark's
published rules (``extract_answer`` in ``evaluation/run.py``, ``check_correctness`` in
``evaluation/evaluate.py`` of ncbi-nlp/MedCalc-Bench), quirks included.

``scripts/medcalc_official_check.py`` runs the same cases through the benchmark's own code when a
copy of it is at hand; every verdict below agreed with it (see that script's docstring).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from anchored_learning.tasks.base import Example
from anchored_learning.tasks.medcalc import MedCalcTask, generate_examples
from anchored_learning.tasks.medcalc.official import answer_field, official_correct, official_score


def js(answer: str, thinking: str = "BMI = weight / height^2.") -> str:
    """A response in the format the benchmark's zero-shot prompt asks for."""
    return json.dumps({"step_by_step_thinking": thinking, "answer": answer})


BMI = (6, 24.929, 23.68255, 26.17545)  # calculator id, ground truth, lower, upper
CURB65 = (45, 3, 3, 3)
DUE_DATE = (13, "02/14/2024", "02/14/2024", "02/14/2024")
GEST_AGE = (69, (16, 1), [16, 1], [16, 1])

# (response, item, official verdict, why)
CASES = [
    # --- the answer field ---------------------------------------------------------------------
    (js("24.9"), BMI, True, "JSON answer inside the limits"),
    ('{"answer": 24.9}', BMI, True, "unquoted value"),
    ('{"Answer": "24.9"}', BMI, True, "capital A is accepted"),
    ("Answer: 24.9", BMI, False, "only a JSON answer field is read"),
    ('{"answer": "24.9"\n}', BMI, False, "the closing brace must be on the answer's line"),
    ('{"answer": "10"} then {"answer": "24.9"}', BMI, True, "the last field counts"),
    ('{"answer": "24.9"} then {"answer": "10"}', BMI, False, "the last field counts"),
    (js("str(short_and_direct_answer_of_the_question)"), BMI, False, "the prompt's placeholder is no answer"),
    # --- decimals -----------------------------------------------------------------------------
    (js("24.9 kg/m^2"), BMI, False, "the last number is the 2 of m^2"),
    (js("2,492.9"), BMI, False, "no thousands separators: reads 492.9"),
    (js("2490%"), BMI, True, "a percentage is divided by 100"),
    (js("str(71.2 / (1.69 ** 2))"), BMI, True, "a str(...) expression is evaluated"),
    (js("str(round(71.2 / 1.69^2, 1))"), BMI, True, "^ becomes ** before the evaluation"),
    (js("str(weight / height)"), BMI, False, "the names are erased, leaving no expression"),
    (js("str(71.2 / 0)"), BMI, False, "an expression that fails is no answer"),
    (js("05"), (6, 5.0, 4.75, 5.25), False, "an integer with a leading zero is refused"),
    (js("05.0"), (6, 5.0, 4.75, 5.25), True, "a decimal with a leading zero is fine"),
    (js("5"), (6, 5.0, 4.75, 5.25), True, "limits are inclusive and the value inside"),
    (js("45 mL/min/1.73 m\u00b2"), (2, 45.0, 42.75, 47.25), True, "the number before mL/min/1.73"),
    (js("45 mL/min"), (2, 45.0, 42.75, 47.25), True, "the last number"),
    (js("3-5"), (39, -5.0, -5.25, -4.75), True, "3-5 reads as -5"),
    (js("none"), BMI, False, "no number"),
    # --- integer scores -----------------------------------------------------------------------
    (js("3"), CURB65, True, "exact"),
    (js("3 out of 5"), CURB65, True, "N out of"),
    (js("1, 2, 3"), CURB65, True, "a list counts its members: 3"),
    (js("2, 4"), CURB65, False, "a list counts its members: 2"),
    (js("2.51"), CURB65, True, "rounded"),
    (js("2.5"), CURB65, False, "round half to even: 2"),
    (js("3.5"), CURB65, False, "round half to even: 4"),
    (js("03"), CURB65, False, "an integer with a leading zero is refused"),
    (js("CURB-65 score: 3"), CURB65, True, "the last number (-65 comes first)"),
    (js("3 (age 65+)"), CURB65, False, "the last number is 65"),
    # --- dates --------------------------------------------------------------------------------
    (js("02/14/2024"), DUE_DATE, True, "MM/DD/YYYY"),
    (js("2/14/2024"), DUE_DATE, True, "M/D/YYYY"),
    (js("2/14/2024 (40 weeks after the LMP)"), DUE_DATE, True, "only the start of the field is read"),
    (js("The due date is 02/14/2024"), DUE_DATE, False, "the date must open the field"),
    (js("2024-02-14"), DUE_DATE, False, "ISO dates are not read"),
    (js("14/02/2024"), DUE_DATE, False, "day-first is not a date there"),
    (js("02/30/2024"), (68, "02/29/2024", "02/29/2024", "02/29/2024"), False, "an impossible date"),
    (js("02/29/2024"), (68, dt.date(2024, 2, 29), None, None), True, "a date object as ground truth"),
    # --- gestational age ----------------------------------------------------------------------
    (js("(16 weeks, 1 days)"), GEST_AGE, True, "weeks and days"),
    (js("('16 weeks', '1 days')"), GEST_AGE, True, "quoted pair"),
    (js("[16, 1]"), GEST_AGE, True, "brackets"),
    (js("16 weeks and 1 day"), GEST_AGE, False, "reads (1, 6): the words between break the pair"),
    (js("16 weeks"), GEST_AGE, False, "reads (1, 6)"),
    (js("16 weeks"), (69, (1, 6), [1, 6], [1, 6]), True, "reads (1, 6)"),
    (js("(16, 01)"), GEST_AGE, False, "01 is refused"),
    (js("unknown"), GEST_AGE, False, "no pair at all"),
    # --- calculator ids -----------------------------------------------------------------------
    (js("3"), (1, 3, 3, 3), False, "an unknown calculator id"),
]


@pytest.mark.parametrize(("response", "item", "verdict", "why"), CASES, ids=[c[3] for c in CASES])
def test_official_verdicts(response, item, verdict, why):
    cid, answer, lower, upper = item
    assert official_correct(response, cid, answer, lower, upper) is verdict, why


def test_answer_field():
    assert answer_field(js("  24.9 ")) == "  24.9 "  # stripped of spaces, then of quotes: inner spaces stay
    assert answer_field('{"answer":   "3" }') == "3"
    assert answer_field("no json") == ""
    assert answer_field(js("X.XX")) == ""


def test_gold_responses_score_full_marks_officially():
    """Every generated gold response is a correct answer by the benchmark's own rules, and by ours."""
    task = MedCalcTask()
    for ex in generate_examples("test", 56, seed=3):  # 4 of each of the 14 calculators
        assert task.score(ex, ex.response) == 1.0, ex.uid
        assert task.secondary_scores["lenient"](ex, ex.response) == 1.0, ex.uid


def test_prompt_is_the_benchmarks_zero_shot_prompt():
    ex = generate_examples("train", 1, seed=0, calculators=["map"])[0]
    system, user = ex.prompt
    assert system["role"] == "system" and user["role"] == "user"
    assert system["content"].startswith("You are a helpful assistant for calculating a score for a given patient note.")
    assert user["content"].startswith(f"Here is the patient note:\n{ex.meta['patient_note']}\n\nHere is the task:\n")
    assert user["content"].endswith('"answer": str(short_and_direct_answer_of_the_question)}:')
    gold = json.loads(ex.response)
    assert set(gold) == {"step_by_step_thinking", "answer"}
    assert "\n" not in ex.response  # one line: the benchmark's extraction needs the brace on it


def test_official_score_needs_a_calculator_id():
    ex = Example(prompt="p", response="r", answer=3, meta={"output_type": "integer"}, uid="x")
    with pytest.raises(ValueError, match="calculator_id"):
        official_score(ex, js("3"))


def test_lenient_and_official_differ_where_documented():
    """Our lenient reading accepts an ``Answer:`` line; the benchmark scores it 0."""
    ex = generate_examples("test", 1, seed=0, calculators=["curb_65"])[0]
    line = f"Answer: {ex.answer}"
    assert MedCalcTask().score(ex, line) == 0.0
    assert MedCalcTask.secondary_scores["lenient"](ex, line) == 1.0
