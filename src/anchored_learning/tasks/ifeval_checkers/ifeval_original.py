"""The 25 instruction checkers of the original IFEval benchmark, offline.

Source benchmark: Zhou et al., "Instruction-Following Evaluation for Large Language Models"
(arXiv:2311.07911); reference implementation ``google-research/instruction_following_eval``
(``instructions.py``, ``instructions_registry.py``).  The checking rules below re-implement that
code's ``check_following`` logic for every instruction id used by the 541 IFEval prompts.
Sentence splitting and ``nltk.word_tokenize`` are NLTK's own with its English punkt parameters,
read offline (see :mod:`.text`).  One deliberate difference: ``langdetect`` is seeded
(``DetectorFactory.seed = 0``) so language checks are deterministic.  Arguments are required (the reference code draws random ones when
an argument is missing, which makes no sense when scoring a fixed data set).

Each checker is built with ``Checker(instruction_id)``, configured with
``build_description(**kwargs)`` (raises ``ValueError``/``TypeError`` on bad kwargs) and asked
``check_following(response) -> bool``.
"""

from __future__ import annotations

import collections
import json
import re
from typing import Any

from anchored_learning.tasks.ifeval_checkers import text as _text

__all__ = ["IFEVAL_REGISTRY", "Instruction"]

_RELATIONS = ("less than", "at least")
_CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def _relation(value: Any, name: str = "relation") -> str:
    if value not in _RELATIONS:
        raise ValueError(f"{name} must be one of {_RELATIONS}, got {value!r}")
    return value


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return int(value)


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _compare(actual: int, relation: str, threshold: int) -> bool:
    return actual < threshold if relation == "less than" else actual >= threshold


def _detect_language(value: str) -> str | None:
    import langdetect
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0
    try:
        return langdetect.detect(value)
    except langdetect.LangDetectException:
        return None


class Instruction:
    """Base class: ``build_description(**kwargs)`` then ``check_following(value)``."""

    def __init__(self, instruction_id: str) -> None:
        self.id = instruction_id
        self._args: dict[str, Any] = {}

    def build_description(self, **kwargs: Any) -> str:
        """Configure the checker from the data set's kwargs; returns a short description."""
        if kwargs:
            raise TypeError(f"{self.id} takes no arguments, got {sorted(kwargs)}")
        return self.id

    def get_instruction_args(self) -> dict[str, Any] | None:
        """The configured arguments (``None`` when the instruction has none)."""
        return dict(self._args) or None

    def check_following(self, value: str) -> bool:  # pragma: no cover - abstract
        """True if ``value`` follows the instruction."""
        raise NotImplementedError


class ResponseLanguageChecker(Instruction):
    """language:response_language -- langdetect code of the whole response equals ``language``."""

    def build_description(self, *, language: str) -> str:
        self._language = _str(language, "language")
        self._args = {"language": language}
        return f"Your ENTIRE response should be in {language} language."

    def check_following(self, value: str) -> bool:
        detected = _detect_language(value)
        # IFEval: text whose language cannot be detected counts as followed
        return True if detected is None else detected == self._language


class NumberOfSentences(Instruction):
    """length_constraints:number_sentences."""

    def build_description(self, *, num_sentences: int, relation: str) -> str:
        self._n = _int(num_sentences, "num_sentences")
        self._rel = _relation(relation)
        self._args = {"num_sentences": self._n, "relation": self._rel}
        return f"Your response should contain {relation} {num_sentences} sentences."

    def check_following(self, value: str) -> bool:
        return _compare(_text.count_sentences(value), self._rel, self._n)


class PlaceholderChecker(Instruction):
    """detectable_content:number_placeholders -- at least N ``[...]`` placeholders."""

    def build_description(self, *, num_placeholders: int) -> str:
        self._n = _int(num_placeholders, "num_placeholders")
        self._args = {"num_placeholders": self._n}
        return f"At least {self._n} placeholders such as [address]."

    def check_following(self, value: str) -> bool:
        return len(re.findall(r"\[.*?\]", value)) >= self._n


class BulletListChecker(Instruction):
    """detectable_format:number_bullet_lists -- exactly N markdown bullets (``*`` or ``-``)."""

    def build_description(self, *, num_bullets: int) -> str:
        self._n = _int(num_bullets, "num_bullets")
        self._args = {"num_bullets": self._n}
        return f"Exactly {self._n} bullet points."

    def check_following(self, value: str) -> bool:
        stars = re.findall(r"^\s*\*[^\*].*$", value, flags=re.MULTILINE)
        dashes = re.findall(r"^\s*-.*$", value, flags=re.MULTILINE)
        return len(stars) + len(dashes) == self._n


