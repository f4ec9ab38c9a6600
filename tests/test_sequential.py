"""Sequential fine-tuning (a prior skill first, then the target) and tasks as held-out members."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from anchored_learning.experiment import Experiment, ExperimentConfig
from anchored_learning.tasks.registry import get_task
from anchored_learning.tasks.skills import SKILLS, SkillTask
from anchored_learning.testing import save_tiny_llama


@pytest.mark.parametrize("name", sorted(SKILLS))
def test_skill_gold_scores_one_and_train_test_never_share_an_input(name):
    task = get_task(name)
    train, test = task.examples("train", 300, seed=0), task.examples("test", 100, seed=0)
    assert len(train) == 300 and len(test) == 100
    assert all(task.score(e, e.response) == 1.0 for e in train + test)
    assert all(task.score(e, f"Sure! The answer is {e.response}.") == 1.0 for e in test[:20])  # wrapped: still right
    assert all(task.score(e, "I do not know") == 0.0 for e in test[:20])
    other_seed = task.examples("train", 300, seed=1)
    inputs = lambda exs: {e.meta["input"] for e in exs}  # noqa: E731
    assert not inputs(train) & inputs(test) and not inputs(other_seed) & inputs(test)
    assert len(inputs(train)) == 300  # distinct
    assert task.examples("test", 40, seed=0) == test[:40]  # a smaller n is a prefix


def test_skills_of_a_family_share_inputs_and_differ_in_output():
    iso, us, words = (SkillTask(n).examples("test", 50, seed=3) for n in ("date_iso", "date_us", "date_words"))
    assert [e.meta["input"] for e in iso] == [e.meta["input"] for e in us] == [e.meta["input"] for e in words]
    e_iso, e_us = iso[0], us[0]
    y, m, d = e_iso.answer.split("-")
    assert e_us.answer == f"{m}/{d}/{y}"
    assert e_iso.prompt.split(": ")[1] == e_us.prompt.split(": ")[1] == words[0].answer  # the same date in words
    assert SkillTask("date_iso").score(e_iso, e_us.answer) == 0.0  # the conflicting format is wrong for A
    asc, desc = SkillTask("sort_asc").examples("test", 5), SkillTask("sort_desc").examples("test", 5)
    for a, b in zip(asc, desc):
        assert a.answer.split(", ") == b.answer.split(", ")[::-1]
        assert SkillTask("sort_asc").score(a, b.answer) == 0.0


def test_skill_scoring_takes_the_last_answer_shaped_span():
    task = SkillTask("date_iso")
    ex = task.examples("test", 1)[0]
    assert task.score(ex, f"1999-01-01 is wrong; {ex.answer}") == 1.0
    assert task.score(ex, f"{ex.answer}, no wait: 1999-01-01") == 0.0
    with pytest.raises(ValueError, match="unknown skill"):
        SkillTask("date_mars")


def test_sequential_config_fills_the_prior_stage_and_puts_the_skill_in_the_suite():
    cfg = ExperimentConfig(preset="quick", prior_task="date_iso").resolved()
    assert cfg.heldout[0] == "date_iso" and (cfg.prior_n_train, cfg.prior_epochs) == (384, 1)
    with pytest.raises(
        ValueError, match=re.escape("--prior_epochs set the prior skill's stage: give the skill with --prior_task")
    ):
        ExperimentConfig(prior_epochs=2).resolved()
    with pytest.raises(ValueError, match="is the target task too"):
        ExperimentConfig(task="date_us", prior_task="date_us").resolved()
    with pytest.raises(ValueError, match="prior_task must be one of"):
        ExperimentConfig(prior_task="file").resolved()


@pytest.mark.parametrize("preset", ["sequential-distant", "sequential-related", "sequential-conflicting"])
def test_sequential_recipes_name_their_target_and_prior_skill(preset):
    cfg = ExperimentConfig(preset=preset).resolved()
    assert cfg.prior_task == "date_iso" and cfg.task != "date_iso"
    assert cfg.heldout[0] == "date_iso" and cfg.output_dir == f"runs/{cfg.task}-{preset}"
    target = {"sequential-distant": "igsm", "sequential-related": "date_words", "sequential-conflicting": "date_us"}
    assert cfg.task == target[preset]


@pytest.mark.slow
def test_sequential_run_tiny_model_prior_stage_recorded_reused_and_retention_reported(tmp_path, monkeypatch):
    import anchored_learning.models as M

    loaded, load = [], M.load_model_and_tokenizer
    monkeypatch.setattr(M, "load_model_and_tokenizer", lambda path, *a, **k: (loaded.append(str(path)), load(path, *a, **k))[1])
    save_tiny_llama(tmp_path / "tiny", seed=0)
    cfg = ExperimentConfig(
        preset="quick",
        model=str(tmp_path / "tiny"),
        output_dir=str(tmp_path / "run"),
        task="date_us",
        prior_task="date_iso",
        prior_n_train=8,
        prior_epochs=1,
        prior_learning_rate=1e-3,
        n_train=8,
        n_test=3,
        reference_epochs=1,
        outer_iterations=1,
        inner_epochs=1,
        baseline_epochs=1,
        heldout=("arc_easy",),
        heldout_task_limit=4,
        mc_limit=3,
        drift_limit=2,
        baselines=("wise_ft",),
        learning_rate=1e-3,
        reference_learning_rate=2e-3,
        eval_batch_size=4,
        generation_batch_size=4,
    )
    logs = []
    out = Experiment(cfg, console_log=logs.append).run()
    assert [r["label"] for r in out["rows"]] == ["base", "pretrained", "sft", "anchored", "wise_ft(w=0.5)"]
    assert "[train] prior (sft)" in logs
    run = tmp_path / "run"
    base_eval = json.loads((run / "evals/base.json").read_text())
    # the prior skill is a held-out member scored as a target: generated, 4 items, per-item scores
    skill = base_eval["results"]["date_iso"]
    assert skill["kind"] == "generation" and skill["n"] == 4 and len(skill["predictions"]) == 4
    assert list(base_eval["results"]) == ["date_us", "date_iso", "arc_easy", "drift"]
    assert "date_iso" in out["rows"][0]["heldout"]
    # p0 of every later stage is the model after the prior skill: the given model is loaded for the
    # pretrained row and the prior stage, every other stage (reference, anchored) starts from the prior
    prior = run / "models/prior/final"
    assert (prior / ".complete").exists()
    assert loaded == [str(tmp_path / "tiny")] * 2 + [str(prior)] * 2, loaded
    pretrained = json.loads((run / "evals/pretrained.json").read_text())
    assert pretrained["results"]["date_iso"]["uids"] == skill["uids"]  # the same items, before and after A
    assert pretrained["results"]["drift"]["primary"] > 0  # the model before A, measured from p0 (after A)
    assert base_eval["results"]["drift"]["primary"] == 0
    from safetensors.torch import load_file

    w0, wa = load_file(tmp_path / "tiny" / "model.safetensors"), load_file(prior / "model.safetensors")
    assert max((w0[k] - wa[k]).abs().max().item() for k in w0) > 1e-4  # the prior stage really trained
    # a rerun skips every stage, the prior one included
    logs = []
    Experiment(cfg, console_log=logs.append).run()
    assert all(line.startswith(("[skip]", "[warning]")) for line in logs) and any(" prior: already trained" in x for x in logs), (
        logs
    )
    # another prior skill in the same folder is refused (its stages would be reused)
    with pytest.raises(ValueError, match="prior_task: 'date_iso' -> 'sort_asc'"):
        Experiment(dataclasses.replace(cfg, prior_task="sort_asc"), console_log=lambda m: None)


def test_regime_map_picks_sfts_best_gain_and_the_gentlest_run_near_it(tmp_path):
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "regime_map.py"))
    cfg = {"task": "date_us", "prior_task": "date_iso", "n_train": 96, "seed": 0, "learning_rate": 1e-4}
    cfg.update(reference_learning_rate=3e-4, reference_epochs=3, baseline_epochs=3)

    def row(label, gain, prior_drop, drift):
        return {
            "label": label,
            "gain": gain,
            "degradation": prior_drop / 2,
            "degradation_per_benchmark": {"date_iso": prior_drop, "heldout_nll": 0.0},
            "drift_kl": drift,
        }

    rows = [
        row("base", 0.0, 0.0, 0.0),
        row("sft", 80.0, 60.0, 0.5),  # the reference: lr 3e-4 x 3, the best gain, forgets most
        row("sft(learning_rate=3e-5,num_train_epochs=10)", 75.0, 10.0, 0.2),  # >= 90 % of 80, gentler
        row("sft(learning_rate=3e-5,num_train_epochs=1)", 20.0, 0.0, 0.05),  # gentlest, far from the best gain
        row("anchored", 70.0, 5.0, 0.3),
        row("wise_ft(w=0.5)", 40.0, 2.0, 0.1),  # not SFT: not in the map
    ]
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "r" / "results.json").write_text(json.dumps({"config": cfg, "rows": rows, "wall_time_s": 5.0}))
    g = script["regime"](tmp_path / "r")
    assert g["best_gain"]["label"] == "sft" and g["best_gain"]["prior_drop"] == 60.0
    assert g["gentlest_near_best"]["label"] == "sft(learning_rate=3e-5,num_train_epochs=10)"
    assert [r["label"] for r in g["runs"]][-1] == "anchored" and "wise_ft(w=0.5)" not in [r["label"] for r in g["runs"]]
    assert script["main"]([str(tmp_path / "r"), "-o", str(tmp_path / "map")]) == 0
    assert (tmp_path / "map" / "regime_map.png").read_bytes()[:4] == b"\x89PNG"
    assert "| date_iso -> date_us | 96 | 1 | +80.0 (sft) | +60.0 | 0.500 |" in (tmp_path / "map" / "regime_map.md").read_text()
