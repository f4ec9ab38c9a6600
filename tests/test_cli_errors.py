"""Bad command-line input fails up front with exit code 2 and a message that says what to do,
before any model is loaded or trained (nothing here trains or loads a model: the loaders and
trainers are replaced by functions that fail the test if called)."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from anchored_learning.cli import _register, app

_register()


def _invoke(argv):
    return CliRunner().invoke(app, argv, env={"COLUMNS": "300"})


@pytest.fixture
def no_work(monkeypatch):
    """Any model load, reference training or experiment run fails the test."""
    import anchored_learning.models as models
    import anchored_learning.pipeline as pl
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


def test_train_reuses_its_reference_only_for_the_same_data_and_saves_atomically(tmp_path, monkeypatch, data):
    import types

    import anchored_learning.models as models
    import anchored_learning.trainer as tr
    from anchored_learning.testing import tiny_llama

    calls = []

    def fake_reference(model, dataset, out, **kw):
        calls.append(out)
        (tmp_path / "o" / "reference").mkdir(parents=True, exist_ok=True)
        return out

    class FakeTrainer:
        def __init__(self, model, args, **kw):
            self.model, self.state = model, types.SimpleNamespace(log_history=[{"loss": 1.0}])

        def train(self, **kw):
            pass

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda *a, **k: tiny_llama(seed=0))
    monkeypatch.setattr(models, "resolve_model_path", lambda *a, **k: "tiny-base")
    monkeypatch.setattr(tr, "train_reference", fake_reference)
    monkeypatch.setattr(tr, "AnchoredSFTTrainer", FakeTrainer)
    argv = ["train", "--data", str(data), "-o", str(tmp_path / "o"), "--method", "anchored"]
    for _ in range(2):
        res = _invoke(argv)
        assert res.exit_code == 0, res.output
    assert calls == [str(tmp_path / "o" / "reference")]  # the second run reused it
    assert "(reused)" in res.output
    assert (tmp_path / "o" / "final" / "config.json").is_file() and not (tmp_path / "o" / "final.tmp").exists()
    data.write_text(json.dumps({"prompt": "2+2?", "response": "4"}) + "\n")  # other data: train a new reference
    assert _invoke(argv).exit_code == 0
    assert len(calls) == 2


def test_bad_method_is_blamed_on_method(tmp_path, no_work, data):
    cfg = tmp_path / "c.json"
    cfg.write_text('{\n\t"anchor_alpha": 0.5\n}')  # tab-indented JSON is JSON
    _assert_usage_error(_invoke(["train", "--data", str(data), "-o", str(tmp_path / "o"), "--method", "ppo",
                                 "--config", str(cfg)]), "--method", "unknown method 'ppo'")


def test_paths_below_a_file_and_config_keys_that_belong_on_the_command_line(tmp_path, no_work, data):
    f = tmp_path / "afile"
    f.write_text("x")
    _assert_usage_error(_invoke(["run", "-o", str(f / "sub")]), "is a file, not a folder")
    _assert_usage_error(_invoke(["sweep", "-g", "anchored.anchor_alpha=0.25", "-o", str(f / "sub")]), "is a file, not a folder")
    _assert_usage_error(_invoke(["train", "--data", str(data), "-o", str(f / "sub"), "--method", "sft"]), "is a file, not a folder")
    _assert_usage_error(_invoke(["eval", "-s", "arc_easy", "-o", str(f / "x.json")]), "is a file, not a folder")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: sft\n")
    _assert_usage_error(_invoke(["train", "--data", str(data), "-o", str(tmp_path / "o"), "--config", str(cfg)]), "--method instead")


def test_sweep_values_of_the_wrong_type_or_range_fail_before_any_work(tmp_path, no_work):
    for grid, msg in (("anchored.learning_rate=abc", "learning_rate must be a number"),
                      ("anchored.learning_rate=-1", "learning_rate must be >= 0"),
                      ("sft.per_device_train_batch_size=0", "must be >= 1"),
                      ("anchored.outer_iterations=1.5", "outer_iterations must be a whole number"),
                      ("anchored.num_train_epochs=abc", "num_train_epochs must be a number")):
        _assert_usage_error(_invoke(["sweep", "-g", grid, "-o", str(tmp_path / "s")]), msg)
    assert not (tmp_path / "s").exists()


def test_a_bad_value_is_named_before_a_resume_mismatch(tmp_path, no_work):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{}")
    _assert_usage_error(_invoke(["run", "-o", str(tmp_path / "r"), "--alpha", "5"]), "anchor_alpha must be in [0, 1]")


def test_yaml_numbers_written_like_1e_5_are_numbers(tmp_path):
    import yaml

    from anchored_learning.config import AnchoredSFTConfig

    fields = yaml.safe_load("learning_rate: 1e-5\nouter_iterations: '3'\n")
    assert fields["learning_rate"] == "1e-5"  # YAML 1.1 reads it as a string ...
    cfg = AnchoredSFTConfig(output_dir=str(tmp_path), method="sft", **fields)
    assert cfg.learning_rate == 1e-5 and cfg.outer_iterations == 3  # ... the config converts it


def test_eval_output_is_world_readable_like_any_file(tmp_path):
    import os

    from anchored_learning.evaluation.commands import write_json_atomic

    umask = os.umask(0o022)
    try:
        p = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o644
