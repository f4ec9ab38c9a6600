"""Multiple-choice scoring with each context run once against every choice's input run in full.

    OMP_NUM_THREADS=1 python benchmarks/shared_context_scoring.py [--limit 200] [--suites sciq arc_easy]
                                                                  [--batch-size 8] [--seed 0]
                                                                  [--out results/benchmarks/shared_context_scoring.json]

One process, the bundled SmolLM2-135M-Instruct in float32, the default recipe's held-out items
(``mc_limit`` 200, seed 0).  For each suite both paths score the same items, paired: the full path
(``share_context=False``, today's lm-eval-style inputs) and the shared-context one, the order
alternating between suites so drift in machine load falls on both.  Reported per suite: wall and
process CPU seconds of each path, their ratios (shared / full), and agreement: the largest
per-choice log-likelihood difference (nats), and the items whose acc / acc_norm / greedy flags differ.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    """``(result, wall seconds, process CPU seconds)`` of ``fn()``."""
    w, c = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - w, _cpu() - c


def compare(full: dict, shared: dict) -> dict:
    """Agreement of two :func:`score_multiple_choice` results on the same items."""
    import numpy as np

    diff = max(float(np.max(np.abs(np.subtract(a, b)))) for a, b in zip(full["logliks"], shared["logliks"]))
    return {
        "max_abs_loglik_diff_nats": diff,
        **{
            f"items_differing_{k}": sum(x != y for x, y in zip(full[f"items_{k}"], shared[f"items_{k}"]))
            for k in ("acc", "acc_norm")
        },
        "acc": [full["acc"], shared["acc"]],
        "acc_norm": [full["acc_norm"], shared["acc_norm"]],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=200, help="items per suite (the default recipe's mc_limit)")
    ap.add_argument("--suites", nargs="+", default=["sciq", "arc_easy"])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks/shared_context_scoring.json"))
    a = ap.parse_args(argv)
    import torch

    from anchored_learning.evaluation.loglik import score_multiple_choice
    from anchored_learning.io import write_json_atomic
    from anchored_learning.models import load_model_and_tokenizer
    from anchored_learning.tasks.base import subset_indices
    from anchored_learning.tasks.benchmarks import BENCHMARKS

    sys.path.insert(0, str(Path(__file__).parent))
    from step_cost import machine_info

    machine = machine_info()  # the load average at the start

    model, tok = load_model_and_tokenizer(None)
    rows = []
    for n, name in enumerate(a.suites):
        items = BENCHMARKS[name].load()
        items = [items[i] for i in subset_indices(len(items), a.limit, a.seed)]
        runs = {}
        for share in (False, True) if n % 2 == 0 else (True, False):
            runs[share] = timed(lambda: score_multiple_choice(model, tok, items, batch_size=a.batch_size, share_context=share))
        (full, fw, fc), (shared, sw, sc) = runs[False], runs[True]
        row = {
            "suite": name,
            "items": len(items),
            "order": "full, shared" if n % 2 == 0 else "shared, full",
            "full_wall_s": round(fw, 2),
            "shared_wall_s": round(sw, 2),
            "full_cpu_s": round(fc, 2),
            "shared_cpu_s": round(sc, 2),
            "wall_ratio_shared_over_full": round(sw / fw, 3),
            "cpu_ratio_shared_over_full": round(sc / fc, 3),
            **compare(full, shared),
        }
        print(row, flush=True)
        rows.append(row)
    tot = {k: sum(r[k] for r in rows) for k in ("full_wall_s", "shared_wall_s", "full_cpu_s", "shared_cpu_s")}
    out = {
        "command": " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?"), "python", *sys.argv]),
        "machine": {**machine, "loadavg_at_end": os.getloadavg(), "dtype": str(next(model.parameters()).dtype)},
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
        "total": {
            **tot,
            "wall_ratio": round(tot["shared_wall_s"] / tot["full_wall_s"], 3),
            "cpu_ratio": round(tot["shared_cpu_s"] / tot["full_cpu_s"], 3),
        },
    }
    write_json_atomic(a.out, out)
    print(out["total"])


if __name__ == "__main__":
    main()
