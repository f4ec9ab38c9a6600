"""Your own data: every file format and row form to the same rows, clear errors, scoring rules."""

from __future__ import annotations

import json

import pytest

from anchored_learning.data import as_prompt_completion, load_conversations, load_dataset_file, read_records
from anchored_learning.tasks.files import FileTask
from anchored_learning.tasks.rules import RULES, RuleOptions, choice_letter_of, get_rule, last_number, normalize_answer

SYSTEM = "You are terse."
#: three rows in three forms; each is the same conversation once read
FORMS = {
    "prompt_response": [
        {"prompt": "2+2?", "response": "4", "answer": "4"},
        {"prompt": "3+3?", "response": "6", "answer": "6"},
    ],
    "prompt_completion": [
        {"prompt": "2+2?", "completion": "4", "answer": "4"},
        {"prompt": "3+3?", "completion": "6", "answer": "6"},
    ],
    "messages": [
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "answer": "4"},
        {"messages": [{"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}], "answer": "6"},
    ],
}
EXPECTED = [
    {"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}]},
    {"prompt": [{"role": "user", "content": "3+3?"}], "completion": [{"role": "assistant", "content": "6"}]},
]


def _write(path, rows, fmt):
    import datasets

    ds = datasets.Dataset.from_list(rows)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "parquet":
        ds.to_parquet(str(path))
    elif fmt == "csv":
        ds.to_csv(str(path), index=False)
    elif fmt == "arrow":
        import pyarrow as pa

        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, ds.data.table.schema) as w:
            w.write_table(ds.data.table)
    elif fmt == "folder":
        datasets.DatasetDict({"train": ds, "test": ds.select([1])}).save_to_disk(str(path))
    return str(path)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "arrow", "csv", "folder"])
@pytest.mark.parametrize("form", list(FORMS))
def test_every_format_and_form_reads_to_the_same_rows(tmp_path, fmt, form):
    if fmt == "csv" and form == "messages":
        pytest.skip("CSV has no nested columns")
    src = _write(tmp_path / f"d.{fmt}", FORMS[form], fmt)
    convs = load_conversations(src, split="train")
    assert [c.as_row() for c in convs] == EXPECTED
    assert [c.columns["answer"] for c in convs] == ["4", "6"]  # other columns are kept for scoring
    assert load_dataset_file(src, split="train").to_list() == EXPECTED
    if fmt == "folder":  # the test split of a DatasetDict folder, by default and by name
        assert [c.as_row() for c in load_conversations(src, split="test")] == EXPECTED[1:]
        assert [c.as_row() for c in load_conversations(f"{src}:test")] == EXPECTED[1:]


def test_system_turns_and_multi_turn_train_the_final_assistant_turn(tmp_path):
    msgs = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    src = _write(tmp_path / "d.jsonl", [{"messages": msgs}], "jsonl")
    (c,) = load_conversations(src)
    assert c.prompt == msgs[:-1] and c.completion == msgs[-1:] and c.response == "4"
    # the file task keeps the whole conversation as the prompt and names the last user turn
    task = FileTask(test_data=src, score="exact_match")
    (ex,) = task.examples("test")
    assert ex.prompt == msgs[:-1] and ex.meta["prompt"] == "2+2?" and ex.answer == "4"
    assert task.score(ex, " 4 ") == 1.0 and task.score(ex, "5") == 0.0


def test_named_columns(tmp_path):
    src = _write(tmp_path / "d.jsonl", [{"q": "2+2?", "a": "four", "gold": "4"}], "jsonl")
    with pytest.raises(ValueError, match=r"d.jsonl:1: no prompt found \(columns found: \['a', 'gold', 'q'\]\).*--prompt_column"):
        load_conversations(src)
    (c,) = load_conversations(src, prompt_column="q", response_column="a")
    assert c.as_row() == {
        "prompt": [{"role": "user", "content": "2+2?"}],
        "completion": [{"role": "assistant", "content": "four"}],
    }
    assert c.columns == {"gold": "4"}
    with pytest.raises(ValueError, match=r"no column 'x' \(columns found"):
        load_conversations(src, prompt_column="x")
    task = FileTask(test_data=src, prompt_column="q", response_column="a", answer_column="gold", score="last_number")
    assert task.examples("test")[0].answer == "4"
    with pytest.raises(ValueError, match=r"d.jsonl:1: no answer column 'nope'"):
        FileTask(test_data=src, prompt_column="q", response_column="a", answer_column="nope")


