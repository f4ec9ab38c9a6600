"""The generated IFEval training target: gold responses that follow their instructions, disjoint
splits, unseen instruction combinations at test time, determinism."""

from __future__ import annotations

import random

import pytest

from anchored_learning.tasks.ifeval import IFEvalTask, check_instructions
from anchored_learning.tasks.ifeval_checkers import IFEVAL_REGISTRY
from anchored_learning.tasks.ifeval_generator import (
    CONSTRAINTS,
    _texts,
    generate_ifeval_examples,
    is_test_combination,
    text_split,
)


@pytest.fixture(scope="module")
def train():
    return generate_ifeval_examples("train", 400, seed=0)


@pytest.fixture(scope="module")
def test():
    return generate_ifeval_examples("test", 150, seed=0)


def test_every_gold_response_follows_every_instruction(train, test):
    for ex in train + test:
        assert all(check_instructions(ex, ex.response)), ex.uid
        assert all(check_instructions(ex, ex.response, loose=True)), ex.uid


def test_gold_responses_break_the_instructions_they_do_not_carry(train):
    """The checkers are not trivially satisfied: a plain copy of the passage fails the layout,
    case and wrapping instructions the gold response meets."""
    failed = 0
    for ex in train:
        ids = ex.meta["instruction_id_list"]
        if any(
            i.startswith(("change_case", "detectable_format:json", "startend:quotation", "detectable_format:title")) for i in ids
        ):
            plain = ex.prompt.split("\n\n")[1] if "\n\n" in ex.prompt else ""
            failed += not all(check_instructions(ex, plain))
    assert failed > 50


def test_instruction_ids_and_kwargs_are_ifeval_ones(train):
    assert {c.id for c in CONSTRAINTS} <= set(IFEVAL_REGISTRY)
    seen = {i for ex in train for i in ex.meta["instruction_id_list"]}
    assert seen == {c.id for c in CONSTRAINTS}  # every instruction is trained
    for ex in train:
        assert len(ex.meta["instruction_id_list"]) == len(ex.meta["kwargs"]) == len(set(ex.meta["instruction_id_list"]))
        assert 1 <= len(ex.meta["instruction_id_list"]) <= 3


def test_splits_share_no_text_and_test_combinations_are_unseen(train, test):
    pools = _texts()
    for kind in ("sentences", "questions"):
        a = {str(x) for x in pools["train"][kind]}
        b = {str(x) for x in pools["test"][kind]}
        assert a and b and a.isdisjoint(b)
    assert all(text_split(s) == "test" for s in pools["test"]["sentences"])
    train_combos = {tuple(sorted(ex.meta["instruction_id_list"])) for ex in train}
    test_combos = {tuple(sorted(ex.meta["instruction_id_list"])) for ex in test}
    assert all(len(c) >= 2 and is_test_combination(c) for c in test_combos)
    assert not any(is_test_combination(c) for c in train_combos)
    assert train_combos.isdisjoint(test_combos)
    singles = {i for c in train_combos for i in c}
    assert {i for c in test_combos for i in c} <= singles  # each test instruction was trained alone or combined


def test_is_test_combination_ignores_order():
    rng = random.Random(0)
    ids = [c.id for c in CONSTRAINTS]
    for _ in range(50):
        combo = rng.sample(ids, 2)
        assert is_test_combination(combo) == is_test_combination(combo[::-1])
    assert not is_test_combination([ids[0]])
    share = sum(is_test_combination(c) for c in [(a, b) for a in ids for b in ids if a < b])
    assert 0.1 < share / (len(ids) * (len(ids) - 1) / 2) < 0.3  # about one in five


def test_deterministic_and_prefix_free_of_duplicates():
    a = generate_ifeval_examples("train", 30, seed=5)
    assert a == generate_ifeval_examples("train", 30, seed=5)
    assert a != generate_ifeval_examples("train", 30, seed=6)
    assert len({e.prompt for e in a}) == 30 and len({e.uid for e in a}) == 30


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown split"):
        generate_ifeval_examples("dev", 1)
    with pytest.raises(ValueError, match=">= 0"):
        generate_ifeval_examples("train", -1)


def test_task_serves_generated_splits_and_scores_them():
    task = IFEvalTask()
    train = task.examples("train", 8, seed=1)
    test = task.examples("test", 8, seed=1)
    assert all(e.meta["source"] == "generated" for e in train + test)
    assert task.max_new_tokens == 512
    assert [task.score(e, e.response) for e in test] == [1.0] * 8
    assert sum(task.score(e, "") for e in test) == 0.0
