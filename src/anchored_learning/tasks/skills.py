"""Generated skills with exact scoring: the prior skills of sequential fine-tuning.

A *prior skill* is something the model learns first (task A) and should keep while it learns a
target (task B).  Measured as a held-out member it is a sensitive instrument: a skill the model
has at 90 % can lose most of it, where a benchmark the base barely passes cannot move.  These
skills are small, generated from a seed, never downloaded, and scored exactly:

=============  =====================================================  =======================
name           prompt (input)                                         gold response
=============  =====================================================  =======================
date_iso       a date in words, "rewrite in YYYY-MM-DD"               ``2021-03-05``
date_us        the same dates, "rewrite in MM/DD/YYYY"                ``03/05/2021``
date_words     an ISO date, "write it in words"                       ``March 5, 2021``
sort_asc       4-6 numbers, "sort from smallest to largest"           ``3, 7, 19, 42``
sort_desc      the same lists, "sort from largest to smallest"        ``42, 19, 7, 3``
=============  =====================================================  =======================

Pairs span the similarity between A and B that sequential fine-tuning is sensitive to:
``date_iso`` then ``date_us`` conflicts (the same inputs, another required output under another
instruction); ``date_iso`` then ``date_words`` is related (the same month/number mapping, the
inverse direction, compatible outputs); ``date_iso`` then ``igsm`` is distant.

Train and test never share an input, for any seeds, and the split is the same for every task of a
family (``date_*`` split by the date, ``sort_*`` by the list), so one task's test inputs are
never another task's training inputs.  A prediction is scored 1 when the *last* answer-shaped
span in it (a date in the task's format; for sorting, the whole list of integers it contains)
equals the gold answer, so a correct answer wrapped in a sentence counts and a wrong one never does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from anchored_learning.tasks.base import Example

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_FIRST_DAY, _N_DAYS = dt.date(1900, 1, 1), (dt.date(2099, 12, 31) - dt.date(1900, 1, 1)).days + 1
_MAX_ATTEMPTS = 200


def _words(d: dt.date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def _test_bucket(key: str, test_percent: int) -> bool:
    """True when input ``key`` belongs to the test split (``sha256(key) % 100 < test_percent``)."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100 < test_percent


@dataclass(frozen=True)
class _Family:
    """How a family draws one input and names it (the key its split is decided on)."""

    draw: Callable[[random.Random], object]
    key: Callable[[object], str]


def _draw_date(rng: random.Random) -> dt.date:
    return _FIRST_DAY + dt.timedelta(days=rng.randrange(_N_DAYS))


def _draw_list(rng: random.Random) -> tuple[int, ...]:
    return tuple(rng.sample(range(1, 100), rng.randint(4, 6)))


FAMILIES = {
    "date": _Family(_draw_date, lambda d: d.isoformat()),
    "sort": _Family(_draw_list, lambda xs: ",".join(map(str, xs))),
}

_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_US = re.compile(r"\b(\d{2})/(\d{2})/(\d{4})\b")
_WORDS = re.compile(r"\b(" + "|".join(MONTHS) + r") (\d{1,2}), (\d{4})\b")
_INT = re.compile(r"-?\d+")


def _last(pattern: re.Pattern, text: str) -> str | None:
    found = [m.group(0) for m in pattern.finditer(text)]
    return found[-1] if found else None


@dataclass(frozen=True)
class SkillSpec:
    """One skill: its family (inputs and split), instruction, gold response and answer extractor."""

    family: str
    instruction: str
    show: Callable[[object], str]
    gold: Callable[[object], str]
    extract: Callable[[str], str | None]
    max_new_tokens: int = 32


