"""The report of an experiment: gain / degradation rows, the results table, the Pareto plot."""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path
from typing import Any

import torch

from anchored_learning.evaluation.metrics import compare, degradation_members, left_out_note
from anchored_learning.experiment.experiment_config import ExperimentConfig
from anchored_learning.experiment.plan import NOT_RUNS, training_record
from anchored_learning.io import write_json_atomic, write_text_atomic
from anchored_learning.plots import plot_pareto
from anchored_learning.tables import aggregate_seeds, markdown_table, markdown_table_seeds


def _num(x) -> str:
    """A KL in nats for the table: 4 decimals (the JSON keeps every digit)."""
    return "not measured" if x is None else f"{x:.4f}"


def task_label(cfg, task=None) -> str | None:
    """How reports name the target: the task name, or for your own task ``<test file> (<rule>)``."""
    return getattr(task, "label", None) or cfg.task


def _secondary(result: dict[str, Any]) -> dict[str, float]:
    """A target's other scores next to its primary one (MedCalc: ``lenient``), from ``metrics``."""
    return {k: v for k, v in result.get("metrics", {}).items() if k not in ("score", "max_new_tokens")}


def write_report(
    cfg,
    out: Path,
    evals: dict[str, dict[str, Any]],
    wall_time: float,
    task=None,
    extra: dict[str, Any] | None = None,
    members: list[str] | None = None,
    log=print,
) -> dict[str, Any]:
    """Compare every model with the base model and write ``results.md``, ``pareto.png`` and
    ``results.json`` into ``out``.

    Args:
        cfg: the resolved experiment (or compare) config; without a target task (``cfg.task``
            None) no gain is measured and no Pareto plot is drawn.
        evals: label -> :func:`~anchored_learning.evaluation.suites.evaluate` output, ``"base"`` first.
        wall_time: seconds spent over all invocations of the run.
        task: the target task object (names the target in the report).
        extra: more top-level entries for ``results.json`` (``anchored compare``: the models loaded).
        members: the held-out suites every row's mean degradation averages over (default: this
            report's :func:`~anchored_learning.evaluation.metrics.degradation_members`; over several
            seeds, those of every seed); a suite left out is named in ``results.md``,
            ``results.json`` (``left_out``) and a warning through ``log``.

    Returns:
        the ``results.json`` content: config, one row per model (target score, gain in points with
        its paired-bootstrap 95% CI, held-out scores, mean degradation in % with its CI, drift KL,
        train time), the suites averaged (``degradation_members``) and left out, wall time and machine.
    """
    c = cfg
    base = evals["base"]
    targets = [c.task] if c.task else []
    all_members, left_out = degradation_members([base], list(evals.values()), targets)
    if members is not None:
        left_out.update({k: "left out in another seed" for k in all_members if k not in members})
    members = all_members if members is None else [k for k in all_members if k in members]
    if left_out:
        log(f"[warning] {left_out_note(left_out)}")
    rows = [_report_row(c, out, name, ev, base, targets, members) for name, ev in evals.items()]
    heldout = [h for h in c.heldout if all(h in r["heldout"] for r in rows)]
    table = markdown_table(rows, heldout, train_time=any(r["train_time_s"] for r in rows))  # none: models trained elsewhere
    extra_cols = "\n".join(
        f"- {r['label']}: drift KL(p0||p) held-out {_num(r['drift_kl'])}"
        + (f", on target prompts {_num(r['drift_kl_target'])}" if r["drift_kl_target"] is not None else "")
        for r in rows
    )
    secondary = "\n".join(
        f"- {r['label']}: target {', '.join(f'{k} {v:.3f}' for k, v in r['target_secondary'].items())}"
        for r in rows
        if r["target_secondary"]
    )
    if secondary:  # e.g. MedCalc: the table's target column is MedCalc-Bench's own score, "lenient" is ours
        extra_cols += "\n" + secondary
    label = task_label(c, task)
    n_target = base["results"][c.task]["n"] if c.task else 0
    target_line = (
        f"Target: {label}, {n_target} test items"
        + (f" from {task.test_source}" if hasattr(task, "test_source") else "")
        + "; gain in points with a paired-bootstrap 95% CI.\n\n"
        if c.task
        else "No target task (give --task or --test_data to measure a gain); degradation only.\n\n"
    ) + (f"{left_out_note(left_out)}\n\n" if left_out else "")
    result = {
        "config": dataclasses.asdict(c),
        "target": {"task": c.task, "label": label, "n": n_target, "source": getattr(task, "test_source", None)},
        "rows": rows,
        "degradation_members": members,
        "left_out": left_out,
        "wall_time_s": wall_time,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "cuda": torch.cuda.is_available(),
        },
        **(extra or {}),
    }
    title = f"{label}: gain vs. degradation ({c.preset} preset, seed {c.seed})"
    return _write(out, target_line + table + "\n" + extra_cols + "\n", rows, title, result)


