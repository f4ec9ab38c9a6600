"""The per-iteration KL bound of every anchored run in an exported multi-seed folder.

Produced the bound table in ``results/igsm-default/README.md`` (from the committed
``results/igsm-default/seed-*/train_log_anchored.json``).

For the logit anchor q_t = softmax((1 - alpha) z_t + alpha z_sft) the guaranteed bound is
KL(p_t || q_t) <= alpha KL(p_t || p_sft) (METHOD.md); the trainer logs both sides at every
snapshot refresh on a fixed probe batch of training prompts (``anchor_history``).

Usage: python scripts/bound_table.py [RESULTS_DIR]   (default: results/igsm-default)
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = "results/igsm-default"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "root",
        nargs="?",
        type=Path,
        default=REPO / DEFAULT_DIR,
        help=f"exported multi-seed folder with seed-*/train_log_anchored.json (default: {DEFAULT_DIR})",
    )
    root = ap.parse_args(argv).root
    print("| seed | outer iteration | KL(p_t \\|\\| q_t) | alpha KL(p_t \\|\\| p_sft) | holds | KL(p_t \\|\\| p_{t-1}) |")
    print("|---|---|---|---|---|---|")
    for log in sorted(root.glob("seed-*/train_log_anchored.json")):
        for r in json.loads(log.read_text())["anchor_history"]:
            lhs, rhs = r["kl_snapshot_anchor"], r["alpha_kl_snapshot_reference"]
            move = r.get("kl_student_prev_snapshot")
            print(
                f"| {log.parent.name.split('-')[1]} | {int(r['outer_iteration'])} | {lhs:.3f} | {rhs:.3f} | "
                f"{'yes' if lhs <= rhs else 'NO'} | {'' if move is None else f'{move:.3f}'} |"
            )


if __name__ == "__main__":
    main()
