"""iGSM as a target task (:class:`IGSMTask`): problems from the generator
(:mod:`anchored_learning.tasks.igsm_generator`, which describes iGSM), split by solution-graph hash,
and the scoring rule (:func:`extract_answer`: the final answer, compared modulo 23).
"""

from __future__ import annotations

import hashlib
import random
import re

from anchored_learning.tasks.base import Example
from anchored_learning.tasks.igsm_generator import (
    MAX_ATTEMPTS,
    MOD,
    check_arithmetic,
    check_op,
    split_of_hash,
    try_generate,
)

__all__ = ["ANSWER_DONE_REGEX", "IGSMTask", "extract_answer", "igsm_add_task"]

#: regex that matches once a generated solution has given its final answer (for stop criteria)
#: (a number followed by a character that cannot continue it: "12\n", "12. ", "25.9\n"; not
#: "12" or "12." alone, which may still grow into "123" or "12.5")
ANSWER_DONE_REGEX = r"(?i)Answer\s*:\s*\**\s*-?\d+(?:\.\d+)?(?:[^\d.]|\.[^\d])"


# ----------------------------------------------------------------------------- scoring

_ANSWER_RE = re.compile(r"Answer\s*:\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
#: "12-5" ends in 5, not -5; the digits of a decimal ("25.9") are not an integer
_INT_RE = re.compile(r"(?:(?<![\w)])-)?(?<![\d.])\d+(?![\d]|\.\d)")


def extract_answer(text: str) -> int | None:
    """Extract the final answer from generated text.

    The first ``Answer: N`` (case-insensitive, optional spaces or ``**``; later text ignored,
    so a model that keeps generating after its answer is judged on the answer it gave) wins; a
    decimal there counts only when it is a whole number (``Answer: 25.0`` -> 25; ``Answer: 25.9``
    -> ``None``: the model gave a non-integer answer, not 25); without an ``Answer:`` line, the
    last integer anywhere in the text (a ``-`` right after a digit, letter or ``)`` is read as
    subtraction, not a sign; the digits of a decimal such as ``25.9`` are not an integer);
    otherwise ``None``.  Never raises.
    """
    m = _ANSWER_RE.search(text)
    if m:
        whole, _, frac = m.group(1).partition(".")
        return int(whole) if not frac.strip("0") else None
    ints = _INT_RE.findall(text)
    return int(ints[-1]) if ints else None


# ----------------------------------------------------------------------------- task


class IGSMTask:
    """iGSM target task (Ye, Xu, Li, Allen-Zhu, arXiv:2407.20311), our own generator.

    Args:
        op_min: smallest number of operations per problem (>= 1).
        op_max: largest number of operations per problem (the ``max_op`` knob, <= OP_LIMIT).
            Example ``i`` of a split has ``op = op_min + i % (op_max - op_min + 1)``, so every
            op is equally represented and a shorter list is a prefix of a longer one.
        max_distractors: at most this many unneeded definition sentences per problem.
        n_train, n_test: sizes returned by :meth:`examples` when ``n`` is ``None``.
        test_percent: percentage of graph-hash buckets reserved for the test split.
        arithmetic: ``"mod23"`` (default): the paper's iGSM, every value modulo 23, operations
            +, -, * and three-layer structures whose abstract parameters need products.
            ``"add"``: an easier variant of our own (not in the paper) for small models: two
            layers, only "N more than" and "sum of" definitions, constants 1..9, plain integer
            answers (not uniform; a sum of ``op + 1`` or fewer constants).  The dependency-graph
            reasoning and the solution format are the same.

    Raises:
        ValueError: ``op_min > op_max``, ``op_min < 1``, ``op_max > OP_LIMIT``, negative sizes,
            negative ``max_distractors``, ``test_percent`` outside 1..99, or an unknown
            ``arithmetic``.
    """

    name = "igsm"

    def __init__(
        self,
        op_min: int = 2,
        op_max: int = 4,
        max_distractors: int = 2,
        n_train: int = 5000,
        n_test: int = 500,
        test_percent: int = 20,
        arithmetic: str = "mod23",
    ) -> None:
        check_op(op_min)
        check_arithmetic(arithmetic)
        check_op(op_max)
        if op_min > op_max:
            raise ValueError(f"op_min ({op_min}) must be <= op_max ({op_max}); swap or widen them")
        if max_distractors < 0:
            raise ValueError(f"max_distractors must be >= 0, got {max_distractors}")
        if n_train < 0 or n_test < 0:
            raise ValueError(f"n_train and n_test must be >= 0, got {n_train}, {n_test}")
        split_of_hash("0", test_percent)  # validates test_percent
        self.op_min = op_min
        self.op_max = op_max
        self.max_distractors = max_distractors
        self.sizes = {"train": n_train, "test": n_test}
        self.test_percent = test_percent
        self.arithmetic = arithmetic
        #: generation may stop once this regex matches the new text (the answer is given)
        self.stop_regex = ANSWER_DONE_REGEX
        # ~45 tokens per operation step and per copy/constant step, plus the answer line;
        # generous so a correct solution is never truncated (checked in tests against gold).
        self.max_new_tokens = 48 + 64 * op_max

    def examples(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        """Return ``n`` problems of ``split`` (``n_train``/``n_test`` when ``None``).

        Deterministic in ``(split, n, seed)`` and the constructor arguments.  Train and test
        never share a solution-graph hash, for any seeds.  Prompts are unique within a call.

        Raises:
            ValueError: ``split`` not "train"/"test", or ``n`` negative.
            RuntimeError: the generator could not find enough distinct problems.
        """
        if split not in self.sizes:
            raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
        if n is None:
            n = self.sizes[split]
        if n < 0:
            raise ValueError(f"n must be >= 0 (or None for the default size), got {n}")
        rng = random.Random(f"igsm:{split}:{seed}")
        span = self.op_max - self.op_min + 1
        seen: set[str] = set()
        out: list[Example] = []
        for i in range(n):
            op = self.op_min + i % span
            for _ in range(MAX_ATTEMPTS):
                p = try_generate(rng, op, self.max_distractors, split, self.test_percent, self.arithmetic)
                if p is not None and p.prompt not in seen:
                    break
            else:
                raise RuntimeError(
                    f"could not generate {split} problem {i} with op={op}; request fewer examples or change test_percent"
                )
            seen.add(p.prompt)
            out.append(
                Example(
                    prompt=p.prompt,
                    response=p.solution,
                    answer=p.answer,
                    meta={
                        "op": p.op,
                        "graph_hash": p.graph_hash,
                        "split": split,
                        "n_sentences": p.n_sentences,
                        "n_distractors": p.n_distractors,
                        "chain": p.chain,
                        "arithmetic": self.arithmetic,
                    },
                    uid="igsm-" + hashlib.sha1(p.prompt.encode()).hexdigest()[:16],
                )
            )
        return out

    def score(self, example: Example, prediction: str) -> float:
        """1.0 if the extracted answer is congruent to the gold answer modulo 23 (``"add"``:
        equal to it), else 0.0.

        See :func:`extract_answer` for extraction; no answer scores 0.0.
        """
        got = extract_answer(prediction)
        if got is None:
            return 0.0
        if self.arithmetic == "add":
            return float(got == int(example.answer))
        return float(got % MOD == int(example.answer) % MOD)


def igsm_add_task() -> IGSMTask:
    """The CPU presets' iGSM: ``IGSMTask(op_min=2, op_max=3, arithmetic="add")`` (suite ``igsm_add``
    of ``anchored eval``; the ``igsm`` suite is the paper's mod-23 default)."""
    return IGSMTask(op_min=2, op_max=3, arithmetic="add")