def _report_row(c, out: Path, name: str, ev: dict[str, Any], base: dict[str, Any], targets, members) -> dict[str, Any]:
    """One model's row of the report: its target score and gain against ``base`` (paired-bootstrap
    CI), held-out scores, mean degradation over ``members`` (CI), drift KL and training time."""
    cmp = compare(base, ev, targets=targets, members=members, seed=c.seed)
    method = name.split("(")[0]
    g = cmp["gain"].get(c.task, {"points": 0.0, "ci": [0.0, 0.0]}) if c.task else {"points": None, "ci": None}
    md = cmp.get("mean_degradation", {"percent": 0.0, "ci": [0.0, 0.0]})
    res = ev["results"]
    train_time = (training_record(out, name) or {}).get("train_time_s", 0.0)
    return {
        "label": name,
        "method": method,
        "target": res[c.task]["primary"] if c.task else None,
        "target_secondary": _secondary(res[c.task]) if c.task else {},
        "gain": g["points"],
        "gain_ci": g["ci"],
        "heldout": {h: res[h]["primary"] for h in c.heldout if "primary" in res.get(h, {})},
        "drift_kl": res.get("drift", {}).get("primary"),
        "drift_kl_target": res.get(f"drift:{c.task}", {}).get("primary"),
        "degradation": md["percent"],
        "degradation_ci": md["ci"],
        "degradation_per_benchmark": {k: v["percent"] for k, v in cmp["degradation"].items()},
        "train_time_s": train_time,
    }


def _write(out: Path, markdown: str, rows: list[dict[str, Any]], title: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``results.md``, ``pareto.png`` (every run: not the base model, nor the pretrained model
    before a prior skill) and ``results.json``."""
    write_text_atomic(out / "results.md", markdown)
    if all(r["gain"] is not None for r in rows):  # no target, no gain axis
        plot_pareto([r for r in rows if r["label"] not in NOT_RUNS], out / "pareto.png", title=title)
    write_json_atomic(out / "results.json", result)
    return result


def write_seeds_report(cfg: ExperimentConfig, out: Path, seeds: list[int], per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Aggregate the per-seed results of :func:`~anchored_learning.experiment.stages.run_seeds`:
    ``results.md`` (mean ± sd table), ``pareto.png`` (means with ±1 sd error bars) and
    ``results.json`` (per-seed rows and mean/sd rows) in ``out``.

    Returns:
        the ``results.json`` content.

    Raises:
        ValueError: the seeds' reports average their mean degradations over other suites
            (:func:`~anchored_learning.experiment.stages.run_seeds` makes them agree first).
    """
    rows = aggregate_seeds([r["rows"] for r in per_seed.values()])
    heldout = [h for h in cfg.heldout if all(h in r["heldout"] for r in rows)]
    first = next(iter(per_seed.values()))
    members = first["degradation_members"]
    if any(r["degradation_members"] != members for r in per_seed.values()):
        raise ValueError(
            f"the seeds' mean degradations average other suites: {[r['degradation_members'] for r in per_seed.values()]}"
        )
    left_out = {k: why for r in per_seed.values() for k, why in r["left_out"].items()}
    res = {
        "config": dataclasses.asdict(cfg),
        "target": first.get("target"),
        "seeds": seeds,
        "rows": rows,
        "degradation_members": members,
        "left_out": left_out,
        "per_seed": {str(s): r["rows"] for s, r in per_seed.items()},
        "per_seed_wall_time_s": {str(s): r["wall_time_s"] for s, r in per_seed.items()},
        "wall_time_s": sum(r["wall_time_s"] for r in per_seed.values()),  # each seed's total over invocations
        "machine": next(iter(per_seed.values()))["machine"],
    }
    markdown = markdown_table_seeds(rows, heldout) + f"\nmean ± sd over seeds {seeds}; per-seed tables in seed-*/results.md\n"
    markdown += f"\n{left_out_note(left_out)}\n" if left_out else ""
    title = f"{first.get('target', {}).get('label') or cfg.task}: gain vs. degradation ({cfg.preset} preset, mean ± sd over {len(seeds)} seeds)"
    return _write(out, markdown, rows, title, res)
