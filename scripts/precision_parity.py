"""Parity of two ``anchored run`` folders made with the same recipe in float32 and under bf16
autocast (issue #13: "loss curves and every evaluation of the quick preset within noise of
float32, paired").

For every model and every suite evaluated in both: the primary value in each, the difference
bf16 - float32 with its paired bootstrap 95% CI over the items (same items, same order), how many
items changed, and whether the CI holds 0.  For every trained model: the training loss at every
logged step in both runs.  Also each report row (gain, degradation) and the wall times.

Usage: python scripts/precision_parity.py FP32_DIR BF16_DIR -o results/precision-parity/parity.json
(writes the JSON, a markdown table next to it, and loss_curves.png)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anchored_learning.evaluation.metrics import paired_bootstrap


def _load(path: Path):
    return json.loads(path.read_text())


def suite_parity(a: dict, b: dict) -> dict:
    """float32 evaluation ``a`` vs bf16 evaluation ``b`` of one suite."""
    if a.get("uids") != b.get("uids"):
        raise ValueError("items are not aligned")
    est, lo, hi = paired_bootstrap(a["items"], b["items"], lambda x, y: y - x, weights=a.get("weights"), seed=0)
    changed = sum(1 for x, y in zip(a["items"], b["items"]) if x != y)
    return {
        "fp32": a["primary"],
        "bf16": b["primary"],
        "diff": est,
        "diff_ci": [lo, hi],
        "ci_holds_0": lo <= 0.0 <= hi,
        "n": len(a["items"]),
        "items_changed": changed,
        "wall_fp32_s": a.get("wall_time_s"),
        "wall_bf16_s": b.get("wall_time_s"),
    }


def losses(folder: Path) -> list[tuple[float, float]]:
    done = folder / "final" / ".complete"
    hist = _load(done)["log_history"] if done.exists() else []
    return [(h["step"], h["loss"]) for h in hist if "loss" in h]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fp32", type=Path)
    ap.add_argument("bf16", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    out: dict = {"fp32_dir": str(args.fp32), "bf16_dir": str(args.bf16), "evals": {}, "training": {}, "rows": {}}
    for f in sorted((args.fp32 / "evals").glob("*.json")):
        g = args.bf16 / "evals" / f.name
        if not g.exists():
            continue
        a, b = _load(f)["results"], _load(g)["results"]
        out["evals"][f.stem] = {s: suite_parity(a[s], b[s]) for s in a if "items" in a[s] and "items" in b.get(s, {})}
    for m in sorted((args.fp32 / "models").iterdir()):
        la, lb = losses(m), losses(args.bf16 / "models" / m.name)
        if la and lb:
            diffs = [abs(x[1] - y[1]) for x, y in zip(la, lb)]
            out["training"][m.name] = {
                "steps": [s for s, _ in la],
                "loss_fp32": [v for _, v in la],
                "loss_bf16": [v for _, v in lb],
                "max_abs_diff": max(diffs),
                "max_rel_diff": max(d / abs(x[1]) for d, x in zip(diffs, la)),
                "train_time_fp32_s": _load(m / "final" / ".complete").get("train_time_s"),
                "train_time_bf16_s": _load(args.bf16 / "models" / m.name / "final" / ".complete").get("train_time_s"),
            }
    ra, rb = _load(args.fp32 / "results.json"), _load(args.bf16 / "results.json")
    for x, y in zip(ra["rows"], rb["rows"]):
        out["rows"][x["label"]] = {
            k: {"fp32": x[k], "bf16": y[k], "fp32_ci": x.get(k + "_ci"), "bf16_ci": y.get(k + "_ci")}
            for k in ("target", "gain", "degradation", "drift_kl")
        }
    out["wall_time_s"] = {"fp32": ra["wall_time_s"], "bf16": rb["wall_time_s"]}
    out["machine"] = ra["machine"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1))

    lines = ["| model | suite | n | float32 | bf16 | bf16 - float32 [95% CI] | items changed |", "|---|---|---|---|---|---|---|"]
    for model, suites in out["evals"].items():
        for s, r in suites.items():
            lines.append(
                f"| {model} | {s} | {r['n']} | {r['fp32']:.4f} | {r['bf16']:.4f} | {r['diff']:+.4f} "
                f"[{r['diff_ci'][0]:+.4f}, {r['diff_ci'][1]:+.4f}] | {r['items_changed']} |"
            )
    lines += ["", "| model | steps | max abs loss diff | max rel | train time fp32 (s) | bf16 (s) |", "|---|---|---|---|---|---|"]
    for m, t in out["training"].items():
        lines.append(
            f"| {m} | {len(t['steps'])} | {t['max_abs_diff']:.4f} | {t['max_rel_diff']:.3f} | "
            f"{t['train_time_fp32_s']:.0f} | {t['train_time_bf16_s']:.0f} |"
        )
    lines += ["", "| row | gain fp32 | gain bf16 | degradation fp32 % | degradation bf16 % |", "|---|---|---|---|---|"]
    for label, r in out["rows"].items():
        lines.append(
            f"| {label} | {r['gain']['fp32']:+.1f} | {r['gain']['bf16']:+.1f} | {r['degradation']['fp32']:+.1f} | "
            f"{r['degradation']['bf16']:+.1f} |"
        )
    lines.append(f"\nwall time: float32 {out['wall_time_s']['fp32']:.0f} s, bf16 {out['wall_time_s']['bf16']:.0f} s")
    args.output.with_suffix(".md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(out["training"]), figsize=(5 * len(out["training"]), 3.5), squeeze=False)
    for ax, (m, t) in zip(axes[0], out["training"].items()):
        ax.plot(t["steps"], t["loss_fp32"], "o-", label="float32")
        ax.plot(t["steps"], t["loss_bf16"], "s--", label="bf16 autocast")
        ax.set_title(m)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.output.parent / "loss_curves.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
