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
regex                   ``answer_regex``'s last match in the prediction (its first group that
                        matched, if it has groups)
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
import os
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


#: a number: an optional minus sign that follows no letter or digit ("3-5" is 3 and 5, not -5), an
#: optional "$", digits with thousands separators only in groups of three ("1,234"; "1,2,3" is
#: three numbers), an optional decimal part
_NUMBER = re.compile(r"(?:(?<![\w.])-)?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)|(?:(?<![\w.])-)?\$?\.\d+")


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


def choice_letter_of(text: str, last: str = "J") -> str | None:
    """The option letter (A to ``last``) a response picks: at its start (``B``, ``B.``, ``(b)``,
    ``**C**``) or after "answer"/"option" (``Answer: B``, ``the answer is (C)``), followed by
    ``) . : ,``, ``**``, a line break or the end (so the article "A" in "A plant" is no pick); else
    None.  Upper case."""
    letters = f"A-{last.upper()}a-{last.lower()}"
    t = text.strip()
    m = re.match(rf"(?:\*\*)?\(?([{letters}]){_LETTER_END}", t) or re.search(
        rf"(?:answer|option)(?:\s+is)?\s*:?\s*(?:\*\*)?\(?([{letters}]){_LETTER_END}", t, re.IGNORECASE
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
    if not pattern.groups:
        return m.group(0)
    return next((g for g in m.groups() if g is not None), m.group(0))  # the first group that matched


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
    from anchored_learning.tasks.ifeval_checkers import check_instructions

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
    import sys

    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # a rules module in the current folder, as `python -m` would find it
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"cannot load scoring rule {name!r}: {e} (run from its folder, or put it on PYTHONPATH)") from None
    except Exception as e:  # a syntax or runtime error in the user's module
        raise ValueError(f"cannot load scoring rule {name!r}: importing {module!r} raised {type(e).__name__}: {e}") from None
    fn = getattr(mod, attr, None)
    if fn is None:
        raise ValueError(f"cannot load scoring rule {name!r}: module {module!r} ({mod.__file__}) has no {attr!r}")
    if not callable(fn):
        raise ValueError(f"scoring rule {name!r} is not callable")
    takes_row = _positional_arity(fn) >= 3

    def user_rule(prediction: str, reference: Any, row: dict) -> float:
        value = fn(prediction, reference, row) if takes_row else fn(prediction, reference)
        if isinstance(value, bool) or (isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0):
            return float(value)
        raise ValueError(f"scoring rule {name!r} returned {value!r}; it must return a bool or a number in [0, 1]")

    return user_rule


def _positional_arity(fn: Callable) -> int:
    """How many positional arguments ``fn`` accepts (a large number for ``*args``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 99
    return sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params)
