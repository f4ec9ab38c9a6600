"""Compare two ``anchored run`` output folders item for item (behaviour-unchanged checks).

Produced ``results/redesign-equivalence/comparison.json``: the quick preset run with the code
before the redesign (commit 5a4cff4) and after it, both on the same machine.  For every model
evaluated in both folders it compares, suite by suite, the item ids, the per-item scores, the
generated predictions and the primary metric; for every trained model, the training log (loss,
learning rate and grad norm at every logged step, and the anchor diagnostics); and every row of
``results.json`` (target, gain, held-out scores, degradation and their intervals).

Usage: python scripts/compare_runs.py BEFORE_DIR AFTER_DIR [-o comparison.json]
Exit code 0 when everything is identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

#: results.json row fields that depend on the wall clock, not on the model
TIMING = {"train_time_s"}
#: log_history keys that depend on the wall clock
LOG_TIMING = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "anchor/refresh_s"}
#: anchor_history keys that depend on the wall clock (seconds spent in a refresh)
ANCHOR_TIMING = {"refresh_s"}


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def compare_evals(before: dict, after: dict) -> dict:
    """Per suite: items, uids, predictions and primary identical?"""
    out = {}
    for suite in sorted(set(before["results"]) | set(after["results"])):
        a, b = before["results"].get(suite), after["results"].get(suite)
        if a is None or b is None:
            out[suite] = {"identical": False, "why": "missing in one run"}
            continue
        checks = {k: _same(a.get(k), b.get(k)) for k in ("uids", "items", "predictions", "primary", "metrics", "n")}
        out[suite] = {
            "identical": all(checks.values()),
            "n": a.get("n"),
            "primary": [a.get("primary"), b.get("primary")],
            **{k: v for k, v in checks.items() if not v},
        }
    return out


def compare_logs(before: list, after: list) -> bool:
    strip = lambda log: [{k: v for k, v in r.items() if k not in LOG_TIMING} for r in log]  # noqa: E731
    return _same(strip(before), strip(after))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("-o", "--output", type=Path, default=None, help="write the comparison as JSON here")
    args = ap.parse_args(argv)
    report: dict = {"before": str(args.before), "after": str(args.after), "evals": {}, "train_logs": {}, "rows": {}}
    for f in sorted((args.before / "evals").glob("*.json")):
        g = args.after / "evals" / f.name
        report["evals"][f.stem] = compare_evals(json.loads(f.read_text()), json.loads(g.read_text())) if g.exists() else "missing"
    for done in sorted((args.before / "models").glob("*/final/.complete")):
        other = args.after / done.relative_to(args.before)
        a = json.loads(done.read_text())
        b = json.loads(other.read_text()) if other.exists() else {}
        report["train_logs"][done.parts[-3]] = {
            "log_history": compare_logs(a.get("log_history", []), b.get("log_history", [])),
            "anchor_history": _same(
                *([{k: v for k, v in r.items() if k not in ANCHOR_TIMING} for r in x.get("anchor_history") or []] for x in (a, b))
            ),
            "weights_sha256": a.get("weights_sha256") == b.get("weights_sha256"),
        }
    ra = {r["label"]: r for r in json.loads((args.before / "results.json").read_text())["rows"]}
    rb = {r["label"]: r for r in json.loads((args.after / "results.json").read_text())["rows"]}
    for label in sorted(set(ra) | set(rb)):
        a, b = ra.get(label, {}), rb.get(label, {})
        keys = (set(a) | set(b)) - TIMING
        diff = sorted(k for k in keys if not _same(a.get(k), b.get(k)))
        report["rows"][label] = {
            "identical": not diff,
            **({"differs": diff} if diff else {}),
            "gain": [a.get("gain"), b.get("gain")],
            "degradation": [a.get("degradation"), b.get("degradation")],
        }
    ok = (
        all(v != "missing" and all(s["identical"] for s in v.values()) for v in report["evals"].values())
        and all(all(v.values()) for v in report["train_logs"].values())
        and all(v["identical"] for v in report["rows"].values())
    )
    report["identical"] = ok
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(
        text
        if not ok
        else f"identical: every eval item, prediction, training log and results row ({args.before} vs {args.after})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
