"""The whole experiment end to end on a tiny random model (seconds), plus the frontier maths."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from anchored_learning.experiment import Experiment, ExperimentConfig, load_training_rows, make_task, parse_sweep
from anchored_learning.experiment import plan as P
from anchored_learning.tables import pareto_frontier
from anchored_learning.testing import save_tiny_llama, tiny_llama


def test_pareto_frontier_brute_force():
    pts = [(5.0, 10.0), (1.0, 8.0), (3.0, 12.0), (4.0, 9.0), (1.0, 7.0), (0.0, 0.0)]
    # dominated: (5,10) by (3,12); (4,9) by (3,12); (1,7) by (1,8)
    assert pareto_frontier(pts) == [5, 1, 2]


def test_parse_sweep():
    got = parse_sweep(["anchored.anchor_alpha=0.25,0.75", "sft.num_train_epochs=2", "wise_ft.weight=0.5"])
    assert got == [
        ("anchored(anchor_alpha=0.25)", "anchored", {"anchor_alpha": 0.25}),
        ("anchored(anchor_alpha=0.75)", "anchored", {"anchor_alpha": 0.75}),
        ("sft(num_train_epochs=2)", "sft", {"num_train_epochs": 2}),
        ("wise_ft(weight=0.5)", "wise_ft", {"weight": 0.5}),
    ]
    # several fields joined by ";": every combination, the last field fastest
    assert parse_sweep(["sft.learning_rate=1e-4,3e-4;num_train_epochs=1,3"]) == [
        ("sft(learning_rate=1e-4,num_train_epochs=1)", "sft", {"learning_rate": 1e-4, "num_train_epochs": 1}),
        ("sft(learning_rate=1e-4,num_train_epochs=3)", "sft", {"learning_rate": 1e-4, "num_train_epochs": 3}),
        ("sft(learning_rate=3e-4,num_train_epochs=1)", "sft", {"learning_rate": 3e-4, "num_train_epochs": 1}),
        ("sft(learning_rate=3e-4,num_train_epochs=3)", "sft", {"learning_rate": 3e-4, "num_train_epochs": 3}),
    ]
    for bad in ["anchored.alpha=0.5", "ppo.learning_rate=1", "anchored_alpha=0.5", "sft.learning_rate=1;learning_rate=2"]:
        with pytest.raises(ValueError, match="sweep entry"):
            parse_sweep([bad])
    with pytest.raises(ValueError, match="sweep entry"):
        ExperimentConfig(sweep=("anchored.alpha=0.5",)).resolved()
    # the messages say what would be right
    for bad, says in [
        ("sft.learing_rate=1e-5", "'learing_rate' is not a field of AnchoredSFTConfig (did you mean 'learning_rate'?)"),
        ("sft.xyz=1", "'xyz' is not a field of AnchoredSFTConfig (the fields of `anchored train --help`)"),
        ("wise_ft.w=0.5", "wise_ft takes one field, 'weight'"),
        ("foo.bar=1", "unknown method 'foo'; choose one of anchored, anchored_per_step, "),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_sweep([bad])


@pytest.mark.parametrize(
    "field,value", [("anchor_source", "disk"), ("anchor_interpolation", "linear"), ("train_sampling_strategy", "sorted")]
)
def test_config_fields_with_choices_reject_other_values_in_the_python_api(field, value):
    """The command line checks choices itself; ExperimentConfig checks them for Python callers."""
    with pytest.raises(ValueError, match=f"{field} must be one of .*got '{value}'"):
        ExperimentConfig(**{field: value}).resolved()
    cfg = ExperimentConfig(train_sampling_strategy="group_by_length").resolved()
    assert P.reference_args(cfg, Path("unused")).train_sampling_strategy == "group_by_length"


@pytest.mark.slow
def test_experiment_end_to_end_tiny_model_and_resume(tmp_path):
    save_tiny_llama(tmp_path / "tiny", seed=0)
    cfg = ExperimentConfig(
        preset="quick",
        model=str(tmp_path / "tiny"),
        output_dir=str(tmp_path / "run"),
        n_train=8,
        n_test=4,
        reference_epochs=1,
        outer_iterations=2,
        inner_epochs=1,
        baseline_epochs=1,
        mc_limit=4,
        nll_limit=2,
        drift_limit=2,
        heldout=("sciq_chat", "arc_easy", "heldout_nll"),
        baselines=("sft", "sft_kl", "wise_ft"),
        max_length=1024,
        eval_batch_size=4,
        igsm_op_min=1,
        igsm_op_max=1,
        learning_rate=1e-3,
        reference_learning_rate=2e-3,
        generation_batch_size=3,
        sweep=("wise_ft.weight=0.25", "sft.learning_rate=0.001"),  # the second point is the "sft" baseline again
    )
    out = Experiment(cfg, console_log=lambda s: None).run()
    labels = [r["label"] for r in out["rows"]]
    assert labels == ["base", "sft", "anchored", "sft(learning_rate=1e-3)", "sft_kl", "wise_ft(w=0.5)", "wise_ft(w=0.25)"]
    # the reference ("sft") and the plain-SFT baseline are different models with their own evals
    from safetensors.torch import load_file

    ref_w = load_file(tmp_path / "run" / "models/reference/final/model.safetensors")
    sft_w = load_file(tmp_path / "run" / "models/sft(learning_rate=1e-3)/final/model.safetensors")
    assert max((ref_w[k] - sft_w[k]).abs().max().item() for k in ref_w) > 1e-4
    base_eval = json.loads((tmp_path / "run" / "evals/base.json").read_text())
    assert base_eval["meta"]["generation_batch_size"] == 3
    assert "drift" in base_eval["results"] and "drift:igsm" not in base_eval["results"]  # quick: target_drift off
    base = out["rows"][0]
    assert base["gain"] == 0.0 and base["degradation"] == pytest.approx(0.0)
    for f in ("results.json", "results.md", "pareto.png", "evals/base.json", "models/reference/final/.complete"):
        assert (tmp_path / "run" / f).exists(), f
    assert (tmp_path / "run" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # the anchored student really trained through T = 2 outer iterations
    done = json.loads((tmp_path / "run" / "models/anchored/final/.complete").read_text())
    assert [r["outer_iteration"] for r in done["anchor_history"]] == [0.0, 1.0]
    # the run's configured task reached evaluation without changing the task registry
    from anchored_learning.tasks.registry import TASKS

    assert TASKS["igsm"] == "anchored_learning.tasks.igsm:IGSMTask"
    assert json.loads((tmp_path / "run" / "evals/base.json").read_text())["results"]["igsm"]["n"] == 4
    # a rerun skips every finished stage and reproduces the same report
    logs = []
    again = Experiment(cfg, console_log=logs.append).run()
    assert all(line.startswith(("[skip]", "[warning] Left out")) for line in logs), logs  # the tiny model scores 0 on MC
    assert [r["target"] for r in again["rows"]] == [r["target"] for r in out["rows"]]
    # the reported wall time is the total over both invocations, not the (instant) re-run alone
    assert again["wall_time_s"] >= out["wall_time_s"] > 1.0

    # the folder exported by scripts/export_run.py (records, no models) and continued with one more
    # variant: only that variant and the reference it reads are trained; the rest is kept as recorded
    import runpy

    runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "export_run.py"))["export"](
        tmp_path / "run", tmp_path / "exported"
    )
    assert not (tmp_path / "exported" / "models").exists()
    more = dataclasses.replace(cfg, output_dir=str(tmp_path / "exported"), sweep=(*cfg.sweep, "anchored.anchor_alpha=0.25"))
    logs = []
    cont = Experiment(more, console_log=logs.append).run()
    trained = [line.split()[1] for line in logs if line.startswith("[train]") and "(" in line.split()[2]]
    assert trained == ["reference", "anchored(anchor_alpha=0.25)"], logs
    assert f"[plan] 1 of {len(labels) - 1} runs to make: anchored(anchor_alpha=0.25)" in logs  # -base -sft +1
    assert "[run 1/1] anchored(anchor_alpha=0.25)" in logs
    assert "[train] reference: trained again as its model was not kept: bit-identical weights, as recorded" in logs
    rows = {r["label"]: r for r in cont["rows"]}
    assert sorted(rows) == sorted([*labels, "anchored(anchor_alpha=0.25)"])
    for old in out["rows"]:  # the recorded runs: same scores; training times kept but the reference's (trained again)
        new = rows[old["label"]]
        assert (new["target"], new["degradation"]) == (old["target"], old["degradation"]), old["label"]
        assert (new["train_time_s"] == old["train_time_s"]) == (old["label"] != "sft"), old["label"]
    # exporting the continued folder keeps the records it had: nothing is trained again
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "export_run.py"))["export"](
        tmp_path / "exported", tmp_path / "exported2"
    )
    logs = []
    Experiment(dataclasses.replace(more, output_dir=str(tmp_path / "exported2")), console_log=logs.append).run()
    assert not any(line.startswith("[train]") for line in logs), logs
    # an evaluation whose model left no training record is not kept: that model is evaluated again
    (tmp_path / "exported2" / "train_log_anchored.json").unlink()
    logs = []
    Experiment(dataclasses.replace(more, output_dir=str(tmp_path / "exported2")), console_log=logs.append).run()
    assert [line.split()[1] for line in logs if line.startswith("[train]") and "(" in line.split()[2]] == [
        "reference",
        "anchored",
    ]
    assert any(line.startswith("[eval] anchored: ") and "evaluating again" in line for line in logs), logs
    # a record from before weights_sha256: the retrained reference is checked by its logged losses
    import shutil

    shutil.rmtree(tmp_path / "exported" / "models")
    record = json.loads((tmp_path / "exported" / "train_log_reference.json").read_text())
    del record["weights_sha256"]
    (tmp_path / "exported" / "train_log_reference.json").write_text(json.dumps(record))
    logs = []
    Experiment(dataclasses.replace(more, sweep=(*more.sweep, "anchored.anchor_alpha=0.75")), console_log=logs.append).run()
    assert (
        "[train] reference: trained again as its model was not kept: the recorded loss at every logged step and "
        "train_loss (the record has no weights_sha256), as recorded"
    ) in logs
    # a retrained reference that differs from the recorded one stops the run and is not kept
    shutil.rmtree(tmp_path / "exported" / "models")
    next(h for h in record["log_history"] if "train_loss" in h)["train_loss"] += 1e-6
    (tmp_path / "exported" / "train_log_reference.json").write_text(json.dumps(record))
    with pytest.raises(RuntimeError, match="it is not the recorded model"):
        Experiment(dataclasses.replace(more, sweep=(*more.sweep, "anchored.anchor_alpha=0.6")), console_log=print).run()
    assert not (tmp_path / "exported" / "models" / "reference" / "final").exists()


def _row(label, target, gain, deg, hs, drift=None):
    return {
        "label": label,
        "method": label.split("(")[0],
        "target": target,
        "gain": gain,
        "degradation": deg,
        "heldout": {"hellaswag": hs},
        "drift_kl": drift,
        "drift_kl_target": None,
        "train_time_s": 10.0,
    }


def test_aggregate_seeds_mean_and_sample_sd():
    from anchored_learning.tables import aggregate_seeds, markdown_table_seeds

    runs = [
        [_row("base", 0.1, 0.0, 0.0, 0.4), _row("sft", 0.5, 40.0, 6.0, 0.30, 0.2), _row("only0", 1, 1, 1, 1)],
        [_row("base", 0.2, 0.0, 0.0, 0.4), _row("sft", 0.7, 50.0, 2.0, 0.34, 0.4)],
    ]
    rows = aggregate_seeds(runs)
    assert [r["label"] for r in rows] == ["base", "sft"]  # a label missing from one seed is dropped
    sft = rows[1]
    assert sft["n_seeds"] == 2
    assert sft["target"] == pytest.approx(0.6) and sft["target_sd"] == pytest.approx(0.1 * 2**0.5)
    assert sft["gain"] == pytest.approx(45.0) and sft["gain_sd"] == pytest.approx(5 * 2**0.5)
    assert sft["degradation"] == pytest.approx(4.0) and sft["heldout"]["hellaswag"] == pytest.approx(0.32)
    assert sft["drift_kl"] == pytest.approx(0.3)
    assert rows[0]["drift_kl"] is None  # not measured stays unknown, not 0
    one = aggregate_seeds(runs[:1])
    assert one[1]["gain_sd"] is None and one[1]["gain"] == 40.0
    table = markdown_table_seeds(rows, ["hellaswag"])
    assert "| sft | 0.600 ± 0.141 | +45.0 ± 7.1 | 0.320 ± 0.028 | +4.0 ± 2.8 | 0.300 ± 0.141 | 10 |" in table
    with pytest.raises(ValueError):
        aggregate_seeds([])


def test_aggregate_seeds_averages_the_targets_secondary_scores():
    from anchored_learning.tables import aggregate_seeds

    a, b = _row("sft", 0.5, 40.0, 6.0, 0.3), _row("sft", 0.7, 50.0, 2.0, 0.3)
    a["target_secondary"], b["target_secondary"] = {"lenient": 0.5}, {"lenient": 0.8}
    assert aggregate_seeds([[a], [b]])[0]["target_secondary"] == {"lenient": pytest.approx(0.65)}


def test_run_seeds_one_folder_per_seed_and_aggregate(tmp_path, monkeypatch):
    import anchored_learning.experiment.stages as pl

    seen = []

    def fake_run(self):
        seen.append((self.cfg.seed, self.cfg.output_dir))
        s = self.cfg.seed
        return {
            "rows": [_row("base", 0.1, 0.0, 0.0, 0.4), _row("anchored", 0.3 + s / 10, 20.0 + 10 * s, 1.0, 0.39)],
            "degradation_members": ["hellaswag"],
            "left_out": {},
            "wall_time_s": 5.0,
            "machine": {"cpus": 2},
        }

    monkeypatch.setattr(pl.Experiment, "run", fake_run)
    cfg = ExperimentConfig(preset="quick", output_dir=str(tmp_path / "multi"))
    res = pl.run_seeds(cfg, [0, 2], console_log=lambda s: None)
    assert seen == [(0, str(tmp_path / "multi" / "seed-0")), (2, str(tmp_path / "multi" / "seed-2"))]
    anchored = res["rows"][1]
    assert anchored["gain"] == pytest.approx(30.0) and anchored["gain_sd"] == pytest.approx(200**0.5)
    saved = json.loads((tmp_path / "multi" / "results.json").read_text())
    assert saved["seeds"] == [0, 2] and set(saved["per_seed"]) == {"0", "2"}
    assert (tmp_path / "multi" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "± " in (tmp_path / "multi" / "results.md").read_text()
    for bad in ([], [1, 1]):
        with pytest.raises(ValueError, match="seeds"):
            pl.run_seeds(cfg, bad)


def test_run_command_rejects_bad_seeds_and_presets_before_any_work(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import anchored_learning.experiment.stages as pl
    from anchored_learning.cli import _register, app

    _register()
    monkeypatch.setattr(pl.Experiment, "run", lambda self: pytest.fail("must not start"))
    for argv, msg in (
        (["--seeds", "0,x"], "not a comma-separated list"),
        (["--seeds", "1,1"], "distinct"),
        (["--preset", "huge"], "unknown preset"),
    ):
        res = CliRunner().invoke(app, ["run", "-o", str(tmp_path / "r"), *argv])
        assert res.exit_code == 2, res.output
        assert msg in res.output
    assert not (tmp_path / "r").exists()


def test_plan_labels_and_duplicates(tmp_path):
    logs = []
    exp = Experiment(
        ExperimentConfig(
            output_dir=str(tmp_path / "r"),
            baselines=("sft", "sft_kl", "wise_ft"),
            sweep=(
                "sft.learning_rate=1e-4,3e-5",
                "anchored.anchor_alpha=0.25,0.25",
                "anchored.learning_rate=1e-4",
                "wise_ft.weight=0.5,0.75",
            ),
        ),
        console_log=logs.append,
    )
    assert exp.cfg.learning_rate == 1e-4  # the default preset's student learning rate
    assert exp.plan == [
        ("anchored", "anchored", {}),
        ("sft(learning_rate=1e-4)", "sft", {"learning_rate": 1e-4}),  # the baseline; the sweep's 1e-4 is a duplicate
        ("sft_kl", "sft_kl", {}),
        ("sft(learning_rate=3e-5)", "sft", {"learning_rate": 3e-5}),
        ("anchored(anchor_alpha=0.25)", "anchored", {"anchor_alpha": 0.25}),
        ("wise_ft(w=0.5)", "wise_ft", {"weight": 0.5}),
        ("wise_ft(w=0.75)", "wise_ft", {"weight": 0.75}),
    ]
    # the sweep point equal to the preset's anchored run is named as such, not trained twice
    assert "[skip] anchored(learning_rate=1e-4): the same model as anchored" in logs
    # student lr == reference lr and the same epochs: plain SFT would retrain the reference
    quick = Experiment(
        ExperimentConfig(preset="quick", output_dir=str(tmp_path / "q"), baselines=("sft",), learning_rate=3e-4),
        console_log=logs.append,
    )
    assert quick.plan == [("anchored", "anchored", {})]
    assert "[skip] sft(learning_rate=3e-4): the same model as sft" in logs


def test_resume_refuses_a_folder_made_with_other_settings(tmp_path):
    import dataclasses

    cfg = ExperimentConfig(output_dir=str(tmp_path / "r"))
    old = dataclasses.asdict(dataclasses.replace(cfg.resolved(), learning_rate=3e-4))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(json.dumps(old, default=str))
    with pytest.raises(ValueError, match=r"other settings \(learning_rate: 0.0003 -> 0.0001\)"):
        Experiment(cfg, console_log=lambda s: None)
    # the same settings, or only more stages (sweep, baselines), resume
    (tmp_path / "r" / "config.json").write_text(json.dumps(dataclasses.asdict(cfg.resolved()), default=str))
    Experiment(dataclasses.replace(cfg, sweep=("anchored.anchor_alpha=0.25",), baselines=("sft_kl",)), console_log=lambda s: None)


def test_default_preset_is_the_measured_configuration():
    cfg = ExperimentConfig().resolved()
    assert (cfg.reference_learning_rate, cfg.learning_rate) == (3e-4, 1e-4)
    assert cfg.baselines == ["sft", "wise_ft"] and cfg.target_drift is False
    assert ExperimentConfig(preset="paper").resolved().target_drift is True


def test_every_bundled_recipe_key_takes_effect():
    """A recipe fills only fields left at None: a key whose field has another default would be
    ignored silently, so every key of every bundled recipe must name such a field, and resolve to
    the recipe's value."""
    from importlib import resources

    import yaml

    fields = {f.name: f.default for f in dataclasses.fields(ExperimentConfig)}
    recipes = sorted((resources.files("anchored_learning") / "configs").glob("*/*.yaml"))
    assert len(recipes) == 10
    for path in recipes:
        recipe = yaml.safe_load(path.read_text())
        cfg = ExperimentConfig(preset=recipe["preset"], task=recipe["task"]).resolved()
        for k, v in recipe.items():
            assert k in fields and (fields[k] is None or k in ("preset", "task")), (path.name, k)
            assert getattr(cfg, k) == v, (path, k)
        if path.parent.name == "sequential":  # its task is the default when --task is not given
            assert ExperimentConfig(preset=recipe["preset"]).resolved().task == recipe["task"]
    assert ExperimentConfig(task="ifeval").resolved().train_sampling_strategy == "group_by_length"
    assert ExperimentConfig(task="igsm").resolved().train_sampling_strategy == "random"  # not in its recipe


