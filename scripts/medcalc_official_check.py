"""Check our ``official`` MedCalc scorer against MedCalc-Bench's own code, case by case.

Needs a copy of https://github.com/ncbi-nlp/MedCalc-Bench (its ``evaluation/run.py`` and
``evaluation/evaluate.py``; neither is shipped with this project).  Runs every case of
``tests/test_medcalc_official.py`` -- and, with ``--predictions``, every item of a calibration
JSON from ``scripts/target_calibration.py`` -- through the benchmark's ``extract_answer`` +
``check_correctness`` (an exception counts as Incorrect, as in its evaluation loop) and through
:func:`anchored_learning.tasks.medcalc.official.official_correct`, and prints the disagreements.

Usage: python scripts/medcalc_official_check.py /path/to/MedCalc-Bench [--predictions results/medcalc-calibration/X.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def benchmark_verdict(run, evaluate, response, cid, answer, lower, upper) -> bool:
    """The benchmark's verdict: its ground truth and limits are strings read from its CSV."""

    def text(v):
        if isinstance(v, (tuple, list)):
            return f"({v[0]}, {v[1]})"
        if hasattr(v, "strftime"):
            return v.strftime("%m/%d/%Y")
        return str(v)

    try:
        value, _ = run.extract_answer(response, int(cid))
        return bool(evaluate.check_correctness(value, text(answer), cid, text(upper), text(lower)))
    except Exception:  # its loop marks the item Incorrect
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("medcalc_bench", type=Path, help="a MedCalc-Bench checkout")
    ap.add_argument("--predictions", type=Path, action="append", default=[], help="target_calibration.py JSON (medcalc)")
    a = ap.parse_args(argv)
    sys.modules.setdefault("llm_inference", types.SimpleNamespace(LLMInference=object))
    sys.modules.setdefault("table_stats", types.SimpleNamespace(compute_overall_accuracy=lambda *x: None))
    sys.path[:0] = [str(a.medcalc_bench / "evaluation"), str(REPO / "tests")]
    import evaluate  # the benchmark's
    import run  # the benchmark's
    from test_medcalc_official import CASES

    from anchored_learning.tasks.medcalc import MedCalcTask
    from anchored_learning.tasks.medcalc.official import official_correct

    cases = [(r, *item, why) for r, item, _, why in CASES]
    for path in a.predictions:
        data = json.loads(path.read_text())
        opts = data.get("options", {})
        task = MedCalcTask(**opts)
        test = {e.uid: e for e in task.examples("test", data["n_test"], seed=data["config"]["seed"])}
        for rec in data["items"]:
            ex = test[rec["uid"]]
            m = ex.meta
            for key in ("base_prediction", "sft_prediction"):
                cases.append((rec[key], m["calculator_id"], ex.answer, m["lower_limit"], m["upper_limit"], f"{rec['uid']} {key}"))
    bad = 0
    for response, cid, answer, lower, upper, why in cases:
        ours = official_correct(response, cid, answer, lower, upper)
        theirs = benchmark_verdict(run, evaluate, response, cid, answer, lower, upper)
        if ours != theirs:
            bad += 1
            print(f"DIFFERENT ({why}): ours {ours}, benchmark {theirs}: {response[-200:]!r}")
    print(f"{len(cases) - bad}/{len(cases)} verdicts equal")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
