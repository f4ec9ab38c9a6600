"""Bad command-line input fails up front with exit code 2 and a message that says what to do,
before any model is loaded or trained (nothing here trains or loads a model: the loaders and
trainers are replaced by functions that fail the test if called)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anchored_learning.cli import _register, app

_register()


def _invoke(argv):
    return CliRunner().invoke(app, argv, env={"COLUMNS": "300"})


@pytest.fixture
def no_work(monkeypatch):
    """Any model load, reference training or experiment run fails the test."""
    import anchored_learning.experiment.stages as pl
    import anchored_learning.models as models
    import anchored_learning.trainer as tr

    def boom(*a, **k):
        pytest.fail("work started before the input was validated")

    monkeypatch.setattr(models, "load_model_and_tokenizer", boom)
    monkeypatch.setattr(tr, "train_reference", boom)
    monkeypatch.setattr(pl.Experiment, "run", boom)


@pytest.fixture
def data(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"prompt": "1+1?", "response": "2"}) + "\n")
    return p


@pytest.fixture
def fake_training(monkeypatch):
    """`anchored train` with the model loading, the reference training and the trainer replaced:
    returns a dict that records the trainer's ``args`` and ``peft_config`` and every
    ``train_reference`` call (``reference_calls``: ``(output folder, keyword arguments)``)."""
    import types

    import anchored_learning.models as models
    import anchored_learning.trainer as tr
    from anchored_learning.testing import tiny_llama, tiny_tokenizer

    seen = {"reference_calls": []}

    def fake_reference(model, dataset, out, **kw):
        seen["reference_calls"].append((out, kw))
        return out

    class FakeTrainer:
        accelerator = types.SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)

        def __init__(self, model, args, peft_config=None, **kw):
            seen["args"], seen["peft"] = args, peft_config
            self.model, self.state = model, types.SimpleNamespace(log_history=[{"loss": 1.0}])

        def train(self, **kw):
            pass

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda *a, **k: tiny_llama(seed=0))
    monkeypatch.setattr(models, "resolve_model_path", lambda *a, **k: "tiny-base")
    monkeypatch.setattr(models, "load_tokenizer", lambda *a, **k: tiny_tokenizer())
    monkeypatch.setattr(tr, "train_reference", fake_reference)
    monkeypatch.setattr(tr, "AnchoredSFTTrainer", FakeTrainer)
    return seen


def _assert_usage_error(res, *needles):
    assert res.exit_code == 2, res.output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", res.output).split())  # rich boxes and wraps long messages
    for n in needles:
        assert n in text, (n, res.output)
    assert "Traceback" not in res.output


def test_model_that_does_not_exist(tmp_path, no_work, data):
    missing = str(tmp_path / "nope")
    _assert_usage_error(_invoke(["eval", "-m", missing, "-s", "arc_easy"]), "does not exist")
    _assert_usage_error(_invoke(["train", "--data", str(data), "-o", str(tmp_path / "o"), "-m", missing]), "does not exist")
    _assert_usage_error(_invoke(["run", "-m", missing, "-o", str(tmp_path / "r")]), "does not exist")
    (tmp_path / "empty").mkdir()
    _assert_usage_error(_invoke(["eval", "-m", str(tmp_path / "empty")]), "no config.json")
    assert not (tmp_path / "r").exists()


def test_output_paths_of_the_wrong_kind(tmp_path, no_work, data):
    f = tmp_path / "file.txt"
    f.write_text("x")
    _assert_usage_error(_invoke(["train", "--data", str(data), "-o", str(f), "--method", "sft"]), "file")
    _assert_usage_error(_invoke(["run", "-o", str(f)]), "file")
    _assert_usage_error(_invoke(["eval", "-s", "arc_easy", "-o", str(tmp_path)]), "directory")


def test_train_config_errors_before_any_training(tmp_path, no_work, data):
    out = ["train", "--data", str(data), "-o", str(tmp_path / "o")]
    _assert_usage_error(_invoke(out + ["--config", str(tmp_path / "missing.yaml")]), "does not exist")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("anchor_alpha: [0.5\n")
    _assert_usage_error(_invoke(out + ["--config", str(bad_yaml)]), "neither valid JSON nor YAML")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("learning_rate: 1e-5 # caf\xe9\n".encode("latin-1"))
    _assert_usage_error(_invoke(out + ["--config", str(latin1)]), "not UTF-8")
    _assert_usage_error(_invoke(out + ["--config", str(tmp_path)]), "is a folder")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    _assert_usage_error(_invoke(out + ["--config", str(listy)]), "mapping")
    # a bad value for the anchored method fails before the reference would be trained
    bad_alpha = tmp_path / "alpha.json"
    bad_alpha.write_text(json.dumps({"anchor_alpha": 5}))
    _assert_usage_error(_invoke(out + ["--config", str(bad_alpha)]), "anchor_alpha")
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"alpha": 0.5}))
    _assert_usage_error(_invoke(out + ["--config", str(unknown)]), "alpha")
    assert not (tmp_path / "o" / "reference").exists()


def test_run_refuses_a_deepspeed_config_that_cannot_work_before_any_work(tmp_path, no_work):
    run = ["run", "-o", str(tmp_path / "r"), "--deepspeed"]
    _assert_usage_error(_invoke([*run, str(tmp_path / "missing.json")]), "missing.json", "does not exist")
    zero3 = tmp_path / "zero3.json"
    zero3.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    if __import__("importlib.util").util.find_spec("deepspeed") is None:
        _assert_usage_error(_invoke([*run, str(zero3)]), "pip install 'anchored-learning[deepspeed]'")
    else:
        _assert_usage_error(_invoke([*run, str(zero3)]), "ZeRO stage 3 is not supported", "stage 2")
        zero2 = tmp_path / "zero2.json"
        zero2.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
        _assert_usage_error(_invoke([*run, str(zero2)]), "needs a launcher", "torchrun")  # this process has none
    assert not (tmp_path / "r").exists()


def test_numbers_out_of_range(tmp_path, no_work):
    _assert_usage_error(_invoke(["eval", "--batch-size", "0"]), "--batch-size")
    _assert_usage_error(_invoke(["eval", "--generation-batch-size", "0"]), "--generation-batch-size")
    _assert_usage_error(_invoke(["eval", "--limit", "-1"]), "--limit")
    _assert_usage_error(_invoke(["eval", "--seed", "-1"]), "--seed")
    _assert_usage_error(_invoke(["run", "--seed", "-3", "-o", str(tmp_path / "r")]), "--seed")
    _assert_usage_error(_invoke(["run", "--seeds", "0,-1", "-o", str(tmp_path / "r")]), "non-negative")
    assert not (tmp_path / "r").exists()


def test_evaluate_rejects_bad_limits_and_batch_sizes():
    from anchored_learning.evaluation.suites import evaluate

    for kw in ({"limit": -1}, {"limits": {"arc_easy": 0}}, {"batch_size": 0}, {"generation_batch_size": 0}):
        with pytest.raises(ValueError, match=">= 1"):
            evaluate(None, None, ["arc_easy"], **kw)


def test_train_takes_the_hyphenated_aliases_its_help_lists(tmp_path, fake_training, data):
    """Was: --output-dir (listed by --help) was refused, and --reference-model was given to the
    student while a new reference was trained and recorded (the flags were read in one spelling)."""
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "config.json").write_text("{}")
    res = _invoke(["train", "--data", str(data), "--output-dir", str(tmp_path / "o"), "--method", "anchored",
                   "--reference-model", str(ref)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert fake_training["reference_calls"] == []  # the given reference, none trained
    settings = json.loads((tmp_path / "o" / "train_settings.json").read_text())
    assert settings["training_arguments"]["reference_model"] == str(ref)
    assert "trained here" not in json.dumps(settings["reference_model"])


def test_train_reuses_its_reference_only_for_the_same_data_and_saves_atomically(tmp_path, fake_training, data):
    import shutil

    argv = ["train", "--data", str(data), "-o", str(tmp_path / "o"), "--method", "anchored"]
    res = _invoke(argv)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "final" / "config.json").is_file() and not list((tmp_path / "o").glob(".final.tmp-*"))
    # the same command again: reported as finished, nothing retrained
    res = _invoke(argv)
    assert res.exit_code == 0 and "already trained" in res.output, res.output
    # killed after the reference, before the model was saved: the reference is reused
    shutil.rmtree(tmp_path / "o" / "final")
    res = _invoke(argv)
    assert res.exit_code == 0 and "(reused)" in res.output, res.output
    assert [out for out, _ in fake_training["reference_calls"]] == [str(tmp_path / "o" / "reference")]
    # other data, method or settings in the same folder: refused before any work (was: the old model, silently)
    _assert_usage_error(_invoke(argv + ["--anchor_alpha", "0.9"]), "other data or settings", "anchor_alpha: 0.5 -> 0.9")
    _assert_usage_error(_invoke([*argv[:-1], "sft"]), "method: 'anchored' -> 'sft'")
    data.write_text(json.dumps({"prompt": "2+2?", "response": "4"}) + "\n")
    _assert_usage_error(_invoke(argv), "the contents of data changed")
    assert len(fake_training["reference_calls"]) == 1
    # a training that stopped before its first checkpoint left only its settings: nothing would be
    # reused, so other settings train there; with a checkpoint they are refused
    for name, checkpoint in (("failed", False), ("killed", True)):
        (tmp_path / name / "trainer").mkdir(parents=True)
        shutil.copy(tmp_path / "o" / "train_settings.json", tmp_path / name)
        if checkpoint:
            (tmp_path / name / "trainer" / "checkpoint-2").mkdir()
        res = _invoke(["train", "--data", str(data), "-o", str(tmp_path / name), "--method", "sft"])
        if checkpoint:
            _assert_usage_error(res, "other data or settings", "method: 'anchored' -> 'sft'")
        else:
            assert res.exit_code == 0 and (tmp_path / name / "final" / "config.json").is_file(), res.output
            assert json.loads((tmp_path / name / "train_settings.json").read_text())["training_arguments"]["method"] == "sft"
    # a folder from an earlier version (no recorded settings) is refused too
    (tmp_path / "old" / "final").mkdir(parents=True)
    _assert_usage_error(_invoke(["train", "--data", str(data), "-o", str(tmp_path / "old")]), "not recorded")


def test_train_refuses_flags_it_would_ignore(tmp_path, no_work, data):
    """TRL / transformers flags that `anchored train` would ignore or fail on late are refused up
    front, naming the flag and what to do instead; nothing is written."""
    argv = ["train", "--data", str(data), "-o", str(tmp_path / "o"), "--method", "sft"]
    for extra, needles in [
        (["--loss_type", "dft"], ("Invalid value for --loss_type", "loss_type 'dft' is TRL's switch", "--method dft")),
        (["--label_smoothing_factor", "0.1"], ("label_smoothing_factor is not applied",)),
        (["--eval_strategy", "steps"], ("Invalid value for --eval_strategy", "takes no evaluation data")),
        (["--resume_from_checkpoint", "x"], ("Invalid value for --resume_from_checkpoint", "resumes by itself")),
        (["--reference_epochs", "0"], ("Invalid value for --reference_epochs", "reference_epochs must be > 0")),
    ]:
        _assert_usage_error(_invoke(argv + extra), *needles)
    assert not (tmp_path / "o").exists()


def test_bad_method_is_blamed_on_method(tmp_path, no_work, data):
    cfg = tmp_path / "c.json"
    cfg.write_text('{\n\t"anchor_alpha": 0.5\n}')  # tab-indented JSON is JSON
    _assert_usage_error(
        _invoke(["train", "--data", str(data), "-o", str(tmp_path / "o"), "--method", "ppo", "--config", str(cfg)]),
        "--method",
        "unknown method 'ppo'",
    )


def test_paths_below_a_file_and_config_keys_that_belong_on_the_command_line(tmp_path, no_work, data):
    f = tmp_path / "afile"
    f.write_text("x")
    _assert_usage_error(_invoke(["run", "-o", str(f / "sub")]), "is a file, not a folder")
    _assert_usage_error(_invoke(["sweep", "-g", "anchored.anchor_alpha=0.25", "-o", str(f / "sub")]), "is a file, not a folder")
    _assert_usage_error(
        _invoke(["train", "--data", str(data), "-o", str(f / "sub"), "--method", "sft"]), "is a file, not a folder"
    )
    _assert_usage_error(_invoke(["eval", "-s", "arc_easy", "-o", str(f / "x.json")]), "is a file, not a folder")


def test_sweep_values_of_the_wrong_type_or_range_fail_before_any_work(tmp_path, no_work):
    for grid, msg in (
        ("anchored.learning_rate=abc", "learning_rate must be a number"),
        ("anchored.learning_rate=-1", "learning_rate must be >= 0"),
        ("sft.per_device_train_batch_size=0", "must be >= 1"),
        ("anchored.outer_iterations=1.5", "outer_iterations must be a whole number"),
        ("anchored.num_train_epochs=abc", "num_train_epochs must be a number"),
    ):
        _assert_usage_error(_invoke(["sweep", "-g", grid, "-o", str(tmp_path / "s")]), msg)
    # a planned stage's bad value is blamed on its field, not on the stage's label ("sft_kl: kl_coef ...")
    _assert_usage_error(_invoke(["run", "--kl_coef", "-1", "--baselines", "sft_kl", "-o", str(tmp_path / "s")]), "--kl_coef")
    assert not (tmp_path / "s").exists()


def test_a_bad_value_is_named_before_a_resume_mismatch(tmp_path, no_work):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{}")
    _assert_usage_error(_invoke(["run", "-o", str(tmp_path / "r"), "--anchor_alpha", "5"]), "anchor_alpha must be in [0, 1]")


def test_yaml_numbers_written_like_1e_5_are_numbers(tmp_path):
    import yaml

    from anchored_learning.config import AnchoredSFTConfig

    fields = yaml.safe_load("learning_rate: 1e-5\nouter_iterations: '3'\n")
    assert fields["learning_rate"] == "1e-5"  # YAML 1.1 reads it as a string ...
    cfg = AnchoredSFTConfig(output_dir=str(tmp_path), method="sft", **fields)
    assert cfg.learning_rate == 1e-5 and cfg.outer_iterations == 3  # ... the config converts it


def test_eval_output_is_world_readable_like_any_file(tmp_path):
    import os

    from anchored_learning.io import write_json_atomic

    umask = os.umask(0o022)
    try:
        p = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o644


def test_train_flags_come_from_the_config_dataclass(tmp_path, fake_training, data):
    """Every AnchoredSFTConfig / TrainingArguments field is a flag, a YAML recipe sets fields
    (method included), a flag overrides the recipe, and old spellings still work."""
    from anchored_learning.testing import tiny_llama

    seen = fake_training
    help_text = _invoke(["train", "--help"]).output
    for flag in (
        "--anchor_alpha",
        "--outer_iterations",
        "--inner_epochs",
        "--learning_rate",
        "--weight_decay",
        "--lr_scheduler_type",
        "--use_peft",
        "--reference_model",
        "--method",
    ):
        assert flag in help_text, flag
    assert "(default: 0.5)" in help_text  # defaults are shown
    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: dft\nlearning_rate: 1e-5\nweight_decay: 0.01\nnum_train_epochs: 2\n")
    res = _invoke(
        [
            "train",
            "--data",
            str(data),
            "-o",
            str(tmp_path / "o"),
            "--config",
            str(recipe),
            "--learning_rate",
            "3e-4",
            "--use_peft",
            "--lora_r",
            "4",
        ]
    )
    assert res.exit_code == 0, res.output
    args = seen["args"]
    assert args.method == "dft" and args.weight_decay == 0.01 and args.num_train_epochs == 2
    assert args.learning_rate == 3e-4  # the flag overrides the recipe
    assert args.output_dir == str(tmp_path / "o" / "trainer") and args.reference_model is None
    assert seen["peft"].r == 4 and seen["peft"].target_modules == "all-linear"
    # --reference_model names the reference, --method lora names its replacement
    ref = tmp_path / "ref"
    tiny_llama(seed=0)[0].save_pretrained(ref)
    res = _invoke(["train", "--data", str(data), "--output_dir", str(tmp_path / "o2"), "--reference_model", str(ref)])
    assert res.exit_code == 0, res.output
    assert seen["args"].method == "anchored" and seen["args"].reference_model == str(ref)
    _assert_usage_error(_invoke(["train", "--data", str(data), "-o", str(tmp_path / "o3"), "--method", "lora"]), "--use_peft")
    _assert_usage_error(
        _invoke(["train", "--data", str(data), "-o", str(tmp_path / "o3"), "--reference", str(ref)]), "unknown flag --reference"
    )
    _assert_usage_error(
        _invoke(["train", "--data", str(data), "-o", str(tmp_path / "o3"), "--no_such_flag", "1"]), "--no_such_flag"
    )
    assert not seen["reference_calls"]  # dft needs no reference; --reference names one


def test_run_flags_come_from_the_experiment_config(tmp_path, monkeypatch):
    """`anchored run` takes every ExperimentConfig field as a flag and a recipe with --config (the
    old --alpha spelling is an unknown flag); `sweep` takes repeated --grid/-g."""
    import anchored_learning.experiment.run_commands as commands

    got = []
    monkeypatch.setattr(commands, "_run_experiment", lambda ctx, cfg, seeds=None: got.append((cfg, seeds)))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("preset: quick\nn_train: 8\nbaselines: [sft, wise_ft]\nlearning_rate: 1e-4\n")
    res = _invoke(["run", "--config", str(recipe), "--n_train", "12", "--anchor_alpha", "0.25", "--seeds", "0,1"])
    assert res.exit_code == 0, res.output
    cfg, seeds = got[-1]
    assert (cfg.preset, cfg.n_train, cfg.anchor_alpha, cfg.learning_rate) == ("quick", 12, 0.25, 1e-4)
    assert cfg.baselines == ["sft", "wise_ft"] and seeds == [0, 1]
    res = _invoke(["run", "--baselines", "sft,sft_kl", "--inner_epochs", "2"])
    assert res.exit_code == 0, res.output
    assert got[-1][0].baselines == ["sft", "sft_kl"] and got[-1][0].inner_epochs == 2
    res = _invoke(["sweep", "-g", "anchored.anchor_alpha=0.25", "--grid", "sft.learning_rate=1e-4,3e-5"])
    assert res.exit_code == 0, res.output
    cfg = got[-1][0]
    assert cfg.sweep == ["anchored.anchor_alpha=0.25", "sft.learning_rate=1e-4,3e-5"]
    assert cfg.preset == "quick" and cfg.output_dir == "runs/igsm-quick-sweep"
    _assert_usage_error(_invoke(["run", "--epochs_per_iteration", "2"]), "--epochs_per_iteration")
    old_recipe = tmp_path / "old.yaml"
    old_recipe.write_text("preset: quick\nbatch_size: 4\n")
    _assert_usage_error(
        _invoke(["run", "--config", str(old_recipe)]), "sets ['batch_size'], which are not fields of this command"
    )
    _assert_usage_error(_invoke(["run", "--alpha", "0.25"]), "unknown flag --alpha (did you mean --anchor_alpha?); see --help")
    res = _invoke(["run", "--seeds", "0", "2", "-o", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert got[-1][1] == [0, 2]
    # --flag=value and --flag value mixed: every value kept
    res = _invoke(["sweep", "--grid", "anchored.anchor_alpha=0.25", "--grid=sft.learning_rate=1e-3", "-m", "x"])
    assert res.exit_code == 0, res.output
    assert got[-1][0].sweep == ["anchored.anchor_alpha=0.25", "sft.learning_rate=1e-3"] and got[-1][0].model == "x"
    res = _invoke(["run", "--heldout=arc_easy", "--heldout", "heldout_nll"])
    assert got[-1][0].heldout == ["arc_easy", "heldout_nll"]
    assert "(default: quick)" in _invoke(["sweep", "--help"]).output  # the command's own defaults in --help


def test_train_that_diverges_exits_cleanly_without_a_model(tmp_path, data):
    from anchored_learning.testing import tiny_llama

    model, tok = tiny_llama(seed=0)
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    rows = "".join(json.dumps({"prompt": f"{i}+1?", "response": str(i + 1)}) + "\n" for i in range(8))
    data.write_text(rows)
    argv = [
        "train",
        "--data",
        str(data),
        "-o",
        str(tmp_path / "o"),
        "-m",
        str(tmp_path / "tiny"),
        "--method",
        "sft",
        "--learning_rate",
        "1e38",
        "--num_train_epochs",
        "2",
        "--use_cpu",
        "--per_device_train_batch_size",
        "4",
    ]
    res = _invoke(argv)
    assert res.exit_code == 1, res.output
    assert "training diverged" in res.output and "non-finite sft loss" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o" / "final").exists()
    _assert_usage_error(_invoke([*argv[:-6], "inf", *argv[-5:]]), "learning_rate must be a finite number")


def test_train_trains_its_reference_with_the_users_training_flags(tmp_path, fake_training, data):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: anchored\nnum_train_epochs: 7\nseed: 5\n")
    res = _invoke(
        [
            "train",
            "--data",
            str(data),
            "-o",
            str(tmp_path / "o"),
            "--config",
            str(recipe),
            "--learning_rate",
            "3e-5",
            "--per_device_train_batch_size",
            "2",
            "--reference_epochs",
            "2",
            "--use_peft",
            "--use_cpu",
        ]
    )
    assert res.exit_code == 0, res.output
    ((out, seen),) = fake_training["reference_calls"]
    ref = seen["args"]  # was: built-in defaults (batch 8, lr 2e-5, seed 42), whatever the flags said
    assert (ref.method, ref.num_train_epochs, ref.learning_rate, ref.per_device_train_batch_size, ref.seed) == (
        "sft",
        2,
        3e-5,
        2,
        5,
    )
    assert ref.use_cpu and ref.output_dir == out == str(tmp_path / "o" / "reference")
    assert seen["peft_config"].r == 16  # --use_peft: the reference is a LoRA fine-tune too


def test_train_parses_its_flags_once(tmp_path, fake_training, data, monkeypatch):
    """The reference's config comes from the same parse as the method's (was: argv parsed twice)."""
    import anchored_learning.train_command as train_command

    calls = []
    parse = train_command.parse_config_values
    monkeypatch.setattr(train_command, "parse_config_values", lambda *a, **k: calls.append(a) or parse(*a, **k))
    res = _invoke(["train", "--data", str(data), "-o", str(tmp_path / "o"), "--learning_rate", "3e-5", "--use_cpu"])
    assert res.exit_code == 0, res.output
    assert len(calls) == 1 and len(fake_training["reference_calls"]) == 1
    ref, main = fake_training["reference_calls"][0][1]["args"], fake_training["args"]
    assert (ref.method, ref.learning_rate, ref.reference_model) == ("sft", 3e-5, None)
    assert (main.method, main.learning_rate, main.reference_model) == ("anchored", 3e-5, str(tmp_path / "o" / "reference"))


def test_experiment_commands_resolve_their_settings_once(tmp_path, monkeypatch):
    """run and sweep resolve the config once and hand the resolved one on."""
    import anchored_learning.experiment.run_commands as commands
    from anchored_learning.experiment import ExperimentConfig

    got, resolves = [], []
    resolved = ExperimentConfig.resolved
    monkeypatch.setattr(ExperimentConfig, "resolved", lambda self: resolves.append(1) or resolved(self))
    monkeypatch.setattr(commands, "_run_experiment", lambda ctx, cfg, seeds=None: got.append(cfg))
    for argv in (["run", "--preset", "quick"], ["sweep", "-g", "anchored.anchor_alpha=0.25"]):
        resolves.clear()
        res = _invoke([*argv, "-o", str(tmp_path / "r")])
        assert res.exit_code == 0, res.output
        assert len(resolves) == 1 and got[-1].n_train is not None and got[-1].precision != "auto", argv


def test_your_task_and_compare_errors_before_any_work(tmp_path, no_work, data):
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{"question": "a"}\n')
    model = tmp_path / "ft"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cases = [
        (["compare"], "give at least one fine-tuned model with --model"),
        (["compare", "--model", str(tmp_path / "nope")], "does not exist"),
        (["compare", "--model", str(model), "--test_data", str(bad)], "t.jsonl:2: no prompt found (columns found: ['question'])"),
        (["compare", "--model", str(model), "--model", str(model)], "is given twice"),
        (["run", "--data", str(data), "--score", "fuzzy"], "unknown scoring rule 'fuzzy'"),
        (["run", "--data", str(data), "--score", "regex"], "the regex rule needs --answer_regex"),
        (["run", "--test_data", str(data)], "the file task trains on your rows: give --data"),
        (["run", "--data", str(bad)], "t.jsonl:2: no prompt found"),
        (["run", "--data", str(data), "--test_fraction", "1.5"], "test_fraction must be in (0, 1)"),
        # a flag that would be ignored is refused: the test set is the file, and compare trains on nothing
        (["run", "--data", str(data), "--test_data", str(data), "--test_fraction", "0.3"], "drop --test_fraction"),
        (["compare", "--model", str(model), "--test_fraction", "0.3"], "anchored compare has none"),
        (["train", "--data", str(bad), "-o", str(tmp_path / "o")], "t.jsonl:2: no prompt found"),
        # the conflict is named before the (missing) file is looked for
        (["run", "--task", "igsm", "--test_data", "nope.jsonl"], "--test_data describes your own test set"),
        (["compare", "--model", str(model), "--score", "last_number"], "give it with --test_data"),
        (["eval", "--suite", "file"], "the 'file' task is your own test set: score it with `anchored compare"),
        (["eval", "--suite", "drift"], "drift is the KL from a base model p0: give it with --base-model"),
        (["eval", "-s", "arc_easy,drift:igsm"], "give it with --base-model"),
    ]
    for argv, msg in cases:
        _assert_usage_error(_invoke(argv), msg)
    res = _invoke(["compare", "--model", str(model), "--base", str(tmp_path / "nope")])
    _assert_usage_error(res, "Invalid value for --base", "base model folder")


def test_compare_help_lists_the_evaluation_fields():
    res = _invoke(["compare", "--help"])
    assert res.exit_code == 0, res.output
    for flag in ("--base", "--model", "--test_data", "--score", "--heldout", "--mc_limit", "--answer_column"):
        assert flag in res.output
    assert "--learning_rate" not in res.output  # compare trains nothing


def test_frontier_takes_the_bundled_grid_and_flags_override_it(tmp_path, monkeypatch):
    """`anchored frontier`: the grid of configs/frontier.yaml on the default recipe over seeds
    0,1,2 unless flags say otherwise; a bad grid fails before any work; --report_only trains
    nothing and says when there is nothing to analyse."""
    import anchored_learning.experiment as experiment
    import anchored_learning.experiment.frontier_report as frontier

    got, reported = [], []

    def fake_report(folder, seeds=None, n_boot=2000, task=None):
        reported.append((folder, seeds, n_boot))
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "frontier.md").write_text("table")
        return {"verdict": "v", "points": []}

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(experiment, "run_seeds", lambda cfg, seeds, console_log=None: got.append((cfg, seeds)))
    monkeypatch.setattr(frontier, "write_frontier_report", fake_report)
    monkeypatch.setattr(experiment.Experiment, "__init__", lambda self, cfg, console_log=None: None)
    res = _invoke(["frontier"])
    assert res.exit_code == 0, res.output
    assert reported[-1] == ("runs/igsm-frontier", [0, 1, 2], 2000)
    cfg, seeds = got[-1]
    assert seeds == [0, 1, 2] and cfg.preset == "default"
    assert cfg.sweep[0] == "sft.learning_rate=3e-5,1e-4,3e-4;num_train_epochs=1,3"
    assert "wise_ft" in cfg.baselines and cfg.wise_weights == [0.25, 0.5, 0.75]
    res = _invoke(["frontier", "--seeds", "4", "--sweep", "anchored.anchor_alpha=0.25", "--baselines", "sft", "-t", "ifeval"])
    assert res.exit_code == 0, res.output
    cfg, seeds = got[-1]
    assert seeds == [4] and cfg.sweep == ["anchored.anchor_alpha=0.25"] and cfg.baselines == ["sft"]
    assert cfg.output_dir == "runs/ifeval-frontier"
    res = _invoke(["frontier", "--report_only", "-o", "elsewhere", "--n_boot", "50", "--seeds", "0"])
    assert res.exit_code == 0 and len(got) == 2 and reported[-1] == ("elsewhere", [0], 50)  # nothing trained
    assert "--report_only" in _invoke(["frontier", "--help"]).output


def test_frontier_errors_before_any_work(tmp_path, no_work):
    _assert_usage_error(_invoke(["frontier", "--sweep", "anchored.alpha=0.5", "-o", str(tmp_path)]), "sweep entry")
    # a bad value in a sweep entry is blamed on --sweep (was: on --learning_rate, a flag not given)
    res = _invoke(["sweep", "--sweep", "sft.learning_rate=abc", "-o", str(tmp_path / "s")])
    _assert_usage_error(res, "Invalid value for --sweep", "sft(learning_rate=abc): learning_rate must be a number")
    # a value without its flag (was: "unknown flag ; see --help")
    res = _invoke(["run", "data.jsonl", "-o", str(tmp_path / "r")])
    _assert_usage_error(res, "unexpected argument data.jsonl: every setting is a flag (--name value, e.g. --data FILE)")
    _assert_usage_error(_invoke(["frontier", "--seeds", "1,1", "-o", str(tmp_path)]), "distinct")
    _assert_usage_error(_invoke(["frontier", "--report_only", "-o", str(tmp_path / "none")]), "none does not exist: give")
    (tmp_path / "empty").mkdir()
    _assert_usage_error(_invoke(["frontier", "--report_only", "-o", str(tmp_path / "empty")]), "no evaluation of the base")
    _assert_usage_error(_invoke(["frontier", "--report_only", "--n_boot", "3"]), "n_boot")


def test_deepspeed_cpu_notice_is_dropped_and_its_other_messages_pass():
    import logging

    from anchored_learning.cli import _DropDeepSpeedCpuNotice

    drop = _DropDeepSpeedCpuNotice()

    def record(msg):
        return logging.LogRecord("DeepSpeed", logging.WARNING, __file__, 1, msg, None, None)

    notice = "Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it."
    assert drop.filter(record(notice)) is False
    assert drop.filter(record("Setting ds_accelerator to cpu (auto detect)")) is True
    assert drop.filter(record("ZeRO stage 2 optimizer")) is True


@pytest.mark.parametrize("command", ["run", "sweep", "frontier", "compare"])
def test_help_names_the_preset_as_the_default_of_recipe_fields(command):
    """A field that a bundled recipe fills shows '(default: the --preset recipe's)', not the
    dataclass's placeholder None; a field no recipe sets keeps its own default."""
    import re

    from anchored_learning.experiment.run_commands import recipe_fields as _recipe_fields

    res = _invoke([command, "--help"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split("options:", 1)[1].split())  # the option list, not the usage line
    assert {"n_test", "mc_limit", "heldout"} <= _recipe_fields() and "test_data" not in _recipe_fields()
    for flag in ("--n_test", "--mc_limit"):
        entry = text[text.index(f"{flag} INT") :]
        entry = entry[: entry.index(")") + 1]  # up to its first closing parenthesis: the default
        assert entry.endswith("(default: the --preset recipe's)") and "None" not in entry, entry
    assert re.search(r"--test_data STR.*?\(default: None\)", text)


def test_list_field_errors_name_their_flag(tmp_path, no_work):
    res = _invoke(["run", "--baselines", "sft,foo", "-o", str(tmp_path / "r")])
    _assert_usage_error(res, "Invalid value for --baselines", "baselines has unknown entries ['foo']; choose from")
    res = _invoke(["run", "--heldout", "nosuch", "-o", str(tmp_path / "r")])
    _assert_usage_error(res, "Invalid value for --heldout", "heldout has an unknown suite 'nosuch'; known:")


@pytest.mark.parametrize("command,shown", [("train", "num_train_epochs"), ("sweep", "The experiment of anchored run")])
def test_help_has_no_markdown_backticks(command, shown):
    """transformers' and TRL's field help is markdown (`num_train_epochs`); a terminal shows it bare."""
    res = _invoke([command, "--help"])
    assert res.exit_code == 0 and "`" not in res.output and shown in " ".join(res.output.split())


@pytest.mark.parametrize("command", ["run", "train", "sweep", "eval", "compare", "frontier"])
def test_help_renders_percent_signs_once(command):
    """argparse %-formats field help but prints a description verbatim: a '%%' must not reach the user."""
    res = _invoke([command, "--help"])
    assert res.exit_code == 0 and "%%" not in res.output, res.output


def test_training_rows_that_cannot_train_are_refused_before_any_work(tmp_path, no_work):
    """A max_length that leaves no response token, or more rows than the file holds: a usage error
    before the base model's evaluation, and nothing written that would block the corrected run."""
    rows = tmp_path / "d.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"What is {i} + {i}?", "response": str(2 * i)}) + "\n" for i in range(10)))
    out = tmp_path / "r"
    res = _invoke(["run", "--data", str(rows), "--max_length", "5", "-o", str(out)])
    _assert_usage_error(res, "training examples have no response tokens left after truncation to max_length=5")
    _assert_usage_error(_invoke(["run", "--data", str(rows), "--n_train", "100", "-o", str(out)]), "100 train rows asked for")
    test = tmp_path / "t.jsonl"
    test.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?", "response": str(i + 1)}) + "\n" for i in range(3)))
    res = _invoke(["run", "--data", str(rows), "--test_data", str(test), "--n_test", "4", "-o", str(out)])
    _assert_usage_error(res, f"n_test 4 asks for more test items than {test} has (3 rows): give --n_test 3 or less")
    res = _invoke(["run", "--data", str(rows), "--n_test", "3", "-o", str(out)])  # 2 of 10 rows held out
    _assert_usage_error(res, "has (2 rows): give --n_test 2 or less")
    res = _invoke(["train", "--data", str(rows), "--max_length", "5", "--method", "sft", "-o", str(out)])
    _assert_usage_error(res, "Invalid value for --max_length", "10 of 10 training examples have no response tokens")
    assert not out.exists()


def test_train_takes_precision_like_every_command(tmp_path, fake_training, data):
    """--precision fp32 / auto on `anchored train` set TrainingArguments' bf16 (False / detected);
    a bad value or a clash with --bf16 is a usage error."""
    base = ["train", "--data", str(data), "--method", "sft"]
    res = _invoke([*base, "-o", str(tmp_path / "a"), "--precision", "fp32"])
    assert res.exit_code == 0, res.output
    assert fake_training["args"].bf16 is False
    res = _invoke([*base, "-o", str(tmp_path / "b"), "--precision=auto"])
    assert res.exit_code == 0, res.output
    from anchored_learning.models import bf16_autocast_available

    assert fake_training["args"].bf16 == bf16_autocast_available()  # auto: detected, as without the flag
    _assert_usage_error(
        _invoke([*base, "-o", str(tmp_path / "c"), "--precision", "bf17"]), "'bf17' is not one of auto, bf16, fp32"
    )
    _assert_usage_error(_invoke([*base, "-o", str(tmp_path / "c"), "--precision", "fp32", "--bf16", "true"]), "not both")


def test_run_errors_name_the_flag_that_was_given(tmp_path, no_work):
    """T, K and the epochs become the stages' num_train_epochs: an error names the flag the user
    passed, not a derived field; kl_coef is checked even when no run in the plan uses it."""
    out = ["-o", str(tmp_path / "r")]
    for flag in ("--outer_iterations", "--inner_epochs", "--reference_epochs", "--baseline_epochs"):
        res = _invoke(["run", flag, "0", *out])
        _assert_usage_error(res, f"Invalid value for {flag}", f"{flag[2:]} must be > 0, got 0")
        assert "num_train_epochs" not in res.output
    _assert_usage_error(_invoke(["run", "--kl_coef", "-1", "--baselines", "sft", *out]), "kl_coef must be >= 0, got -1")
    assert not (tmp_path / "r").exists()


def test_unknown_and_truncated_flags_are_usage_errors_with_a_suggestion(tmp_path, no_work, data):
    out = ["-o", str(tmp_path / "r")]
    res = _invoke(["run", "--anchr_alpha", "0.5", *out])
    _assert_usage_error(res, "unknown flag --anchr_alpha (did you mean --anchor_alpha?); see --help")
    assert "HfArgumentParser" not in res.output
    _assert_usage_error(_invoke(["run", "--anchor_alph", "0.5", *out]), "--anchor_alph")  # not read as --anchor_alpha
    res = _invoke(["train", "--data", str(data), *out, "--learnin_rate", "1e-5", "--zzz", "1"])
    _assert_usage_error(res, "unknown flags --learnin_rate (did you mean --learning_rate?), --zzz; see --help")
    assert not (tmp_path / "r").exists()


def test_optional_yes_no_fields_are_switches(tmp_path, monkeypatch):
    """`--target_drift` alone means true (a `bool | None` field left None takes the preset's value)."""
    from anchored_learning.arguments import parse_config_args
    from anchored_learning.experiment import ExperimentConfig

    def parse(*argv):
        (cfg,) = parse_config_args(list(argv), (ExperimentConfig,), prog="t", description="")
        return cfg

    assert parse("--target_drift").target_drift is True
    assert parse("--target_drift", "false", "--activation_checkpointing").target_drift is False
    assert parse("--target_drift", "false", "--activation_checkpointing").activation_checkpointing is True
    assert parse().target_drift is None


def test_root_version_short_help_and_eval_spellings():
    from importlib.metadata import version

    res = _invoke(["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"anchored-learning {version('anchored-learning')}"
    assert _invoke(["-h"]).exit_code == 0 and "frontier" in _invoke(["-h"]).output
    for command in ("run", "train", "frontier"):  # every config command lists --config
        assert "--config FILE" in _invoke([command, "--help"]).output, command
    train = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "80"}).output
    assert max(map(len, train.splitlines())) < 140  # was 666: TRL's choice lists go into the wrapped help text
    assert "--lr_scheduler_type VALUE" in train and "Choices: linear, cosine" in " ".join(train.split())
    out = _invoke(["eval", "-h"]).output
    assert "--base_model" in out and "--batch_size" in out and "[auto|bf16|fp32]" in out


def test_train_runs_the_issue30_methods(tmp_path, data):
    """`anchored train --method X` for the self-generated and on-policy methods: sft_self_generated
    needs --score (refused before any work without it), records its rows and reports the share."""
    from anchored_learning.sampling import read_record
    from anchored_learning.testing import tiny_llama

    model, tok = tiny_llama(seed=0)
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    data.write_text("".join(json.dumps({"prompt": f"{i}+1?", "response": str(i + 1)}) + "\n" for i in range(8)))
    common = ["--data", str(data), "-m", str(tmp_path / "tiny"), "--use_cpu", "--per_device_train_batch_size", "4"]
    _assert_usage_error(_invoke(["train", *common, "-o", str(tmp_path / "s"), "--method", "sft_self_generated"]), "give --score")
    assert not (tmp_path / "s" / "trainer").exists()
    res = _invoke(
        [
            "train",
            *common,
            "-o",
            str(tmp_path / "s"),
            "--method",
            "sft_self_generated",
            "--score",
            "last_number",
            "--num_train_epochs",
            "1",
        ]
    )
    assert res.exit_code == 0, res.output
    header, rows = read_record(tmp_path / "s" / "self_generated.jsonl")
    assert len(rows) == 8 and header["report"]["accepted"] == sum(r["self_generated"] for r in rows)
    assert f"{header['report']['accepted']} of 8 rows train on an accepted sample" in res.output
    assert (tmp_path / "s" / "final" / "config.json").exists()
    res = _invoke(
        ["train", *common, "-o", str(tmp_path / "o"), "--method", "anchored_on_policy", "--outer_iterations", "2",
         "--inner_epochs", "1", "--reference_epochs", "1"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o" / "trainer" / "on_policy").iterdir()) == [
        "iteration-000.jsonl",
        "iteration-001.jsonl",
    ]