class ConstrainedResponseChecker(Instruction):
    """detectable_format:constrained_response -- contains 'My answer is yes/no/maybe.'."""

    def check_following(self, value: str) -> bool:
        value = value.strip()
        return any(option in value for option in _CONSTRAINED_RESPONSE_OPTIONS)


class HighlightSectionChecker(Instruction):
    """detectable_format:number_highlighted_sections -- at least N ``*highlighted*`` spans."""

    def build_description(self, *, num_highlights: int) -> str:
        self._n = _int(num_highlights, "num_highlights")
        self._args = {"num_highlights": self._n}
        return f"Highlight at least {self._n} sections with markdown."

    def check_following(self, value: str) -> bool:
        count = sum(1 for h in re.findall(r"\*[^\n\*]*\*", value) if h.strip("*").strip())
        count += sum(1 for h in re.findall(r"\*\*[^\n\*]*\*\*", value) if h.removeprefix("**").removesuffix("**").strip())
        return count >= self._n


class SectionChecker(Instruction):
    """detectable_format:multiple_sections -- at least N sections marked 'SECTION X'."""

    def build_description(self, *, section_spliter: str, num_sections: int) -> str:
        self._spliter = _str(section_spliter, "section_spliter").strip()
        self._n = _int(num_sections, "num_sections")
        self._args = {"section_spliter": self._spliter, "num_sections": self._n}
        return f"{self._n} sections marked with {self._spliter} X."

    def check_following(self, value: str) -> bool:
        sections = re.split(r"\s?" + self._spliter + r"\s?\d+\s?", value)
        return len(sections) - 1 >= self._n


class ParagraphChecker(Instruction):
    """length_constraints:number_paragraphs -- exactly N paragraphs separated by ``***``."""

    def build_description(self, *, num_paragraphs: int) -> str:
        self._n = _int(num_paragraphs, "num_paragraphs")
        self._args = {"num_paragraphs": self._n}
        return f"{self._n} paragraphs separated by ***."

    def check_following(self, value: str) -> bool:
        paragraphs = re.split(r"\s?\*\*\*\s?", value)
        count = len(paragraphs)
        for index, paragraph in enumerate(paragraphs):
            if not paragraph.strip():
                if index in (0, len(paragraphs) - 1):
                    count -= 1
                else:
                    return False
        return count == self._n


class PostscriptChecker(Instruction):
    """detectable_content:postscript -- a line starting with the marker (P.S. / P.P.S ...)."""

    def build_description(self, *, postscript_marker: str) -> str:
        self._marker = _str(postscript_marker, "postscript_marker").strip()
        self._args = {"postscript_marker": self._marker}
        return f"End with a postscript starting with {self._marker}."

    def check_following(self, value: str) -> bool:
        value = value.lower()
        if self._marker == "P.P.S":
            pattern = r"\s*p\.\s?p\.\s?s.*$"
        elif self._marker == "P.S.":
            pattern = r"\s*p\.\s?s\..*$"
        else:
            pattern = r"\s*" + self._marker.lower() + r".*$"
        return bool(re.findall(pattern, value, flags=re.MULTILINE))


class KeywordChecker(Instruction):
    """keywords:existence -- every keyword occurs (case-insensitive regex search)."""

    def build_description(self, *, keywords: list[str]) -> str:
        if not isinstance(keywords, list) or not keywords:
            raise ValueError(f"keywords must be a non-empty list, got {keywords!r}")
        self._keywords = sorted(_str(k, "keyword") for k in keywords)
        self._args = {"keywords": self._keywords}
        return f"Include keywords {self._keywords}."

    def check_following(self, value: str) -> bool:
        return all(re.search(k, value, flags=re.IGNORECASE) for k in self._keywords)


class KeywordFrequencyChecker(Instruction):
    """keywords:frequency -- occurrences of ``keyword`` (case-insensitive) vs ``frequency``."""

    def build_description(self, *, keyword: str, frequency: int, relation: str) -> str:
        self._keyword = _str(keyword, "keyword").strip()
        self._n = _int(frequency, "frequency")
        self._rel = _relation(relation)
        self._args = {"keyword": self._keyword, "frequency": self._n, "relation": self._rel}
        return f"The word {self._keyword} should appear {relation} {frequency} times."

    def check_following(self, value: str) -> bool:
        count = len(re.findall(self._keyword, value, flags=re.IGNORECASE))
        return _compare(count, self._rel, self._n)


