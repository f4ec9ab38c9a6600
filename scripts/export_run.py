"""Copy the light, reviewable outputs of an ``anchored run`` folder into ``results/<name>/``.

Produced the committed run folders ``results/igsm-quick/``, ``results/igsm-default/`` and
``results/igsm-lr-investigation/`` (each README there names the command used).

Usage: python scripts/export_run.py RUN_DIR DEST_DIR
       e.g. python scripts/export_run.py runs/igsm-default-v2 results/igsm-default
Copies config.json, results.json/.md, pareto.png, wall_time.json, the frontier study's files
(``anchored frontier``: frontier.json/.md/.png, training_curves.png, anchor_bound.png), evals/*.json, and per model
the training log and anchor diagnostics from ``models/<name>/final/.complete`` and an on-policy run's sampled
responses (``models/<name>/on_policy`` -> ``on_policy_<name>/``) (weights are not
copied; their ``weights_sha256`` is, so that a run continued from the export can tell whether a model
it trains again is the same).  A multi-seed folder (``anchored run --seeds ...``) is exported with its aggregate files
at the top and each ``seed-N/`` below.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from anchored_learning.models import weights_sha256


def export(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    frontier = ("frontier.json", "frontier.md", "frontier.png", "training_curves.png", "anchor_bound.png")
    for name in ("config.json", "results.json", "results.md", "pareto.png", "wall_time.json", *frontier):
        if (src / name).exists():
            shutil.copy2(src / name, dest / name)
    if (src / "evals").is_dir():
        shutil.copytree(src / "evals", dest / "evals", dirs_exist_ok=True)
    for record in sorted(src.glob("train_log_*.json")):  # records of a folder continued from an export
        shutil.copy2(record, dest / record.name)
    for done in sorted(src.glob("models/*/final/.complete")):
        model = done.parent.parent.name
        info = json.loads(done.read_text())
        if "weights_sha256" not in info:  # a record written before stages kept it: the weights are still here
            info["weights_sha256"] = weights_sha256(done.parent)
        (dest / f"train_log_{model}.json").write_text(json.dumps(info, indent=1, default=str))
    for sampled in sorted(src.glob("models/*/on_policy")):  # an on-policy run's responses, per outer iteration
        shutil.copytree(sampled, dest / f"on_policy_{sampled.parent.name}", dirs_exist_ok=True)
    for seed_dir in sorted(src.glob("seed-*")):
        export(seed_dir, dest / seed_dir.name)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="the finished run folder (e.g. runs/igsm-default-v2)")
    ap.add_argument("dest_dir", type=Path, help="the results folder to write (e.g. results/igsm-default)")
    args = ap.parse_args(argv)
    if not args.run_dir.is_dir():  # exits with code 2
        ap.error(f"{args.run_dir} does not exist or is not a folder: give a run folder (e.g. runs/igsm-default-v2)")
    if not any(args.run_dir.glob("config.json")) and not any(args.run_dir.glob("seed-*/config.json")):
        ap.error(f"{args.run_dir} is not a run folder (no config.json in it or in a seed-*/ folder)")
    export(args.run_dir, args.dest_dir)
    print(f"exported {args.run_dir} -> {args.dest_dir}")


if __name__ == "__main__":
    main()