SKILLS: dict[str, SkillSpec] = {
    "date_iso": SkillSpec(
        "date",
        "Rewrite this date in the format YYYY-MM-DD: {x}",
        _words,
        lambda d: d.isoformat(),
        lambda t: _last(_ISO, t),
    ),
    "date_us": SkillSpec(
        "date",
        "Rewrite this date in the format MM/DD/YYYY: {x}",
        _words,
        lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",
        lambda t: _last(_US, t),
    ),
    "date_words": SkillSpec(
        "date",
        "Write this date in words, like January 9, 1987: {x}",
        lambda d: d.isoformat(),
        _words,
        lambda t: _last(_WORDS, t),
    ),
    "sort_asc": SkillSpec(
        "sort",
        "Sort these numbers from smallest to largest: {x}",
        lambda xs: ", ".join(map(str, xs)),
        lambda xs: ", ".join(map(str, sorted(xs))),
        lambda t: ", ".join(_INT.findall(t)) or None,
    ),
    "sort_desc": SkillSpec(
        "sort",
        "Sort these numbers from largest to smallest: {x}",
        lambda xs: ", ".join(map(str, xs)),
        lambda xs: ", ".join(map(str, sorted(xs, reverse=True))),
        lambda t: ", ".join(_INT.findall(t)) or None,
    ),
}


class SkillTask:
    """A generated skill of :data:`SKILLS` as a :class:`~anchored_learning.tasks.base.TargetTask`.

    Args:
        name: a key of :data:`SKILLS`.
        n_train, n_test: sizes returned by :meth:`examples` when ``n`` is None.
        test_percent: share (1..99) of the family's inputs reserved for the test split.

    Raises:
        ValueError: an unknown skill, negative sizes or ``test_percent`` outside 1..99.
    """

    def __init__(self, name: str, n_train: int = 2000, n_test: int = 200, test_percent: int = 20) -> None:
        if name not in SKILLS:
            raise ValueError(f"unknown skill {name!r}; known: {sorted(SKILLS)}")
        if n_train < 0 or n_test < 0:
            raise ValueError(f"n_train and n_test must be >= 0, got {n_train}, {n_test}")
        if not 1 <= test_percent <= 99:
            raise ValueError(f"test_percent must be in 1..99, got {test_percent}")
        self.name = name
        self.spec = SKILLS[name]
        self.sizes = {"train": n_train, "test": n_test}
        self.test_percent = test_percent
        self.max_new_tokens = self.spec.max_new_tokens

    def examples(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        """``n`` distinct items of ``split`` (the default size when None), deterministic in
        ``(split, n, seed)``; a smaller ``n`` is a prefix of a larger one.  Every task of a family
        draws the same inputs for the same ``(split, seed)``.

        Raises:
            ValueError: an unknown split or a negative ``n``.
        """
        if split not in self.sizes:
            raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
        n = self.sizes[split] if n is None else n
        if n < 0:
            raise ValueError(f"n must be >= 0 (or None for the default size), got {n}")
        fam, spec = FAMILIES[self.spec.family], self.spec
        rng = random.Random(f"{self.spec.family}:{split}:{seed}")
        seen: set[str] = set()
        out: list[Example] = []
        for _ in range(n * _MAX_ATTEMPTS):
            if len(out) == n:
                break
            x = fam.draw(rng)
            key = fam.key(x)
            if key in seen or _test_bucket(key, self.test_percent) != (split == "test"):
                continue
            seen.add(key)
            gold = spec.gold(x)
            prompt = spec.instruction.format(x=spec.show(x))
            out.append(Example(prompt=prompt, response=gold, answer=gold, meta={"input": key}, uid=f"{self.name}-{key}"))
        return out

    def score(self, example: Example, prediction: str) -> float:
        """1.0 when the last answer-shaped span of ``prediction`` equals the gold answer, else 0.0."""
        return float(self.spec.extract(prediction) == example.answer)


def skill_factory(name: str) -> Callable[..., SkillTask]:
    """A factory for the task registry: ``skill_factory("date_iso")(**options)``."""

    def make(**options) -> SkillTask:
        return SkillTask(name, **options)

    make.__doc__ = f"The generated skill {name!r} (:class:`SkillTask`)."
    return make