@pytest.mark.parametrize(
    "line, msg",
    [
        ("[1, 2]", "each row must be an object with named columns, got list"),
        ("null", "each row must be an object with named columns, got NoneType"),
        ('{"prompt": 42, "response": "b"}', r"column 'prompt' must be a string or a list of turns, got int 42"),
        ('{"prompt": "a", "response": "  "}', "column 'response' is empty"),
        ('{"prompt": "a"}', r"no response column \(columns found: \['prompt'\]\)"),
        ('{"question": "a", "answer": "b"}', r"no prompt found \(columns found: \['answer', 'question'\]\)"),
        (
            '{"messages": [{"role": "user", "content": "a"}]}',
            "the conversation in 'messages' must end with a non-empty assistant turn",
        ),
        ('{"messages": [{"role": "bot", "content": "a"}]}', "turn 0 of 'messages' has role 'bot'"),
        ('{"messages": [{"role": "assistant", "content": "a"}]}', "the prompt has no user turn"),
        ('{"messages": "hello"}', "column 'messages' must be a non-empty list"),
        ("{not json", "not a JSON object"),
        ('{"prompt": "a", "response": "b"', r"not a JSON object \(Expecting ',' delimiter at column 32\)"),  # the line's end
    ],
)
def test_bad_rows_name_the_file_the_line_and_the_columns(tmp_path, line, msg):
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": "a", "response": "b"}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"d.jsonl:2: {msg}"):
        load_conversations(str(p))


def test_bad_sources(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"prompt": "a", "response": "b"}\n{"prompt": "caf\xe9", "response": "b"}\n')
    with pytest.raises(ValueError, match="d.jsonl:2: not UTF-8 text"):
        load_conversations(str(p))
    p.write_text("\n")
    with pytest.raises(ValueError, match="holds no rows"):
        load_conversations(str(p))
    with pytest.raises(ValueError, match="does not exist"):
        read_records(str(tmp_path / "missing.jsonl"))
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(ValueError, match=r"unknown data format '.txt'"):
        read_records(str(tmp_path / "d.txt"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="not one written by datasets' save_to_disk"):
        read_records(str(tmp_path / "folder"))
    src = _write(tmp_path / "dd", FORMS["prompt_response"], "folder")
    with pytest.raises(ValueError, match=r"holds the splits \['test', 'train'\], no split 'validation'"):
        read_records(src, split="validation")
    (tmp_path / "bad.json").write_text('{"a": 1, "b": 2}')
    with pytest.raises(ValueError, match="holds a list of row objects"):
        read_records(str(tmp_path / "bad.json"))
    (tmp_path / "trunc.json").write_text('[{"prompt": "a", "response": "b"},\n')
    with pytest.raises(ValueError, match=r"trunc.json:2: not valid JSON \(Expecting value at column 1\)"):
        read_records(str(tmp_path / "trunc.json"))
    with pytest.raises(ValueError, match="is a file: it has no splits; drop ':test'"):
        read_records(str(p) + ":test")
    one = tmp_path / "one"
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(FORMS["prompt_response"])}).save_to_disk(str(one))
    with pytest.raises(ValueError, match=r"holds the splits \['train'\], no split 'test'"):
        read_records(f"{one}:test")
    assert len(read_records(str(one), split="test")) == 2  # a default split falls back to the only one there is