class NumberOfWords(Instruction):
    """length_constraints:number_words -- ``\\w+`` word count vs ``num_words``."""

    def build_description(self, *, num_words: int, relation: str) -> str:
        self._n = _int(num_words, "num_words")
        self._rel = _relation(relation)
        self._args = {"num_words": self._n, "relation": self._rel}
        return f"Answer with {relation} {num_words} words."

    def check_following(self, value: str) -> bool:
        return _compare(_text.count_words(value), self._rel, self._n)


class JsonFormat(Instruction):
    """detectable_format:json_format -- the response (markdown fences stripped) is JSON."""

    def check_following(self, value: str) -> bool:
        value = (
            value.strip()
            .removeprefix("```json")
            .removeprefix("```Json")
            .removeprefix("```JSON")
            .removeprefix("```")
            .removesuffix("```")
            .strip()
        )
        try:
            json.loads(value)
        except ValueError:
            return False
        return True


class ParagraphFirstWordCheck(Instruction):
    """length_constraints:nth_paragraph_first_word.

    Exactly N paragraphs separated by a blank line; paragraph k starts with ``first_word``.
    """

    def build_description(self, *, num_paragraphs: int, nth_paragraph: int, first_word: str) -> str:
        self._n = _int(num_paragraphs, "num_paragraphs")
        self._nth = _int(nth_paragraph, "nth_paragraph")
        if self._nth < 1:
            raise ValueError(f"nth_paragraph must be >= 1, got {nth_paragraph!r}")
        self._first_word = _str(first_word, "first_word").lower()
        self._args = {"num_paragraphs": self._n, "nth_paragraph": self._nth, "first_word": self._first_word}
        return f"{self._n} paragraphs; paragraph {self._nth} starts with {self._first_word}."

    def check_following(self, value: str) -> bool:
        paragraphs = re.split(r"\n\n", value)
        count = len(paragraphs) - sum(1 for p in paragraphs if not p.strip())
        if self._nth > count:
            return False
        paragraph = paragraphs[self._nth - 1].strip()
        if not paragraph:
            return False
        word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
        first = ""
        for letter in word:
            if letter in {".", ",", "?", "!", "'", '"'}:
                break
            first += letter.lower()
        return count == self._n and first == self._first_word


class ForbiddenWords(Instruction):
    """keywords:forbidden_words -- none of the words occurs as a whole word."""

    def build_description(self, *, forbidden_words: list[str]) -> str:
        if not isinstance(forbidden_words, list) or not forbidden_words:
            raise ValueError(f"forbidden_words must be a non-empty list, got {forbidden_words!r}")
        self._words = sorted(set(_str(w, "forbidden word") for w in forbidden_words))
        self._args = {"forbidden_words": self._words}
        return f"Do not include keywords {self._words}."

    def check_following(self, value: str) -> bool:
        return not any(re.search(r"\b" + w + r"\b", value, flags=re.IGNORECASE) for w in self._words)


class TwoResponsesChecker(Instruction):
    """combination:two_responses -- two different responses separated by ``******``."""

    def check_following(self, value: str) -> bool:
        valid = []
        parts = value.split("******")
        for index, part in enumerate(parts):
            if not part.strip():
                if index not in (0, len(parts) - 1):
                    return False
            else:
                valid.append(part)
        return len(valid) == 2 and valid[0].strip() != valid[1].strip()


class RepeatPromptThenAnswer(Instruction):
    """combination:repeat_prompt -- starts with ``prompt_to_repeat`` (case-insensitive)."""

    def build_description(self, *, prompt_to_repeat: str) -> str:
        self._prompt = _str(prompt_to_repeat, "prompt_to_repeat")
        self._args = {"prompt_to_repeat": self._prompt}
        return "First repeat the request word for word without change, then answer."

    def check_following(self, value: str) -> bool:
        return value.strip().lower().startswith(self._prompt.strip().lower())


class EndChecker(Instruction):
    """startend:end_checker -- the response ends with ``end_phrase`` (case-insensitive)."""

    def build_description(self, *, end_phrase: str) -> str:
        self._end = _str(end_phrase, "end_phrase").strip()
        self._args = {"end_phrase": self._end}
        return f"Finish your response with this exact phrase {self._end}."

    def check_following(self, value: str) -> bool:
        return value.strip().strip('"').lower().endswith(self._end.strip().lower())


