"""Issue 31, "never a silent wrong result": models identified by content, tokenizers and adapter
bases checked, aggregates over the same members, context length checked up front, and the last
crashes turned into clean errors.  Every test here uses the tiny random model."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from test_pipeline import _file_run_cfg, _tiny_folder  # the run and model folders of the pipeline tests
from typer.testing import CliRunner

from anchored_learning.cli import _register, app
from anchored_learning.models import load_tokenizer, resolve_model_path
from anchored_learning.testing import tiny_llama

_register()


def _invoke(argv):
    return CliRunner().invoke(app, argv, env={"COLUMNS": "300"})


def _text(res) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", res.output).split())  # rich boxes and wraps long messages


def _overwrite_weights(folder: str, seed: int) -> None:
    """Save another model's weights into ``folder`` in place (same path, same file names)."""
    model, _ = tiny_llama(seed=seed)
    model.save_pretrained(folder)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """The fingerprints' on-disk memo (and every other cache) in a folder of the test's own."""
    monkeypatch.setenv("ANCHORED_CACHE", str(tmp_path / "cache"))
    from anchored_learning.models import _memoised_sha256

    _memoised_sha256.cache_clear()
    return tmp_path / "cache"


# ---------------------------------------------------------------------------- 1. models by content


def test_model_fingerprint_follows_the_content_not_the_path_or_mtime(tmp_path, isolated_cache):
    import os
    import shutil

    from anchored_learning.models import BUNDLED_MODEL, model_fingerprint

    folder = _tiny_folder(tmp_path)
    first = model_fingerprint(folder)
    assert first is not None and len(first) == 64
    shutil.copytree(folder, tmp_path / "copy")
    assert model_fingerprint(tmp_path / "copy") == first  # another path, same content
    for f in Path(folder).iterdir():
        os.utime(f, ns=(1, 10**18))
    assert model_fingerprint(folder) == first  # touched, not changed
    (Path(folder) / "train_log.json").write_text("[]")  # a log is not the model
    assert model_fingerprint(folder) == first
    _overwrite_weights(folder, seed=1)
    assert model_fingerprint(folder) not in (first, None)
    tok_config = tmp_path / "copy" / "tokenizer_config.json"  # same weights, another chat template
    tok_config.write_text(tok_config.read_text().replace("{", '{"chat_template": "{{ messages }}", ', 1))
    assert model_fingerprint(tmp_path / "copy") not in (first, None)
    assert list((isolated_cache / "fingerprints").iterdir())  # recorded once, on disk
    assert model_fingerprint(None) == model_fingerprint(BUNDLED_MODEL) and model_fingerprint(None).startswith("bundled:")
    assert model_fingerprint(tmp_path / "nope") is None and model_fingerprint("org/not-cached-model") is None


def test_run_refuses_a_folder_whose_base_model_changed_under_the_same_path(tmp_path, isolated_cache):
    """Was: the old models and results returned as "already trained", for another model."""
    from anchored_learning.experiment import Experiment
    from anchored_learning.io import write_json_atomic

    model = _tiny_folder(tmp_path)
    cfg = _file_run_cfg(tmp_path, "run", model=model)
    exp = Experiment(cfg, console_log=lambda s: None)
    write_json_atomic(exp.out / "config.json", exp._record)  # what run() writes first
    Experiment(cfg, console_log=lambda s: None)  # unchanged: resumes
    _overwrite_weights(model, seed=1)
    with pytest.raises(ValueError, match=re.escape(f"the contents of model ({model}) changed")):
        Experiment(cfg, console_log=lambda s: None)


