"""Which held-out members can see forgetting at 135M? (issue #12, "a sensitive stability suite")

Trains the default preset's reference model (the forgetful one: plain SFT on iGSM "add", 96
examples, 3 epochs, lr 3e-4, seed 0, exactly the run's `reference` stage) and scores it and the
base model on many items of every candidate member.  Per member: the base score against chance,
the paired drop in points and its standard error (paired bootstrap over items), z = drop / SE,
and the relative degradation.  Then the summary figure of candidate suites (mean relative
degradation over members, each member resampled independently) with its SE and z.

Usage: python scripts/stability_sensitivity.py [-o results/stability-sensitivity] [--workdir DIR]
(evaluations are kept in the output folder and reused when the script runs again)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

#: candidate members -> (items scored, chance level)
CANDIDATES = {
    "sciq": (1000, 0.25),
    "arc_easy": (570, 0.25),
    "piqa": (600, 0.5),
    "social_iqa": (600, 1 / 3),
    "hellaswag": (600, 0.25),
    "openbookqa": (500, 0.25),
    "arc_challenge": (299, 0.25),
    "mmlu": (600, 0.25),
    "sciq_chat": (200, 0.25),
    "heldout_nll": (200, None),
}
#: candidate suites whose summary figure is compared
SUITES = {
    "default preset today": ["sciq_chat", "hellaswag", "arc_easy", "piqa"],
    "log-likelihood, base well above chance": ["sciq", "arc_easy", "piqa", "hellaswag", "social_iqa"],
    "above + sciq_chat": ["sciq", "arc_easy", "piqa", "hellaswag", "social_iqa", "sciq_chat"],
    "sciq + arc_easy + piqa": ["sciq", "arc_easy", "piqa"],
}


def train_reference(out: Path) -> Path:
    from datasets import Dataset

    from anchored_learning.experiment import ExperimentConfig, load_training_rows, make_task
    from anchored_learning.experiment import plan as P
    from anchored_learning.models import load_model_and_tokenizer, resolve_model_path, save_pretrained_atomically
    from anchored_learning.trainer import AnchoredSFTTrainer

    final = out / "reference"
    if (final / "config.json").exists():
        return final
    cfg = ExperimentConfig(preset="default", output_dir=str(out / "run")).resolved()
    data = Dataset.from_list(load_training_rows(cfg, make_task(cfg)))
    model, tok = load_model_and_tokenizer(resolve_model_path(None))
    args = P.reference_args(cfg, out / "run")
    t0 = time.perf_counter()
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=data, processing_class=tok)
    tr.train()
    save_pretrained_atomically(tr.model, tok, final, {"train.json": json.dumps({"train_time_s": time.perf_counter() - t0})})
    return final


def evaluate_all(name: str, model, tok, out: Path, base=None) -> dict:
    from anchored_learning.evaluation.suites import evaluate

    path = out / f"eval_{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    res = evaluate(
        model,
        tok,
        list(CANDIDATES),
        limits={k: n for k, (n, _) in CANDIDATES.items()},
        seed=0,
        batch_size=16,
        generation_batch_size=32,
        progress=True,
        model_name=name,
    )
    path.write_text(json.dumps(res))
    return res


def member_stats(b: dict, a: dict, chance: float | None, n_boot: int = 2000) -> dict:
    """Paired drop (base - model, in the metric's units; NLL: model - base) and its bootstrap SE."""
    xb, xa = np.asarray(b["items"], float), np.asarray(a["items"], float)
    w = np.asarray(b["weights"], float) if b.get("weights") is not None else np.ones_like(xb)
    sign = -1.0 if not b.get("higher_is_better", True) else 1.0
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(xb), size=(n_boot, len(xb)))
    mb = (xb[idx] * w[idx]).sum(1) / w[idx].sum(1)
    ma = (xa[idx] * w[idx]).sum(1) / w[idx].sum(1)
    base, model = float((xb * w).sum() / w.sum()), float((xa * w).sum() / w.sum())
    drop = sign * (base - model)
    se = float(np.std(sign * (mb - ma), ddof=1))
    rel = 100 * drop / abs(base)
    rel_boot = 100 * sign * (mb - ma) / np.abs(mb)
    return {
        "n": len(xb),
        "base": base,
        "model": model,
        "chance": chance,
        "base_above_chance": None if chance is None else base - chance,
        "drop": drop,
        "drop_se": se,
        "z": drop / se if se > 0 else float("inf"),
        "relative_degradation_pct": rel,
        "_rel_boot": rel_boot,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=Path("results/stability-sensitivity"))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/stability-sensitivity"))
    args = ap.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    from transformers import AutoModelForCausalLM

    from anchored_learning.models import load_model_and_tokenizer, resolve_model_path

    ref_dir = train_reference(args.workdir)
    base, tok = load_model_and_tokenizer(resolve_model_path(None))
    evals = {"base": evaluate_all("base", base, tok, args.workdir)}
    ref = AutoModelForCausalLM.from_pretrained(ref_dir).eval()
    evals["reference"] = evaluate_all("reference", ref, tok, args.workdir)
    B, R = evals["base"]["results"], evals["reference"]["results"]
    members = {k: member_stats(B[k], R[k], chance) for k, (_, chance) in CANDIDATES.items()}
    suites = {}
    for name, ms in SUITES.items():
        boot = np.mean([members[m]["_rel_boot"] for m in ms], axis=0)
        est = float(np.mean([members[m]["relative_degradation_pct"] for m in ms]))
        se = float(np.std(boot, ddof=1))
        suites[name] = {"members": ms, "mean_degradation_pct": est, "se": se, "z": est / se}
    for m in members.values():
        del m["_rel_boot"]
    result = {
        "command": "python scripts/stability_sensitivity.py",
        "reference": "default preset reference stage: SFT, iGSM add op 2-3, 96 examples, 3 epochs, lr 3e-4, batch 8, seed 0",
        "precision": evals["base"]["meta"]["precision"],
        "members": members,
        "suites": suites,
        "wall_time_s": time.perf_counter() - t0,
        "eval_wall_time_s": {k: v["meta"]["wall_time_s"] for k, v in evals.items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    (args.output / "sensitivity.json").write_text(json.dumps(result, indent=1))
    lines = [
        "| member | n | chance | base | reference | drop [SE] | z | relative degradation % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, m in members.items():
        ch = "-" if m["chance"] is None else f"{m['chance']:.2f}"
        lines.append(
            f"| {k} | {m['n']} | {ch} | {m['base']:.3f} | {m['model']:.3f} | {m['drop']:+.3f} [{m['drop_se']:.3f}] | "
            f"{m['z']:+.1f} | {m['relative_degradation_pct']:+.1f} |"
        )
    lines += ["", "| suite | members | mean degradation % | SE | z |", "|---|---|---|---|---|"]
    for name, s in suites.items():
        lines.append(f"| {name} | {', '.join(s['members'])} | {s['mean_degradation_pct']:+.2f} | {s['se']:.2f} | {s['z']:+.1f} |")
    (args.output / "sensitivity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
