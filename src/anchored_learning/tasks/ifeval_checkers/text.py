"""Offline text utilities shared by the IFEval / IFBench checkers.

NLTK's punkt models (``nltk.download('punkt_tab')``) are replaced by ``nupunkt``, a
dependency-free Punkt implementation that ships its model inside the wheel, so nothing is ever
downloaded.  Word tokenisation follows ``nltk.word_tokenize`` (sentence split, then NLTK's
Treebank-style word tokenizer, which needs no data files).
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "ENGLISH_STOPWORDS",
    "count_sentences",
    "count_stopwords",
    "count_words",
    "split_sentences",
    "word_tokenize",
]

# NLTK's English stop-word list (nltk_data ``corpora/stopwords/english``).  Contracted forms are
# irrelevant for ``count_stopwords`` (its ``\w+`` tokens never contain an apostrophe) but are kept
# for completeness.
ENGLISH_STOPWORDS = frozenset(
    """
    i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
    yourselves he him his himself she she's her hers herself it it's its itself they them their
    theirs themselves what which who whom this that that'll these those am is are was were be
    been being have has had having do does did doing a an the and but if or because as until
    while of at by for with about against between into through during before after above below
    to from up down in out on off over under again further then once here there when where why
    how all any both each few more most other some such no nor not only own same so than too
    very s t can will just don don't should should've now d ll m o re ve y ain aren aren't
    couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma
    mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren
    weren't won won't wouldn wouldn't he'd he'll he's i'd i'll i'm i've it'd it'll she'd she'll
    they'd they'll they're they've we'd we'll we're we've
    """.split()
)

_WORD_RE = re.compile(r"\w+")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences with the nupunkt Punkt model (offline)."""
    import nupunkt

    return [s for s in (s.strip() for s in nupunkt.sent_tokenize(text)) if s]


def count_sentences(text: str) -> int:
    """Number of sentences (IFEval ``instructions_util.count_sentences``, punkt -> nupunkt)."""
    return len(split_sentences(text))


def count_words(text: str) -> int:
    r"""Number of ``\w+`` tokens (IFEval's ``RegexpTokenizer(r"\w+")`` count)."""
    return len(_WORD_RE.findall(text))


def count_stopwords(text: str) -> int:
    """Number of ``\\w+`` tokens that are NLTK English stop words (case-insensitive)."""
    return sum(1 for t in _WORD_RE.findall(text) if t.lower() in ENGLISH_STOPWORDS)


@functools.lru_cache(maxsize=1)
def _treebank():
    try:
        from nltk.tokenize.destructive import NLTKWordTokenizer
    except ImportError:  # pragma: no cover - nltk is a declared dependency of the checkers
        return None
    return NLTKWordTokenizer()


def word_tokenize(text: str, language: str = "english", preserve_line: bool = False) -> list[str]:
    """Drop-in for ``nltk.word_tokenize`` that needs no NLTK data.

    Args:
        text: the text.
        language: ignored (English only, as in IFEval/IFBench).
        preserve_line: when true, do not split into sentences first.

    Returns:
        The tokens.
    """
    tok = _treebank()
    sentences = [text] if preserve_line else split_sentences(text)
    if tok is None:  # pragma: no cover
        return [t for s in sentences for t in re.findall(r"\w+|[^\w\s]", s)]
    return [t for s in sentences for t in tok.tokenize(s)]
