"""The selection and the report of ``anchored tune``: the validation Pareto set, SFT's own frontier
and the recommended model (chosen on the validation split), and ``tune.json`` / ``tune.md`` /
``frontier.png`` with their test-split statistics and the recommendation's verdict."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anchored_learning.experiment.tune_config import TuneConfig, sweep_entry, validation_heldout
from anchored_learning.experiment.tune_study import counted_trials, storage_url


def meets(cfg: TuneConfig, degradation: float) -> bool:
    """Whether a (validation) degradation meets the config's constraint (True without one)."""
    if cfg.max_degradation is not None:
        return degradation <= float(cfg.max_degradation)
    if cfg.min_retention is not None:
        return 100.0 - degradation >= float(cfg.min_retention)
    return True


def select(cfg: TuneConfig, points: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[str], str | None]:
    """``(pareto, sft_frontier, recommended)`` chosen on validation: the non-dominated labels, SFT's
    own non-dominated labels (the reference included), and the label with the highest validation
    gain among those meeting the constraint (the lower degradation on a tie; None when none does)."""
    from anchored_learning.tables import pareto_frontier

    def front(labels: list[str]) -> list[str]:
        return [labels[i] for i in pareto_frontier([(points[lab]["degradation"], points[lab]["gain"]) for lab in labels])]

    labels = list(points)
    ok = [lab for lab in labels if meets(cfg, points[lab]["degradation"])]
    rec = max(ok, key=lambda lab: (points[lab]["gain"], -points[lab]["degradation"])) if ok else None
    return front(labels), front([lab for lab in labels if points[lab]["method"] == "sft"]), rec


def _constraint_verdict(cfg: TuneConfig, est: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the recommended model's test degradation estimate ``est`` meets the constraint, and
    with confidence (its whole 95% interval)."""
    v, ci = est["value"], est["ci"] or [est["value"]] * 2
    if cfg.max_degradation is not None:
        limit, what = float(cfg.max_degradation), f"degradation <= {float(cfg.max_degradation):g}%"
        point, sure, edge = v <= limit, ci[1] <= limit, f"its interval reaches {ci[1]:.1f}%"
    elif cfg.min_retention is not None:
        limit, what = float(cfg.min_retention), f"retention >= {float(cfg.min_retention):g}%"
        point, sure, edge = 100 - v >= limit, 100 - ci[1] >= limit, f"its retention interval reaches down to {100 - ci[1]:.1f}%"
    else:
        return {"constraint": None, "met": None, "met_with_confidence": None, "text": "no constraint given"}
    if sure:
        text = f"meets {what} with confidence on the test split (95% interval [{ci[0]:.1f}, {ci[1]:.1f}]% degradation)"
    elif point:
        text = f"NOT met with confidence: the test estimate meets {what}, but {edge}"
    else:
        text = f"NOT met on the test split: degradation {v:.1f}% [{ci[0]:.1f}, {ci[1]:.1f}]"
    return {"constraint": what, "met": bool(point), "met_with_confidence": bool(sure), "text": text}


def tune_report(
    cfg: TuneConfig, study, points, selection, test_evals, split, log=print, wall_time_s: float | None = None
) -> dict[str, Any]:
    """Write ``tune.json``, ``tune.md`` and ``frontier.png`` into the output folder: every trial, the
    validation Pareto set, and the selected models' test-split frontier statistics (paired
    bootstrap intervals, degradation at SFT-matched gain) with the recommendation's verdict;
    ``wall_time_s``: this invocation's seconds so far (recorded)."""
    from optuna.trial import TrialState

    from anchored_learning.experiment.frontier import bootstrap_points, frontier_statistics
    from anchored_learning.io import write_json_atomic, write_text_atomic
    from anchored_learning.plots import plot_frontier

    out = Path(cfg.output_dir)
    pareto, sft_front, rec = selection
    labels = list(dict.fromkeys(["sft", *sft_front, *pareto, *([rec] if rec else [])]))
    families = {lab: points[lab]["method"] for lab in labels}
    order = list(dict.fromkeys(["sft", *families.values()]))
    labels.sort(key=lambda lab: (order.index(families[lab]), lab))
    evals = {int(cfg.seed): test_evals}
    heldout = validation_heldout(cfg)
    gain, deg = bootstrap_points(evals, labels, cfg.task, heldout, n_boot=int(cfg.n_boot), seed=0)
    stats = frontier_statistics(labels, gain, deg, families)
    member = None
    if cfg.objective_member:
        mg, md = bootstrap_points(evals, labels, cfg.task, [cfg.objective_member], n_boot=int(cfg.n_boot), seed=0)
        member = frontier_statistics(labels, mg, md, families)
    objective_stats = member or stats
    recommended = _recommendation(cfg, rec, points, objective_stats) if rec is not None else None
    counted = counted_trials(study.get_trials(deepcopy=False))
    objective = f"retention of {cfg.objective_member} (%)" if cfg.objective_member else "mean degradation (%)"
    result = {
        "task": cfg.task,
        "seed": cfg.seed,
        "objectives": ["target gain (points)", objective],
        "heldout": heldout,
        "objective_member": cfg.objective_member,
        "storage": storage_url(out),
        "dashboard": f"optuna-dashboard {storage_url(out)}",
        "n_trials": len(counted),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in counted),
        "budget": {"n_trials": cfg.n_trials, "timeout_s": cfg.timeout_s},
        "split": split,
        "validation": {lab: {k: points[lab][k] for k in ("gain", "degradation", "trials")} for lab in points},
        "pareto": pareto,
        "sft_frontier": sft_front,
        "recommended": recommended,
        "test": {"labels": labels, **stats},
        "test_objective_member": member,
        "trials": _trial_records(study),
        "wall_time_s": wall_time_s,
    }
    write_json_atomic(out / "tune.json", result)
    write_text_atomic(out / "tune.md", "\n".join(_markdown(cfg, result, points, objective_stats, objective)) + "\n")
    plot_frontier(objective_stats, out / "frontier.png", title=f"{cfg.task}: anchored tune's selection on the test split")
    return result


