"""The regime map: where must plain SFT forget to gain?

Reads run folders made by ``anchored run`` / ``anchored frontier`` (one folder per regime: a recipe
and a training-set size; every SFT run of its grid, lr x epochs) and, per regime, tabulates every
plain-SFT run's gain on the target B, the drop of the prior skill A (relative to p0, %), the mean
degradation over the held-out suite and the drift KL(p0 || p); then the best gain SFT reaches there
and what it forgets at it, and the gentlest SFT run that reaches 90 % of that gain.

    python scripts/regime_map.py runs/regime/conflicting-n96 runs/regime/conflicting-n384 ... \
        -o results/regime-map

Writes ``regime_map.json``, ``regime_map.md`` and ``regime_map.png`` into ``-o``.  Every number comes
from the folders' ``results.json`` (seed folders: ``seed-*/results.json``); nothing is recomputed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: the share of SFT's best gain a gentler run must reach to count as "the same gain"
NEAR_BEST = 0.9


def _results(folder: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(seed, results.json)`` of a run folder or of each of its ``seed-*`` folders."""
    found = [(int(p.parent.name.split("-")[1]), p) for p in folder.glob("seed-*/results.json")]
    if not found and (folder / "results.json").exists():
        found = [(json.loads((folder / "config.json").read_text())["seed"], folder / "results.json")]
    if not found:
        raise SystemExit(f"{folder}: no results.json (run the regime's folder to the end first)")
    return [(s, json.loads(p.read_text())) for s, p in sorted(found)]


def _is_sft(label: str) -> bool:
    """Plain SFT: the reference row ``sft`` and the grid's ``sft(...)`` runs."""
    return label == "sft" or label.startswith("sft(")


def _sft_settings(label: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """lr and epochs of an SFT row (the reference's from the config)."""
    if label == "sft":
        return {"learning_rate": cfg["reference_learning_rate"], "epochs": cfg["reference_epochs"]}
    fields = dict(kv.split("=") for kv in label[len("sft(") : -1].split(","))
    return {
        "learning_rate": float(fields.get("learning_rate", cfg["learning_rate"])),
        "epochs": float(fields.get("num_train_epochs", cfg["baseline_epochs"])),
    }


def regime(folder: Path) -> dict[str, Any]:
    """One regime's SFT runs (seed means) and its summary."""
    per_seed = _results(folder)
    cfg = per_seed[0][1]["config"]
    prior = cfg.get("prior_task")
    runs: dict[str, dict[str, Any]] = {}
    for _, res in per_seed:
        for row in res["rows"]:
            if not _is_sft(row["label"]) and row["label"] != "anchored":
                continue
            r = runs.setdefault(row["label"], {"label": row["label"], "seeds": 0, "gain": 0.0, "degradation": 0.0})
            r["seeds"] += 1
            r["gain"] += row["gain"]
            r["degradation"] += row["degradation"]
            r["prior_drop"] = r.get("prior_drop", 0.0) + (
                row["degradation_per_benchmark"].get(prior, float("nan")) if prior else float("nan")
            )
            r["drift_kl"] = r.get("drift_kl", 0.0) + (row["drift_kl"] if row["drift_kl"] is not None else float("nan"))
    n = len(per_seed)
    rows = []
    for r in runs.values():
        if r["seeds"] != n:
            continue  # not in every seed
        for k in ("gain", "degradation", "prior_drop", "drift_kl"):
            r[k] /= n
        r.update(
            _sft_settings(r["label"], cfg) if _is_sft(r["label"]) else {"learning_rate": cfg["learning_rate"], "epochs": None}
        )
        rows.append(r)
    sft = [r for r in rows if _is_sft(r["label"])]
    best = max(sft, key=lambda r: r["gain"])
    near = [r for r in sft if r["gain"] >= NEAR_BEST * best["gain"]]
    gentlest = min(near, key=lambda r: r["prior_drop"] if prior else r["degradation"])
    return {
        "folder": str(folder),
        "task": cfg["task"],
        "prior_task": prior,
        "n_train": cfg["n_train"],
        "seeds": [s for s, _ in per_seed],
        "runs": sorted(rows, key=lambda r: (r["label"] == "anchored", r["learning_rate"], r["epochs"] or 0)),
        "best_gain": best,
        "gentlest_near_best": gentlest,
        "wall_time_s": sum(res.get("wall_time_s", 0.0) for _, res in per_seed),
        "machine": per_seed[0][1].get("machine"),
    }


def _markdown(regimes: list[dict[str, Any]]) -> str:
    lines = [
        "# Regime map: where must plain SFT forget to gain?",
        "",
        "Per regime (target, prior skill, training-set size): every SFT run (lr x epochs) and the anchored run of "
        "the folder; gain on the target (points), the prior skill's drop and the mean held-out degradation (% "
        "relative to p0), drift KL(p0 || p) (nats/token). Means over the seeds listed.",
        "",
        "| regime | n_train | seeds | SFT best gain (run) | prior drop there | drift there | "
        f"gentlest SFT at >= {NEAR_BEST:.0%} of it | its prior drop | its drift |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in regimes:
        b, s = g["best_gain"], g["gentlest_near_best"]
        lines.append(
            f"| {g['prior_task'] or '-'} -> {g['task']} | {g['n_train']} | {len(g['seeds'])} | {b['gain']:+.1f} ({b['label']}) | "
            f"{b['prior_drop']:+.1f} | {b['drift_kl']:.3f} | {s['gain']:+.1f} ({s['label']}) | {s['prior_drop']:+.1f} | "
            f"{s['drift_kl']:.3f} |"
        )
    for g in regimes:
        lines += [
            "",
            f"## {g['prior_task'] or '-'} -> {g['task']}, n_train {g['n_train']} ({g['folder']})",
            "",
            "| run | lr | epochs | gain (pts) | prior drop (%) | degradation (%) | drift KL |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in g["runs"]:
            lines.append(
                f"| {r['label']} | {r['learning_rate']:g} | {r['epochs'] if r['epochs'] is not None else 'T x K'} | "
                f"{r['gain']:+.1f} | {r['prior_drop']:+.1f} | {r['degradation']:+.1f} | {r['drift_kl']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def _plot(regimes: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(regimes), figsize=(4.2 * len(regimes), 3.8), squeeze=False)
    for ax, g in zip(axes[0], regimes):
        for r in g["runs"]:
            anchored = r["label"] == "anchored"
            y = r["prior_drop"] if g["prior_task"] else r["degradation"]
            ax.scatter(r["gain"], y, marker="*" if anchored else "o", s=90 if anchored else 30, color="C3" if anchored else "C0")
            ax.annotate("anch" if anchored else f"{r['learning_rate']:.0e}x{r['epochs']:g}", (r["gain"], y), fontsize=6)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel(f"gain on {g['task']} (points)")
        ax.set_ylabel(f"drop of {g['prior_task']} (%)" if g["prior_task"] else "degradation (%)")
        ax.set_title(f"{g['prior_task'] or '-'} -> {g['task']}, n={g['n_train']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from anchored_learning.io import write_json_atomic, write_text_atomic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, default=Path("results/regime-map"))
    a = ap.parse_args(argv)
    regimes = [regime(f) for f in a.folders]
    a.output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(a.output / "regime_map.json", {"regimes": regimes, "near_best": NEAR_BEST})
    write_text_atomic(a.output / "regime_map.md", _markdown(regimes))
    _plot(regimes, a.output / "regime_map.png")
    print(_markdown(regimes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