def test_compare_refuses_a_changed_base_and_reevaluates_a_changed_model(tmp_path, isolated_cache):
    """Was: the fine-tuned models' evaluations reused after --base changed under the same path."""
    from anchored_learning.experiment.compare import model_identity
    from anchored_learning.experiment.experiment_config import CompareConfig
    from anchored_learning.experiment.stages import check_resume, config_record

    base, ft = _tiny_folder(tmp_path, "base"), _tiny_folder(tmp_path, "ft", seed=2)
    cfg = CompareConfig(base=base, model=[ft], output_dir=str(tmp_path / "cmp"), preset="quick").resolved()
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "config.json").write_text(json.dumps(config_record(cfg, {"base": base}), default=str))
    identity = model_identity(ft)
    _overwrite_weights(base, seed=1)
    with pytest.raises(ValueError, match=re.escape(f"the contents of base ({base}) changed")):
        check_resume(tmp_path / "cmp", config_record(cfg, {"base": base}), frozenset({"model", "output_dir"}))
    _overwrite_weights(ft, seed=3)
    assert model_identity(ft) != identity and model_identity(ft).startswith(f"{ft}@")


def test_compare_into_a_run_folder_names_what_differs(tmp_path):
    """Was: "the contents of  changed" with an empty name."""
    from anchored_learning.experiment.stages import DATA_KEY, check_resume

    (tmp_path / "config.json").write_text(json.dumps({DATA_KEY: {"data": "a" * 64, "test_data": "b" * 64}}))
    with pytest.raises(ValueError) as e:
        check_resume(tmp_path, {DATA_KEY: {}}, frozenset())
    assert "data was given before and is not now" in str(e.value) and "contents of  " not in str(e.value)


def test_train_refuses_when_the_base_or_reference_model_changed_in_place(tmp_path, monkeypatch, isolated_cache, fake_train):
    """Was: "already trained with the same data and settings" and the old model returned."""
    import anchored_learning.models as models

    monkeypatch.setattr(models, "resolve_model_path", resolve_model_path)  # the real folders, to fingerprint
    monkeypatch.setattr(models, "load_tokenizer", load_tokenizer)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "1+1?", "response": "2"}) + "\n")
    base, ref = _tiny_folder(tmp_path, "base"), _tiny_folder(tmp_path, "ref", seed=1)
    argv = ["train", "--data", str(data), "-o", str(tmp_path / "o"), "-m", base, "--reference_model", ref]
    assert _invoke(argv).exit_code == 0
    res = _invoke(argv)
    assert res.exit_code == 0 and "already trained" in res.output, res.output
    _overwrite_weights(ref, seed=5)
    res = _invoke(argv)
    assert res.exit_code == 2 and "the contents of reference_model changed" in _text(res), res.output
    _overwrite_weights(ref, seed=1)
    assert "already trained" in _invoke(argv).output  # the same content again
    _overwrite_weights(base, seed=4)
    res = _invoke(argv)
    assert res.exit_code == 2 and "the contents of base_model changed" in _text(res), res.output


# ---------------------------------------------------------------------------- 2. tokenizers and adapter bases


def _swapped_tokenizer_folder(tmp_path: Path, base: str) -> str:
    """A copy of ``base`` whose tokenizer maps two ids to each other's tokens: same size, other text."""
    import shutil

    folder = tmp_path / "swapped"
    shutil.copytree(base, folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    a, b = next(k for k, v in vocab.items() if v == 65), next(k for k, v in vocab.items() if v == 66)
    vocab[a], vocab[b] = 66, 65
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    return str(folder)


def _adapter(tmp_path: Path, base: str) -> str:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(tmp_path / "adapter")
    return str(tmp_path / "adapter")


@pytest.fixture
def no_model_load(monkeypatch):
    """Any model load or experiment run fails the test: the checks must come first."""
    import anchored_learning.models as models

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda *a, **k: pytest.fail("a model was loaded before the checks"))