def _recommendation(cfg: TuneConfig, rec: str, points, objective_stats) -> dict[str, Any]:
    """The recommended model's entry of ``tune.json``: its sweep entry and model folder, its
    validation and test estimates, and the constraint's verdict on the test split."""
    p = next(q for q in objective_stats["points"] if q["label"] == rec)
    return {
        "label": rec,
        "sweep_entry": sweep_entry(rec, points[rec]["method"], points[rec]["overrides"]),
        "model": str(Path(cfg.output_dir) / "run" / "models" / ("reference" if rec == "sft" else rec) / "final")
        if points[rec]["method"] != "wise_ft"
        else None,
        "validation": {"gain": points[rec]["gain"], "degradation": points[rec]["degradation"]},
        "test": {"gain": p["gain"], "degradation": p["degradation"]},
        **_constraint_verdict(cfg, p["degradation"]),
    }


def _trial_records(study) -> list[dict[str, Any]]:
    """Every trial of the study as ``tune.json`` lists it."""
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "label": t.user_attrs.get("label"),
            "sweep_entry": t.user_attrs.get("sweep_entry"),
            "params": t.params,
            "values": t.values,
            "cheap": t.user_attrs.get("cheap"),
            "error": t.user_attrs.get("error"),
        }
        for t in study.get_trials(deepcopy=False)
    ]


def _markdown(cfg: TuneConfig, result: Mapping[str, Any], points, objective_stats, objective: str) -> list[str]:
    """The lines of ``tune.md``: the recommendation and the table of the selected models."""
    from anchored_learning.experiment.frontier_report import _fmt

    pareto, recommended = result["pareto"], result["recommended"]
    rec = recommended["label"] if recommended else None
    lines = [
        f"# anchored tune: {cfg.task}, seed {cfg.seed}",
        "",
        f"{result['n_trials']} trials ({result['n_pruned']} pruned on the cheap validation rung); objectives: target gain "
        f"(max) and {objective} ({'max' if cfg.objective_member else 'min'}) on the validation split. Selected on "
        "validation, reported on the test split (disjoint items: validation/split.json). Browse the study: "
        f"`{result['dashboard']}`.",
        "",
    ]
    if recommended:
        t = recommended["test"]
        lines += [
            f"**Recommended: {rec}** ({recommended['model'] or 'WiSE-FT of the base and the reference: `anchored run --sweep ' + str(recommended['sweep_entry']) + '`'}): "
            f"test gain {_fmt(t['gain'])} points, degradation {_fmt(t['degradation'])}%: {recommended['text']}.",
            "",
        ]
    elif cfg.max_degradation is not None or cfg.min_retention is not None:
        lines += ["**No trial met the constraint on the validation split**: no recommendation.", ""]
    lines += [
        "| run | validation gain | validation degr. | test gain (pts) | test degradation (%) | vs SFT at matched gain |",
        "|---|---|---|---|---|---|",
    ]
    for p in objective_stats["points"]:
        v = points[p["label"]]
        lines.append(
            f"| {p['label']}{' *' if p['label'] in pareto else ''}{' (recommended)' if p['label'] == rec else ''} | "
            f"{v['gain']:+.1f} | {v['degradation']:.1f} | {_fmt(p['gain'])} | {_fmt(p['degradation'])} | "
            f"{_fmt(p['degradation_at_matched_gain'])} |"
        )
    lines += [
        "",
        "`*`: on the validation Pareto set. Test intervals: 95%, paired bootstrap over items "
        f"({cfg.n_boot} resamples), as in `anchored frontier`. 'vs SFT at matched gain': degradation minus SFT's "
        "test frontier's (the reference and the SFT trials on SFT's validation frontier) at the same gain.",
    ]
    if not [lab for lab in result["sft_frontier"] if lab != "sft"]:
        lines += [
            "",
            "**No SFT trial is on SFT's validation frontier** (none was run, promoted, or better than the reference): "
            "'vs SFT at matched gain' compares with the reference model alone, not with tuned SFT. Give SFT more "
            "trials (--n_trials) before reading that column.",
        ]
    return lines
