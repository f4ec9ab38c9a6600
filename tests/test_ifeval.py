"""IFEval / IFBench task: checkers, loose variants, metrics, loader errors (all offline)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from anchored_learning.tasks.base import Example, TargetTask
from anchored_learning.tasks.ifeval import (
    IFEvalTask,
    check_instructions,
    default_ifbench_path,
    ifeval_metrics,
    load_ifeval_jsonl,
    loose_variants,
)
from anchored_learning.tasks.ifeval_checkers import IFEVAL_REGISTRY, known_instruction_ids
from anchored_learning.tasks.registry import get_task


def ex(ids, kwargs=None, prompt="Write something.", key="k") -> Example:
    """An IFEval example built the way the loader builds it."""
    if isinstance(ids, str):
        ids = [ids]
    kwargs = kwargs if kwargs is not None else [{} for _ in ids]
    if isinstance(kwargs, dict):
        kwargs = [kwargs]
    return Example(
        prompt=prompt,
        response="",
        answer=None,
        meta={"key": key, "instruction_id_list": ids, "kwargs": kwargs},
        uid=f"ifeval-{key}",
    )


def strict(example, response):
    return check_instructions(example, response, loose=False)


def loose(example, response):
    return check_instructions(example, response, loose=True)


# ---------------------------------------------------------------------------- IFEval checkers

# (instruction id, kwargs, passing response, failing response)
IFEVAL_CASES = [
    ("punctuation:no_comma", {}, "No commas here at all.", "Well, this has one."),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "less than"},
        "Only four words here.",
        "This sentence has exactly five words? No, six.",
    ),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "at least"},
        "one two three four five",
        "one two three four",
    ),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Intro\n* first point\n- second point", "* only one point"),
    (
        "change_case:english_lowercase",
        {},
        "this is a response written entirely in lowercase english letters.",
        "This is a response with a capital letter at the start.",
    ),
    (
        "change_case:english_capital",
        {},
        "THIS IS A RESPONSE WRITTEN ENTIRELY IN CAPITAL ENGLISH LETTERS.",
        "THIS IS ALMOST ALL CAPITALS but not quite.",
    ),
    (
        "startend:end_checker",
        {"end_phrase": "Any other questions?"},
        "Here is my answer. Any other questions?",
        "Any other questions? Here is my answer.",
    ),
    ("startend:quotation", {}, '"Wrapped in quotes."', 'Not "wrapped" in quotes.'),
    ("detectable_format:title", {}, "<<My Title>>\nBody text.", "<<>> no real title"),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', "{'a': 1}"),
    ("keywords:existence", {"keywords": ["apple", "river"]}, "An Apple fell into the river.", "An apple fell."),
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "The category is dogs.", "My Cat sleeps."),
    ("keywords:frequency", {"keyword": "data", "frequency": 3, "relation": "at least"}, "data, Data and DATA", "data and data"),
    (
        "keywords:letter_frequency",
        {"letter": "z", "let_frequency": 2, "let_relation": "less than"},
        "A lazy dog.",
        "Zebras zigzag.",
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "less than"},
        "Dr. Smith arrived at 3 p.m. on Jan. 5. He left.",
        "One sentence. Two sentences. Three sentences.",
    ),
    (
        "length_constraints:number_paragraphs",
        {"num_paragraphs": 2},
        "First paragraph.\n***\nSecond paragraph.",
        "First.\n***\n\n***\nThird.",
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
        "Intro text.\n\nHowever, the second begins here.",
        "Intro text.\n\nBut the second.",
    ),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 2},
        "Dear [name], see you at [address].",
        "Dear [name], see you soon.",
    ),
    (
        "detectable_content:postscript",
        {"postscript_marker": "P.S."},
        "Main text.\nP.S. Remember the milk.",
        "Main text. PS remember the milk.",
    ),
    (
        "detectable_format:number_highlighted_sections",
        {"num_highlights": 2},
        "This is *one* and this is **two**.",
        "Only *one* highlight.",
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "SECTION", "num_sections": 2},
        "SECTION 1\nIntro\nSECTION 2\nBody",
        "SECTION 1\nOnly one section",
    ),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Yes."),
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", "Same.\n******\nSame."),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": "Tell me a joke."},
        "Tell me a joke. Why did the chicken cross the road?",
        "Sure! Tell me a joke.",
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "at least"},
        "This is VERY IMPORTANT news.",
        "This is VERY normal news.",
    ),
    (
        "language:response_language",
        {"language": "de"},
        "Das ist eine kurze Antwort auf Deutsch, die ganz klar in deutscher Sprache geschrieben ist.",
        "This is a short answer written clearly in the English language for the checker.",
    ),
]


def test_all_25_ifeval_ids_registered_and_tested():
    assert len(IFEVAL_REGISTRY) == 25
    assert {case[0] for case in IFEVAL_CASES} == set(IFEVAL_REGISTRY)


@pytest.mark.parametrize(("iid", "kwargs", "good", "bad"), IFEVAL_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(IFEVAL_CASES)])
def test_ifeval_checker_pass_and_fail(iid, kwargs, good, bad):
    example = ex(iid, kwargs)
    assert strict(example, good) == [True]
    assert strict(example, bad) == [False]


def test_empty_response_follows_nothing():
    assert strict(ex("punctuation:no_comma"), "   ") == [False]
    assert loose(ex("punctuation:no_comma"), "") == [False]


# ---------------------------------------------------------------------------- IFBench checkers


@pytest.mark.parametrize(
    ("iid", "kwargs", "good", "bad"),
    [
        ("count:word_count_range", {"min_words": 3, "max_words": 5}, "one two three four", "one two"),
        ("ratio:stop_words", {"percentage": 30}, "Quick brown foxes jump over lazy dogs", "The cat and the dog of the house"),
        ("words:start_verb", {}, "Write the report today.", "The report is done."),
        ("format:no_whitespace", {}, "NoSpacesAtAll", "Has spaces"),
        (
            "count:keywords_multiple",
            {"keyword1": "a1", "keyword2": "b2", "keyword3": "c3", "keyword4": "d4", "keyword5": "e5"},
            "a1 b2 b2 c3 c3 c3 d4 d4 d4 d4 d4 e5 e5 e5 e5 e5 e5 e5",
            "a1 b2",
        ),
    ],
)
def test_ifbench_checkers_offline(iid, kwargs, good, bad):
    example = ex(iid, kwargs)
    assert strict(example, good) == [True]
    assert strict(example, bad) == [False]


def test_known_ids_cover_ifeval_and_ifbench():
    ids = known_instruction_ids()
    assert len(ids) == 25 + 58
    assert "punctuation:no_comma" in ids and "format:emoji" in ids


# ---------------------------------------------------------------------------- loose variants


def test_loose_variants_exact_list():
    assert loose_variants("Sure, here:\n*body*\nBye, all") == [
        "Sure, here:\n*body*\nBye, all",
        "Sure, here:\nbody\nBye, all",
        "*body*\nBye, all",
        "Sure, here:\n*body*",
        "*body*",
        "body\nBye, all",
        "Sure, here:\nbody",
        "body",
    ]


def test_loose_removes_first_line():
    example = ex("punctuation:no_comma")
    response = "Sure, here is the answer:\nNo commas in the real answer"
    assert strict(example, response) == [False]
    assert loose(example, response) == [True]


def test_loose_removes_last_line():
    example = ex("startend:end_checker", {"end_phrase": "Is there anything else I can help with?"})
    response = "Answer text. Is there anything else I can help with?\n(Generated by a model)"
    assert strict(example, response) == [False]
    assert loose(example, response) == [True]


def test_loose_removes_asterisks():
    example = ex("startend:quotation")
    assert strict(example, '**"A quoted answer."**') == [False]
    assert loose(example, '**"A quoted answer."**') == [True]
    # loose is not a free pass
    assert loose(example, "No quotes at all.\nStill none.") == [False]


# ---------------------------------------------------------------------------- metrics


def test_ifeval_metrics_by_hand():
    examples = [
        ex(["punctuation:no_comma", "detectable_format:title"], key="a"),
        ex(["startend:quotation"], key="b"),
        ex(["punctuation:no_comma", "length_constraints:number_words"], [{}, {"num_words": 3, "relation": "at least"}], key="c"),
    ]
    predictions = [
        "<<Title>>\nNo commas here",  # strict 2/2, loose 2/2
        '*"quoted"*',  # strict 0/1, loose 1/1 (asterisks removed)
        "Hi, there",  # strict 0/2 (comma, 2 words); loose: "Hi, there" -> 0/2
    ]
    metrics = ifeval_metrics(examples, predictions)
    assert metrics == {
        "prompt_strict": pytest.approx(1 / 3),
        "prompt_loose": pytest.approx(2 / 3),
        "instruction_strict": pytest.approx(2 / 5),
        "instruction_loose": pytest.approx(3 / 5),
    }
    with pytest.raises(ValueError, match="2 examples but 1 predictions"):
        ifeval_metrics(examples[:2], predictions[:1])


def test_task_score_is_prompt_strict():
    task = IFEvalTask()
    assert isinstance(task, TargetTask) and task.name == "ifeval"
    example = ex(["punctuation:no_comma", "detectable_format:title"])
    assert task.score(example, "<<T>> fine text") == 1.0
    assert task.score(example, "<<T>> fine, text") == 0.0
    assert task.score(example, "no title") == 0.0


# ---------------------------------------------------------------------------- data and loader


def test_default_ifbench_data_loads():
    path = default_ifbench_path()
    assert path.name == "IFBench_test.jsonl"
    task = get_task("ifbench")
    assert task.name == "ifbench" and task.max_new_tokens == 1024
    test = task.examples("test")
    assert len(test) == 294
    assert all(e.response == "" for e in test)
    assert all(None not in kw.values() for e in test for kw in e.meta["kwargs"])
    # items are named after the task (they were "ifeval-<key>" in reports of IFBench), keys kept
    assert all(e.uid == f"ifbench-{e.meta['key']}" for e in test) and len({e.uid for e in test}) == 294
    sample = task.examples("test", 5, seed=1)
    assert sample == task.examples("test", 5, seed=1) and len(sample) == 5
    with pytest.raises(ValueError, match="evaluation-only"):
        task.examples("train")
    with pytest.raises(ValueError, match="holds 294"):
        task.examples("test", 295)


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


GOOD = {"key": 1, "prompt": "Write a haiku without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}


def test_ifeval_format_file_and_train_split(tmp_path):
    rows = [
        GOOD,
        {
            "key": 2,
            "prompt": "Answer in under 5 words.",
            "instruction_id_list": ["length_constraints:number_words"],
            "kwargs": [{"num_words": 5, "relation": "less than"}],
            "response": "Short answer.",
        },
    ]
    path = _write(tmp_path / "input_data.jsonl", rows)
    task = IFEvalTask(path)
    assert [e.uid for e in task.examples("test")] == ["ifeval-1", "ifeval-2"]
    train = task.examples("train")
    assert [e.response for e in train] == ["Short answer."]
    assert task.score(train[0], train[0].response) == 1.0


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "invalid JSON"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "kwargs"}), "missing field 'kwargs'"),
        (
            json.dumps({**GOOD, "instruction_id_list": ["punctuation:no_semicolon"]}),
            "unknown instruction id 'punctuation:no_semicolon'",
        ),
        (json.dumps({**GOOD, "kwargs": [{}, {}]}), "1 instruction ids but 2 kwargs"),
        (
            json.dumps(
                {
                    **GOOD,
                    "instruction_id_list": ["length_constraints:number_words"],
                    "kwargs": [{"num_words": 5, "relation": "more than"}],
                }
            ),
            "relation must be one of",
        ),
        (json.dumps({**GOOD, "kwargs": [{"unexpected": 1}]}), "bad kwargs"),
        (json.dumps({**GOOD, "prompt": ""}), "'prompt' must be a non-empty string"),
        (json.dumps({**GOOD, "key": 7}) + "\n" + json.dumps({**GOOD, "key": 7}), "duplicate key 7"),
    ],
)
def test_loader_errors_name_file_and_line(tmp_path, bad_line, message):
    other = {**GOOD, "key": 99}
    path = _write(tmp_path / "broken.jsonl", [other, "", bad_line])
    with pytest.raises(ValueError) as info:
        load_ifeval_jsonl(path)
    text = str(info.value)
    assert "broken.jsonl:3" in text or "broken.jsonl:4" in text  # 1-based physical line
    assert message in text


def test_no_download_ever(tmp_path):
    """Import, load IFBench and score with every network path and nltk.download booby-trapped."""
    code = textwrap.dedent(
        """
        import socket, urllib.request
        def boom(*a, **k):
            raise AssertionError("network access attempted")
        socket.socket.connect = boom
        urllib.request.urlopen = boom
        import nltk, nltk.downloader
        nltk.download = boom
        nltk.downloader.urlopen = boom
        from anchored_learning.tasks.ifeval import ifbench_task, ifeval_metrics
        task = ifbench_task()
        exs = task.examples("test")
        m = ifeval_metrics(exs, ["Write this. It is short, really short.\\n* a\\n* b"] * len(exs))
        assert 0 <= m["instruction_loose"] <= 1
        print("ok", len(exs))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok 294"
    assert "nltk_data" not in out.stderr


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        # the example: punkt splits it (nupunkt, used before, kept one sentence)
        ("NO. NO.", ["NO.", "NO."]),
        # punkt's English abbreviations and ortho context: "Dr." and "p.m." do not end a sentence
        # before a lower-case or name token, "p.m." does before "He"
        ("Dr. Smith arrived at 5 p.m. He left.", ["Dr. Smith arrived at 5 p.m.", "He left."]),
        ("Is it? Yes! Fine.", ["Is it?", "Yes!", "Fine."]),
        ("", []),
    ],
)
def test_sentence_split_is_nltk_punkt(text, sentences):
    from anchored_learning.tasks.ifeval_checkers.text import count_sentences, split_sentences

    assert split_sentences(text) == sentences
    assert count_sentences(text) == len(sentences)


