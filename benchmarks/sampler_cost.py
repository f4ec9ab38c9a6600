"""Wall time of one SFT epoch with the random and the group_by_length training samplers, paired.

Trains the bundled SmolLM2-135M-Instruct on a target task's default-recipe training examples for one
epoch (batch 8, the recipes' settings), alternating the two samplers (A B A B ...), each run from
the same base weights, and reports each run's ``train_runtime`` and the median ratio.  Compute is
about linear in padded tokens, so the ratio should follow ``benchmarks/padding_waste.py``.

Usage: python benchmarks/sampler_cost.py [--task ifeval] [--n 64] [--repeats 2] [--out results/benchmarks/sampler_cost_ifeval.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from step_cost import machine_info  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="ifeval", choices=["igsm", "medcalc", "ifeval"])
    ap.add_argument("--n", type=int, default=64, help="training examples")
    ap.add_argument("--repeats", type=int, default=2, help="runs per sampler (alternating)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    from datasets import Dataset

    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.experiment import ExperimentConfig, load_training_rows, make_task
    from anchored_learning.io import write_json_atomic
    from anchored_learning.models import bf16_autocast_available, load_model_and_tokenizer, resolve_model_path
    from anchored_learning.trainer import AnchoredSFTTrainer

    cfg = ExperimentConfig(task=a.task, n_train=a.n).resolved()
    data = Dataset.from_list(load_training_rows(cfg, make_task(cfg)))
    path = resolve_model_path(cfg.model)
    runs = []
    for r in range(a.repeats):
        for strategy in ("random", "group_by_length"):
            model, tok = load_model_and_tokenizer(path)
            with tempfile.TemporaryDirectory() as d:
                args = AnchoredSFTConfig(
                    output_dir=d, method="sft", num_train_epochs=1, per_device_train_batch_size=8, learning_rate=1e-4,
                    max_length=cfg.max_length, train_sampling_strategy=strategy, save_strategy="no", report_to="none",
                    logging_steps=100, disable_tqdm=True, seed=r, activation_checkpointing=False,
                )  # fmt: skip
                tr = AnchoredSFTTrainer(model, args=args, train_dataset=data, processing_class=tok)
                t0 = time.perf_counter()
                tr.train()
                runs.append({"repeat": r, "sampler": strategy, "seconds": time.perf_counter() - t0})
                print(runs[-1], flush=True)
    med = {s: statistics.median(x["seconds"] for x in runs if x["sampler"] == s) for s in ("random", "group_by_length")}
    res = {
        "command": f"python benchmarks/sampler_cost.py --task {a.task} --n {a.n} --repeats {a.repeats}",
        "machine": machine_info(),
        "bf16_autocast": bf16_autocast_available(),
        "runs": runs,
        "median_seconds": med,
        "ratio_random_over_grouped": med["random"] / med["group_by_length"],
    }
    print(res["median_seconds"], f"ratio {res['ratio_random_over_grouped']:.2f}")
    if a.out:
        write_json_atomic(a.out, res)


if __name__ == "__main__":
    main()
