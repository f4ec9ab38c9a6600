"""Tokens a padded pass computes against the real ones: dataset order vs longest-first batches.

The snapshot/reference pass that builds an anchor cache (``HiddenStateCache.build``) batches the
training examples; right-padding every batch to its longest example computes tokens nobody reads.
This counts them for each target task's training examples tokenised with the bundled model's
chat template (no model runs; deterministic): the ratio padded / real tokens in dataset order
(before) and with longest-first batches (what ``build`` does now).  Compute is about linear in
tokens at these lengths, so the ratio is the pass's wasted work.

The same count for *training* batches: the default random sampler (``train_sampling_strategy=
"random"``) against transformers' ``group_by_length`` sampler (random mega-batches, each sorted by
length), averaged over 20 epochs' permutations, at each task's default-recipe size.

Usage: python benchmarks/padding_waste.py [--n 96] [--out results/benchmarks/padding_waste.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def padded_tokens_in_order(lengths: list[int], order: list[int], batch_size: int) -> int:
    """Tokens computed when the examples are taken in ``order`` in batches of ``batch_size``, each
    padded to its longest."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(max(lengths[j] for j in b) * len(b) for b in batches)


def padded_tokens(lengths: list[int], batch_size: int, longest_first: bool) -> int:
    """Tokens computed in dataset order, or longest example first."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if longest_first else list(range(len(lengths)))
    return padded_tokens_in_order(lengths, order, batch_size)


def training_ratios(lengths: list[int], batch_size: int, epochs: int = 20) -> dict[str, float]:
    """Mean padded / real tokens per epoch of the random and the group_by_length training samplers."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    real, out = sum(lengths), {}
    g = torch.Generator().manual_seed(0)
    rand = [
        padded_tokens_in_order(lengths, torch.randperm(len(lengths), generator=g).tolist(), batch_size) for _ in range(epochs)
    ]
    grouped = [
        padded_tokens_in_order(lengths, get_length_grouped_indices(lengths, batch_size, generator=g), batch_size)
        for _ in range(epochs)
    ]
    out["ratio_random_sampler"] = sum(rand) / epochs / real
    out["ratio_group_by_length_sampler"] = sum(grouped) / epochs / real
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=96, help="training examples per task (the default preset's n_train)")
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks/padding_waste.json"))
    a = ap.parse_args(argv)
    from transformers import AutoTokenizer

    from anchored_learning.io import write_json_atomic
    from anchored_learning.models import resolve_model_path
    from anchored_learning.tasks.registry import get_task

    tok = AutoTokenizer.from_pretrained(resolve_model_path())

    def lengths_of(task, n: int) -> list[int]:
        out = []
        for e in task.examples("train", n, seed=0):
            turns = [{"role": "user", "content": e.prompt}] if isinstance(e.prompt, str) else list(e.prompt)
            ids = tok.apply_chat_template(turns + [{"role": "assistant", "content": e.response}], tokenize=True, return_dict=True)
            out.append(len(ids["input_ids"]))
        return out

    tasks = {
        "igsm (add, op 2-3: the CPU presets')": get_task("igsm", op_min=2, op_max=3, arithmetic="add"),
        "medcalc (all 14 calculators)": get_task("medcalc"),
        "ifeval (generated)": get_task("ifeval"),
    }
    # the training sets of the default recipes (configs/<task>/default.yaml): n_train, batch 8
    recipes = {
        "igsm default (96 examples)": (get_task("igsm", op_min=2, op_max=3, arithmetic="add"), 96),
        "medcalc default (5 calculators, 160 examples)": (
            get_task("medcalc", calculators=["bmi", "map", "ideal_body_weight", "bsa", "calcium_correction"]),
            160,
        ),
        "ifeval default (128 examples)": (get_task("ifeval"), 128),
    }
    training = []
    for name, (task, n) in recipes.items():
        lengths = lengths_of(task, n)
        r = training_ratios(lengths, 8)
        training.append({"task": name, "examples": n, "batch_size": 8, "real_tokens": sum(lengths), **r})
        print(
            f"training, {name}, batch 8: random {r['ratio_random_sampler']:.2f}x, group_by_length {r['ratio_group_by_length_sampler']:.2f}x"
        )
    rows = []
    for name, task in tasks.items():
        lengths = lengths_of(task, a.n)
        real = sum(lengths)
        for bs in (8, 16):
            before, after = padded_tokens(lengths, bs, False), padded_tokens(lengths, bs, True)
            rows.append(
                {
                    "task": name,
                    "examples": len(lengths),
                    "batch_size": bs,
                    "real_tokens": real,
                    "padded_dataset_order": before,
                    "padded_longest_first": after,
                    "ratio_dataset_order": before / real,
                    "ratio_longest_first": after / real,
                }
            )
            print(f"{name}, batch {bs}: {before / real:.2f}x -> {after / real:.2f}x of {real} real tokens")
    write_json_atomic(a.out, {"command": "python benchmarks/padding_waste.py", "n": a.n, "rows": rows, "training": training})


if __name__ == "__main__":
    main()