def test_sentence_split_equals_nltk_on_ifbench_sample_responses():
    """Same sentences and words as nltk.sent_tokenize / word_tokenize on IFBench's 294 responses.

    nltk's functions find the same punkt_tab parameters once :func:`split_sentences` has run
    (the user's data or llama-index-core's copy); nupunkt counted sentences differently on 76.
    """
    import importlib.util
    from pathlib import Path

    import nltk

    from anchored_learning.tasks.ifeval_checkers.text import split_sentences, word_tokenize

    split_sentences("Warm up. Then compare.")
    folder = Path(importlib.util.find_spec("ifbench").submodule_search_locations[0])
    lines = (folder / "data" / "sample_output.jsonl").read_text().splitlines()
    responses = [json.loads(line)["response"] for line in lines if line.strip()]
    assert len(responses) == 294
    for r in responses:
        assert split_sentences(r) == nltk.sent_tokenize(r)
        assert word_tokenize(r) == nltk.word_tokenize(r)
    assert sum(len(split_sentences(r)) for r in responses) > len(responses)


def test_missing_punkt_data_names_the_install(monkeypatch):
    import nltk.tokenize.punkt as punkt

    from anchored_learning.tasks.ifeval_checkers import text

    def missing(*_args, **_kwargs):
        raise LookupError("Resource punkt_tab not found.")

    monkeypatch.setattr(punkt, "PunktTokenizer", missing)
    monkeypatch.setattr(text, "_bundled_nltk_data", lambda: None)
    text._punkt.cache_clear()
    try:
        with pytest.raises(LookupError, match="pip install --no-deps llama-index-core==0.14.25"):
            text.split_sentences("One. Two.")
    finally:
        text._punkt.cache_clear()


def test_stopwords_are_nltks_english_list():
    from anchored_learning.tasks.ifeval_checkers.text import ENGLISH_STOPWORDS, _bundled_nltk_data

    folder = _bundled_nltk_data()
    if folder is None:
        pytest.skip("llama-index-core (NLTK data) not installed")
    nltk_list = (folder / "corpora" / "stopwords" / "english").read_text().split()
    assert len(nltk_list) == 198 and ENGLISH_STOPWORDS == frozenset(nltk_list)
