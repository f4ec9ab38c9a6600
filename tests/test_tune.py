"""``anchored tune``: the validation / test split, the search against a brute-force grid (a closed-form
stand-in for training), budget and resume, and one real search on a tiny random model."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from anchored_learning.evaluation.suites import _pick, subset_indices, task_examples
from anchored_learning.experiment import tune as T
from anchored_learning.experiment import tune_config, tune_report, tune_study
from anchored_learning.experiment.tune import tune
from anchored_learning.experiment.tune_config import TuneConfig
from anchored_learning.tables import pareto_frontier
from anchored_learning.testing import save_tiny_llama

HELDOUT = ("arc_easy", "heldout_nll")


# ------------------------------------------------------------------------------ the split


def test_validation_items_are_the_next_ones_of_the_same_seeded_order_and_disjoint():
    for n, n_test, n_val, seed in [(50, 10, 10, 0), (30, 20, 20, 3), (7, 7, 5, 1)]:
        test = subset_indices(n, n_test, seed)
        val = _pick(n, n_val, seed, lambda i: f"u{i}", frozenset(f"u{i}" for i in test))
        assert not set(val) & set(test)
        assert val == subset_indices(n, n_test + n_val, seed)[n_test:]  # the items after the test prefix
    # nothing excluded: exactly the seeded subset as before
    assert _pick(40, 5, 2, lambda i: f"u{i}", frozenset()) == subset_indices(40, 5, 2)


def test_generated_task_validation_examples_are_not_test_examples():
    from anchored_learning.tasks.registry import get_task

    task = get_task("date_iso")
    test = task_examples(task, 8, 0)
    val = task_examples(task, 8, 0, frozenset(e.uid for e in test))
    assert len(val) == 8 and not {e.uid for e in val} & {e.uid for e in test}
    assert not {e.prompt for e in val} & {e.prompt for e in test}
    assert [e.uid for e in val] == [e.uid for e in task_examples(task, 16, 0)][8:]


# ------------------------------------------------------------------------------ a closed-form search


def _suite(value: float, n: int = 6, hib: bool = True) -> dict:
    return {"items": [float(value)] * n, "uids": [f"i{k}" for k in range(n)], "higher_is_better": hib, "primary": value}


def _eval(gain: float, deg: float) -> dict:
    """An evaluation whose gain (points) over :func:`_eval(0, 0)` and mean degradation (%) over the
    held-out members are exactly ``gain`` and ``deg``."""
    return {
        "meta": {"precision": "float32"},
        "results": {
            "igsm": _suite(0.2 + gain / 100),
            "arc_easy": _suite(0.5 * (1 - deg / 100)),
            "heldout_nll": _suite(2.0 * (1 + deg / 100), hib=False),
        },
    }


def closed_form(method: str, o: dict) -> tuple[float, float]:
    """(gain, degradation) of a variant: a made-up function of its hyper-parameters."""
    if method == "sft":
        lr, ep = o["learning_rate"], o["num_train_epochs"]
        return 10 * np.log10(lr / 1e-6) + 4 * ep, 3 * np.log10(lr / 1e-6) ** 2 + 2 * ep
    if method == "wise_ft":
        return 30 * o["weight"], 20 * o["weight"] ** 2
    if method == "anchored":
        return 25 + 5 * o["anchor_alpha"], 8 + 10 * o["anchor_alpha"] ** 2
    raise AssertionError(method)


SFT_REFERENCE = (32.0, 25.0)  # the reference model's point


class FakeRunner:
    """The trial runner with training and evaluation replaced by :func:`closed_form`."""

    calls: list = []
    delay_s = 0.0

    def __init__(self, cfg, log):
        self.cfg = cfg
        self.rungs = [T.CHEAP, T.FULL] if cfg.cheap_fraction < 1 else [T.FULL]

    def prepare(self):
        self.split = {"igsm": {"test": 6, "validation": 6}}
        self.val = {r: {"base": _eval(0, 0), "sft": _eval(*SFT_REFERENCE)} for r in self.rungs}
        return self.val

    def validate(self, label, method, overrides, rung):
        FakeRunner.calls.append((label, rung))
        time.sleep(self.delay_s)
        return _eval(*closed_form(method, overrides))

    def test(self, variants):
        return {"base": _eval(0, 0), "sft": _eval(*SFT_REFERENCE), **{lab: _eval(*closed_form(m, o)) for lab, m, o in variants}}


SPACE = {
    "sft": {"learning_rate": {"choices": [1e-5, 1e-4, 3e-4]}, "num_train_epochs": {"choices": [1, 3]}},
    "wise_ft": {"weight": {"choices": [0.25, 0.5, 0.75]}},
    "anchored": {"anchor_alpha": {"choices": [0.25, 0.75]}},
}


def _cfg(tmp_path, **kw) -> TuneConfig:
    settings = dict(
        preset="quick",
        output_dir=str(tmp_path / "tune"),
        heldout=HELDOUT,
        methods=["sft", "wise_ft", "anchored"],
        search_space=SPACE,
        n_boot=50,
    )
    settings.update(kw)
    return TuneConfig(**settings)


def _grid(cfg) -> dict[str, tuple[float, float]]:
    """Every point of SPACE by brute force, and the reference: label -> (gain, degradation)."""
    import itertools

    cfg = cfg.resolved()
    points = {"sft": SFT_REFERENCE}
    for method, fields in SPACE.items():
        names = list(fields)
        for combo in itertools.product(*(fields[f]["choices"] for f in names)):
            label, m, o = tune_config.variant_of(cfg, method, dict(zip(names, combo)))
            points[label] = closed_form(m, o)
    return points


def test_pareto_set_matches_a_brute_force_grid(tmp_path):
    FakeRunner.calls = []
    cfg = _cfg(tmp_path, sampler="bruteforce", n_trials=100, cheap_fraction=0.5, max_degradation=20)
    res = tune(cfg, console_log=lambda s: None, runner_cls=FakeRunner)
    grid = _grid(cfg)
    labels = list(grid)
    brute = {labels[i] for i in pareto_frontier([(grid[lab][1], grid[lab][0]) for lab in labels])}
    assert set(res["pareto"]) == brute
    # the brute-force sampler tried every point once, then stopped, far within the trial budget
    tried = [t["label"] for t in res["trials"]]
    assert sorted(tried) == sorted(lab for lab in labels if lab != "sft")
    assert res["n_trials"] == len(grid) - 1 < 100
    # cheap trials first: some were pruned on the cheap rung, never scored on the whole validation split,
    # and each of them is dominated
    pruned = [t["label"] for t in res["trials"] if t["state"] == "PRUNED"]
    assert pruned and res["n_pruned"] == len(pruned)
    assert not {lab for lab, rung in FakeRunner.calls if rung == T.FULL} & set(pruned)
    assert not set(pruned) & brute
    # the recommendation: the highest gain within 20% degradation, on validation; reported on test
    ok = {lab: g for lab, (g, d) in grid.items() if d <= 20}
    rec = res["recommended"]
    assert rec["label"] == max(ok, key=ok.get)
    assert rec["met_with_confidence"] is True and "with confidence" in rec["text"]
    assert rec["test"]["gain"]["value"] == pytest.approx(grid[rec["label"]][0])
    # the test report: the frontier's statistics over the reference, SFT's frontier, the Pareto set
    test_labels = set(res["test"]["labels"])
    assert {"sft", rec["label"]} | brute <= test_labels
    point = {p["label"]: p for p in res["test"]["points"]}
    for lab in test_labels:
        assert point[lab]["gain"]["value"] == pytest.approx(grid[lab][0])
        assert point[lab]["degradation"]["value"] == pytest.approx(grid[lab][1])
        assert (point[lab]["degradation_at_matched_gain"] is None) == (lab.split("(")[0] == "sft")
    out = tmp_path / "tune"
    for f in ("tune.json", "tune.md", "frontier.png", "study.db", "config.json"):
        assert (out / f).exists(), f
    assert f"optuna-dashboard sqlite:///{(out / 'study.db').resolve()}" in (out / "tune.md").read_text()
    assert json.loads((out / "tune.json").read_text())["wall_time_s"] > 0
    assert "No SFT trial is on SFT's validation frontier" not in (out / "tune.md").read_text()


def test_objective_member_and_a_constraint_no_trial_meets(tmp_path):
    cfg = _cfg(tmp_path, sampler="bruteforce", n_trials=100, cheap_fraction=1.0, objective_member="arc_easy", min_retention=99.9)
    res = tune(cfg, console_log=lambda s: None, runner_cls=FakeRunner)
    assert res["objectives"][1] == "retention of arc_easy (%)"
    assert res["recommended"] is None
    assert "No trial met the constraint" in (tmp_path / "tune" / "tune.md").read_text()
    assert res["n_pruned"] == 0  # cheap_fraction 1: no promotion step
    # (gain, retention) are the trial values: arc_easy's drop is the closed form's degradation
    t = next(t for t in res["trials"] if t["label"] == "wise_ft(w=0.5)")
    assert t["values"] == pytest.approx([15.0, 95.0])
    with pytest.raises(ValueError, match="objective_member 'date_iso' is not a held-out member"):
        _cfg(tmp_path, objective_member="date_iso").resolved()


def test_a_search_without_sft_trials_says_its_matched_gain_column_is_against_the_reference_alone(tmp_path):
    res = tune(
        _cfg(tmp_path, sampler="bruteforce", n_trials=100, methods=["wise_ft"]), console_log=lambda s: None, runner_cls=FakeRunner
    )
    assert res["sft_frontier"] == ["sft"] and res["pareto"]  # the reference alone
    assert "No SFT trial is on SFT's validation frontier" in (tmp_path / "tune" / "tune.md").read_text()


def test_the_first_trials_take_the_methods_in_turn_and_a_resume_keeps_them(tmp_path):
    FakeRunner.calls = []
    cfg = _cfg(tmp_path, sampler="tpe", n_trials=7, cheap_fraction=1.0)
    first = tune(cfg, console_log=lambda s: None, runner_cls=FakeRunner)
    methods = [t["params"]["method"] for t in first["trials"]]
    assert methods == ["sft", "wise_ft", "anchored"] * 2 + ["sft"]  # cfg.methods in turn
    more = tune(TuneConfig(**{**cfg.__dict__, "n_trials": 12}), console_log=lambda s: None, runner_cls=FakeRunner)
    assert [t["params"]["method"] for t in more["trials"]][:7] == methods  # kept, not queued again
    assert [t["params"]["method"] for t in more["trials"]][7:10] == ["wise_ft", "anchored", "sft"]  # the turn goes on
    assert more["n_trials"] == len(more["trials"]) == 12  # nothing left waiting in the storage


def test_constraint_verdict_flags_an_interval_that_crosses_the_limit():
    cfg = TuneConfig(max_degradation=2.0)
    assert tune_report._constraint_verdict(cfg, {"value": 1.0, "ci": [0.2, 1.8]})["met_with_confidence"]
    v = tune_report._constraint_verdict(cfg, {"value": 1.5, "ci": [0.5, 3.1]})
    assert v["met"] and not v["met_with_confidence"] and "NOT met with confidence" in v["text"]
    v = tune_report._constraint_verdict(cfg, {"value": 2.5, "ci": [1.5, 3.1]})
    assert not v["met"] and "NOT met on the test split" in v["text"]
    v = tune_report._constraint_verdict(TuneConfig(min_retention=95), {"value": 4.0, "ci": [3.0, 6.0]})
    assert v["met"] and not v["met_with_confidence"]


def test_promotion_keeps_the_front_and_prunes_points_behind_a_share():
    assert T.nondominated_layers([(1, 1), (2, 2), (2, 0), (3, 0)]) == [0, 0, 1, 2]
    assert T.promoted([(5.0, 0.0)], 3)  # the first trial
    assert T.promoted([(1, 1), (2, 2), (0.5, 0.5)], 3)  # on the front
    assert not T.promoted([(1, 1), (2, 2), (3, 0)], 3)  # behind 2 of 3 points (>= ceil(3/3))
    assert T.promoted([(1, 1), (2, 2), (3, 0)], 1.01)  # eta near 1: almost every trial goes on
    assert T.promoted([(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 0)], 1.1)  # behind 1 of 6 < ceil(6/1.1)


def test_budget_resume_and_a_killed_trial(tmp_path):
    import optuna

    FakeRunner.calls = []
    space = {"sft": {"learning_rate": {"low": 1e-5, "high": 3e-4, "log": True}, "num_train_epochs": {"low": 1, "high": 3}}}
    cfg = _cfg(tmp_path, methods=["sft"], search_space=space, sampler="random", n_trials=3, cheap_fraction=1.0)
    first = tune(cfg, console_log=lambda s: None, runner_cls=FakeRunner)
    assert first["n_trials"] == 3 and len(FakeRunner.calls) == 3
    labels = [t["label"] for t in first["trials"]]
    # the same budget again: nothing runs
    FakeRunner.calls = []
    assert tune(cfg, console_log=lambda s: None, runner_cls=FakeRunner)["n_trials"] == 3 and FakeRunner.calls == []
    # a search killed during a trial leaves it running in the storage
    study = optuna.load_study(study_name=tune_study.STUDY_NAME, storage=tune_study.storage_url(tmp_path / "tune"))
    dist = {
        "method": optuna.distributions.CategoricalDistribution(["sft"]),
        "sft.learning_rate": optuna.distributions.FloatDistribution(1e-5, 3e-4, log=True),
        "sft.num_train_epochs": optuna.distributions.IntDistribution(1, 3),
    }
    killed = study.ask(dist)
    killed.set_user_attr("label", "killed")
    # a larger budget continues: the killed trial is tried again with its values, then new ones; old
    # trials are kept, not run again
    logs = []
    more = tune(TuneConfig(**{**cfg.__dict__, "n_trials": 5}), console_log=logs.append, runner_cls=FakeRunner)
    assert more["n_trials"] == 5
    assert any("was killed: queued again with the same values" in s for s in logs)
    states = {t["number"]: t["state"] for t in more["trials"]}
    assert states[killed.number] == "FAIL"
    again = next(t for t in more["trials"] if t["number"] > killed.number)
    assert again["params"] == killed.params and again["state"] == "COMPLETE"
    assert len(FakeRunner.calls) == 2 and not {lab for lab, _ in FakeRunner.calls} & set(labels)
    # the wall-time budget: no trial starts once it has passed (the running one finishes)
    FakeRunner.calls, FakeRunner.delay_s = [], 0.3
    try:
        timed = tune(
            TuneConfig(**{**cfg.__dict__, "n_trials": 50, "timeout_s": 0.1}), console_log=lambda s: None, runner_cls=FakeRunner
        )
    finally:
        FakeRunner.delay_s = 0.0
    assert timed["n_trials"] == 6 and len(FakeRunner.calls) == 1
    # settings that decide the trials' numbers cannot change on a resume
    with pytest.raises(ValueError, match="cheap_fraction"):
        tune(TuneConfig(**{**cfg.__dict__, "cheap_fraction": 0.5}), console_log=lambda s: None, runner_cls=FakeRunner)


def test_bad_search_spaces_fail_before_any_work(tmp_path):
    for space, msg in [
        ({"sft": {"learning_rat": {"low": 1e-5, "high": 1e-4}}}, "not a field a run may set"),
        ({"sft": {"learning_rate": {"low": 1e-4, "high": 1e-5}}}, "low must be a number below high"),
        ({"sft": {"learning_rate": {"low": 0.0, "high": 1e-4, "log": True}}}, "needs low > 0"),
        ({"wise_ft": {"alpha": {"low": 0.0, "high": 1.0}}}, "takes one field, 'weight'"),
        ({"anchored": {"anchor_alpha": {"low": 0.5, "high": 5.0}}}, "search_space.anchored"),
    ]:
        with pytest.raises(ValueError, match=msg):
            _cfg(tmp_path, methods=list(space), search_space=space).resolved()
    with pytest.raises(ValueError, match="unknown entries"):
        _cfg(tmp_path, methods=["sgd"]).resolved()
    with pytest.raises(ValueError, match="drop --sweep"):
        _cfg(tmp_path, sweep=["sft.learning_rate=1e-4"]).resolved()
    # the bundled space is valid and fills the methods' spaces a user's space leaves out
    cfg = _cfg(tmp_path, search_space={"sft": {"learning_rate": {"choices": [1e-4]}}}).resolved()
    assert cfg.search_space["sft"] == {"learning_rate": {"choices": [1e-4]}}
    assert cfg.search_space["anchored"] == tune_config.tune_recipe()["search_space"]["anchored"]
    TuneConfig(preset="quick", methods=list(tune_config.tune_recipe()["search_space"])).resolved()


def test_tune_help_and_a_config_file_with_a_search_space_section(tmp_path, capsys):
    import typer

    from anchored_learning.arguments import parse_config_args

    with pytest.raises(typer.Exit):
        parse_config_args(["--help"], (TuneConfig,), prog="anchored tune", description="")
    text = capsys.readouterr().out
    for flag in ("--n_trials", "--timeout_s", "--objective_member", "--max_degradation", "--min_retention", "--search_space"):
        assert flag in text
    recipe = tmp_path / "t.yaml"
    recipe.write_text("methods: [sft]\nsearch_space:\n  sft:\n    learning_rate: {low: 1.0e-5, high: 1.0e-4, log: true}\n")
    (cfg,) = parse_config_args(["--config", str(recipe), "--n_trials", "4"], (TuneConfig,), prog="anchored tune", description="")
    assert cfg.n_trials == 4 and cfg.methods == ["sft"]
    assert cfg.search_space == {"sft": {"learning_rate": {"low": 1e-5, "high": 1e-4, "log": True}}}


# ------------------------------------------------------------------------------ a real search


def test_tune_end_to_end_tiny_model_resume_reuses_trials(tmp_path):
    save_tiny_llama(tmp_path / "tiny", seed=0)
    cfg = TuneConfig(
        preset="quick",
        model=str(tmp_path / "tiny"),
        output_dir=str(tmp_path / "tune"),
        n_train=8,
        n_test=3,
        mc_limit=8,
        nll_limit=2,
        drift_limit=2,
        heldout=("heldout_nll",),  # (a random tiny model can score 0 on a few multiple-choice items)
        max_length=1024,
        eval_batch_size=4,
        generation_batch_size=4,
        igsm_op_min=1,
        igsm_op_max=1,
        reference_epochs=1,
        reference_learning_rate=2e-3,
        learning_rate=1e-3,
        methods=["sft", "wise_ft"],
        search_space={
            "sft": {"learning_rate": {"choices": [1e-3, 3e-3]}, "num_train_epochs": 1},
            "wise_ft": {"weight": {"choices": [0.5]}},
        },
        sampler="bruteforce",
        n_trials=2,
        cheap_fraction=0.5,
        max_degradation=50,
        n_boot=20,
    )
    logs = []
    first = tune(cfg, console_log=logs.append)
    trained = [s.split()[1] for s in logs if s.startswith("[train]")]
    assert trained[0] == "reference" and len(trained) == 1 + sum(t["label"].startswith("sft(") for t in first["trials"])
    out = tmp_path / "tune"
    # validation and test items are disjoint, in every suite, for every model evaluated
    for suite in ("igsm", "heldout_nll"):
        test = json.loads((out / "run/evals/base.json").read_text())["results"][suite]["uids"]
        for rung in ("cheap", "full"):
            val = json.loads((out / f"validation/{rung}/evals/base.json").read_text())["results"][suite]["uids"]
            assert val and not set(val) & set(test), (suite, rung)
    split = json.loads((out / "validation/split.json").read_text())["items"]
    assert split["igsm"] == {"test": 3, "validation": 3, "validation_cheap": 2}
    # the budget: two trials; a larger one continues with the third point and trains only it
    assert first["n_trials"] == 2
    logs = []
    second = tune(TuneConfig(**{**cfg.__dict__, "n_trials": 3}), console_log=logs.append)
    assert second["n_trials"] == 3
    new = [t["label"] for t in second["trials"] if t["number"] == 2]
    retrained = [s.split()[1] for s in logs if s.startswith("[train]")]
    assert set(retrained) <= set(new) and "reference" not in retrained, logs
    assert not any(s.startswith("[eval] base") for s in logs), logs  # the base model is scored once
    assert {t["label"] for t in second["trials"]} == {
        "sft(learning_rate=0.001,num_train_epochs=1)",
        "sft(learning_rate=0.003,num_train_epochs=1)",
        "wise_ft(w=0.5)",
    }
    # the report: Pareto set chosen on validation, every selected run evaluated on test with intervals
    assert second["pareto"] and set(second["pareto"]) <= set(second["test"]["labels"])
    for p in second["test"]["points"]:
        assert p["gain"]["ci"] is not None and p["degradation"]["ci"] is not None
    for f in ("tune.json", "tune.md", "frontier.png", "study.db", "run/results.md"):
        assert (out / f).exists(), f