def test_compare_refuses_a_model_whose_tokenizer_maps_ids_to_other_tokens(tmp_path, no_model_load):
    """Was: scored with the base's tokenizer (size checked only): identical NLL and drift 0."""
    from anchored_learning.experiment.compare import check_model

    base = _tiny_folder(tmp_path, "base")
    check_model(base, base)
    with pytest.raises(ValueError, match=r"another tokenizer than the base model \(260 vs 260 tokens; first difference"):
        check_model(_swapped_tokenizer_folder(tmp_path, base), base)
    res = _invoke(["compare", "--base", base, "--model", str(tmp_path / "swapped"), "-o", str(tmp_path / "c")])
    assert res.exit_code == 2 and "another tokenizer" in _text(res) and "Traceback" not in res.output, res.output


def test_eval_checks_the_base_models_vocabulary_before_scoring(tmp_path, no_model_load):
    """Was: a traceback after the scores were computed (and lost)."""
    base = _tiny_folder(tmp_path, "base")
    model, tok = tiny_llama(vocab_size=300, seed=0)
    model.save_pretrained(tmp_path / "big")
    tok.save_pretrained(tmp_path / "big")
    for other, needle in ((str(tmp_path / "big"), "has a vocabulary of 300 tokens, the base model 260"), (None, None)):
        if other is None:
            other, needle = _swapped_tokenizer_folder(tmp_path, base), "another tokenizer than the base model"
        res = _invoke(["eval", "-m", other, "--base-model", base, "-s", "drift"])
        assert res.exit_code == 2 and needle in _text(res) and "--base-model" in res.output, res.output


def test_compare_refuses_a_lora_adapter_of_another_base_before_any_work(tmp_path, no_model_load):
    """Was: applied to any --base without a word, or a ~200-line size mismatch traceback."""
    import shutil

    from anchored_learning.experiment.compare import check_model

    base = _tiny_folder(tmp_path, "base")
    adapter = _adapter(tmp_path, base)
    shutil.copytree(base, tmp_path / "copy")
    check_model(adapter, base)
    check_model(adapter, str(tmp_path / "copy"))  # a copy of the same model is the same base
    other = _tiny_folder(tmp_path, "other", seed=1)
    res = _invoke(["compare", "--base", other, "--model", adapter, "-o", str(tmp_path / "c")])
    assert res.exit_code == 2 and f"is a LoRA adapter of '{base}'" in _text(res) and f"pass --base {base}" in _text(res)
    assert "Traceback" not in res.output, res.output


def test_an_adapter_that_does_not_fit_the_base_is_a_clean_error(tmp_path):
    from anchored_learning.experiment.compare import load_finetuned

    adapter = _adapter(tmp_path, _tiny_folder(tmp_path, "base"))
    model, tok = tiny_llama(hidden=32, seed=0)
    model.save_pretrained(tmp_path / "narrow")
    with pytest.raises(ValueError, match="does not fit the base .*size mismatch") as e:
        load_finetuned(adapter, str(tmp_path / "narrow"), 260)
    assert len(str(e.value).splitlines()) == 1


# ---------------------------------------------------------------------------- 3. aggregates over the same members


def _suite(items) -> dict:
    items = [float(x) for x in items]
    return {"primary": sum(items) / len(items), "items": items, "uids": list(range(len(items))), "n": len(items)}


def _seed_evals(arc_base: float) -> dict:
    """A base and one run on igsm (target), arc_easy and sciq_chat; the base's arc_easy score is ``arc_base``."""
    arc = [1.0] * int(10 * arc_base) + [0.0] * (10 - int(10 * arc_base))
    return {
        "base": {"results": {"igsm": _suite([0] * 10), "arc_easy": _suite(arc), "sciq_chat": _suite([1] * 8 + [0] * 2)}},
        "sft": {
            "results": {
                "igsm": _suite([1] * 5 + [0] * 5),
                "arc_easy": _suite([1] * 2 + [0] * 8),
                "sciq_chat": _suite([1] * 4 + [0] * 6),
            }
        },
    }


