"""The gain-versus-degradation plots (matplotlib, written atomically as PNG): a run's Pareto plot, a
frontier study's families with their intervals, training curves and the anchor's KL bound."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anchored_learning.io import atomic_file
from anchored_learning.tables import pareto_frontier, short_label


def _finish_gain_degradation_axes(fig, ax, title: str) -> None:
    """Axes lines at 0, the axis labels, the title and the legend of a gain-vs-degradation plot."""
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("mean degradation on held-out suite (%, lower is better)")
    ax.set_ylabel("target gain (points, higher is better)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()


def plot_pareto(rows: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Scatter of gain (points) against mean degradation (%) with the frontier drawn, each point labelled.

    Args:
        rows: dicts with ``label``, ``gain`` and ``degradation`` (and optional ``method``; optional
            ``gain_sd`` and ``degradation_sd``, drawn as error bars, e.g. over seeds).
        path: PNG destination (written atomically).
    """
    plt = _pyplot()
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
        if r.get("gain_sd") is not None or r.get("degradation_sd") is not None:
            ax.errorbar(
                pts[i][0],
                pts[i][1],
                xerr=r.get("degradation_sd") or 0.0,
                yerr=r.get("gain_sd") or 0.0,
                color="grey",
                linewidth=0.8,
                capsize=2,
                zorder=1,
            )
    if front:
        fx = [pts[i][0] for i in front]
        fy = [pts[i][1] for i in front]
        ax.step(fx, fy, where="post", color="black", linestyle="--", linewidth=1, label="Pareto frontier", zorder=2)
    _finish_gain_degradation_axes(fig, ax, title or "gain vs. stability")
    return _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp)
    _pyplot().close(fig)
    return path


def plot_frontier(stats: dict[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """Every run of a frontier study (:func:`anchored_learning.experiment.frontier.frontier_statistics`)
    on the gain-vs-degradation plane: one colour per family, 95% bootstrap intervals as error bars,
    each family's frontier (from the base model at the origin) as a line.

    Args:
        stats: ``points`` with ``label``, ``family``, ``gain`` and ``degradation`` estimates
            (``{"value", "ci"}``) and ``families`` with each family's frontier ``curve``
            (``[[degradation, gain], ...]``), as frontier_statistics returns them.
        path: PNG destination (written atomically).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6), dpi=120)
    cmap = plt.get_cmap("tab10")
    families = list(dict.fromkeys(p["family"] for p in stats["points"]))
    for k, f in enumerate(families):
        color = cmap(k % 10)
        pts = [p for p in stats["points"] if p["family"] == f]
        xs = [p["degradation"]["value"] for p in pts]
        ys = [p["gain"]["value"] for p in pts]
        for p, x, y in zip(pts, xs, ys):
            dci, gci = p["degradation"]["ci"] or [x, x], p["gain"]["ci"] or [y, y]
            ax.errorbar(
                x,
                y,
                xerr=[[x - dci[0]], [dci[1] - x]],
                yerr=[[y - gci[0]], [gci[1] - y]],
                color=color,
                alpha=0.35,
                linewidth=0.8,
                capsize=2,
                zorder=1,
            )
            ax.annotate(short_label(p["label"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
        ax.scatter(xs, ys, color=color, label=f, s=40, zorder=3)
        curve = stats["families"][f]["curve"]
        ax.plot(
            [c[0] for c in curve],
            [c[1] for c in curve],
            color=color,
            linewidth=1.2,
            linestyle="-" if f == "sft" else "--",
            zorder=2,
        )
    ax.scatter([0], [0], color="black", marker="x", s=40, label="base", zorder=3)
    _finish_gain_degradation_axes(fig, ax, title or "gain vs. degradation")
    return _save(fig, path)


def plot_training_curves(records: dict[str, dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path | None:
    """Training loss (nats per response token; for Anchored Learning the KL to the anchor) against
    epoch for every run, one panel per family.  Returns None (and draws nothing) when no run has a log.

    Args:
        records: label -> the run's training record (``log_history`` as the trainer's state
            keeps it; what ``models/<label>/final/.complete`` holds).
    """
    logs = {}
    for label, rec in records.items():
        pts = [(e["epoch"], e["loss"]) for e in rec.get("log_history", []) if "loss" in e and "epoch" in e]
        if pts:
            logs[label] = pts
    if not logs:
        return None
    plt = _pyplot()
    families = list(dict.fromkeys(lab.split("(")[0] for lab in logs))
    fig, axes = plt.subplots(1, len(families), figsize=(4 * len(families), 3.5), dpi=110, squeeze=False)
    for ax, f in zip(axes[0], families):
        for lab, pts in logs.items():
            if lab.split("(")[0] == f:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", linewidth=1, label=lab)
        ax.set_title(f, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (nats / response token)")
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_anchor_bound(records: dict[tuple[int, str], dict[str, Any]], path: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-iteration bound of every Anchored Learning run: KL(p_t || q_t) against
    alpha * KL(p_t || p_sft) at each snapshot refresh (METHOD.md: the logit anchor guarantees
    the first <= the second), with the diagonal drawn.  Draws nothing when no run logged it.

    Args:
        records: (seed, label) -> the run's training record (its ``anchor_history``).

    Returns:
        one record per refresh: seed, label, outer_iteration, kl_snapshot_anchor,
        alpha_kl_snapshot_reference, holds.
    """
    recs = []
    for (seed, label), rec in records.items():
        for h in rec.get("anchor_history", []):
            lhs, rhs = h.get("kl_snapshot_anchor"), h.get("alpha_kl_snapshot_reference")
            if lhs is None or rhs is None:
                continue
            recs.append(
                {
                    "seed": seed,
                    "label": label,
                    "outer_iteration": int(h.get("outer_iteration", 0)),
                    "kl_snapshot_anchor": float(lhs),
                    "alpha_kl_snapshot_reference": float(rhs),
                    "holds": bool(lhs <= rhs * (1 + 1e-6) + 1e-9),
                }
            )
    if not recs:
        return recs
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    cmap = plt.get_cmap("tab10")
    for k, label in enumerate(dict.fromkeys(r["label"] for r in recs)):
        rs = [r for r in recs if r["label"] == label]
        ax.scatter(
            [r["alpha_kl_snapshot_reference"] for r in rs],
            [r["kl_snapshot_anchor"] for r in rs],
            color=cmap(k % 10),
            label=label,
            s=25,
        )
        for r in rs:
            ax.annotate(
                f"t={r['outer_iteration']}",
                (r["alpha_kl_snapshot_reference"], r["kl_snapshot_anchor"]),
                textcoords="offset points",
                xytext=(3, 3),
                fontsize=6,
            )
    top = max(max(r["alpha_kl_snapshot_reference"], r["kl_snapshot_anchor"]) for r in recs) * 1.05
    ax.plot([0, top], [0, top], color="black", linewidth=0.8, linestyle="--", label="bound: KL = alpha KL(p_t||p_sft)")
    ax.set_xlabel("alpha * KL(p_t || p_sft) (nats / token)")
    ax.set_ylabel("KL(p_t || q_t) (nats / token)")
    ax.set_title("per-iteration bound at each snapshot refresh (all seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return recs
