"""The cost of one frontier point (train + full evaluation) per method, before and after, paired.

    OMP_NUM_THREADS=1 python benchmarks/point_cost.py [--quick] [--before-rev REV] [--rounds R]
                                                      [--workdir DIR] [--out results/benchmarks/point_cost[_quick].json]

"Before" is the package at git revision ``--before-rev`` (default ``eb6f87f``, the main branch the
faster paths were made against), extracted with ``git archive``; "after" is this checkout's
``src``.  Each round runs ``anchored run`` once per version, in its own process and folder, the
order alternating between rounds, with the base evaluation cache off (``ANCHORED_EVAL_CACHE=off``)
so both versions do all their work: the base model's evaluation, the reference (plain SFT, the SFT
point: ``reference_epochs`` epochs), its evaluation (``sft``), the anchored student (``T`` outer
iterations of ``K = 1`` epoch: as many epochs as the reference) and its evaluation, then a second
anchored point (``anchor_alpha`` 0.75, as a frontier sweep makes it) and its evaluation.  No other
baseline.  The default recipe (``--preset default``, iGSM) at its sizes, or with ``--quick`` at a
smoke size (16 training examples, 2 epochs, 8 target items, 24 multiple-choice items per suite,
8 NLL texts and 8 drift pairs).

Reported (after / before, per round and their mean): ``eval_cost_ratio`` (the evaluations of the
two trained models), ``base_eval_ratio``, ``point_cost_ratio`` (training + evaluation of the SFT
point and of the anchored point, summed) and per method; ``anchored_stage_ratio`` (anchored
training time / reference training time, after; K = 1; ``..._second_point``: the second anchored
point's, which finds the reference's and the base's anchor caches built); and whether the two versions' evaluations
agree: the per-item scores of every multiple-choice and generation suite, and the largest
difference of NLL / drift per item.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = [
    "--n_train", "16", "--n_test", "8", "--mc_limit", "24", "--nll_limit", "8", "--drift_limit", "8",
    "--reference_epochs", "2", "--outer_iterations", "2", "--inner_epochs", "1",
]  # fmt: skip
SECOND = "anchored(anchor_alpha=0.75)"
EVALUATED = ("base", "sft", "anchored", SECOND)


def extract(rev: str, dest: Path) -> Path:
    """``src`` of git revision ``rev`` under ``dest``; the path of its ``src`` folder."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def run_point(src: Path, out: Path, quick: bool) -> float:
    """Run ``anchored run`` from package source ``src`` into ``out``; its wall seconds.

    Raises:
        subprocess.CalledProcessError: the run failed (its output is in ``out``.log).
    """
    cmd = [sys.executable, "-c", "from anchored_learning.cli import main; main()", "run", "--preset", "default"]
    cmd += ["--output_dir", str(out), "--baselines", "", "--sweep", "anchored.anchor_alpha=0.75"] + (QUICK if quick else [])
    env = {**os.environ, "PYTHONPATH": str(src), "ANCHORED_EVAL_CACHE": "off"}
    t0 = time.perf_counter()
    with open(f"{out}.log", "w") as log:
        subprocess.run(cmd, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - t0


def costs(out: Path) -> dict:
    """Training seconds (reference, anchored) and evaluation seconds (per model and suite) of a run."""
    train = {
        n: json.loads((out / "models" / n / "final" / ".complete").read_text())["train_time_s"]
        for n in ("reference", "anchored", SECOND)
    }
    evals = {n: json.loads((out / "evals" / f"{n}.json").read_text()) for n in EVALUATED}
    return {
        "train_s": train,
        "eval_s": {n: e["meta"]["wall_time_s"] for n, e in evals.items()},
        "suite_s": {n: {s: r.get("wall_time_s") for s, r in e["results"].items()} for n, e in evals.items()},
    }


def agreement(a: Path, b: Path) -> dict:
    """Per suite: whether per-item scores are equal (MC, generation) or the largest per-item
    difference (NLL, drift), over the evaluated models of two runs."""
    out = {}
    for n in EVALUATED:
        ra = json.loads((a / "evals" / f"{n}.json").read_text())["results"]
        rb = json.loads((b / "evals" / f"{n}.json").read_text())["results"]
        for s, x in ra.items():
            y = rb[s]
            if x.get("kind") in ("nll", "drift"):
                out[f"{n}/{s}"] = {"max_abs_item_diff": max(abs(p - q) for p, q in zip(x["items"], y["items"]))}
            else:
                out[f"{n}/{s}"] = {"same_items": x["items"] == y["items"], "primary": [x["primary"], y["primary"]]}
    return out


#: each frontier point: (its label in the ratios, the model it trains, the evaluation it is scored by)
POINTS = {"sft": ("reference", "sft"), "anchored": ("anchored", "anchored"), "anchored_second": (SECOND, SECOND)}


def ratios(before: dict, after: dict) -> dict:
    """The after / before ratios of one round, and the anchored stages' ratios to SFT."""

    def point(c, label):
        trained, evaluated = POINTS[label]
        return c["train_s"][trained] + c["eval_s"][evaluated]

    def stage(c, trained):
        return c["train_s"][trained] / c["train_s"]["reference"]

    evaluated = [e for _, e in POINTS.values()]
    return {
        "eval_cost_ratio": sum(after["eval_s"][m] for m in evaluated) / sum(before["eval_s"][m] for m in evaluated),
        "base_eval_ratio": after["eval_s"]["base"] / before["eval_s"]["base"],
        "point_cost_ratio": sum(point(after, p) for p in POINTS) / sum(point(before, p) for p in POINTS),
        **{f"point_cost_ratio_{p}": point(after, p) / point(before, p) for p in POINTS},
        "anchored_stage_ratio": stage(after, "anchored"),
        "anchored_stage_ratio_before": stage(before, "anchored"),
        "anchored_stage_ratio_second_point": stage(after, SECOND),
        "anchored_stage_ratio_second_point_before": stage(before, SECOND),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke sizes (see the module docstring)")
    ap.add_argument("--before-rev", default="eb6f87f")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None, help="kept when given (default: a temporary folder, removed)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from step_cost import machine_info

    machine = machine_info()  # the load average at the start

    work = a.workdir or Path(tempfile.mkdtemp(prefix="point_cost_"))
    srcs = {"before": extract(a.before_rev, work / "before"), "after": ROOT / "src"}
    rounds = []
    for r in range(a.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        row = {"order": list(order)}
        for v in order:
            out = work / f"{v}-{r}"
            shutil.rmtree(out, ignore_errors=True)
            row[f"{v}_run_wall_s"] = round(run_point(srcs[v], out, a.quick), 1)
            row[v] = costs(out)
            print(v, row[v], flush=True)
        row.update(ratios(row["before"], row["after"]))
        row["agreement"] = agreement(work / f"before-{r}", work / f"after-{r}")
        print({k: v for k, v in row.items() if "ratio" in k}, flush=True)
        rounds.append(row)
    keys = [k for k in rounds[0] if "ratio" in k]
    result = {
        "command": " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?"), "python", *sys.argv]),
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "before_rev": a.before_rev,
        "after_rev": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "size": "quick" if a.quick else "default recipe",
        **{k: round(sum(r[k] for r in rounds) / len(rounds), 3) for k in keys},
        "rounds": rounds,
    }
    out = a.out or Path(f"results/benchmarks/point_cost{'_quick' if a.quick else ''}.json")
    from anchored_learning.io import write_json_atomic

    write_json_atomic(out, result)
    print({k: result[k] for k in keys})
    if a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