def test_mean_degradation_averages_the_same_suites_in_every_seed(tmp_path, monkeypatch):
    """Was: seed 0 (base scores 0 on arc_easy) averaged sciq_chat alone, seed 1 both: the mean over
    seeds mixed member sets and could not be rebuilt from the table's own columns."""
    import anchored_learning.experiment.stages as stages
    from anchored_learning.experiment import ExperimentConfig
    from anchored_learning.experiment.report import write_report

    evals = {0: _seed_evals(0.0), 1: _seed_evals(0.5)}

    class FakeExperiment:
        def __init__(self, cfg, console_log=print):
            self.cfg, self.out, self.log, self.evals = cfg, Path(cfg.output_dir), console_log, evals[cfg.seed]

        def run(self):
            return write_report(self.cfg, self.out, self.evals, 1.0)

        def report(self, members=None):
            return write_report(self.cfg, self.out, self.evals, 1.0, members=members, log=self.log)

    monkeypatch.setattr(stages, "Experiment", FakeExperiment)
    logs = []
    monkeypatch.setattr("builtins.print", logs.append)
    cfg = ExperimentConfig(preset="quick", task="igsm", heldout=("arc_easy", "sciq_chat"), output_dir=str(tmp_path / "r"))
    out = stages.run_seeds(cfg, [0, 1], console_log=logs.append)
    sft = next(r for r in out["rows"] if r["label"] == "sft")
    assert sft["degradation"] == pytest.approx(50.0)  # sciq_chat's 50% in both seeds (was 52.5: arc_easy in seed 1 only)
    assert out["degradation_members"] == ["sciq_chat"] and "arc_easy" in out["left_out"]
    per_seed = [next(r for r in out["per_seed"][str(s)] if r["label"] == "sft") for s in (0, 1)]
    assert all(list(r["degradation_per_benchmark"]) == ["sciq_chat"] for r in per_seed)
    # the mean is rebuilt from the per-benchmark columns of the same members
    assert sft["degradation"] == pytest.approx(sum(r["degradation_per_benchmark"]["sciq_chat"] for r in per_seed) / 2)
    assert any("Left out of every mean degradation: arc_easy" in line for line in logs), logs
    assert "Left out of every mean degradation: arc_easy" in (tmp_path / "r" / "results.md").read_text()
    for s in (0, 1):  # every seed's own report too
        seed_report = json.loads((tmp_path / "r" / f"seed-{s}" / "results.json").read_text())
        assert seed_report["degradation_members"] == ["sciq_chat"], s


def test_frontier_leaves_a_suite_the_base_scores_0_on_out_with_a_warning(tmp_path):
    """Was: the frontier refused while run and compare silently left the suite out: one rule for all three."""
    from anchored_learning.experiment.frontier_report import write_frontier_report

    evals = {0: _seed_evals(0.0), 1: _seed_evals(0.5)}
    for s, ev in evals.items():
        ev["anchored"] = ev["sft"]
        (tmp_path / f"seed-{s}" / "evals").mkdir(parents=True)
        config = {"task": "igsm", "heldout": ["arc_easy", "sciq_chat"], "seed": s}
        (tmp_path / f"seed-{s}" / "config.json").write_text(json.dumps(config))
        for lab, e in ev.items():
            meta = {} if lab == "base" else {"method": lab}
            (tmp_path / f"seed-{s}" / "evals" / f"{lab}.json").write_text(json.dumps({**e, "meta": meta}))
    res = write_frontier_report(tmp_path, seeds=[0, 1], n_boot=20)
    assert res["heldout"] == ["sciq_chat"] and "scores 0" in res["left_out"]["arc_easy"]
    assert "Left out of every mean degradation: arc_easy" in (tmp_path / "frontier.md").read_text()
    assert next(p for p in res["points"] if p["label"] == "sft")["degradation"]["value"] == pytest.approx(50.0)
    # a suite one evaluation lacks is left out too, with its reason
    from anchored_learning.evaluation.metrics import degradation_members

    del evals[1]["sft"]["results"]["sciq_chat"]
    members, left_out = degradation_members([e["base"] for e in evals.values()], [e["sft"] for e in evals.values()], ["igsm"])
    assert members == [] and "not scored for every model and seed" in left_out["sciq_chat"]


