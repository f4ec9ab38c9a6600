"""Does the bundled model learn each generated skill (tasks/skills.py) to >= 90 %?

For every skill: the base model's score on 100 test items, then plain SFT on ``--n_train`` generated
training examples (the prior stage's defaults: 384 examples, 3 epochs, lr 1e-4, batch 8, cosine
schedule, as ``anchored run --prior_task``) and the SFT model's score on the same items.  Writes
``results/sequential-skills/skills.json`` (per skill: scores, per-item results, sample predictions,
train and eval wall times, machine) after each skill, and skips skills already in it.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/skill_learnability.py [--skills date_iso,date_us] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch


def main() -> None:
    from datasets import Dataset

    from anchored_learning.evaluation.suites import evaluate
    from anchored_learning.experiment.experiment_config import PRIOR_DEFAULTS
    from anchored_learning.io import write_json_atomic
    from anchored_learning.models import bf16_autocast_available, load_model_and_tokenizer, resolve_model_path
    from anchored_learning.tasks.registry import get_task
    from anchored_learning.tasks.skills import SKILLS
    from anchored_learning.trainer import train_reference

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skills", default=",".join(SKILLS))
    ap.add_argument("--n_train", type=int, default=PRIOR_DEFAULTS["prior_n_train"])
    ap.add_argument("--epochs", type=int, default=PRIOR_DEFAULTS["prior_epochs"])
    ap.add_argument("--learning_rate", type=float, default=PRIOR_DEFAULTS["prior_learning_rate"])
    ap.add_argument("--n_test", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/sequential-skills/skills.json")
    ap.add_argument("--work", default="runs/skill-learnability")
    a = ap.parse_args()
    out = Path(a.out)
    record = json.loads(out.read_text()) if out.exists() else {"skills": {}}
    bf16 = bf16_autocast_available()
    record.update(
        command="python scripts/skill_learnability.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items()),
        machine={
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "precision": "bf16 autocast" if bf16 else "float32",
            "torch": torch.__version__,
        },
    )
    path = resolve_model_path(None)
    base, tok = load_model_and_tokenizer(path)
    for name in a.skills.split(","):
        if name in record["skills"]:
            print(f"[skip] {name}: in {out}")
            continue
        task = get_task(name)
        rows = [
            {"prompt": [{"role": "user", "content": e.prompt}], "completion": [{"role": "assistant", "content": e.response}]}
            for e in task.examples("train", a.n_train, seed=a.seed)
        ]
        t0 = time.perf_counter()
        before = evaluate(
            base, tok, [name], limit=a.n_test, seed=a.seed, generation_batch_size=50, precision="auto", progress=True
        )
        t_eval = time.perf_counter() - t0
        folder = Path(a.work) / name
        t0 = time.perf_counter()
        train_reference(
            base,
            Dataset.from_list(rows),
            str(folder),
            processing_class=tok,
            num_train_epochs=a.epochs,
            learning_rate=a.learning_rate,
            per_device_train_batch_size=8,
            lr_scheduler_type="cosine",
            warmup_steps=0.1,
            logging_steps=5,
            save_strategy="no",
            report_to="none",
            seed=a.seed,
            bf16=bf16,
        )
        t_train = time.perf_counter() - t0
        model = type(base).from_pretrained(folder).eval()
        after = evaluate(
            model, tok, [name], limit=a.n_test, seed=a.seed, generation_batch_size=50, precision="auto", progress=True
        )
        b, f = before["results"][name], after["results"][name]
        record["skills"][name] = {
            "base_score": b["primary"],
            "sft_score": f["primary"],
            "n_test": f["n"],
            "n_train": a.n_train,
            "epochs": a.epochs,
            "learning_rate": a.learning_rate,
            "train_time_s": round(t_train, 1),
            "eval_time_s": round(t_eval, 1),
            "items_base": b["items"],
            "items_sft": f["items"],
            "uids": f["uids"],
            "sample": [
                {"prompt": e, "base": pb, "sft": pf}
                for e, pb, pf in zip(f["uids"][:5], b["predictions"][:5], f["predictions"][:5])
            ],
        }
        write_json_atomic(out, record)
        print(f"{name}: base {b['primary']:.2f} -> SFT {f['primary']:.2f} (train {t_train:.0f} s)", flush=True)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
