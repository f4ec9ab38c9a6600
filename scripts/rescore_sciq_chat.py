"""Re-run the ``sciq_chat`` suite for every model of a finished run folder, in place.

Produced the ``sciq_chat`` entries (and their ``superseded`` originals) in the committed
``results/igsm-lr-investigation/evals/*.json`` and ``results/igsm-lr-investigation/rescore_sciq_chat.log``
(run on the run folder ``runs/igsm-default/seed-0``, then exported; see that folder's README,
"Scorer fix (sciq_chat)").

Why: the first scorer stopped generation at a one-letter token that may begin an option's text
("B" of "Bacteria") and read the article "A" as the letter A (found by a fresh-eyes test after
the run). The fixed stop rule and scorer (tasks/sciq_chat.py) need new generations, so this
re-generates and re-scores ``sciq_chat`` for the base model, every trained model and WiSE-FT,
same items (seed, limit) as before, and replaces that entry in ``evals/<model>.json`` (the old
entry is kept under ``superseded``, outside ``results``, so reports ignore it). Then re-run the same ``anchored run``/``sweep`` command to
rebuild the report from the updated evaluations (every other stage is skipped).

Usage: python scripts/rescore_sciq_chat.py RUN_DIR
       (RUN_DIR: a run folder with models/; an exported results folder has no weights)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "run",
        type=Path,
        metavar="RUN_DIR",
        help="finished run folder with config.json, evals/ and models/ (e.g. runs/igsm-default/seed-0)",
    )
    run = ap.parse_args(argv).run

    from transformers import AutoModelForCausalLM

    from anchored_learning.evaluation.suites import evaluate
    from anchored_learning.models import load_model_and_tokenizer, resolve_model_path
    from anchored_learning.trainer import wise_ft

    cfg = json.loads((run / "config.json").read_text())
    base, tok = load_model_and_tokenizer(resolve_model_path(cfg["model"]))
    base.eval()
    ref = None
    for path in sorted((run / "evals").glob("*.json")):
        name = path.stem
        res = json.loads(path.read_text())
        if "sciq_chat" in res.get("superseded", {}):
            print(f"{name}: already re-scored")
            continue
        if name == "base":
            model = base
        elif name.startswith("wise_ft"):
            w = float(name.split("w=")[1].rstrip(")"))
            ref = ref or AutoModelForCausalLM.from_pretrained(run / "models" / "reference" / "final").eval()
            model = wise_ft(base, ref, w).eval()
        else:
            folder = "reference" if name == "sft" else name
            model = AutoModelForCausalLM.from_pretrained(run / "models" / folder / "final").eval()
        new = evaluate(
            model, tok, ["sciq_chat"], limits={"sciq_chat": cfg["mc_limit"]}, seed=cfg["seed"], batch_size=cfg["eval_batch_size"]
        )["results"]["sciq_chat"]
        old = res["results"]["sciq_chat"]
        assert new["uids"] == old["uids"], "the re-scored items must be the same items"
        res.setdefault("superseded", {})["sciq_chat"] = {"why": "stop rule and scorer fixed after the run", **old}
        res["results"]["sciq_chat"] = new
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(res, indent=2, default=str))
        os.replace(tmp, path)
        print(f"{name}: sciq_chat {old['primary']:.3f} -> {new['primary']:.3f}")


if __name__ == "__main__":
    main()