# ---------------------------------------------------------------------------- 4. context length up front


def test_test_prompts_and_generation_budget_past_the_context_are_refused_up_front(tmp_path, no_model_load):
    """Was: the run exited 0 after generating past the model's context (training prompts were checked)."""
    from anchored_learning.experiment import Experiment
    from anchored_learning.experiment.compare import compare_models
    from anchored_learning.experiment.experiment_config import CompareConfig

    model = _tiny_folder(tmp_path)  # context 2048 tokens, one token per byte
    cfg = _file_run_cfg(tmp_path, "run", model=model, max_new_tokens=2040)
    with pytest.raises(
        ValueError, match=r"2 of 2 test prompts of .* do not fit the model's context of 2048 tokens with max_new_tokens=2040"
    ):
        Experiment(cfg, console_log=lambda s: None)
    Experiment(dataclasses.replace(cfg, max_new_tokens=16), console_log=lambda s: None)
    long = "x" * 2100
    (tmp_path / "long.jsonl").write_text(json.dumps({"prompt": long, "response": "1"}) + "\n")
    cmp = CompareConfig(
        base=model, model=[model], test_data=str(tmp_path / "long.jsonl"), score="last_number", output_dir=str(tmp_path / "c")
    )
    with pytest.raises(ValueError, match=r"1 of 1 test prompts .* \(the longest: item 0, 2\d\d\d prompt tokens\)"):
        compare_models(cmp, console_log=lambda s: None)


# ---------------------------------------------------------------------------- 5. crashes -> clean errors


@pytest.fixture
def fake_train(monkeypatch):
    """`anchored train` with model loading and training replaced (the tiny model stands in)."""
    import types

    import anchored_learning.models as models
    import anchored_learning.trainer as tr
    from anchored_learning.testing import tiny_tokenizer

    calls = []

    class FakeTrainer:
        accelerator = types.SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)

        def __init__(self, model, args, peft_config=None, **kw):
            self.model, self.args, self.state = model, args, types.SimpleNamespace(log_history=[{"loss": 1.0}])

        def train(self, **kw):
            (Path(self.args.output_dir) / "checkpoint-1").mkdir(parents=True)  # what a real training leaves

    def fake_reference(model, dataset, out, **kw):
        calls.append(kw)
        (Path(out) / "checkpoint-3").mkdir(parents=True)
        return out

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda *a, **k: tiny_llama(seed=0))
    monkeypatch.setattr(models, "resolve_model_path", lambda *a, **k: "tiny-base")
    monkeypatch.setattr(models, "load_tokenizer", lambda *a, **k: tiny_tokenizer())
    monkeypatch.setattr(tr, "train_reference", fake_reference)
    monkeypatch.setattr(tr, "AnchoredSFTTrainer", FakeTrainer)
    return calls


def _data(tmp_path: Path) -> str:
    (tmp_path / "d.jsonl").write_text(json.dumps({"prompt": "1+1?", "response": "2"}) + "\n")
    return str(tmp_path / "d.jsonl")


def test_two_trains_into_one_folder_the_second_fails_at_once(tmp_path, fake_train):
    """Was: both trained into the same files (FileNotFoundError .../reference.building/offsets.npy)."""
    from anchored_learning.io import lock_output_folder

    argv = ["train", "--data", _data(tmp_path), "-o", str(tmp_path / "o"), "--method", "sft"]
    held = lock_output_folder(tmp_path / "o")  # the first command, still training
    res = _invoke(argv)
    assert res.exit_code == 2 and "another anchored command is writing into" in _text(res), res.output
    assert not (tmp_path / "o" / "train_settings.json").exists()
    held.release()
    assert _invoke(argv).exit_code == 0


