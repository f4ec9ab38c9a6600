"""Offline text utilities shared by the IFEval / IFBench checkers.

Sentence splitting is NLTK's own Punkt tokenizer with NLTK's English ``punkt_tab`` parameters,
exactly what the reference checkers use (``nltk.sent_tokenize`` / ``nltk.word_tokenize`` after
``nltk.download('punkt_tab')``).  The parameters are read from the user's NLTK data when
installed there, else from the copy of ``punkt_tab`` that the ``llama-index-core`` wheel ships
(``llama_index/core/_static/nltk_cache``; installed ``--no-deps`` from requirements/assets.txt
and never imported), so nothing is downloaded.  Word tokenisation is ``nltk.word_tokenize``'s:
that sentence split, then NLTK's Treebank-style word tokenizer (no data files).
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from pathlib import Path

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


_PUNKT_HELP = (
    "NLTK's English Punkt parameters (punkt_tab) are not installed. Install the offline copy with "
    "`pip install --no-deps llama-index-core==0.14.25` (its wheel ships punkt_tab; it is never "
    "imported; in a checkout, `pip install --no-deps -r requirements/assets.txt` installs it), or, "
    "with network access, run `python -m nltk.downloader punkt_tab`."
)


def _bundled_nltk_data() -> Path | None:
    """The NLTK data folder inside the installed ``llama-index-core`` wheel, if any."""
    try:
        dist = importlib.metadata.distribution("llama-index-core")
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(dist.locate_file("llama_index/core/_static/nltk_cache"))
    return folder if (folder / "tokenizers" / "punkt_tab" / "english").is_dir() else None


@functools.lru_cache(maxsize=1)
def _punkt():
    """NLTK's English ``PunktTokenizer`` (``punkt_tab``), as ``nltk.sent_tokenize`` loads it.

    When the user's NLTK data lack ``punkt_tab``, the ``llama-index-core`` copy is appended to
    ``nltk.data.path`` (last, so a user's own data always win; NLTK reads model files only under
    its data roots).

    Raises:
        LookupError: neither the user's NLTK data nor ``llama-index-core`` has ``punkt_tab``
            (the message says how to install it).
    """
    import nltk
    from nltk.tokenize.punkt import PunktTokenizer

    try:
        return PunktTokenizer("english")
    except LookupError:
        folder = _bundled_nltk_data()
        if folder is None:
            raise LookupError(_PUNKT_HELP) from None
    if str(folder) not in nltk.data.path:
        nltk.data.path.append(str(folder))
    return PunktTokenizer("english")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences exactly as ``nltk.sent_tokenize(text)`` does (English punkt).

    Raises:
        LookupError: the punkt_tab parameters are not installed (see :func:`_punkt`).
    """
    return _punkt().tokenize(text)


def count_sentences(text: str) -> int:
    """Number of sentences (IFEval ``instructions_util.count_sentences``: English punkt)."""
    return len(split_sentences(text))


def count_words(text: str) -> int:
    r"""Number of ``\w+`` tokens (IFEval's ``RegexpTokenizer(r"\w+")`` count)."""
    return len(_WORD_RE.findall(text))


def count_stopwords(text: str) -> int:
    """Number of ``\\w+`` tokens that are NLTK English stop words (case-insensitive)."""
    return sum(1 for t in _WORD_RE.findall(text) if t.lower() in ENGLISH_STOPWORDS)


@functools.lru_cache(maxsize=1)
def _treebank():
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


def word_tokenize(text: str, language: str = "english", preserve_line: bool = False) -> list[str]:
    """``nltk.word_tokenize`` with the offline punkt parameters of :func:`split_sentences`.

    Args:
        text: the text.
        language: ignored (English only, as in IFEval/IFBench).
        preserve_line: when true, do not split into sentences first.

    Returns:
        The tokens: punkt sentences, each split by NLTK's Treebank-style word tokenizer.

    Raises:
        LookupError: the punkt_tab parameters are not installed (see :func:`split_sentences`).
    """
    sentences = [text] if preserve_line else split_sentences(text)
    return [t for s in sentences for t in _treebank().tokenize(s)]
