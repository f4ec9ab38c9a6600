"""The contract every generation-scored task follows.

A task yields :class:`Example` objects (a chat prompt, the gold response used for training, and
whatever the scorer needs) and scores a model's generated text against one example.  Training
code only reads ``prompt`` and ``response``; evaluation code only calls ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Example:
    """One task item.

    Attributes:
        prompt: the user turn, plain text, or the conversation before the response (a list of
            ``{"role", "content"}`` turns, e.g. with a system turn); the chat template is applied
            by the caller.
        response: the gold assistant turn used as the SFT target (step-by-step solution and
            final answer, in the task's own style).
        answer: the ground truth the scorer compares against (int, float, str, ...).
        meta: task-specific fields needed for scoring or analysis (e.g. MedCalc lower/upper
            limits, IFEval instruction ids and kwargs, iGSM op count).  JSON-serialisable.
        uid: a stable identifier, unique within a task split.
    """

    prompt: str | list[dict[str, str]]
    response: str
    answer: Any
    meta: dict[str, Any] = field(default_factory=dict)
    uid: str = ""


@runtime_checkable
class TargetTask(Protocol):
    """A generation-scored task.

    Implementations are deterministic by seed and never download anything.  A task may also
    have ``secondary_scores``, a dict ``metric name -> scorer(example, prediction) -> float``:
    scores reported next to :meth:`score` in the evaluation's ``metrics`` and
    ``items_by_metric`` (MedCalc's ``lenient``), never used as the primary one.
    """

    name: str
    #: generation budget in new tokens used when this task is evaluated
    max_new_tokens: int

    def examples(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        """Return ``n`` examples (all when ``None``) of ``split`` ("train" or "test").

        Raises:
            ValueError: unknown split, or ``n`` larger than what the source holds.
        """
        ...

    def score(self, example: Example, prediction: str) -> float:
        """Score one generated response in [0, 1] (1 = correct)."""
        ...


def subset_indices(n_total: int, limit: int | None, seed: int) -> list[int]:
    """The first ``limit`` entries of a seeded permutation of ``range(n_total)`` (all when
    ``limit`` is None or larger than ``n_total``): a smaller limit is a prefix of a larger one, and
    the same seed and limit give the same items in the same order."""
    perm = np.random.default_rng(seed).permutation(n_total)
    if limit is not None:
        perm = perm[: max(0, int(limit))]
    return [int(i) for i in perm]