def test_run_frontier_and_compare_refuse_a_folder_another_command_writes(tmp_path, monkeypatch):
    """Was: only `anchored train` took the output folder's lock; two `anchored run` into one folder
    wrote the same stages' files."""
    import anchored_learning.experiment as experiment
    import anchored_learning.experiment.compare as compare
    import anchored_learning.experiment.stages as stages
    from anchored_learning.io import lock_output_folder

    def boom(*a, **k):
        pytest.fail("work started in a folder another command holds")

    monkeypatch.setattr(stages.Experiment, "run", boom)
    monkeypatch.setattr(experiment, "run_seeds", boom)
    monkeypatch.setattr(compare, "compare_models", boom)
    out = tmp_path / "r"
    held = lock_output_folder(out)
    for argv in (
        ["run", "--preset", "quick", "-o", str(out)],
        ["run", "--preset", "quick", "-o", str(out), "--seeds", "0,1"],
        ["frontier", "--report_only", "--seeds", "0", "-o", str(out)],
        ["compare", "--model", "smollm2-135m-instruct", "-o", str(out)],
    ):
        res = _invoke(argv)
        assert res.exit_code == 2 and "another anchored command is writing into" in _text(res), (argv, res.output)
    held.release()


def test_train_resumes_its_reference_and_removes_checkpoints_once_final(tmp_path, fake_train):
    """Was: the reference restarted at step 0, and 3.2 GB of checkpoints stayed behind."""
    argv = ["train", "--data", _data(tmp_path), "-o", str(tmp_path / "o"), "--method", "anchored"]
    res = _invoke(argv)
    assert res.exit_code == 0, res.output
    assert fake_train[0]["resume"] is True
    assert not list((tmp_path / "o").glob("*/checkpoint-*"))  # trainer/ and reference/
    res = _invoke(["train", "--data", _data(tmp_path), "-o", str(tmp_path / "k"), "--keep_checkpoints"])
    assert res.exit_code == 0 and len(list((tmp_path / "k").glob("*/checkpoint-*"))) == 2, res.output


def test_reference_training_resumes_from_its_checkpoint(tmp_path):
    from test_trainer import make_data
    from transformers import TrainerCallback

    from anchored_learning.trainer import train_reference

    class Killed(Exception):
        pass

    class KillAtFirstSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise Killed

    class CountSteps(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kw):
            CountSteps.steps += 1

    model, tok = tiny_llama(seed=0)
    common = dict(per_device_train_batch_size=4, report_to="none", save_strategy="epoch", use_cpu=True, num_train_epochs=2)
    with pytest.raises(Killed):
        train_reference(model, make_data(), str(tmp_path / "ref"), processing_class=tok, callbacks=[KillAtFirstSave()], **common)
    assert (tmp_path / "ref" / "checkpoint-3" / "trainer_state.json").is_file()  # 12 rows / 4 = 3 steps per epoch
    train_reference(
        model, make_data(), str(tmp_path / "ref"), processing_class=tok, callbacks=[CountSteps()], resume=True, **common
    )
    assert CountSteps.steps == 3  # the second epoch only


def test_a_full_disk_during_a_save_is_a_clean_error_and_leaves_nothing_half_written(tmp_path, fake_train, monkeypatch, capsys):
    import errno
    import sys

    from transformers import PreTrainedModel

    from anchored_learning import cli

    def disk_full(self, folder, *a, **k):
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(folder) / "model.safetensors"))

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", disk_full)
    monkeypatch.setattr(
        sys, "argv", ["anchored", "train", "--data", _data(tmp_path), "-o", str(tmp_path / "o"), "--method", "sft"]
    )
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err
    assert e.value.code == 1 and "the disk is full (No space left on device)" in err and "Traceback" not in err, err
    assert not (tmp_path / "o" / "final").exists() and not list((tmp_path / "o").glob(".final*"))


# ---------------------------------------------------------------------------- 6. messages


