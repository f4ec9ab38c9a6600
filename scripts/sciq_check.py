"""Held-out behaviour check: sciq_chat accuracy (60 seeded SciQ items, seed 0, 1 thread) of a model.

Produced ``results/igsm-calibration/sciq_check.txt`` (the sciq_chat column of the second
calibration round in ``results/igsm-calibration/README.md``), one run per SFT folder written by
``scripts/igsm_calibration.py``; the base model printed acc 0.35 in the same session.

Usage: python scripts/sciq_check.py [MODEL_FOLDER]   (default: the bundled base model)
Prints accuracy, wall time and the first generations.
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default=None, help="model folder (default: the bundled base model)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from anchored_learning.evaluation.suites import evaluate
    from anchored_learning.models import load_model_and_tokenizer, resolve_model_path

    m, tok = load_model_and_tokenizer(args.model if args.model else resolve_model_path(None))
    t0 = time.time()
    r = evaluate(m, tok, ["sciq_chat"], limits={"sciq_chat": 60}, seed=0, batch_size=8)["results"]["sciq_chat"]
    print("acc", r["primary"], "n", r["n"], "time", time.time() - t0)
    for p in r["predictions"][:12]:
        print(repr(p))


if __name__ == "__main__":
    main()
