"""Results tables and the gain-versus-degradation Pareto frontier (matplotlib)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anchored_learning.io import atomic_file


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points, sorted by degradation.

    A point ``(degradation, gain)`` is dominated when another has degradation <= and gain >= with
    at least one strict.  Lower degradation and higher gain are better.
    """
    idx = []
    for i, (d, g) in enumerate(points):
        dominated = any((d2 <= d and g2 >= g) and (d2 < d or g2 > g) for j, (d2, g2) in enumerate(points) if j != i)
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: (points[i][0], -points[i][1]))


def plot_pareto(rows: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Scatter of gain (points) against mean degradation (%) with the frontier drawn, each point labelled.

    Args:
        rows: dicts with ``label``, ``gain`` and ``degradation`` (and optional ``method``; optional
            ``gain_sd`` and ``degradation_sd``, drawn as error bars, e.g. over seeds).
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
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("mean degradation on held-out suite (%, lower is better)")
    ax.set_ylabel("target gain (points, higher is better)")
    ax.set_title(title or "gain vs. stability")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def markdown_table(rows: Sequence[dict[str, Any]], heldout: Sequence[str], train_time: bool = True) -> str:
    """Markdown table: method, target score, gain, each held-out score, mean degradation, and
    (``train_time``) training wall time; target and gain "n/a" in rows whose ``gain`` is None."""
    head = ["method", "target", "gain (pts) [95% CI]"] + list(heldout) + ["mean degradation % [95% CI]"]
    head += ["train time (s)"] if train_time else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        gci = r.get("gain_ci") or [float("nan")] * 2
        dci = r.get("degradation_ci") or [float("nan")] * 2
        if r.get("gain") is None:  # no target task measured
            cells = [r["label"], "n/a", "n/a"]
        else:
            cells = [r["label"], f"{r['target']:.3f}", f"{r['gain']:+.1f} [{gci[0]:+.1f}, {gci[1]:+.1f}]"]
        cells += [f"{r['heldout'].get(h, float('nan')):.3f}" for h in heldout]
        cells += [f"{r['degradation']:+.1f} [{dci[0]:+.1f}, {dci[1]:+.1f}]"]
        cells += [f"{r.get('train_time_s', 0.0):.0f}"] if train_time else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: row fields averaged over seeds by :func:`aggregate_seeds`
_SCALAR_FIELDS = ("target", "gain", "degradation", "drift_kl", "drift_kl_target", "train_time_s")


def aggregate_seeds(runs: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds, per row label.

    Args:
        runs: one list of result rows per seed (the ``rows`` of each run's ``results.json``).

    Returns:
        One row per label present in every run, in the first run's order, with the mean of each
        of ``target, gain, degradation, drift_kl, drift_kl_target, train_time_s`` and of each
        ``heldout`` score, plus ``<field>_sd`` (ddof=1; ``None`` for a single seed), ``n_seeds``
        and the mean of each ``target_secondary`` score.  ``None`` values (e.g. no drift measured)
        stay ``None``.

    Raises:
        ValueError: ``runs`` is empty.
    """
    import numpy as np

    if not runs:
        raise ValueError("aggregate_seeds needs at least one run")
    labels = [r["label"] for r in runs[0] if all(any(x["label"] == r["label"] for x in run) for run in runs[1:])]
    out = []
    for label in labels:
        rs = [next(x for x in run if x["label"] == label) for run in runs]
        row: dict[str, Any] = {"label": label, "method": rs[0].get("method", label), "n_seeds": len(rs)}

        def stats(vals):
            if any(v is None for v in vals):
                return None, None
            a = np.asarray(vals, dtype=float)
            return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else None)

        for f in _SCALAR_FIELDS:
            row[f], row[f + "_sd"] = stats([r.get(f) for r in rs])
        row["heldout"], row["heldout_sd"] = {}, {}
        for h in rs[0].get("heldout", {}):
            if all(h in r.get("heldout", {}) for r in rs):
                row["heldout"][h], row["heldout_sd"][h] = stats([r["heldout"][h] for r in rs])
        row["target_secondary"] = {  # e.g. MedCalc's lenient score, the mean over seeds
            k: stats([r["target_secondary"][k] for r in rs])[0]
            for k in rs[0].get("target_secondary", {})
            if all(k in r.get("target_secondary", {}) for r in rs)
        }
        out.append(row)
    return out


def markdown_table_seeds(rows: Sequence[dict[str, Any]], heldout: Sequence[str]) -> str:
    """Markdown table of :func:`aggregate_seeds` rows: mean +- standard deviation over seeds."""

    def ms(m, sd, fmt):
        if m is None:
            return "n/a"
        return fmt.format(m) + ("" if sd is None else " ± " + fmt.format(sd).lstrip("+"))

    head = ["method", "target", "gain (pts)"] + list(heldout) + ["mean degradation %", "drift KL held-out", "train time (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], ms(r["target"], r["target_sd"], "{:.3f}"), ms(r["gain"], r["gain_sd"], "{:+.1f}")]
        cells += [ms(r["heldout"].get(h), r["heldout_sd"].get(h), "{:.3f}") for h in heldout]
        cells += [
            ms(r["degradation"], r["degradation_sd"], "{:+.1f}"),
            ms(r["drift_kl"], r["drift_kl_sd"], "{:.3f}"),
            ms(r["train_time_s"], None, "{:.0f}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
