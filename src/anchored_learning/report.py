"""Results tables and the gain-versus-degradation Pareto frontier (matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points, sorted by degradation.

    A point ``(degradation, gain)`` is dominated when another has degradation <= and gain >= with
    at least one strict.  Lower degradation and higher gain are better.
    """
    idx = []
    for i, (d, g) in enumerate(points):
        dominated = any(
            (d2 <= d and g2 >= g) and (d2 < d or g2 > g) for j, (d2, g2) in enumerate(points) if j != i
        )
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: (points[i][0], -points[i][1]))


def plot_pareto(rows: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Scatter of gain (points) against mean degradation (%) with the frontier drawn, each point labelled.

    Args:
        rows: dicts with ``label``, ``gain`` and ``degradation`` (and optional ``method``).
        path: PNG destination (written atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(float(r["degradation"]), float(r["gain"])) for r in rows]
    front = pareto_frontier(pts)
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    methods = sorted({r.get("method", r["label"]) for r in rows})
    cmap = plt.get_cmap("tab10")
    for k, m in enumerate(methods):
        sel = [i for i, r in enumerate(rows) if r.get("method", r["label"]) == m]
        ax.scatter([pts[i][0] for i in sel], [pts[i][1] for i in sel], color=cmap(k % 10), label=m, s=50, zorder=3)
    for i, r in enumerate(rows):
        ax.annotate(r["label"], pts[i], textcoords="offset points", xytext=(5, 5), fontsize=8)
    if front:
        fx = [pts[i][0] for i in front]
        fy = [pts[i][1] for i in front]
        ax.step(fx, fy, where="post", color="black", linestyle="--", linewidth=1, label="Pareto frontier", zorder=2)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("mean degradation on held-out suite (%, lower is better)")
    ax.set_ylabel("target gain (points, higher is better)")
    ax.set_title(title or "gain vs. stability")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def markdown_table(rows: Sequence[dict[str, Any]], heldout: Sequence[str]) -> str:
    """Markdown table: method, target score, gain, each held-out score, mean degradation, wall time."""
    head = ["method", "target", "gain (pts) [95% CI]"] + list(heldout) + ["mean degradation % [95% CI]", "train time (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        gci = r.get("gain_ci") or [float("nan")] * 2
        dci = r.get("degradation_ci") or [float("nan")] * 2
        cells = [r["label"], f"{r['target']:.3f}", f"{r['gain']:+.1f} [{gci[0]:+.1f}, {gci[1]:+.1f}]"]
        cells += [f"{r['heldout'].get(h, float('nan')):.3f}" for h in heldout]
        cells += [f"{r['degradation']:+.1f} [{dci[0]:+.1f}, {dci[1]:+.1f}]", f"{r.get('train_time_s', 0.0):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