def test_presets_resolve_to_valid_igsm_tasks():
    from anchored_learning.experiment import make_task, presets

    assert presets() == ["default", "paper", "quick", "sequential-conflicting", "sequential-distant", "sequential-related"]
    for name in ("default", "paper", "quick"):
        cfg = ExperimentConfig(preset=name).resolved()
        task = make_task(cfg)
        assert (task.op_min, task.op_max, task.arithmetic) == (cfg.igsm_op_min, cfg.igsm_op_max, cfg.igsm_arithmetic)
        assert cfg.heldout and cfg.baselines
    assert ExperimentConfig(preset="paper").resolved().igsm_arithmetic == "mod23"  # the paper's iGSM on a GPU
    # `anchored eval -s igsm_add` scores the CPU presets' iGSM on the same items as a run
    from anchored_learning.evaluation.suites import get_task

    cpu = make_task(ExperimentConfig().resolved())
    assert get_task("igsm_add").examples("test", 8, seed=3) == cpu.examples("test", 8, seed=3)
    with pytest.raises(ValueError, match="igsm_arithmetic"):
        ExperimentConfig(igsm_arithmetic="mul").resolved()


@pytest.mark.parametrize("task", ["medcalc", "ifeval"])
def test_every_target_has_its_own_quick_and_default_recipe(task):
    from anchored_learning.experiment import make_task
    from anchored_learning.experiment.experiment_config import recipe_path

    for preset in ("quick", "default"):
        assert recipe_path(preset, task).parent.name == task
        cfg = ExperimentConfig(task=task, preset=preset).resolved()
        made = make_task(cfg)
        assert made.name == task and cfg.heldout == ["sciq", "arc_easy", "heldout_nll"]
        if task == "medcalc":  # the CPU variant: the recipe's calculators, a budget fitted to them
            assert cfg.medcalc_calculators and [c for c in made.calculators] == cfg.medcalc_calculators
            assert made.max_new_tokens < 768
        train = made.examples("train", 2, seed=cfg.seed)
        assert all(e.response for e in train)  # trainable: gold responses exist


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"anchor_alpha": 5.0}, "anchored: anchor_alpha must be in"),
        ({"anchor_source": "nope"}, "anchor_source must be one of .cache., .live., got .nope."),
        ({"sweep": ("anchored.anchor_alpha=abc",)}, r"anchored\(anchor_alpha=abc\)"),
        ({"sweep": ("sft.learning_rate=",)}, "empty value"),
        ({"sweep": ("wise_ft.weight=abc",)}, "wise_ft.weight must be a number"),
        ({"sweep": ("wise_ft.weight=2",)}, "wise_ft.weight must be a number"),
        ({"sweep": ("anchored.method=sft",)}, "set by the experiment itself"),
        ({"sweep": ("sft.reference_model=x",)}, "set by the experiment itself"),
        ({"wise_weights": (2.0,)}, r"wise_weights must be in \[0, 1\]"),
        ({"heldout": ("arc_easy", "nope")}, "unknown suite 'nope'"),
        ({"n_train": 0}, "n_train must be >= 1"),
        ({"mc_limit": -1}, "mc_limit must be >= 1"),
        ({"igsm_op_min": 5, "igsm_op_max": 2}, "igsm_op_min"),
        ({"igsm_op_min": 5}, r"igsm_op_min \(5\) must be <= igsm_op_max \(3\)"),  # against the recipe's op_max
        ({"medcalc_calculators": ("bmi",)}, "the task is 'igsm'"),
        ({"task": "medcalc", "medcalc_calculators": ("bmi", "nope")}, "unknown MedCalc calculator 'nope'"),
        ({"task": "ifeval", "max_new_tokens": 1024}, "file task only; the task 'ifeval' generates with its own"),
    ],
)
def test_bad_stage_values_fail_before_any_work(tmp_path, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Experiment(ExperimentConfig(preset="quick", output_dir=str(tmp_path / "r"), **kwargs))
    assert not (tmp_path / "r").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        Experiment(ExperimentConfig(preset="quick", output_dir=str(tmp_path / "file")))


def _tiny_folder(tmp_path, name="tiny", seed=0):
    model, tok = tiny_llama(seed=seed)
    model.save_pretrained(tmp_path / name)
    tok.save_pretrained(tmp_path / name)
    return str(tmp_path / name)


def _small_eval(**kw):
    return dict(
        mc_limit=3,
        nll_limit=2,
        drift_limit=2,
        heldout=("arc_easy", "heldout_nll"),
        eval_batch_size=4,
        generation_batch_size=4,
        **kw,
    )


def test_run_with_your_data_and_test_file_reports_the_gain_on_that_test_set(tmp_path):
    """--data + --test_data: the target is the test file scored by the named rule, never iGSM."""
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": f"{i}+1?"},
                {"role": "assistant", "content": str(i + 1)},
            ]
        }
        for i in range(8)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
    (tmp_path / "test.csv").write_text("prompt,response\n7+1?,8\n8+1?,9\n9+1?,10\n")
    cfg = ExperimentConfig(
        preset="quick",
        model=_tiny_folder(tmp_path),
        data=str(tmp_path / "train.jsonl"),
        test_data=str(tmp_path / "test.csv"),
        score="last_number",
        output_dir=str(tmp_path / "run"),
        reference_epochs=1,
        outer_iterations=1,
        inner_epochs=1,
        baselines=(),
        wise_weights=(),
        max_new_tokens=4,
        **_small_eval(),
    )
    resolved = cfg.resolved()
    assert resolved.task == "file" and resolved.n_train is None and resolved.n_test is None  # not the recipe's 32 / 16
    out = Experiment(cfg, console_log=lambda s: None).run()
    base_eval = json.loads((tmp_path / "run" / "evals/base.json").read_text())
    assert "igsm" not in base_eval["results"]
    target = base_eval["results"]["file"]
    assert target["n"] == 3 and target["uids"] == ["test/0", "test/1", "test/2"]  # every row of the test file
    assert out["target"] == {"task": "file", "label": "test.csv (last_number)", "n": 3, "source": str(tmp_path / "test.csv")}
    assert [r["label"] for r in out["rows"]] == ["base", "sft", "anchored"]
    md = (tmp_path / "run" / "results.md").read_text()
    assert md.startswith("Target: test.csv (last_number), 3 test items")
    # every test prediction was scored by the rule against the row's response
    from anchored_learning.tasks.rules import get_rule

    rule = get_rule("last_number")
    assert target["items"] == [rule(p, g, {}) for p, g in zip(target["predictions"], ["8", "9", "10"])]
    # the trained rows are the 6 of train.jsonl, with their system turn
    done = json.loads((tmp_path / "run" / "models/reference/final/.complete").read_text())
    assert any(r.get("epoch") == 1.0 for r in done["log_history"])


