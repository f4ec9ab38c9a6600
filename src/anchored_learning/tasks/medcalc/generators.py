"""Offline MedCalc-Bench-style example generator backed by the ``medcalc`` package.

Samples plausible patient parameters, writes a short note, and takes the ground truth and the
step-by-step explanation from the real calculator implementations in ``medcalc-bench`` (the
calculators: :mod:`anchored_learning.tasks.medcalc.calculators`).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable

from anchored_learning.tasks.base import Example
from anchored_learning.tasks.medcalc.calculators import CALCULATORS, Calculator
from anchored_learning.tasks.medcalc.formatting import _prompt, _response

_SPLIT_SALT = "anchored-learning/medcalc/v1"
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
            if str(want).strip().lower() in (calc.key, calc.name.lower()) or str(want).strip() == str(calc.calculator_id):
                match = calc
                break
        if match is None:
            raise ValueError(f"unknown MedCalc calculator {want!r}; known keys: {sorted(CALCULATORS)}")
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
