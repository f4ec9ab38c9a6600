"""Can SmolLM2-135M learn iGSM within a CPU budget?  Reference SFT only, then target accuracy.

Produced ``results/igsm-calibration/<tag>.json`` (the runs in ``results/igsm-calibration/README.md``).
Trains a model (about 20 minutes per run on a 2-core CPU).

Usage: python scripts/igsm_calibration.py --op-max 2 --n-train 256 --epochs 3 --lr 1e-4
       python scripts/igsm_calibration.py --arithmetic add --op-min 2 --op-max 3 --n-train 128 \
           --threads 1 --suites igsm,arc_easy --limit-mc 100
Writes <out-dir>/<tag>.json (config, seed, machine, wall time, scores); --out-dir defaults to
results/igsm-calibration (the folder the script used to live in).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = "results/igsm-calibration"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--op-min", type=int, default=1)
    ap.add_argument("--op-max", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-test", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="runs/igsm-calibration")
    ap.add_argument("--arithmetic", default="mod23", choices=["mod23", "add"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--checkpointing", action="store_true", help="activation checkpointing (TRL's default) on")
    ap.add_argument("--suites", default="igsm", help="comma-separated suites scored for base and SFT")
    ap.add_argument("--limit-mc", type=int, default=100, help="items per held-out suite")
    ap.add_argument(
        "--out-dir", type=Path, default=REPO / DEFAULT_OUT, help=f"where <tag>.json is written (default: {DEFAULT_OUT})"
    )
    a = ap.parse_args(argv)
    config = {k: v for k, v in vars(a).items() if k != "out_dir"}  # the committed JSONs' "config"

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from anchored_learning.evaluation.suites import evaluate, register_task
    from anchored_learning.models import load_model_and_tokenizer, resolve_model_path
    from anchored_learning.tasks.igsm import IGSMTask
    from anchored_learning.trainer import train_reference

    if a.threads:
        torch.set_num_threads(a.threads)
    arith = "" if a.arithmetic == "mod23" else f"{a.arithmetic}_"
    tag = f"{arith}op{a.op_min}-{a.op_max}_n{a.n_train}_ep{a.epochs:g}_lr{a.lr:g}_seed{a.seed}"
    t0 = time.perf_counter()
    task = IGSMTask(op_min=a.op_min, op_max=a.op_max, arithmetic=a.arithmetic)
    register_task("igsm", lambda: task)
    rows = [
        {"prompt": [{"role": "user", "content": e.prompt}], "completion": [{"role": "assistant", "content": e.response}]}
        for e in task.examples("train", a.n_train, seed=a.seed)
    ]
    path = resolve_model_path()
    model, tok = load_model_and_tokenizer(path)
    suites = a.suites.split(",")
    limits = {s: (a.n_test if s == "igsm" else a.limit_mc) for s in suites}
    base_all = evaluate(model, tok, suites, limits=limits, seed=a.seed, batch_size=8)["results"]
    base_eval = base_all["igsm"]
    t1 = time.perf_counter()
    ref = train_reference(
        model,
        Dataset.from_list(rows),
        f"{a.workdir}/{tag}",
        processing_class=tok,
        num_train_epochs=a.epochs,
        learning_rate=a.lr,
        per_device_train_batch_size=a.batch_size,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        max_length=512,
        report_to="none",
        save_strategy="no",
        logging_steps=4,
        seed=a.seed,
        gradient_checkpointing=a.checkpointing,
    )
    train_s = time.perf_counter() - t1
    state = Path(ref) / "trainer_state.json"
    sft_log = json.loads(state.read_text())["log_history"] if state.exists() else []
    sft = AutoModelForCausalLM.from_pretrained(ref).eval()
    sft_all = evaluate(sft, tok, suites, limits=limits, seed=a.seed, batch_size=8)["results"]
    sft_eval = sft_all["igsm"]
    out = {
        "config": config,
        "tag": tag,
        "base_igsm": base_eval["primary"],
        "sft_igsm": sft_eval["primary"],
        "n_test": sft_eval["n"],
        "heldout": {
            s: {"base": base_all[s]["primary"], "sft": sft_all[s]["primary"], "n": sft_all[s]["n"]} for s in suites if s != "igsm"
        },
        "train_loss_last": [h["loss"] for h in sft_log if "loss" in h][-3:],
        "sft_predictions_first3": sft_eval["predictions"][:3],
        "train_time_s": train_s,
        "wall_time_s": time.perf_counter() - t0,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "loadavg_end": os.getloadavg(),
        },
    }
    a.out_dir.mkdir(parents=True, exist_ok=True)
    dest = a.out_dir / f"{tag}.json"
    dest.write_text(json.dumps(out, indent=2))
    print(json.dumps({k: out[k] for k in ("tag", "base_igsm", "sft_igsm", "n_test", "heldout", "train_time_s", "wall_time_s")}))


if __name__ == "__main__":
    main()