def test_a_negative_learning_rate_reaches_the_fields_own_check_and_names_its_flag(tmp_path):
    """Was: argparse's "expected one argument"; and an error in --reference_learning_rate named --learning_rate."""
    res = _invoke(["train", "--data", _data(tmp_path), "-o", str(tmp_path / "o"), "--learning_rate", "-1e-5"])
    assert res.exit_code == 2 and "--learning_rate: learning_rate must be >= 0, got -1e-05" in _text(res), res.output
    res = _invoke(["run", "--reference_learning_rate", "-1e-5", "-o", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert "--reference_learning_rate: reference_learning_rate must be >= 0, got -1e-05" in _text(res), res.output


def test_a_mistyped_local_path_fails_at_once(tmp_path, monkeypatch):
    """Was: ~29 s of network retries before the error, for `models/tiny` with a `models/` folder here."""
    import time

    from anchored_learning.models import check_model_source

    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    for name in ("models/tinyy", "bad name/x", "./tiny"):
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match=f"model folder '{re.escape(name)}' does not exist"):
            check_model_source(name)
        assert time.perf_counter() - t0 < 5


def test_an_id_not_in_the_cache_fails_without_fetching_when_the_hub_cannot_be_reached(monkeypatch):
    """Was: ~30 s of network retries before the error for a Hub id (e.g. a mistyped `smollm2`) on a
    machine without network."""
    import socket

    from huggingface_hub import constants
    from transformers import AutoConfig

    from anchored_learning.models import check_model_source

    lookups = []

    def not_cached(name, **kw):
        lookups.append(kw.get("local_files_only", False))
        raise OSError(f"{name} is not cached")

    def unreachable(*a, **kw):
        raise OSError("no route to host")

    monkeypatch.setattr(AutoConfig, "from_pretrained", not_cached)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(ValueError, match=r"'nonexistentmodel'.*cannot be fetched either: huggingface.co cannot be reached"):
        check_model_source("nonexistentmodel")
    assert lookups == [True]  # the local cache only: never a fetch with its retries
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE is set"):
        check_model_source("nonexistentmodel")
    assert lookups == [True, True]


def test_max_steps_that_cut_the_outer_loop_are_said(tmp_path):
    """Was: `--max_steps 2` with anchored silently ran fewer than T x K epochs."""
    from test_trainer import base_args, make_data

    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.trainer import AnchoredSFTTrainer

    ref = _tiny_folder(tmp_path, "ref", seed=1)
    model, tok = tiny_llama(seed=0)
    args = AnchoredSFTConfig(**base_args(tmp_path, reference_model=ref, max_steps=2, outer_iterations=2, inner_epochs=1))
    trainer = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
    with pytest.warns(UserWarning, match=r"max_steps=2 trains 'anchored' for 1 epoch\(s\), not its T x K = 2 x 1 epochs: 1 of 2"):
        trainer.train()


def test_export_of_a_folder_that_does_not_exist_exits_non_zero(tmp_path, capsys):
    import runpy

    main = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "export_run.py"))["main"]
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "nope"), str(tmp_path / "out")])
    assert e.value.code == 2 and "does not exist" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_train_and_run_take_one_alpha_flag(tmp_path, fake_train):
    """Was: `--alpha` worked in `run` but was an unknown flag of `train`; now both take only
    --anchor_alpha (the field's name everywhere)."""
    res = _invoke(["train", "--data", _data(tmp_path), "-o", str(tmp_path / "o"), "--alpha", "0.7"])
    assert res.exit_code == 2 and "unknown flag --alpha" in res.output, res.output
    res = _invoke(["train", "--data", _data(tmp_path), "-o", str(tmp_path / "o"), "--anchor_alpha", "0.7"])
    assert res.exit_code == 0, res.output
    settings = json.loads((tmp_path / "o" / "train_settings.json").read_text())
    assert settings["training_arguments"]["anchor_alpha"] == 0.7
