"""The frontier study's report: ``frontier.md`` / ``frontier.json`` / figures of a multi-seed run
folder (``anchored frontier``), from the statistics of :mod:`anchored_learning.experiment.frontier`:
the verdict, the per-run table, the hypervolumes, and the prior-skill and drift views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from anchored_learning.evaluation.metrics import degradation_members, left_out_note
from anchored_learning.experiment.frontier import (
    HEADLINE,
    REFERENCE_FAMILY,
    bootstrap_points,
    frontier_statistics,
    load_frontier_evals,
    method_of,
)
from anchored_learning.experiment.plan import NOT_RUNS, training_record
from anchored_learning.io import read_json, write_json_atomic, write_text_atomic


def format_number(fmt: str, x: float) -> str:
    """``fmt.format(x)``, with a value that rounds to zero written without a minus sign."""
    s = fmt.format(x)
    return fmt.format(0.0) if float(s) == 0 else s


def _fmt(est: Mapping[str, Any] | None, fmt: str = "{:+.1f}") -> str:
    """An estimate as ``value [low, high]``, with the share of resamples in which it was defined
    when that is not all of them (the interval is over those)."""
    if est is None:
        return ""
    if est["value"] is None:
        return "beyond SFT's range"
    ci = est["ci"]
    s = format_number(fmt, est["value"]) + (f" [{format_number(fmt, ci[0])}, {format_number(fmt, ci[1])}]" if ci else "")
    return s + (f" (defined in {100 * est['defined']:.0f}% of resamples)" if est["defined"] < 0.995 else "")


def _run_cell(point: Mapping[str, Any]) -> str:
    """A point's label with ``*`` when on the overall frontier and ``+`` when on its family's."""
    return f"{point['label']} " + ("*" if point["on_frontier"] else "") + ("+" if point["on_family_frontier"] else "")


def _better_or_not(vs: Mapping[str, Any]) -> str:
    """Whether the paired differences to SFT's highest-gain run exclude 0 in anchored's favour."""
    (glo, _), (_, dhi) = vs["gain_difference"]["ci"], vs["degradation_difference"]["ci"]
    if glo > 0 and dhi < 0:
        return "better on both"
    if glo > 0 or dhi < 0:
        return "better on " + ("gain" if glo > 0 else "degradation") + ", the other interval holds 0"
    return "both intervals hold 0: not distinguishable from that run"


def _verdict(
    stats: Mapping[str, Any],
    target_label: str,
    quantity: str = "degradation",
    unit: str = "percentage points",
    lower: str = "less forgetting",
    fmt: str = "{:+.1f}",
    more: str = "forgets {} percentage points more",
) -> str:
    """One sentence on the headline run (the preset's anchored settings) against SFT's frontier
    (``quantity`` in ``unit``; ``lower``: what a negative difference means; ``more``: the paired
    difference to SFT's highest-gain run)."""
    head = next((p for p in stats["points"] if p["label"] == HEADLINE), None)
    if head is None:
        return f"{target_label}: the preset's anchored run has not finished yet."
    d = head["degradation_at_matched_gain"]
    g = head["gain_at_matched_degradation"]

    def sign(est, better_below: bool) -> str:
        lo, hi = est["ci"] or (float("nan"),) * 2
        if (hi < 0) if better_below else (lo > 0):
            return "better than tuned SFT"
        if (lo > 0) if better_below else (hi < 0):
            return "worse than tuned SFT"
        return "not distinguishable from tuned SFT (the interval holds 0)"

    if d["value"] is None:
        tail = "" if g["value"] is None else f"; its gain at SFT-matched {quantity} is {_fmt(g)} points: {sign(g, False)}"
        vs = head.get("vs_highest_gain_reference")
        if g["value"] is None and vs is not None:  # beyond SFT's range both ways: the paired difference to SFT's best gain
            tail = (
                f"; against SFT's highest-gain run {vs['label']} it gains {_fmt(vs['gain_difference'])} points more and "
                f"{more.format(_fmt(vs['degradation_difference'], fmt))} (paired; {_better_or_not(vs)})"
            )
        return f"{target_label}: anchored gains {head['gain']['value']:+.1f} points, above every SFT run's point estimate{tail}."
    return (
        f"{target_label}: anchored's {quantity} at SFT-matched gain differs from SFT's frontier by {_fmt(d, fmt)} "
        f"{unit} (negative = {lower}): {sign(d, True)}."
    )


def _drift_view(
    evals: Mapping[int, Mapping[str, Mapping[str, Any]]], families: Mapping[str, str], target: str, n_boot: int, boot_seed: int
) -> dict[str, Any] | None:
    """The frontier statistics with the held-out drift KL(p0 || p) (nats per token) as the
    degradation axis, its verdict and the prompts per seed; None when some seed's base evaluation
    has no ``drift`` suite."""
    if not all("drift" in ev["base"]["results"] for ev in evals.values()):
        return None
    labels = list(families)
    gain, kl = bootstrap_points(evals, labels, target, ["drift"], n_boot=n_boot, seed=boot_seed, relative=False)
    stats = frontier_statistics(labels, gain, kl, families)
    verdict = _verdict(stats, target, "drift KL", "nats per token", "a smaller step", "{:+.3f}", "drifts {} nats per token more")
    n_items = len(next(iter(evals.values()))["base"]["results"]["drift"]["items"])
    return {"verdict": verdict, "n_items": n_items, **stats}


def _prior_view(
    evals: Mapping[int, Mapping[str, Mapping[str, Any]]],
    families: Mapping[str, str],
    target: str,
    prior: str | None,
    n_boot: int,
    boot_seed: int,
) -> dict[str, Any] | None:
    """The frontier statistics with the prior skill's relative drop (%) alone as the degradation
    axis (sequential fine-tuning: the skill learned before the target), its verdict and items per
    seed; None without a prior skill in every seed's base evaluation."""
    if not prior or not all(prior in ev["base"]["results"] for ev in evals.values()):
        return None
    labels = list(families)
    gain, drop = bootstrap_points(evals, labels, target, [prior], n_boot=n_boot, seed=boot_seed)
    stats = frontier_statistics(labels, gain, drop, families)
    verdict = _verdict(stats, target, f"loss of the prior skill {prior}", more="loses {} percentage points more of it")
    n_items = len(next(iter(evals.values()))["base"]["results"][prior]["items"])
    return {"verdict": verdict, "prior_task": prior, "n_items": n_items, **stats}


def _view_lines(title: str, view: Mapping[str, Any], text: str, unit: str, fmt: str) -> list[str]:
    """A markdown section of one view (drift, prior skill): verdict, explanation, one row per run."""
    lines = ["", f"## {title}", "", view["verdict"], "", text, "", f"| run | gain (pts) | {unit} | vs SFT at matched gain |"]
    lines.append("|---|---|---|---|")
    sign = fmt.replace("{:", "{:+")
    for p in view["points"]:
        lines.append(
            f"| {_run_cell(p)} | {_fmt(p['gain'])} | {_fmt(p['degradation'], fmt)} | "
            f"{_fmt(p['degradation_at_matched_gain'], sign)} |"
        )
    return lines


def _load_study(folder: Path, seeds: Sequence[int] | None, task: str | None):
    """``(evals, seeds, config, target, families, incomplete)`` of a run folder: ``families`` maps
    the runs finished in every seed to their method, SFT's first, then anchored's, then every
    other family's (by label within each).

    Raises:
        ValueError: not a run folder, no target task, another target than ``task``, or an
            evaluation that does not record its method.
    """
    evals = load_frontier_evals(folder, seeds)
    seeds = sorted(evals)
    cfg_path = next((p for p in (folder / f"seed-{seeds[0]}" / "config.json", folder / "config.json") if p.exists()), None)
    if cfg_path is None:
        raise ValueError(f"{folder} has no config.json: not a run folder")
    cfg = read_json(cfg_path)
    target = cfg.get("task")
    if not target:
        raise ValueError(f"{folder}: the run has no target task, so no gain to put on a frontier")
    if task is not None and task != target:
        raise ValueError(f"{folder} holds a {target!r} study, not {task!r}: drop --task or give that study's folder with -o")
    first = evals[seeds[0]]
    runs = [lab for lab in first if lab not in NOT_RUNS]
    families = {lab: method_of(first[lab], f"{folder}: seed {seeds[0]}'s evaluation of {lab}") for lab in runs}
    order = list(dict.fromkeys([REFERENCE_FAMILY, HEADLINE, *sorted(families.values())]))
    labels = sorted(
        (lab for lab in runs if all(lab in evals[s] for s in seeds)), key=lambda lab: (order.index(families[lab]), lab)
    )
    incomplete = sorted({lab for s in seeds for lab in evals[s] if lab not in NOT_RUNS and lab not in labels})
    return evals, seeds, cfg, target, {lab: families[lab] for lab in labels}, incomplete


def _frontier_markdown(result: dict[str, Any]) -> list[str]:
    """The lines of ``frontier.md`` from the ``frontier.json`` content."""
    label, stats, heldout, left_out = result["task"], result, result["heldout"], result["left_out"]
    prior, drift, n_boot = result["prior_view"], result["drift_view"], result["n_boot"]
    lines = [
        f"# Frontier: {label}, seeds {result['seeds']}",
        "",
        result["verdict"],
        "",
        f"Gain: points on {label} ({result['n_items'][label]} items per seed). Degradation: mean relative drop (%) "
        f"on {', '.join(heldout)}. Means over seeds; 95% intervals from a paired bootstrap over seeds and items "
        f"({n_boot} resamples). 'vs SFT at matched gain': the run's degradation minus SFT's frontier's at the same "
        "gain (negative = forgets less); 'vs SFT at matched degradation': the run's gain minus SFT's at the same "
        "degradation (positive = gains more); 'beyond SFT's range': the run's gain (degradation) lies outside "
        "SFT's, so there is no SFT point to match; '(defined in N% of resamples)': the share of bootstrap "
        "resamples in which the match existed, the interval is over those. `*` on the overall frontier, `+` on "
        "its family's." + (f" {left_out_note(left_out)}" if left_out else ""),
        "",
        "| run | gain (pts) | degradation (%) | vs SFT at matched gain | vs SFT at matched degradation |",
        "|---|---|---|---|---|",
    ]
    for p in stats["points"]:
        lines.append(
            f"| {_run_cell(p)} | {_fmt(p['gain'])} | {_fmt(p['degradation'])} | "
            f"{_fmt(p['degradation_at_matched_gain'])} | {_fmt(p['gain_at_matched_degradation'])} |"
        )
    lines += [
        "",
        f"Hypervolume (points x %, above gain 0 and left of degradation {stats['ref_degradation']:.1f}%):",
        "",
        "| family | runs | frontier runs | hypervolume | minus SFT's |",
        "|---|---|---|---|---|",
    ]
    for f, v in stats["families"].items():
        lines.append(
            f"| {f} | {len(v['labels'])} | {', '.join(v['frontier']) or '(base only)'} | "
            f"{_fmt(v['hypervolume'], '{:.0f}')} | {_fmt(v['hypervolume_minus_reference'], '{:+.0f}')} |"
        )
    if prior is not None:
        lines += _view_lines(
            "Prior skill view",
            prior,
            f"The same runs and resamples with the degradation replaced by the relative drop (%) of the prior skill "
            f"`{prior['prior_task']}` alone ({prior['n_items']} items per seed), the skill the base model p0 learned "
            "before the target (sequential fine-tuning).",
            "prior skill drop (%)",
            "{:.1f}",
        )
    if drift is not None:
        lines += _view_lines(
            "Drift view",
            drift,
            "The same runs and resamples with the degradation replaced by the held-out drift KL(p0 || p) (nats per "
            f"token, {drift['n_items']} prompt/response pairs per seed, the `drift` suite): how far each model moved "
            "in distribution space, the quantity Anchored Learning bounds at every outer iteration.",
            "drift KL (nats/token)",
            "{:.3f}",
        )
    if result["incomplete"]:
        lines += ["", f"Not in every seed yet (left out): {', '.join(result['incomplete'])}."]
    return lines


def _frontier_plots(folder: Path, result: dict[str, Any], families: Mapping[str, str]) -> dict[str, Any]:
    """``frontier.png``, ``training_curves.png`` and ``anchor_bound.png``; returns the anchor bound's summary."""
    from anchored_learning.plots import plot_anchor_bound, plot_frontier, plot_training_curves  # matplotlib

    label, seeds = result["task"], result["seeds"]
    plot_frontier(result, folder / "frontier.png", title=f"{label}: gain vs. degradation, seeds {seeds}")
    runs = {s: folder / f"seed-{s}" if (folder / f"seed-{s}").is_dir() else folder for s in seeds}
    plot_training_curves(
        {lab: r for lab in families if (r := training_record(runs[seeds[0]], lab)) is not None},
        folder / "training_curves.png",
        title=f"{label}: training loss, seed {seeds[0]}",
    )
    records = {
        (s, lab): r
        for s in seeds
        for lab, family in families.items()
        if family == HEADLINE and (r := training_record(runs[s], lab)) is not None
    }
    return plot_anchor_bound(records, folder / "anchor_bound.png")


def write_frontier_report(
    folder: str | Path, seeds: Sequence[int] | None = None, n_boot: int = 2000, boot_seed: int = 0, task: str | None = None
) -> dict[str, Any]:
    """Analyse a multi-seed run folder (``anchored frontier`` / ``anchored run --seeds``) and write
    ``frontier.json``, ``frontier.md``, ``frontier.png``, ``training_curves.png`` and
    ``anchor_bound.png`` into it.

    Runs finished in only some of the analysed seeds are listed as incomplete and left out.

    Returns:
        the ``frontier.json`` content.

    Args:
        task: the target task the caller expects (None: whichever the folder's runs have).

    Raises:
        ValueError: no finished base evaluation, no target task, another target task than ``task``,
            or no SFT run in every seed.
    """
    folder = Path(folder)
    evals, seeds, cfg, target, families, incomplete = _load_study(folder, seeds, task)
    labels = list(families)
    heldout, left_out = degradation_members(
        [evals[s]["base"] for s in seeds], [evals[s][lab] for s in seeds for lab in labels], targets=[target]
    )
    heldout = [h for h in cfg["heldout"] if h in heldout]
    left_out = {h: why for h, why in left_out.items() if h in cfg["heldout"]}
    gain, deg = bootstrap_points(evals, labels, target, heldout, n_boot=n_boot, seed=boot_seed)
    stats = frontier_statistics(labels, gain, deg, families)
    result = {
        "task": target,
        "seeds": seeds,
        "heldout": heldout,
        "n_items": {k: len(evals[seeds[0]]["base"]["results"][k]["items"]) for k in [target, *heldout]},
        "n_boot": n_boot,
        "bootstrap_seed": boot_seed,
        "verdict": _verdict(stats, target),
        "incomplete": incomplete,
        "left_out": left_out,
        **stats,
        "drift_view": _drift_view(evals, families, target, n_boot, boot_seed),
        "prior_view": _prior_view(evals, families, target, cfg.get("prior_task"), n_boot, boot_seed),
    }
    write_text_atomic(folder / "frontier.md", "\n".join(_frontier_markdown(result)) + "\n")
    result["anchor_bound"] = _frontier_plots(folder, result, families)
    write_json_atomic(folder / "frontier.json", result)
    return result