def test_csv_and_bom_details(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes('\ufeffprompt,response\n"a, with comma",b\nc,d,e\n'.encode())  # Excel's byte-order mark
    with pytest.raises(ValueError, match=r"d.csv:3: 3 cells, the header has 2; quote cells that hold commas"):
        read_records(str(p))
    p.write_bytes('\ufeffprompt,response\n"a, with comma","b\nover two lines"\nc,d\n'.encode())
    rows = read_records(str(p))
    assert [w.rsplit(":", 1)[1] for w, _ in rows] == ["2", "4"]  # a row is named by its first line
    assert rows[0][1] == {"prompt": "a, with comma", "response": "b\nover two lines"}
    j = tmp_path / "d.jsonl"
    j.write_bytes('\ufeff{"prompt": "a", "response": "b"}\n'.encode())
    assert read_records(str(j))[0][1] == {"prompt": "a", "response": "b"}


def test_library_dataset_with_response_or_messages_trains_on_the_response(tmp_path):
    """The README's library path: load_dataset('json') of the CLI's prompt/response file."""
    import datasets

    from anchored_learning import AnchoredSFTConfig, AnchoredSFTTrainer
    from anchored_learning.testing import tiny_llama

    for form in ("prompt_response", "messages"):
        src = _write(tmp_path / f"{form}.jsonl", FORMS[form], "jsonl")
        ds = datasets.load_dataset("json", data_files=src)["train"]
        conv = as_prompt_completion(ds)
        assert {"prompt", "completion"} <= set(conv.column_names)
        model, tok = tiny_llama()
        args = AnchoredSFTConfig(output_dir=str(tmp_path / form), method="sft", report_to="none", max_steps=1)
        trainer = AnchoredSFTTrainer(model, args=args, train_dataset=ds, processing_class=tok)
        # the loss covers the completion only: the label tokens are the response "4"/"6" and EOS
        labels = [[t for t in ex if t != -100] for ex in trainer.train_dataset["labels"]]
        decoded = [tok.decode(ids[:1]) for ids in labels]
        assert decoded == ["4", "6"], decoded


# ------------------------------------------------------------------------------------------ rules


def test_normalize_and_extractors():
    assert normalize_answer("  The Eiffel-Tower!  ") == "eiffeltower"
    assert normalize_answer("An apple, a day") == "apple day"
    assert last_number("3 x 4 = 12; total: 1,234.5 euros") == 1234.5
    assert last_number("costs $12 and -3") == -3.0
    assert last_number(".5 of it") == 0.5
    assert last_number("no digits") is None
    # a hyphen between numbers is no minus sign; thousands separators only in groups of three
    assert [last_number(t) for t in ("range 3-5", "on 2024-01-05", "1,2,3", "x -7", "1,234,567")] == [5, 5, 3, -7, 1234567]
    assert [choice_letter_of(t) for t in ("B", "(c) because", "**D**", "The answer is: E.", "A plant grows", "C and D")] == [
        "B",
        "C",
        "D",
        "E",
        None,
        None,
    ]


@pytest.mark.parametrize(
    "rule, prediction, reference, expected",
    [
        ("exact_match", " Paris\n", "Paris", 1.0),
        ("exact_match", "paris", "Paris", 0.0),
        ("normalized_match", "The Paris.", "paris", 1.0),
        ("normalized_match", "Paris, France", "Paris", 0.0),
        ("last_number", "so 3 + 4 = 7", "7", 1.0),
        ("last_number", "Total: 1,200 euros", "The total is 1200.", 1.0),
        ("last_number", "7.0000001", 7, 1.0),
        ("last_number", "7.01", 7, 0.0),
        ("last_number", "seven", "7", 0.0),
        ("choice_letter", "Answer: C", "C", 1.0),
        ("choice_letter", "B. the second", "C", 0.0),
        ("choice_letter", "(c)", "The answer is C.", 1.0),
    ],
)
def test_rules_closed_cases(rule, prediction, reference, expected):
    assert get_rule(rule)(prediction, reference, {}) == expected


def test_regex_rule_and_tolerance():
    rule = get_rule("regex", RuleOptions(answer_regex=r"Answer:\s*(\w+)"))
    assert rule("think... Answer: no. Answer: Yes", "yes", {}) == 1.0  # the last match, normalised
    assert rule("Answer: Yes", "Reasoning. Answer: yes", {}) == 1.0  # the reference goes through the regex too
    assert rule("yes", "yes", {}) == 0.0  # no match in the prediction
    either = get_rule("regex", RuleOptions(answer_regex=r"Answer: (\w+)|Final: (\w+)"))
    assert either("Final: blue", "blue", {}) == 1.0  # the group that matched, not group 1
    loose = get_rule("last_number", RuleOptions(score_tolerance=0.05))
    assert loose("104", "100", {}) == 1.0 and loose("106", "100", {}) == 0.0
    with pytest.raises(ValueError, match="needs --answer_regex"):
        get_rule("regex")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        get_rule("regex", RuleOptions(answer_regex="(unclosed"))
    with pytest.raises(ValueError, match="score_tolerance must be"):
        get_rule("last_number", RuleOptions(score_tolerance=-1))


def test_ifeval_rule_uses_the_rows_instructions(tmp_path):
    rows = [
        {
            "prompt": "Write about cats without any commas.",
            "response": "Cats are fine.",
            "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}],
        }
    ]
    src = _write(tmp_path / "t.jsonl", rows, "jsonl")
    task = FileTask(test_data=src, score="ifeval")
    (ex,) = task.examples("test")
    assert task.score(ex, "Cats purr.") == 1.0 and task.score(ex, "Cats, dogs.") == 0.0
    src2 = _write(tmp_path / "t2.jsonl", [{"prompt": "a", "response": "b"}], "jsonl")
    with pytest.raises(ValueError, match=r"t2.jsonl:1: the ifeval rule needs the columns \['instruction_id_list', 'kwargs'\]"):
        FileTask(test_data=src2, score="ifeval")


def test_user_rule_module_function(tmp_path, monkeypatch):
    (tmp_path / "myrules.py").write_text(
        "import math\n"
        "def starts(prediction, reference):\n    return prediction.startswith(reference)\n"
        "def by_row(prediction, reference, row):\n    return float(row['bonus'] in prediction)\n"
        "def keyword_row(prediction, reference, *, row=None):\n    return 1.0\n"
        "def five(prediction, reference):\n    return 5\n"
        "def none(prediction, reference):\n    return None\n"
        "def text(prediction, reference):\n    return '0.5'\n"
        "def nan(prediction, reference):\n    return math.nan\n"
        "NOT_CALLABLE = 3\n"
    )
    (tmp_path / "broken.py").write_text("def f(:\n")
    monkeypatch.chdir(tmp_path)  # a rules module in the current folder is found without PYTHONPATH
    assert get_rule("myrules:starts")("yes sir", "yes", {}) == 1.0
    assert get_rule("myrules:by_row")("with x", "", {"bonus": "x"}) == 1.0
    assert get_rule("myrules:keyword_row")("a", "b", {"bonus": "x"}) == 1.0  # a keyword-only row is not passed
    for bad in ("five", "none", "text", "nan"):
        with pytest.raises(ValueError, match=f"scoring rule 'myrules:{bad}' returned .*; it must return a bool or a number in"):
            get_rule(f"myrules:{bad}")("a", "b", {})
    with pytest.raises(ValueError, match="is not callable"):
        get_rule("myrules:NOT_CALLABLE")
    with pytest.raises(ValueError, match="module 'myrules' .* has no 'missing'"):
        get_rule("myrules:missing")
    with pytest.raises(ValueError, match="importing 'broken' raised SyntaxError"):
        get_rule("broken:f")
    with pytest.raises(ValueError, match="cannot load scoring rule 'nomodule:f'"):
        get_rule("nomodule:f")
    with pytest.raises(ValueError, match=rf"unknown scoring rule 'fuzzy'; choose one of {', '.join(RULES)}"):
        get_rule("fuzzy")


def test_the_rule_is_tried_on_every_gold_response_before_any_model_runs(tmp_path, monkeypatch):
    """A rule that fails on a row fails when the task is built, naming the row; a rule (or answer
    column) that does not give the gold responses full marks is warned about."""
    (tmp_path / "r.py").write_text(
        "def picky(prediction, reference):\n    if prediction == 'b2':\n        raise KeyError('b2')\n    return 1\n"
    )
    monkeypatch.chdir(tmp_path)
    src = _write(tmp_path / "t.jsonl", [{"prompt": "a", "response": "b1"}, {"prompt": "a2", "response": "b2"}], "jsonl")
    with pytest.raises(
        ValueError, match=r"t.jsonl:2: the scoring rule 'r:picky' fails on this row's gold response \(KeyError: 'b2'\)"
    ):
        FileTask(test_data=src, score="r:picky")
    ok = FileTask(test_data=src, score="exact_match")
    assert ok.gold_score == 1.0 and not ok.notes
    numbers = FileTask(test_data=src, score="last_number")  # "b1" and "b2" hold the numbers 1 and 2
    assert numbers.gold_score == 1.0
    bad = _write(tmp_path / "u.jsonl", [{"prompt": "a", "response": "seven", "answer": "7"}], "jsonl")
    assert any("mean score of 0.00" in n for n in FileTask(test_data=bad, score="exact_match").notes)
    # an IFEval row whose instruction does not exist fails up front, naming the row
    ife = _write(
        tmp_path / "i.jsonl", [{"prompt": "a", "response": "b", "instruction_id_list": ["nope:x"], "kwargs": [{}]}], "jsonl"
    )
    with pytest.raises(ValueError, match=r"i.jsonl:1: the scoring rule 'ifeval' fails on this row's gold response"):
        FileTask(test_data=ife, score="ifeval")


def test_answers_null_or_only_in_the_test_file(tmp_path):
    train = _write(tmp_path / "train.jsonl", [{"prompt": f"q{i}", "response": f"{i}"} for i in range(3)], "jsonl")
    test = _write(tmp_path / "test.jsonl", [{"prompt": "q9", "response": "nine", "gold": "9"}], "jsonl")
    task = FileTask(data=train, test_data=test, answer_column="gold", score="last_number")  # no 'gold' in training rows
    assert task.examples("test")[0].answer == "9" and len(task.examples("train")) == 3
    partial = _write(
        tmp_path / "p.jsonl", [{"prompt": "a", "response": "1", "answer": "1"}, {"prompt": "b", "response": "2"}], "jsonl"
    )
    with pytest.raises(ValueError, match=r"p.jsonl:2: no answer column 'answer' .*other test rows have it"):
        FileTask(test_data=partial)
    null = _write(tmp_path / "null.jsonl", [{"prompt": "a", "response": "b", "answer": None}], "jsonl")
    with pytest.raises(ValueError, match=r"null.jsonl:1: the answer column 'answer' is empty"):
        FileTask(test_data=null)
    same = FileTask(data=train, test_data=train, score="exact_match")
    assert any("3 of the 3 test prompts also occur in the training rows" in n for n in same.notes)


def test_file_task_holds_out_a_fixed_split_when_no_test_file(tmp_path):
    rows = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(10)]
    src = _write(tmp_path / "d.jsonl", rows, "jsonl")
    task = FileTask(data=src, score="exact_match", test_fraction=0.3)
    train, test = task.examples("train"), task.examples("test")
    assert len(train) == 7 and len(test) == 3
    assert {e.prompt for e in train}.isdisjoint({e.prompt for e in test})  # never trained on the test rows
    assert {e.prompt for e in train} | {e.prompt for e in test} == {f"q{i}" for i in range(10)}
    assert any("held out" in n for n in task.notes)
    assert [e.prompt for e in FileTask(data=src, test_fraction=0.3).examples("test")] == [e.prompt for e in test]
    assert task.examples("test", 2) == test[:2]
    with pytest.raises(ValueError, match="4 test rows asked for, the file task has 3"):
        task.examples("test", 4)
    one = _write(tmp_path / "one.jsonl", rows[:1], "jsonl")
    with pytest.raises(ValueError, match="too few to hold out a test set; give --test_data"):
        FileTask(data=one)


def test_file_task_training_rows_score_against_their_answer_column(tmp_path):
    """sft_self_generated scores a sample of a training prompt with the task's rule against the row's
    answer column when it has one (else its gold response)."""
    train = [{"prompt": "2+2?", "response": "It is 4.", "answer": "4"}, {"prompt": "3+3?", "response": "6"}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "test.jsonl").write_text(json.dumps({"prompt": "1+1?", "response": "2", "answer": "2"}) + "\n")
    task = FileTask(str(tmp_path / "train.jsonl"), str(tmp_path / "test.jsonl"), score="exact_match")
    a, b = task.examples("train")
    assert (a.answer, b.answer) == ("4", "6") and a.response == "It is 4."
    assert task.score(a, "4") == 1.0 and task.score(a, "It is 4.") == 0.0 and task.score(b, "6") == 1.0
