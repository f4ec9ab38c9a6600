"""Re-score the saved iGSM predictions of a run with the scorer in this checkout.

Checks the committed ``results/igsm-default/`` (its "Scorer changes after the run" section):
the default run was produced by commit 3004616; commit b58f4b3 then changed the iGSM fallback
extraction (the digits of a decimal are no longer read as an integer) and made the stop rule
case-insensitive.  This script re-scores every saved iGSM prediction with the current scorer and
prints each model's score before and after, so the committed numbers can be checked against the
committed code.  (The stop-rule change cannot change a score: scoring reads the first
"Answer:" line, which the stop rule only ever cuts after.)

Usage: python scripts/rescore_check.py [RUN_DIR ...]
       (default: every results/igsm-default/seed-* folder; a RUN_DIR holds config.json and evals/)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = "results/igsm-default"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "runs",
        nargs="*",
        type=Path,
        metavar="RUN_DIR",
        help=f"run folders with config.json and evals/ (default: {DEFAULT_DIR}/seed-*)",
    )
    runs = ap.parse_args(argv).runs or sorted((REPO / DEFAULT_DIR).glob("seed-*"))

    from anchored_learning.tasks.igsm import IGSMTask

    changed = 0
    for run in runs:
        cfg = json.loads((run / "config.json").read_text())
        task = IGSMTask(op_min=cfg["igsm_op_min"], op_max=cfg["igsm_op_max"], arithmetic=cfg["igsm_arithmetic"])
        for ev in sorted((run / "evals").glob("*.json")):
            r = json.loads(ev.read_text())["results"]["igsm"]
            exs = {e.uid: e for e in task.examples("test", r["n"], seed=cfg["seed"])}
            new = [task.score(exs[u], p) for u, p in zip(r["uids"], r["predictions"])]
            diff = sum(a != b for a, b in zip(new, r["items"]))
            changed += diff
            print(
                f"{run.name}/{ev.stem}: stored {sum(r['items']):.0f}/{r['n']}, re-scored {sum(new):.0f}/{r['n']}, "
                f"{diff} items differ"
            )
    print(f"items whose score changed: {changed}")


if __name__ == "__main__":
    main()