class TitleChecker(Instruction):
    """detectable_format:title -- a non-empty ``<<title>>``."""

    def check_following(self, value: str) -> bool:
        return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", value))


class LetterFrequencyChecker(Instruction):
    """keywords:letter_frequency -- count of ``letter`` (case-insensitive) vs ``let_frequency``."""

    def build_description(self, *, letter: str, let_frequency: int, let_relation: str) -> str:
        letter = _str(letter, "letter").strip()
        if len(letter) != 1:
            raise ValueError(f"letter must be a single character, got {letter!r}")
        self._letter = letter.lower()
        self._n = _int(let_frequency, "let_frequency")
        self._rel = _relation(let_relation, "let_relation")
        self._args = {"letter": self._letter, "let_frequency": self._n, "let_relation": self._rel}
        return f"The letter {letter} should appear {let_relation} {let_frequency} times."

    def check_following(self, value: str) -> bool:
        return _compare(collections.Counter(value.lower())[self._letter], self._rel, self._n)


class CapitalLettersEnglishChecker(Instruction):
    """change_case:english_capital -- all capitals and detected as English."""

    def check_following(self, value: str) -> bool:
        detected = _detect_language(value)
        return value.isupper() and (detected is None or detected == "en")


class LowercaseLettersEnglishChecker(Instruction):
    """change_case:english_lowercase -- all lowercase and detected as English."""

    def check_following(self, value: str) -> bool:
        detected = _detect_language(value)
        return value.islower() and (detected is None or detected == "en")


class CommaChecker(Instruction):
    """punctuation:no_comma -- no ``,`` at all."""

    def check_following(self, value: str) -> bool:
        return "," not in value


class CapitalWordFrequencyChecker(Instruction):
    """change_case:capital_word_frequency -- all-capital word tokens vs ``capital_frequency``."""

    def build_description(self, *, capital_frequency: int, capital_relation: str) -> str:
        self._n = _int(capital_frequency, "capital_frequency")
        self._rel = _relation(capital_relation, "capital_relation")
        self._args = {"capital_frequency": self._n, "capital_relation": self._rel}
        return f"All-capital words should appear {capital_relation} {capital_frequency} times."

    def check_following(self, value: str) -> bool:
        words = _text.word_tokenize(value)
        return _compare(sum(1 for w in words if w.isupper()), self._rel, self._n)


class QuotationChecker(Instruction):
    """startend:quotation -- the response is wrapped in double quotes."""

    def check_following(self, value: str) -> bool:
        value = value.strip()
        return len(value) > 1 and value[0] == '"' and value[-1] == '"'


#: instruction id -> checker class, exactly the 25 ids of IFEval's ``input_data.jsonl``.
IFEVAL_REGISTRY: dict[str, type[Instruction]] = {
    "keywords:existence": KeywordChecker,
    "keywords:frequency": KeywordFrequencyChecker,
    "keywords:forbidden_words": ForbiddenWords,
    "keywords:letter_frequency": LetterFrequencyChecker,
    "language:response_language": ResponseLanguageChecker,
    "length_constraints:number_sentences": NumberOfSentences,
    "length_constraints:number_paragraphs": ParagraphChecker,
    "length_constraints:number_words": NumberOfWords,
    "length_constraints:nth_paragraph_first_word": ParagraphFirstWordCheck,
    "detectable_content:number_placeholders": PlaceholderChecker,
    "detectable_content:postscript": PostscriptChecker,
    "detectable_format:number_bullet_lists": BulletListChecker,
    "detectable_format:constrained_response": ConstrainedResponseChecker,
    "detectable_format:number_highlighted_sections": HighlightSectionChecker,
    "detectable_format:multiple_sections": SectionChecker,
    "detectable_format:json_format": JsonFormat,
    "detectable_format:title": TitleChecker,
    "combination:two_responses": TwoResponsesChecker,
    "combination:repeat_prompt": RepeatPromptThenAnswer,
    "startend:end_checker": EndChecker,
    "startend:quotation": QuotationChecker,
    "change_case:capital_word_frequency": CapitalWordFrequencyChecker,
    "change_case:english_capital": CapitalLettersEnglishChecker,
    "change_case:english_lowercase": LowercaseLettersEnglishChecker,
    "punctuation:no_comma": CommaChecker,
}
