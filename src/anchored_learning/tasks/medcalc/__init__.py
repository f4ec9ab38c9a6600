"""MedCalc-Bench: medical calculations from patient notes.

Source benchmark: Khandekar et al., "MedCalc-Bench: Evaluating Large Language Models for Medical
Calculations", NeurIPS 2024 Datasets & Benchmarks (arXiv:2406.12036).  Reference code:
https://github.com/ncbi-nlp/MedCalc-Bench (``evaluation/run.py`` and ``evaluate.py``).

Modules:

* :mod:`.official` -- MedCalc-Bench's own answer extraction and correctness check, rule for rule
  (:func:`official_score`, the task's score: equal to the benchmark's item for item);
* :mod:`.scoring` -- our lenient scorer, reported as ``lenient`` (:func:`extract_answer`,
  :func:`is_correct`, :func:`score_prediction`; it also reads ``Answer:`` lines, more date forms,
  thousands separators), and :func:`format_answer`;
* :mod:`.formatting` -- MedCalc-Bench's zero-shot prompt and the JSON gold response, shared by
  the generator and loader;
* :mod:`.csv_loader` -- :func:`load_medcalc_csv`, a loader for local MedCalc-Bench CSV files;
* :mod:`.calculators` -- :class:`Calculator` and :data:`CALCULATORS`: each calculator's patient
  sampler, note writer and real implementation in the ``medcalc`` package;
* :mod:`.generators` -- :func:`generate_examples`, the offline generator built on them;
* :mod:`.task` -- :class:`MedCalcTask`, the :class:`~anchored_learning.tasks.base.TargetTask`
  wrapper.

Normalised output types (``Example.meta["output_type"]``):

``"decimal"``     float answer, correct when ``lower <= x <= upper`` (+-5 % for generated items,
                  as in MedCalc-Bench);
``"integer"``     int score, correct when ``round(x) == answer`` (MedCalc-Bench rounds the
                  extracted number before the exact comparison);
``"date"``        ``"MM/DD/YYYY"`` string, compared as a calendar date;
``"weeks_days"``  ``(weeks, days)`` tuple, compared exactly.
"""

from __future__ import annotations

from anchored_learning.tasks.medcalc.calculators import CALCULATORS, Calculator
from anchored_learning.tasks.medcalc.csv_loader import REQUIRED_COLUMNS, load_medcalc_csv
from anchored_learning.tasks.medcalc.generators import generate_examples
from anchored_learning.tasks.medcalc.official import official_correct, official_score
from anchored_learning.tasks.medcalc.scoring import (
    OUTPUT_TYPES,
    extract_answer,
    format_answer,
    is_correct,
    score_prediction,
)
from anchored_learning.tasks.medcalc.task import MedCalcTask

__all__ = [
    "CALCULATORS",
    "OUTPUT_TYPES",
    "REQUIRED_COLUMNS",
    "Calculator",
    "MedCalcTask",
    "extract_answer",
    "format_answer",
    "generate_examples",
    "is_correct",
    "load_medcalc_csv",
    "official_correct",
    "official_score",
    "score_prediction",
]
