"""MedCalc-Bench as a :class:`~anchored_learning.tasks.base.TargetTask`."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

from anchored_learning.tasks.base import Example
from anchored_learning.tasks.medcalc.calculators import CALCULATORS
from anchored_learning.tasks.medcalc.csv_loader import load_medcalc_csv
from anchored_learning.tasks.medcalc.generators import _resolve_calculators, generate_examples
from anchored_learning.tasks.medcalc.official import official_score
from anchored_learning.tasks.medcalc.scoring import score_prediction

_DEFAULT_SIZES = {"train": 2000, "test": 500}


def _generation_budget(calculators) -> int:
    """New tokens a generated item may need: 1.5x its calculators' longest gold response, counted
    as one token per 3 characters (English with numbers runs ~3.5 per token), in steps of 64, at
    most 768 (MedCalc-Bench's long explanations).  A calculator with short explanations (BMI: ~150
    tokens) need not generate 768 tokens for every test item a base model rambles on."""
    longest = max(len(e.response) for c in calculators for e in generate_examples("train", 4, seed=0, calculators=[c.key]))
    return int(min(768, 64 * math.ceil(longest / 3 * 1.5 / 64)))


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

    Prompts are MedCalc-Bench's zero-shot prompt (JSON answer) and the score is the benchmark's
    own (:func:`~anchored_learning.tasks.medcalc.official.official_score`); our lenient reading
    of any answer format (:func:`~anchored_learning.tasks.medcalc.scoring.score_prediction`) is
    reported next to it as the ``lenient`` metric.

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        ValueError: unknown calculator (generated source).
    """

    name = "medcalc"
    #: generation budget: 768 for MedCalc-Bench CSVs; generated items: see :func:`_generation_budget`
    max_new_tokens = 768
    #: more per-item scores reported next to :meth:`score` (metric name -> scorer)
    secondary_scores = {"lenient": score_prediction}

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
            self.max_new_tokens = _generation_budget(_resolve_calculators(self.calculators))  # validates early
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
                keys = {c.key: (str(c.calculator_id), c.name.lower()) for c in CALCULATORS.values()}
                for key, (cid, cname) in keys.items():
                    if key in wanted:
                        wanted |= {cid, cname}
                examples = [
                    e for e in examples if str(e.meta["calculator_id"]) in wanted or e.meta["calculator_name"].lower() in wanted
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
            return generate_examples(split, _DEFAULT_SIZES[split] if n is None else n, seed, self.calculators)
        pool = list(self._csv_examples(split))
        random.Random(seed).shuffle(pool)
        if n is None:
            return pool
        if n > len(pool):
            raise ValueError(f"asked for {n} {split} examples but the source holds {len(pool)}")
        return pool[:n]

    def score(self, example: Example, prediction: str) -> float:
        """MedCalc-Bench's own verdict on ``prediction`` for ``example`` (1.0 or 0.0).

        See :func:`~anchored_learning.tasks.medcalc.official.official_score`.
        """
        return official_score(example, prediction)
