"""The whole experiment end to end on a tiny random model (seconds), plus the frontier maths."""

from __future__ import annotations

import json

import pytest

from anchored_learning.pipeline import Experiment, ExperimentConfig, load_training_rows, parse_sweep
from anchored_learning.report import pareto_frontier
from anchored_learning.testing import tiny_llama


def test_pareto_frontier_brute_force():
    pts = [(5.0, 10.0), (1.0, 8.0), (3.0, 12.0), (4.0, 9.0), (1.0, 7.0), (0.0, 0.0)]
    # dominated: (5,10) by (3,12); (4,9) by (3,12); (1,7) by (1,8)
    assert pareto_frontier(pts) == [5, 1, 2]


def test_user_data_errors_name_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(ValueError, match=r"d.jsonl:2"):
        load_training_rows(ExperimentConfig(data=str(p)), task=None)


def test_parse_sweep():
    got = parse_sweep(["anchored.anchor_alpha=0.25,0.75", "sft.num_train_epochs=2", "wise_ft.weight=0.5"])
    assert got == [
        ("anchored(anchor_alpha=0.25)", "anchored", {"anchor_alpha": 0.25}),
        ("anchored(anchor_alpha=0.75)", "anchored", {"anchor_alpha": 0.75}),
        ("sft(num_train_epochs=2)", "sft", {"num_train_epochs": 2}),
        ("wise_ft(weight=0.5)", "wise_ft", {"weight": 0.5}),
    ]
    for bad in ["anchored.alpha=0.5", "ppo.learning_rate=1", "anchored_alpha=0.5"]:
        with pytest.raises(ValueError, match="sweep entry"):
            parse_sweep([bad])
    with pytest.raises(ValueError, match="sweep entry"):
        ExperimentConfig(sweep=("anchored.alpha=0.5",)).resolved()


@pytest.mark.slow
def test_experiment_end_to_end_tiny_model_and_resume(tmp_path):
    model, tok = tiny_llama(seed=0)
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    cfg = ExperimentConfig(
        preset="quick", model=str(tmp_path / "tiny"), output_dir=str(tmp_path / "run"), n_train=8, n_test=4,
        ref_epochs=1, outer_iterations=2, epochs_per_iteration=1, baseline_epochs=1, mc_limit=4, nll_limit=2,
        drift_limit=2, heldout=("arc_easy", "heldout_nll"), baselines=("sft_kl", "wise_ft"), max_length=1024, eval_batch_size=4, igsm_op_min=1, igsm_op_max=1,
        learning_rate=1e-3, reference_learning_rate=1e-3, sweep=("wise_ft.weight=0.25",),
    )
    out = Experiment(cfg, console_log=lambda s: None).run()
    labels = [r["label"] for r in out["rows"]]
    assert labels == ["base", "sft", "anchored", "sft_kl", "wise_ft(w=0.5)", "wise_ft(w=0.25)"]
    base = out["rows"][0]
    assert base["gain"] == 0.0 and base["degradation"] == pytest.approx(0.0)
    for f in ("results.json", "results.md", "pareto.png", "evals/base.json", "models/reference/final/.complete"):
        assert (tmp_path / "run" / f).exists(), f
    assert (tmp_path / "run" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # the anchored student really trained through T = 2 outer iterations
    done = json.loads((tmp_path / "run" / "models/anchored/final/.complete").read_text())
    assert [r["outer_iteration"] for r in done["anchor_history"]] == [0.0, 1.0]
    # a rerun skips every finished stage and reproduces the same report
    logs = []
    again = Experiment(cfg, console_log=logs.append).run()
    assert all(line.startswith("[skip]") for line in logs), logs
    assert [r["target"] for r in again["rows"]] == [r["target"] for r in out["rows"]]