def test_run_with_data_only_holds_out_a_test_split_and_says_so(tmp_path):
    rows = [{"prompt": f"{i}+1?", "response": str(i + 1)} for i in range(10)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    logs = []
    cfg = ExperimentConfig(preset="quick", data=str(tmp_path / "d.jsonl"), output_dir=str(tmp_path / "r"), **_small_eval())
    exp = Experiment(cfg, console_log=logs.append)
    assert exp.cfg.score == "normalized_match"
    assert len(exp.task.examples("test")) == 2 and len(exp.task.examples("train")) == 8
    assert len(load_training_rows(exp.cfg, exp.task)) == 8
    # the explicit iGSM target keeps the old meaning: train on the file, score on iGSM
    igsm = ExperimentConfig(preset="quick", task="igsm", data=str(tmp_path / "d.jsonl")).resolved()
    assert igsm.task == "igsm" and len(load_training_rows(igsm, make_task(igsm))) == 10
    with pytest.raises(ValueError, match="--test_data, --score describe your own test set"):
        ExperimentConfig(preset="quick", task="igsm", test_data="x.jsonl", score="exact_match").resolved()
    with pytest.raises(ValueError, match="give --data"):
        ExperimentConfig(preset="quick", task="file").resolved()
    with pytest.raises(ValueError, match="unknown scoring rule 'fuzzy'"):
        ExperimentConfig(preset="quick", data=str(tmp_path / "d.jsonl"), score="fuzzy").resolved()


def test_compare_any_models_including_a_lora_adapter(tmp_path):
    """anchored compare: base vs a full fine-tuned folder and a LoRA adapter folder, same items."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from anchored_learning.experiment.compare import compare_models
    from anchored_learning.experiment.experiment_config import CompareConfig

    base = _tiny_folder(tmp_path, "base_model")
    # a "fine-tuned" model: the base with its weights perturbed, saved as a plain folder in run/models/x/final
    ft = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        for p in ft.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ft_dir = tmp_path / "run" / "models" / "sft" / "final"
    ft.save_pretrained(ft_dir)
    # a LoRA adapter on the base, with non-zero B so it changes the model
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    lora.save_pretrained(tmp_path / "adapter")
    (tmp_path / "test.jsonl").write_text('{"prompt": "1+1?", "response": "2"}\n{"prompt": "2+1?", "response": "3"}\n')
    cfg = CompareConfig(
        base=base,
        model=[str(ft_dir), str(tmp_path / "adapter"), base],
        test_data=str(tmp_path / "test.jsonl"),
        score="last_number",
        max_new_tokens=3,
        output_dir=str(tmp_path / "cmp"),
        preset="quick",
        **_small_eval(),
    )
    out = compare_models(cfg, console_log=lambda s: None)
    assert [r["label"] for r in out["rows"]] == ["base", "sft", "adapter", "base_model"]
    rows = {r["label"]: r for r in out["rows"]}
    # the base compared with itself: no gain, no degradation, no drift
    assert rows["base_model"]["gain"] == 0.0 and rows["base_model"]["degradation"] == pytest.approx(0.0)
    assert rows["base_model"]["drift_kl"] == pytest.approx(0.0, abs=1e-6)
    # the perturbed model and the adapter really differ from the base
    assert rows["sft"]["drift_kl"] > 1e-4 and rows["adapter"]["drift_kl"] > 1e-4
    evals = {k: json.loads((tmp_path / "cmp" / "evals" / f"{k}.json").read_text()) for k in ("base", "sft", "adapter")}
    assert all(e["results"]["arc_easy"]["uids"] == evals["base"]["results"]["arc_easy"]["uids"] for e in evals.values())
    assert out["target"]["label"] == "test.jsonl (last_number)" and out["models"]["adapter"] == str(tmp_path / "adapter")
    for f in ("results.json", "results.md", "pareto.png"):
        assert (tmp_path / "cmp" / f).exists()
    # a second comparison in the same folder reuses the evaluations; another base is refused
    logs = []
    compare_models(cfg, console_log=logs.append)
    assert sum(line.startswith("[skip] eval") for line in logs) == 4
    with pytest.raises(ValueError, match="other settings"):
        compare_models(dataclasses.replace(cfg, seed=1), console_log=lambda s: None)
    # without a target: degradation only, no Pareto plot
    no_target = dataclasses.replace(cfg, test_data=None, score=None, output_dir=str(tmp_path / "cmp2"), model=[str(ft_dir)])
    out2 = compare_models(no_target, console_log=lambda s: None)
    assert out2["target"]["task"] is None and out2["rows"][1]["gain"] is None
    assert not (tmp_path / "cmp2" / "pareto.png").exists()
    assert "No target task" in (tmp_path / "cmp2" / "results.md").read_text()


def test_compare_evaluates_a_changed_model_folder_again(tmp_path):
    from anchored_learning.experiment.compare import model_identity

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"1")
    first = model_identity(str(folder))
    import os

    os.utime(folder / "model.safetensors", ns=(1, 10**18))
    assert model_identity(str(folder)) == first  # touched, same content
    (folder / "model.safetensors").write_bytes(b"2")
    assert model_identity(str(folder)) != first and model_identity("org/model") == "org/model"


def test_resume_refuses_changed_data_contents_and_another_precision(tmp_path):
    rows = [{"prompt": f"{i}+1?", "response": str(i + 1)} for i in range(10)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = ExperimentConfig(preset="quick", data=str(data), output_dir=str(tmp_path / "r"), precision="fp32", **_small_eval())
    exp = Experiment(cfg, console_log=lambda s: None)
    from anchored_learning.experiment.stages import DATA_KEY
    from anchored_learning.io import write_json_atomic

    write_json_atomic(exp.out / "config.json", {**dataclasses.asdict(exp.cfg), DATA_KEY: {"data": "0" * 64}})
    with pytest.raises(ValueError, match=r"the contents of data \(.*d\.jsonl\) changed"):
        Experiment(cfg, console_log=lambda s: None)
    # a folder made in float32: resumed as fp32, refused as bf16
    write_json_atomic(exp.out / "config.json", dataclasses.asdict(exp.cfg))
    Experiment(cfg, console_log=lambda s: None)
    with pytest.raises(ValueError, match=r"precision: 'fp32' -> 'bf16'"):
        Experiment(dataclasses.replace(cfg, precision="bf16"), console_log=lambda s: None)
    # "auto" is recorded as what this machine does
    assert ExperimentConfig(preset="quick").resolved().precision in ("bf16", "fp32")


def _file_run_cfg(tmp_path, out: str, **kw) -> ExperimentConfig:
    rows = [{"prompt": f"{i}+1?", "response": str(i + 1)} for i in range(8)]
    if not (tmp_path / "train.jsonl").exists():
        (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
        (tmp_path / "test.csv").write_text("prompt,response\n7+1?,8\n8+1?,9\n")
    model = str(tmp_path / "tiny") if (tmp_path / "tiny").exists() else _tiny_folder(tmp_path)
    settings = dict(
        preset="quick",
        model=model,
        data=str(tmp_path / "train.jsonl"),
        test_data=str(tmp_path / "test.csv"),
        score="last_number",
        output_dir=str(tmp_path / out),
        reference_epochs=1,
        outer_iterations=1,
        inner_epochs=1,
        baselines=(),
        wise_weights=(),
        max_new_tokens=4,
    )
    settings.update(_small_eval())
    settings.update(kw)
    return ExperimentConfig(**settings)


def test_base_evaluation_is_reused_across_run_folders_by_content_key(tmp_path, monkeypatch):
    """A second folder with the same model, items, settings and code copies the stored base
    evaluation (no evaluation runs), and only that one."""
    from anchored_learning.experiment import eval_cache
    from anchored_learning.experiment.task_data import data_fingerprints

    monkeypatch.setenv(eval_cache.ENV, str(tmp_path / "cache"))
    first_log, second_log = [], []
    Experiment(_file_run_cfg(tmp_path, "r1"), console_log=first_log.append).run()
    assert "[eval] base" in first_log
    stored = list((tmp_path / "cache").glob("base-*.json"))
    first = json.loads((tmp_path / "r1" / "evals" / "base.json").read_text())
    assert len(stored) == 1 and json.loads(stored[0].read_text()) == first

    Experiment(_file_run_cfg(tmp_path, "r2"), console_log=second_log.append).run()
    assert "[eval] base" not in second_log
    assert any(m.startswith("[reuse] eval base") and str(stored[0]) in m for m in second_log)
    second = json.loads((tmp_path / "r2" / "evals" / "base.json").read_text())
    assert second["meta"].pop("reused_from") == str(stored[0]) and second == first
    assert "[eval] anchored" in second_log  # only the base evaluation is shared
    cfg = _file_run_cfg(tmp_path, "r3").resolved()
    task = make_task(cfg)
    assert stored[0].name == f"base-{eval_cache.base_evaluation_key(cfg, data_fingerprints(cfg), cfg.model, task)}.json"


def test_base_evaluation_key_changes_with_what_the_numbers_depend_on(tmp_path, monkeypatch):
    from anchored_learning.experiment import eval_cache
    from anchored_learning.experiment.task_data import data_fingerprints

    monkeypatch.setenv(eval_cache.ENV, str(tmp_path / "cache"))
    cfg = _file_run_cfg(tmp_path, "r").resolved()
    data = data_fingerprints(cfg)
    key = eval_cache.base_evaluation_key(cfg, data, cfg.model)
    assert key is not None and len(key) == 64
    other_weights = _tiny_folder(tmp_path, name="tiny-1", seed=1)
    other_template = tmp_path / "tiny-template"
    shutil.copytree(cfg.model, other_template)
    tok_config = other_template / "tokenizer_config.json"
    tok_config.write_text(tok_config.read_text().replace("{", '{"chat_template": "{{ messages }}", ', 1))
    changed = [
        eval_cache.base_evaluation_key(dataclasses.replace(cfg, seed=1), data, cfg.model),
        eval_cache.base_evaluation_key(dataclasses.replace(cfg, mc_limit=4), data, cfg.model),
        eval_cache.base_evaluation_key(dataclasses.replace(cfg, eval_batch_size=2), data, cfg.model),
        eval_cache.base_evaluation_key(cfg, {**data, "test_data": "0" * 64}, cfg.model),
        eval_cache.base_evaluation_key(cfg, data, other_weights),
        eval_cache.base_evaluation_key(cfg, data, other_template),  # same weights, another chat template
    ]
    assert len({key, *changed}) == 7
    # training settings and the output folder do not enter the key
    same = dataclasses.replace(cfg, learning_rate=3e-3, output_dir=str(tmp_path / "elsewhere"), baselines=("dft",))
    assert eval_cache.base_evaluation_key(same, data, cfg.model) == key
    monkeypatch.setattr(eval_cache, "_code_fingerprint", lambda: "edited source")
    assert eval_cache.base_evaluation_key(cfg, data, cfg.model) not in (key, None)
    # not keyed by content: a Hub dataset id, a folder without weight files; cache off
    assert eval_cache.base_evaluation_key(cfg, {**data, "data": None}, cfg.model) is None
    assert eval_cache.base_evaluation_key(cfg, data, tmp_path / "cache") is None
    # the target's test items: another split of the same --data folder, same file hashes
    from datasets import Dataset, DatasetDict

    rows = [{"prompt": f"{i}+2?", "response": str(i + 2)} for i in range(6)]
    DatasetDict({"a": Dataset.from_list(rows[:3]), "b": Dataset.from_list(rows[3:])}).save_to_disk(str(tmp_path / "dd"))
    split_keys = set()
    for split in ("a", "b"):
        c = dataclasses.replace(cfg, data=f"{tmp_path / 'dd'}:{split}", test_data=None).resolved()
        split_keys.add(eval_cache.base_evaluation_key(c, data_fingerprints(c), c.model, make_task(c)))
    assert len(split_keys) == 2 and None not in split_keys
    # a scoring rule of your own: its module's source (unreadable: no reuse)
    rule = tmp_path / "my_rule_mod.py"
    rule.write_text("def score(prediction, answer, meta):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import my_rule_mod

    own = dataclasses.replace(cfg, score="my_rule_mod:score")
    before = eval_cache.base_evaluation_key(own, data, cfg.model)
    rule.write_text("def score(prediction, answer, meta):\n    return 0.0\n")
    importlib.reload(my_rule_mod)
    assert None not in (before, key) and len({key, before, eval_cache.base_evaluation_key(own, data, cfg.model)}) == 3
    # stored and read back under the key; an unreadable or malformed entry is ignored; an
    # evaluation with a suite that could not run is not stored; off stores nothing
    result = {"meta": {"model": "base"}, "results": {"file": {"primary": 0.5}}}
    path = eval_cache.store_base_evaluation(key, result)
    assert path == tmp_path / "cache" / f"base-{key}.json" and eval_cache.stored_base_evaluation(key) == (path, result)
    for bad in ("{not json", "{}", '{"meta": {}, "results": []}'):
        path.write_text(bad)
        assert eval_cache.stored_base_evaluation(key) is None
    path.unlink()
    failed = {"meta": {}, "results": {"file": {"primary": 0.5}, "ifbench": {"error": "ModuleNotFoundError: emoji"}}}
    assert eval_cache.store_base_evaluation(key, failed) is None and not path.exists()
    monkeypatch.setenv(eval_cache.ENV, "off")
    assert eval_cache.stored_base_evaluation(key) is None and eval_cache.store_base_evaluation(key, result) is None


def test_issue30_methods_in_a_run_self_generated_rows_recorded_and_reused(tmp_path, monkeypatch):
    """The on-policy, KL-budget and self-generated methods as variants of `anchored run` (the
    frontier grid's baselines): T x K epochs for the outer-loop ones; sft_self_generated trains on
    the base model's samples that the file task's rule accepts, recorded in the run folder, reported,
    and reused when the run is resumed."""
    import anchored_learning.sampling as sampling

    # accepts any sample of the rows whose gold answer is even (the rule sees the training row's answer)
    (tmp_path / "even_rule.py").write_text("def rule(prediction, reference):\n    return int(reference) % 2 == 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [{"prompt": f"{i}+1?", "response": str(i + 1)} for i in range(6)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "test.csv").write_text("prompt,response\n7+1?,8\n8+1?,9\n")
    methods = ("sft_self_generated", "anchored_on_policy", "distill_on_policy", "anchored_budget")
    cfg = ExperimentConfig(
        preset="quick",
        model=_tiny_folder(tmp_path),
        data=str(tmp_path / "train.jsonl"),
        test_data=str(tmp_path / "test.csv"),
        score="even_rule:rule",
        output_dir=str(tmp_path / "run"),
        reference_epochs=1,
        outer_iterations=2,
        inner_epochs=1,
        baseline_epochs=1,
        baselines=methods,
        wise_weights=(),
        max_new_tokens=4,
        **_small_eval(),
    )
    exp = Experiment(cfg, console_log=lambda s: None)
    for variant in exp.plan[1:]:
        args, _ = P.variant_args(exp.cfg, exp.out, variant)
        method = variant.method
        assert args.method == method
        assert args.num_train_epochs == (1 if method == "sft_self_generated" else 2)  # T x K for the outer-loop ones
        assert (args.reference_model is not None) == (method != "sft_self_generated")
    logs: list[str] = []
    out = Experiment(cfg, console_log=logs.append).run()
    assert [r["label"] for r in out["rows"]] == ["base", "sft", "anchored", *methods]
    run = tmp_path / "run"
    record = run / "models" / "sft_self_generated" / "self_generated.jsonl"
    header, kept = sampling.read_record(record)
    report = header["report"]
    assert report["n"] == 6 and report["accepted"] == 3 and report["accepted_share"] == 0.5
    for row, new in zip(rows, kept):
        accepted = int(row["response"]) % 2 == 0
        assert new["self_generated"] is accepted and (new["completion"][0]["content"] == row["response"]) is not accepted
    assert any("3 of 6 training rows are the base model's accepted samples (50.0%)" in m for m in logs)
    done = json.loads((run / "models" / "sft_self_generated" / "final" / ".complete").read_text())
    assert done["self_generated"] == report
    on_policy = json.loads((run / "models" / "anchored_on_policy" / "final" / ".complete").read_text())
    assert [r["sampled"] for r in on_policy["anchor_history"]] == [1.0, 1.0]
    # the responses each outer iteration trained on stay with the run after its checkpoints are deleted
    for t in (0, 1):
        header, sampled = sampling.read_record(run / "models" / "anchored_on_policy" / "on_policy" / f"iteration-{t:03d}.jsonl")
        assert len(sampled) == 6
    assert not (run / "models" / "anchored_on_policy" / "trainer").exists()
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_run", Path(__file__).parents[1] / "scripts" / "export_run.py")
    export_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_run)
    exported = tmp_path / "exported"
    export_run.export(run, exported)
    assert (exported / "on_policy_anchored_on_policy" / "iteration-001.jsonl").read_text() == (
        run / "models" / "anchored_on_policy" / "on_policy" / "iteration-001.jsonl"
    ).read_text()
    assert all("alpha_t" in r for r in json.loads((run / "models/anchored_budget/final/.complete").read_text())["anchor_history"])
    # resumed after its model was lost: the recorded rows are read, not sampled again
    shutil.rmtree(run / "models" / "sft_self_generated" / "final")
    (run / "evals" / "sft_self_generated.json").unlink()
    monkeypatch.setattr(sampling, "self_generated_rows", lambda *a, **k: pytest.fail("sampled again"))
    Experiment(cfg, console_log=lambda s: None).run()
    assert sampling.read_record(record)[1] == kept
