"""Scoring rules for your own task: how a generated response is compared with the gold one.

Each rule is ``rule(prediction, reference, row, options) -> float`` in [0, 1]; ``reference`` is the
row's ``answer`` column (or the column named by ``answer_column``) when it has one, else the gold
response text, and ``row`` holds the row's other columns plus ``prompt``, the text of its last
user turn.  Choose a rule by name
(``--score last_number``) or give your own as ``module:function``, called as
``function(prediction, reference)`` or, if it takes three arguments, ``function(prediction,
reference, row)``, returning a bool or a float in [0, 1].

======================  ==========================================================================
rule                    1.0 when
======================  ==========================================================================
exact_match             the texts are equal after stripping surrounding whitespace
normalized_match        equal after SQuAD's normalisation (lower case, punctuation and the
                        articles a/an/the removed, whitespace collapsed)
last_number             the last number in each is the same within ``score_tolerance`` (absolute
                        and relative; thousands separators and a leading ``$`` are ignored)
regex                   ``answer_regex``'s last match in the prediction (group 1 if it has one)
                        equals the reference after normalisation (the reference goes through the
                        same regex when it matches)
choice_letter           the letter (A-J) the prediction picks equals the reference's letter
ifeval                  every verifiable instruction of the row (IFEval's ``instruction_id_list``
                        and ``kwargs`` columns) is followed, strict (IFEval's prompt-level strict
                        accuracy, with our offline checkers)
======================  ==========================================================================
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RuleOptions:
    """Settings some rules read: ``answer_regex`` (regex), ``score_tolerance`` (last_number)."""

    answer_regex: str | None = None
    score_tolerance: float = 1e-6


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\$?\.\d+")


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (``1,234.5``, ``-3``, ``$12``, ``.5``), or None."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    raw = found[-1].replace(",", "").replace("$", "")
    try:
        return float(raw)
    except ValueError:  # pragma: no cover - the pattern only matches numbers
        return None


_LETTER_END = r"(?:[).:,]|\*\*|\s*$|\s*\n)"


def choice_letter_of(text: str) -> str | None:
    """The option letter (A-J) a response picks: at its start (``B``, ``B.``, ``(b)``, ``**C**``)
    or after "answer"/"option" (``Answer: B``, ``the answer is (C)``), followed by ``) . : ,``,
    ``**``, a line break or the end (so the article "A" in "A plant" is no pick); else None."""
    t = text.strip()
    m = re.match(rf"(?:\*\*)?\(?([A-Ja-j]){_LETTER_END}", t) or re.search(
        rf"(?:answer|option)(?:\s+is)?\s*:?\s*(?:\*\*)?\(?([A-Ja-j]){_LETTER_END}", t, re.IGNORECASE
    )
    return m.group(1).upper() if m else None


def _exact(prediction: str, reference: str, row: dict, o: RuleOptions) -> float:
    return float(prediction.strip() == str(reference).strip())


def _normalized(prediction: str, reference: str, row: dict, o: RuleOptions) -> float:
    return float(normalize_answer(prediction) == normalize_answer(str(reference)))


def _number(prediction: str, reference: str, row: dict, o: RuleOptions) -> float:
    gold = reference if isinstance(reference, (int, float)) and not isinstance(reference, bool) else last_number(str(reference))
    got = last_number(prediction)
    if gold is None or got is None:
        return 0.0
    return float(math.isclose(got, float(gold), rel_tol=o.score_tolerance, abs_tol=o.score_tolerance))


def _regex_capture(pattern: re.Pattern, text: str) -> str | None:
    hits = list(pattern.finditer(text))
    if not hits:
        return None
    m = hits[-1]
    return m.group(1) if pattern.groups else m.group(0)


def _regex(prediction: str, reference: str, row: dict, o: RuleOptions) -> float:
    pattern = re.compile(o.answer_regex or "")
    got = _regex_capture(pattern, prediction)
    if got is None:
        return 0.0
    gold = _regex_capture(pattern, str(reference))
    return float(normalize_answer(got) == normalize_answer(gold if gold is not None else str(reference)))


def _letter(prediction: str, reference: str, row: dict, o: RuleOptions) -> float:
    ref = str(reference).strip()
    gold = ref.upper() if len(ref) == 1 else choice_letter_of(ref)
    return float(gold is not None and choice_letter_of(prediction) == gold)


def _ifeval(prediction: str, reference: str, row: dict, o: RuleOptions) -> float:
    from anchored_learning.tasks.base import Example
    from anchored_learning.tasks.ifeval import check_instructions

    ex = Example(
        prompt=row["prompt"],
        response="",
        answer=None,
        meta={"instruction_id_list": row["instruction_id_list"], "kwargs": row["kwargs"]},
    )
    return float(all(check_instructions(ex, prediction)))


#: rule name -> rule(prediction, reference, row, options) -> float
RULES: dict[str, Callable[[str, Any, dict, RuleOptions], float]] = {
    "exact_match": _exact,
    "normalized_match": _normalized,
    "last_number": _number,
    "regex": _regex,
    "choice_letter": _letter,
    "ifeval": _ifeval,
}
#: what each rule needs in every row besides the prompt and the response
REQUIRED_COLUMNS = {"ifeval": ("instruction_id_list", "kwargs")}


def get_rule(name: str, options: RuleOptions = RuleOptions()) -> Callable[[str, Any, dict], float]:
    """The scoring rule ``name`` (a key of :data:`RULES`, or ``module:function``) as
    ``score(prediction, reference, row) -> float`` in [0, 1].

    Raises:
        ValueError: an unknown rule name; ``regex`` without a valid ``answer_regex``; a
            ``module:function`` that cannot be imported or is not callable; a negative tolerance.
    """
    if not math.isfinite(options.score_tolerance) or options.score_tolerance < 0:
        raise ValueError(f"score_tolerance must be a finite number >= 0, got {options.score_tolerance}")
    if name in RULES:
        if name == "regex":
            if not options.answer_regex:
                raise ValueError("the regex rule needs --answer_regex (e.g. 'Answer: (.+)')")
            try:
                re.compile(options.answer_regex)
            except re.error as e:
                raise ValueError(f"answer_regex {options.answer_regex!r} is not a valid regular expression: {e}") from None
        rule = RULES[name]
        return lambda prediction, reference, row: rule(prediction, reference, row, options)
    module, sep, attr = name.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"unknown scoring rule {name!r}; choose one of {', '.join(RULES)} or give your own as module:function")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load scoring rule {name!r}: {type(e).__name__}: {e} (is its module on PYTHONPATH?)") from None
    if not callable(fn):
        raise ValueError(f"scoring rule {name!r} is not callable")
    try:
        takes_row = len(inspect.signature(fn).parameters) >= 3
    except (TypeError, ValueError):
        takes_row = False

    def user_rule(prediction: str, reference: Any, row: dict) -> float:
        value = fn(prediction, reference, row) if takes_row else fn(prediction, reference)
        score = float(value)
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"scoring rule {name!r} returned {value!r}; it must return a bool or a float in [0, 1]")
        return score

    return user_rule
