"""Choose the recipes' held-out suite from the measured per-item evaluations (issue #12).

Reads the base model's and the forgetful reference's per-item evaluations written by
``scripts/stability_sensitivity.py`` (``results/stability-sensitivity/eval_{base,reference}.json``)
and, for candidate suites at candidate sizes (prefixes of the same seeded item order that
``anchored run`` evaluates), computes the suite's summary figure -- the mean relative degradation
with its paired-bootstrap SE (:func:`anchored_learning.evaluation.metrics.compare`) -- and the
evaluation time per model, scaled from the measured per-item times.  No model is run.

Usage: python scripts/stability_suite_choice.py [--dir results/stability-sensitivity]
Writes <dir>/suite_choice.json and <dir>/suite_choice.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from anchored_learning.evaluation.metrics import compare
from anchored_learning.io import write_json_atomic, write_text_atomic

CANDIDATES = [
    # (members, items per MC member, NLL texts)
    (["sciq_chat", "hellaswag", "arc_easy", "piqa", "heldout_nll"], 100, 40),  # the default recipe before
    (["sciq", "arc_easy", "heldout_nll"], 100, 40),
    (["sciq", "arc_easy", "heldout_nll"], 200, 40),
    (["sciq", "arc_easy", "heldout_nll"], 300, 40),
    (["sciq", "arc_easy"], 200, 0),
    (["sciq", "arc_easy", "piqa", "heldout_nll"], 200, 40),
    (["sciq", "arc_easy", "heldout_nll"], 24, 8),  # the quick recipe (a smoke run: it cannot see forgetting)
]


def _prefix(result: dict, n: int) -> dict:
    out = dict(result)
    for field in ("items", "uids", "weights"):
        if out.get(field) is not None:
            out[field] = out[field][:n]
    x = np.asarray(out["items"], dtype=float)
    w = out.get("weights")
    out["primary"] = float((x * np.asarray(w)).sum() / np.sum(w)) if w is not None else float(x.mean())
    out["n"] = len(x)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("results/stability-sensitivity"))
    a = ap.parse_args(argv)
    base = json.loads((a.dir / "eval_base.json").read_text())
    ref = json.loads((a.dir / "eval_reference.json").read_text())
    base, ref = base.get("results", base), ref.get("results", ref)
    rows = []
    for members, mc, nll in CANDIDATES:
        sizes = {m: (nll if m == "heldout_nll" else mc) for m in members}
        b = {m: _prefix(base[m], sizes[m]) for m in members}
        r = {m: _prefix(ref[m], sizes[m]) for m in members}
        cmp = compare(b, r, seed=0)
        md = cmp["mean_degradation"]
        se = (md["ci"][1] - md["ci"][0]) / (2 * 1.96)
        seconds = sum(base[m]["wall_time_s"] * sizes[m] / base[m]["n"] for m in members)
        rows.append(
            {
                "members": members,
                "items": sizes,
                "base": {m: b[m]["primary"] for m in members},
                "reference": {m: r[m]["primary"] for m in members},
                "degradation_percent": {m: v["percent"] for m, v in cmp["degradation"].items()},
                "mean_degradation_percent": md["percent"],
                "ci95": md["ci"],
                "se": se,
                "z": md["percent"] / se,
                "eval_seconds_per_model_bf16": seconds,
            }
        )
    lines = [
        "| suite (items per member) | base | reference | mean degradation % | SE | z | eval s/model |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = ", ".join(f"{m} {n}" for m, n in row["items"].items())
        fmt = lambda d: ", ".join(f"{v:.3f}" for v in d.values())  # noqa: E731
        lines.append(
            f"| {name} | {fmt(row['base'])} | {fmt(row['reference'])} | {row['mean_degradation_percent']:+.1f} | "
            f"{row['se']:.1f} | {row['z']:+.1f} | {row['eval_seconds_per_model_bf16']:.0f} |"
        )
    write_json_atomic(
        a.dir / "suite_choice.json", {"source": [str(a.dir / "eval_base.json"), str(a.dir / "eval_reference.json")], "rows": rows}
    )
    write_text_atomic(a.dir / "suite_choice.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
