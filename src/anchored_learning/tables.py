"""Results tables (markdown for the reports, plain text for a terminal) and the row computations
they show: the gain-vs-degradation Pareto front, means over seeds, short run labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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


def short_label(label: str) -> str:
    """A run's label with the long field names shortened for narrow output
    (``sft(learning_rate=1e-4,num_train_epochs=3)`` -> ``sft(lr=1e-4,ep=3)``)."""
    for long, short in (
        ("learning_rate=", "lr="),
        ("num_train_epochs=", "ep="),
        ("anchor_alpha=", "a="),
        ("outer_iterations=", "T="),
        ("inner_epochs=", "K="),
    ):
        label = label.replace(long, short)
    return label


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int = 80) -> str:
    """A plain-text table that fits in ``width`` columns: the first column (run labels,
    shortened with :func:`short_label`) is cut with an ellipsis when the others leave too little
    room; the other cells are never cut."""
    rows = [[short_label(r[0]), *r[1:]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    room = width - sum(widths[1:]) - 2 * (len(widths) - 1)
    widths[0] = max(8, min(widths[0], room))

    def cut(s: str) -> str:
        return s if len(s) <= widths[0] else s[: widths[0] - 1] + "…"

    lines = []
    for r in [header, *rows]:
        cells = [cut(str(r[0])).ljust(widths[0])] + [str(x).rjust(w) for x, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * min(width, sum(widths) + 2 * (len(widths) - 1)))
    return "\n".join(lines)


def summary_table(rows: Sequence[dict[str, Any]], width: int = 80) -> str:
    """The end-of-run summary for a terminal: each run's gain and mean degradation with their 95%
    intervals (one seed) or ± standard deviation (over seeds), in ``width`` columns."""

    def cell(r, key):
        v = r.get(key)
        if v is None:
            return "n/a"
        ci, sd = r.get(f"{key}_ci"), r.get(f"{key}_sd")
        if ci:
            return f"{v:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}]"
        return f"{v:+.1f}" + (f" ± {sd:.1f}" if sd is not None else "")

    return text_table(
        ["run", "gain (pts)", "degradation (%)"], [[r["label"], cell(r, "gain"), cell(r, "degradation")] for r in rows], width
    )
