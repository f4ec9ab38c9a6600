"""The per-iteration KL bound of every anchored run in an exported multi-seed folder.

For the logit anchor q_t = softmax((1 - alpha) z_t + alpha z_sft) the guaranteed bound is
KL(p_t || q_t) <= alpha KL(p_t || p_sft) (METHOD.md); the trainer logs both sides at every
snapshot refresh on a fixed probe batch of training prompts (``anchor_history``).

Usage: python results/igsm-default/bound_table.py results/igsm-default
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

root = Path(sys.argv[1])
print("| seed | outer iteration | KL(p_t \\|\\| q_t) | alpha KL(p_t \\|\\| p_sft) | holds | KL(p_t \\|\\| p_{t-1}) |")
print("|---|---|---|---|---|---|")
for log in sorted(root.glob("seed-*/train_log_anchored.json")):
    for r in json.loads(log.read_text())["anchor_history"]:
        lhs, rhs = r["kl_snapshot_anchor"], r["alpha_kl_snapshot_reference"]
        move = r.get("kl_student_prev_snapshot")
        print(f"| {log.parent.name.split('-')[1]} | {int(r['outer_iteration'])} | {lhs:.3f} | {rhs:.3f} | "
              f"{'yes' if lhs <= rhs else 'NO'} | {'' if move is None else f'{move:.3f}'} |")
