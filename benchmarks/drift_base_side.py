"""Drift KL(p0 || p) with the base model's side computed once against running the base every time.

    OMP_NUM_THREADS=1 python benchmarks/drift_base_side.py [--limit 40] [--models 3] [--batch-size 8]
                                                           [--out results/benchmarks/drift_base_side.json]

One process, the bundled SmolLM2-135M-Instruct (float32) as p0 and ``--models`` stand-ins for
fine-tuned models (p0 with every weight perturbed by 1e-3 of its scale, a different seed each:
the cost of a forward pass does not depend on the values), the default recipe's drift pairs
(SciQ, ``drift_limit`` 40, seed 0).  For each model, paired, in alternating order: the drift with
the base run live (``reuse_base=False``, today's) and with the base's side from the process's
store (the first model's call computes it).  Reported: wall and CPU seconds per call, the ratio
for the models after the first (the steady state of a run folder), and the largest difference
of per-pair KL (nats/token) between the two paths.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def perturbed(model, seed: int):
    """A copy of ``model`` with every weight moved by N(0, (1e-3 * std)^2) (float32)."""
    import copy

    import torch

    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 1e-3 * (p.float().std() if p.numel() > 1 else 1.0))
    return m


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=40, help="drift pairs (the default recipe's drift_limit)")
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks/drift_base_side.json"))
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from shared_context_scoring import timed
    from step_cost import machine_info

    machine = machine_info()  # the load average at the start

    from anchored_learning.evaluation.drift import drift_kl
    from anchored_learning.io import write_json_atomic
    from anchored_learning.models import load_model_and_tokenizer
    from anchored_learning.tasks.base import subset_indices
    from anchored_learning.tasks.heldout_text import load_heldout_pairs

    base, tok = load_model_and_tokenizer(None)
    pairs = load_heldout_pairs()
    pairs = [pairs[i] for i in subset_indices(len(pairs), a.limit, 0)]
    rows = []
    for k in range(a.models):
        model = perturbed(base, k)
        runs = {}
        for reuse in (False, True) if k % 2 == 0 else (True, False):
            runs[reuse] = timed(lambda: drift_kl(base, model, tok, pairs, batch_size=a.batch_size, reuse_base=reuse))
        (live, lw, lc), (reused, rw, rc) = runs[False], runs[True]
        row = {
            "model": k,
            "base_side": "computed" if k == 0 else "reused",
            "live_wall_s": round(lw, 2),
            "reuse_wall_s": round(rw, 2),
            "live_cpu_s": round(lc, 2),
            "reuse_cpu_s": round(rc, 2),
            "max_abs_item_kl_diff": max(abs(x - y) for x, y in zip(live["items"], reused["items"])),
            "kl": [live["kl"], reused["kl"]],
        }
        print(row, flush=True)
        rows.append(row)
    later = rows[1:]
    out = {
        "command": " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?"), "python", *sys.argv]),
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "pairs": len(pairs),
        "rows": rows,
        "reused_over_live_wall": round(sum(r["reuse_wall_s"] for r in later) / sum(r["live_wall_s"] for r in later), 3)
        if later
        else None,
        "reused_over_live_cpu": round(sum(r["reuse_cpu_s"] for r in later) / sum(r["live_cpu_s"] for r in later), 3)
        if later
        else None,
    }
    write_json_atomic(a.out, out)
    print({k: out[k] for k in ("reused_over_live_wall", "reused_over_live_cpu")})


if __name__ == "__main__":
    main()
