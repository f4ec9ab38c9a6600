"""Can SmolLM2-135M learn a target task within a CPU budget?  Reference SFT, then the target.

Trains the reference (plain SFT) on ``--n-train`` examples of a registered target task, then
scores the base model and the SFT model on the same ``--n-test`` seeded test items (greedy, the
task's own generation budget and scoring), with the paired-bootstrap 95% CI of the gain and the
score per group (MedCalc: calculator; IFEval: instruction kind).  Every prediction is kept, so
the items can be rescored later.

Usage:
    python scripts/target_calibration.py --task medcalc --option 'calculators=["map","anion_gap"]' \\
        --n-train 256 --n-test 64 --epochs 2 --lr 3e-4 --out-dir results/medcalc-calibration

Writes <out-dir>/<tag>.json (config, seed, machine, wall time, scores, per-item records).
``--rescore FILE.json`` scores a file's saved predictions again with this checkout's scorers
(the task's score and its secondary scores) and adds them under ``rescored``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def group_of(example) -> str:
    """The group an item is reported under: its calculator, instruction kinds, or the task."""
    meta = example.meta
    if "calculator_key" in meta or "calculator_name" in meta:
        return str(meta.get("calculator_key") or meta["calculator_name"])
    if "instruction_id_list" in meta:
        return "+".join(sorted(meta["instruction_id_list"]))
    return "all"


def summarise(task, test, base_items, sft_items, uids, seed: int) -> dict:
    """Scores, the gain's paired-bootstrap 95% CI and per-group scores of saved per-item results;
    with the task's ``secondary_scores`` the same for each (MedCalc: ``lenient``)."""
    from anchored_learning.evaluation.metrics import gain, paired_bootstrap

    by_uid = {e.uid: e for e in test}
    est, lo, hi = paired_bootstrap(base_items, sft_items, gain, seed=seed)
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"base": [], "sft": []})
    for uid, b, s in zip(uids, base_items, sft_items):
        groups[group_of(by_uid[uid])]["base"].append(b)
        groups[group_of(by_uid[uid])]["sft"].append(s)
    return {
        "base": sum(base_items) / len(base_items),
        "sft": sum(sft_items) / len(sft_items),
        "gain_points": est,
        "gain_ci95": [lo, hi],
        "per_group": {
            g: {"n": len(v["sft"]), "base": sum(v["base"]) / len(v["base"]), "sft": sum(v["sft"]) / len(v["sft"])}
            for g, v in sorted(groups.items())
        },
    }


def rescore(path: Path) -> None:
    """Score a calibration JSON's saved predictions again with this checkout's scorers (in place)."""
    from anchored_learning.tasks.registry import get_task

    data = json.loads(path.read_text())
    task = get_task(data["config"]["task"], **data["options"])
    test = task.examples("test", data["n_test"], seed=data["config"]["seed"])
    by_uid = {e.uid: e for e in test}
    uids = [r["uid"] for r in data["items"]]
    scorers = {"score": task.score, **getattr(task, "secondary_scores", {})}
    data["rescored"] = {}
    for metric, scorer in scorers.items():
        b = [float(scorer(by_uid[r["uid"]], r["base_prediction"])) for r in data["items"]]
        s = [float(scorer(by_uid[r["uid"]], r["sft_prediction"])) for r in data["items"]]
        data["rescored"][metric] = summarise(task, test, b, s, uids, data["config"]["seed"])
    path.write_text(json.dumps(data, indent=2, default=str))
    print(json.dumps({m: {k: v[k] for k in ("base", "sft", "gain_points", "gain_ci95")} for m, v in data["rescored"].items()}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rescore", type=Path, help="only score this calibration JSON's predictions again (in place)")
    ap.add_argument("--task", help="registered target task (medcalc, ifeval, igsm)")
    ap.add_argument("--option", action="append", default=[], help="task option KEY=JSON (repeatable)")
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-test", type=int, default=64)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gen-batch-size", type=int, default=24)
    ap.add_argument("--workdir", default="runs/target-calibration")
    ap.add_argument("--tag", default=None, help="output name (default: built from the settings)")
    ap.add_argument("--out-dir", type=Path, default=Path("results/target-calibration"))
    a = ap.parse_args(argv)
    if a.rescore:
        return rescore(a.rescore)
    if not a.task:
        ap.error("--task is required")
    options = {}
    for item in a.option:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from anchored_learning.evaluation.suites import evaluate
    from anchored_learning.models import bf16_autocast_available, load_model_and_tokenizer, resolve_model_path
    from anchored_learning.tasks.registry import get_task

    tag = a.tag or f"{a.task}_n{a.n_train}_ep{a.epochs:g}_lr{a.lr:g}_seed{a.seed}"
    t0 = time.perf_counter()
    task = get_task(a.task, **options)
    train = task.examples("train", a.n_train, seed=a.seed)
    test = task.examples("test", a.n_test, seed=a.seed)

    def turns(prompt):
        return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)

    rows = [{"prompt": turns(e.prompt), "completion": [{"role": "assistant", "content": e.response}]} for e in train]
    model, tok = load_model_and_tokenizer(resolve_model_path())
    bf16 = bf16_autocast_available()
    tasks = {a.task: task}

    def score(m) -> dict:
        """The target's evaluation of ``m`` on the seeded test items (greedy, the task's budget)."""
        return evaluate(
            m,
            tok,
            [a.task],
            limits={a.task: a.n_test},
            seed=a.seed,
            tasks=tasks,
            precision="auto",
            generation_batch_size=a.gen_batch_size,
        )["results"][a.task]

    base = score(model)
    t1 = time.perf_counter()
    ref = f"{a.workdir}/{tag}"
    from anchored_learning.trainer import train_reference

    train_reference(
        model,
        Dataset.from_list(rows),
        ref,
        processing_class=tok,
        num_train_epochs=a.epochs,
        learning_rate=a.lr,
        per_device_train_batch_size=a.batch_size,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        max_length=a.max_length,
        report_to="none",
        save_strategy="no",
        logging_steps=4,
        seed=a.seed,
    )
    train_s = time.perf_counter() - t1
    state = Path(ref) / "trainer_state.json"
    log = json.loads(state.read_text())["log_history"] if state.exists() else []
    sft_model = AutoModelForCausalLM.from_pretrained(ref).eval()
    sft = score(sft_model)
    summary = summarise(task, test, base["items"], sft["items"], sft["uids"], a.seed)
    records = [
        {
            "uid": uid,
            "base": base["items"][i],
            "sft": sft["items"][i],
            "base_prediction": base["predictions"][i],
            "sft_prediction": sft["predictions"][i],
        }
        for i, uid in enumerate(sft["uids"])
    ]
    out = {
        "config": config,
        "options": options,
        "tag": tag,
        **summary,
        "base_metrics": base["metrics"],
        "sft_metrics": sft["metrics"],
        "n_test": sft["n"],
        "train_loss": [h["loss"] for h in log if "loss" in h],
        "train_time_s": train_s,
        "wall_time_s": time.perf_counter() - t0,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "bf16_autocast": bf16,
            "loadavg_end": os.getloadavg(),
        },
        "items": records,
    }
    a.out_dir.mkdir(parents=True, exist_ok=True)
    (a.out_dir / f"{tag}.json").write_text(json.dumps(out, indent=2, default=str))
    summary = {k: out[k] for k in ("tag", "base", "sft", "gain_points", "gain_ci95", "n_test", "per_group", "train_time_s")}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
