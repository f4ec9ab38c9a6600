"""Does ``anchored tune`` find what a hand-written frontier grid found?  The tune's test-split points
against a committed frontier folder's runs, on the same items.

    python scripts/tune_vs_frontier.py runs/tune-conflicting results/sequential-conflicting/seed-0 \
        --member date_iso -o results/sequential-conflicting-tune

Both folders must hold one seed's evaluations of the same base model on the same test items (the tune's
``run/evals`` are the items ``anchored run`` scores for that seed; this is checked item by item).  The
runs of the two become two families, ``hand`` (every run of the grid, whatever its method) and ``tune``
(the runs the tune evaluated on the test split: its validation Pareto set, SFT's validation frontier and
its recommendation), and :func:`~anchored_learning.experiment.frontier.frontier_statistics` compares
them with ``hand`` as the reference: each tune run's degradation at hand-matched gain, each family's
hypervolume and their difference, with paired bootstrap 95% intervals over items.  Degradation is the
relative drop of ``--member`` alone (e.g. the prior skill) or, without it, the mean over the suite.  For
every run on the hand grid's Pareto front it says whether a tune run weakly dominates it (at least its
gain and at most its degradation, full-sample estimates).

Writes ``tune_vs_frontier.json``, ``tune_vs_frontier.md`` and ``tune_vs_frontier.png`` into ``-o``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from anchored_learning.experiment.frontier import bootstrap_points, frontier_statistics, load_frontier_evals
from anchored_learning.experiment.plan import NOT_RUNS
from anchored_learning.io import read_json, write_json_atomic
from anchored_learning.plots import plot_frontier


def compare(tune_dir: Path, hand_dir: Path, member: str | None, n_boot: int = 2000) -> dict[str, Any]:
    """The comparison (module docstring) as a dict.

    Raises:
        SystemExit: folders of other seeds, targets or items.
    """
    if not (tune_dir / "tune.json").is_file():
        raise SystemExit(f"{tune_dir} holds no tune.json: the first argument is the output folder of a finished anchored tune")
    if not (hand_dir / "config.json").is_file():
        raise SystemExit(
            f"{hand_dir} holds no config.json: the second argument is one seed's run folder (a multi-seed study's seed-N/)"
        )
    tune_cfg = read_json(tune_dir / "config.json")
    seed, target = int(tune_cfg["seed"]), tune_cfg["task"]
    if member is not None and member not in tune_cfg["heldout"]:
        raise SystemExit(f"--member {member!r} is not a held-out member of the tune; its members: {tune_cfg['heldout']}")
    hand_cfg = read_json(hand_dir / "config.json")
    if (int(hand_cfg.get("seed", 0)), hand_cfg["task"]) != (seed, target):
        raise SystemExit(
            f"{hand_dir} is seed {hand_cfg.get('seed')} of {hand_cfg['task']!r}; the tune is seed {seed} of {target!r}"
        )
    hand, tune = load_frontier_evals(hand_dir, [seed])[seed], load_frontier_evals(tune_dir / "run", [seed])[seed]
    heldout = [member] if member else list(tune_cfg["heldout"])
    for suite in [target, *heldout]:
        if hand["base"]["results"][suite]["uids"] != tune["base"]["results"][suite]["uids"]:
            raise SystemExit(f"{suite!r}: the two folders' base evaluations are not on the same items")
    search = read_json(tune_dir / "tune.json")
    tuned = [lab for lab in tune if lab not in NOT_RUNS]
    merged = {"base": hand["base"]}
    families: dict[str, str] = {}
    for prefix, evals, labels in (("hand", hand, [lab for lab in hand if lab not in NOT_RUNS]), ("tune", tune, tuned)):
        for lab in labels:
            merged[f"{prefix}:{lab}"] = evals[lab]
            families[f"{prefix}:{lab}"] = prefix
    labels = list(families)
    gain, deg = bootstrap_points({seed: merged}, labels, target, heldout, n_boot=n_boot)
    stats = frontier_statistics(labels, gain, deg, families, reference_family="hand")
    est = {p["label"]: (p["gain"]["value"], p["degradation"]["value"]) for p in stats["points"]}
    dominated = {}
    for lab in stats["families"]["hand"]["frontier"]:
        g, d = est[lab]
        by = [t for t in stats["families"]["tune"]["labels"] if est[t][0] >= g and est[t][1] <= d]
        dominated[lab] = by
    return {
        "tune": str(tune_dir),
        "hand": str(hand_dir),
        "seed": seed,
        "target": target,
        "degradation_of": heldout,
        "tune_trials": search["n_trials"],
        "tune_wall_time_s": search.get("wall_time_s"),  # absent in a tune.json made before it was recorded
        "hand_front_weakly_dominated_by_tune": dominated,
        "stats": stats,
    }


def markdown(res: dict[str, Any]) -> str:
    def fmt(e):
        if e is None or e["value"] is None:
            return "n/a"
        ci = e["ci"]
        return f"{e['value']:+.1f}" + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")

    s, members = res["stats"], res["degradation_of"]
    of = f"relative drop of {members[0]}" if len(members) == 1 else "mean relative drop over " + ", ".join(members)
    lines = [
        f"# anchored tune vs. the hand-written grid ({res['target']}, seed {res['seed']})",
        "",
        f"Tune: `{res['tune']}`; grid: `{res['hand']}`. Degradation: {of} (%). 95% paired bootstrap intervals over items.",
        "",
        "| family | runs | Pareto front | hypervolume | minus the grid's |",
        "|---|---|---|---|---|",
    ]
    for f, v in s["families"].items():
        lines.append(
            f"| {f} | {len(v['labels'])} | {', '.join(x.split(':', 1)[1] for x in v['frontier'])} | "
            f"{fmt(v['hypervolume'])} | {fmt(v['hypervolume_minus_reference'])} |"
        )
    lines += ["", "| run | gain (pts) | degradation (%) | degradation at grid-matched gain |", "|---|---|---|---|"]
    for p in s["points"]:
        lines.append(f"| {p['label']} | {fmt(p['gain'])} | {fmt(p['degradation'])} | {fmt(p['degradation_at_matched_gain'])} |")
    lines += ["", "The grid's Pareto front, and the tune runs that weakly dominate each point (full-sample estimates):", ""]
    for lab, by in res["hand_front_weakly_dominated_by_tune"].items():
        lines.append(f"- {lab}: {', '.join(by) if by else 'none'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tune_dir", type=Path, help="the output folder of anchored tune")
    ap.add_argument("hand_dir", type=Path, help="a run folder of anchored run / frontier (one seed)")
    ap.add_argument("--member", help="degradation of this held-out member alone (e.g. the prior skill)")
    ap.add_argument("--n_boot", type=int, default=2000)
    ap.add_argument("-o", "--output_dir", type=Path, required=True)
    args = ap.parse_args(argv)
    res = compare(args.tune_dir, args.hand_dir, args.member, args.n_boot)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.output_dir / "tune_vs_frontier.json", res)
    (args.output_dir / "tune_vs_frontier.md").write_text(markdown(res))
    plot_frontier(
        res["stats"],
        args.output_dir / "tune_vs_frontier.png",
        title=f"anchored tune vs. the grid: {res['target']} (x: relative drop of {', '.join(res['degradation_of'])})",
    )
    dominated = [lab for lab, by in res["hand_front_weakly_dominated_by_tune"].items() if by]
    print(
        f"grid front points weakly dominated by a tune point: {len(dominated)} of "
        f"{len(res['hand_front_weakly_dominated_by_tune'])}; written: {args.output_dir}/tune_vs_frontier.{{md,json,png}}"
    )


if __name__ == "__main__":
    main()
