"""``FileTask``: your own target task, from a training file, a test file and a scoring rule.

The rows are read by :mod:`anchored_learning.data` (any file format and row form it accepts); the
test rows are scored by a rule of :mod:`anchored_learning.tasks.rules`.  Without a test file a
fixed share of the training rows is held out as the test set (the same rows for every seed; a
warning says so).  ``anchored run --data train.jsonl --test_data test.jsonl --score last_number``
builds one.
"""

from __future__ import annotations

import json
from pathlib import Path

from anchored_learning.data import Conversation, load_conversations
from anchored_learning.tasks.base import Example, subset_indices
from anchored_learning.tasks.rules import REQUIRED_COLUMNS, RuleOptions, get_rule

#: the file task's generation budget per test prompt when none is given (tokens)
DEFAULT_MAX_NEW_TOKENS = 256
#: share of --data held out as the test set when no test file is given
DEFAULT_TEST_FRACTION = 0.2


class FileTask:
    """A target task read from files.

    Args:
        data: training rows (file, ``save_to_disk`` folder or Hub id; see
            :func:`anchored_learning.data.read_records`), its ``train`` split by default.
        test_data: test rows (its ``test`` split by default); without it ``test_fraction`` of
            ``data`` is held out (seeded by ``split_seed``, not by the run's seed).
        score: a rule name of :data:`anchored_learning.tasks.rules.RULES` or ``module:function``.
        answer_column: the column holding the reference answer (default: ``answer`` when the test
            rows have it, else the gold response); a training row that has it scores samples of its
            prompt against it (``sft_self_generated``), else against its gold response.
        prompt_column, response_column: as in :func:`anchored_learning.data.to_conversation`.
        max_new_tokens: generation budget per test prompt (tokens).

    Raises:
        ValueError: no data at all, unreadable or malformed rows (naming the file and the row), an
            unknown rule, a test row without the answer column or the columns its rule needs,
            ``test_fraction`` outside (0, 1), or too few rows to hold any out.
    """

    name = "file"

    def __init__(
        self,
        data: str | None = None,
        test_data: str | None = None,
        *,
        score: str = "normalized_match",
        answer_column: str | None = None,
        prompt_column: str | None = None,
        response_column: str | None = None,
        test_fraction: float = DEFAULT_TEST_FRACTION,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        answer_regex: str | None = None,
        score_tolerance: float = 1e-6,
        split_seed: int = 0,
    ) -> None:
        if data is None and test_data is None:
            raise ValueError("the file task needs --data (training rows) and/or --test_data (test rows)")
        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.rule_name = score
        self.rule = get_rule(score, RuleOptions(answer_regex=answer_regex, score_tolerance=float(score_tolerance)))
        self.max_new_tokens = int(max_new_tokens)
        self.answer_column = answer_column
        self.notes: list[str] = []
        cols = dict(prompt_column=prompt_column, response_column=response_column)
        train = load_conversations(data, split="train", **cols) if data is not None else []
        if test_data is not None:
            test = load_conversations(test_data, split="test", **cols)
            self.test_source = test_data
        else:
            if len(train) < 2:
                raise ValueError(f"{data} has {len(train)} row(s): too few to hold out a test set; give --test_data")
            n_test = min(len(train) - 1, max(1, round(float(test_fraction) * len(train))))
            held = set(subset_indices(len(train), n_test, split_seed))
            test = [c for i, c in enumerate(train) if i in held]
            train = [c for i, c in enumerate(train) if i not in held]
            self.test_source = f"{data} (held-out {n_test} of {n_test + len(train)} rows)"
            self.notes.append(
                f"warning: no --test_data; {n_test} of the {n_test + len(train)} rows of {data} are held out as the "
                f"test set (test_fraction {test_fraction}, the same rows for every seed) and not trained on"
            )
        # the reference answers: the named column, else 'answer' when any test row has one (then every row must)
        self._answer_col = answer_column or ("answer" if any("answer" in c.columns for c in test) else None)
        self._train = [self._example(c, i, "train") for i, c in enumerate(train)]
        self._test = [self._example(c, i, "test") for i, c in enumerate(test)]
        self._check_rule(test)
        seen = {json.dumps(c.prompt, sort_keys=True) for c in train}
        overlap = sum(json.dumps(c.prompt, sort_keys=True) in seen for c in test)
        if overlap:
            self.notes.append(
                f"warning: {overlap} of the {len(test)} test prompts also occur in the training rows; the gain on them "
                "measures memorisation, not generalisation"
            )

    def _check_rule(self, test: list[Conversation]) -> None:
        """Score every test row's own gold response before any model runs: a rule that fails on a
        row (an exception, a value that is no score, an IFEval instruction that does not exist) is
        reported with the row, and a rule that does not give the gold responses full marks gets a
        warning (a wrong --answer_column or --score is the usual cause).

        Raises:
            ValueError: naming the row, the rule and what went wrong.
        """
        gold = []
        for c, ex in zip(test, self._test):
            try:
                gold.append(self.score(ex, c.response))
            except Exception as e:  # the user's rule or a checker: anything it raises is reported with the row
                raise ValueError(
                    f"{c.where}: the scoring rule {self.rule_name!r} fails on this row's gold response ({type(e).__name__}: {e})"
                ) from None
        self.gold_score = sum(gold) / len(gold) if gold else float("nan")
        if gold and self.gold_score < 1.0:
            self.notes.append(
                f"warning: the rule {self.rule_name!r} gives the gold responses of the test rows a mean score of "
                f"{self.gold_score:.2f}, not 1.0; check --score and --answer_column"
            )

    @property
    def label(self) -> str:
        """``<test file name> (<rule>)``: how reports name this task."""
        return f"{Path(str(self.test_source).split(' (')[0]).name} ({self.rule_name})"

    def _example(self, c: Conversation, i: int, split: str) -> Example:
        answer = c.response
        if split == "train" and self._answer_col is not None and c.columns.get(self._answer_col) not in (None, ""):
            answer = c.columns[self._answer_col]  # what scores a sample of its prompt (sft_self_generated)
        if split == "test":
            col = self._answer_col
            found = f"columns found: {sorted({*c.columns, *c.conversation_columns})}"
            if col is not None and col not in c.columns:
                raise ValueError(f"{c.where}: no answer column {col!r} ({found}); other test rows have it")
            if col is not None:
                answer = c.columns[col]
                if answer is None or (isinstance(answer, str) and not answer.strip()):
                    raise ValueError(
                        f"{c.where}: the answer column {col!r} is empty; fill it, or name another with --answer_column"
                    )
            missing = [k for k in REQUIRED_COLUMNS.get(self.rule_name, ()) if k not in c.columns]
            if missing:
                raise ValueError(f"{c.where}: the {self.rule_name} rule needs the columns {missing} ({found})")
        user = [t["content"] for t in c.prompt if t["role"] == "user"][-1]
        return Example(
            prompt=c.prompt if len(c.prompt) > 1 else user,
            response=c.response,
            answer=answer,
            meta={**c.columns, "prompt": user},
            uid=f"{split}/{i}",
        )

    def examples(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        """The first ``n`` rows of ``split`` ("train" or "test") in file order (all when ``None``);
        ``seed`` is not used (the files fix the items).

        Raises:
            ValueError: an unknown split, or ``n`` larger than the rows there are.
        """
        rows = {"train": self._train, "test": self._test}.get(split)
        if rows is None:
            raise ValueError(f"unknown split {split!r}; the file task has 'train' and 'test'")
        if n is not None and n > len(rows):
            raise ValueError(f"{n} {split} rows asked for, the file task has {len(rows)}")
        return list(rows if n is None else rows[:n])

    def score(self, example: Example, prediction: str) -> float:
        """The rule's score of ``prediction`` against the example's reference, in [0, 1]."""
        return float(self.rule(prediction, example.answer, example.meta))
