"""Where the anchored stage's time above the SFT stage goes, at K = 1, on the real model.

    OMP_NUM_THREADS=1 python benchmarks/profile_anchored_stage.py [--n-train 32] [--epochs 2]
                                                                  [--out results/benchmarks/profile_anchored_stage.json]

The default iGSM recipe's training settings (``--preset default``: batch 8, no activation
checkpointing, cosine schedule) on its first ``--n-train`` training examples, in one process: the
reference (plain SFT, ``--epochs`` epochs at the reference's learning rate: the SFT stage), then
the anchored student reading it (``T = --epochs`` outer iterations of ``K = 1`` epoch, exact
hidden-state cache: the anchored stage).  The anchored stage's wall and CPU seconds are split by
timing, through wrappers: the reference cache build, each snapshot cache build, the refresh
diagnostics (``_log_refresh``), the anchors' head projections (``ProjectedLogits``, read inside the
objective and the diagnostics, so counted in their times too) and the
objective (``objectives.anchored_kl_loss`` / ``sft_loss``: log-softmaxes, the KL, its closed-form gradient, computed in the forward); the rest
is the student's forward/backward and the optimizer, as in SFT.  ``floor`` is the SFT stage plus
the cache builds plus the projections: what the method cannot avoid with this design.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path


class Timers:
    """Cumulative wall and CPU seconds of wrapped callables, by label."""

    def __init__(self):
        self.wall = collections.defaultdict(float)
        self.cpu = collections.defaultdict(float)
        self.calls = collections.Counter()

    def wrap(self, owner, attr: str, label: str) -> None:
        """Replace ``owner.attr`` by a timed wrapper (a plain function, classmethod or method)."""
        raw = owner.__dict__[attr]
        is_cm = isinstance(raw, classmethod)
        fn = raw.__func__ if is_cm else raw

        def timed(*a, **k):
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.wall[label] += time.perf_counter() - w
                self.cpu[label] += time.process_time() - c
                self.calls[label] += 1

        setattr(owner, attr, classmethod(timed) if is_cm else timed)

    def as_dict(self) -> dict:
        return {k: {"wall_s": round(self.wall[k], 2), "cpu_s": round(self.cpu[k], 2), "calls": self.calls[k]} for k in self.wall}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks/profile_anchored_stage.json"))
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from datasets import Dataset
    from step_cost import machine_info

    machine = machine_info()  # the load average at the start

    from anchored_learning import objectives
    from anchored_learning.anchor_cache import HiddenStateCache, ProjectedLogits
    from anchored_learning.experiment import plan as P
    from anchored_learning.experiment.experiment_config import ExperimentConfig
    from anchored_learning.experiment.task_data import load_training_rows, make_task
    from anchored_learning.experiment.variants import Variant
    from anchored_learning.io import write_json_atomic
    from anchored_learning.models import load_model_and_tokenizer
    from anchored_learning.trainer import AnchoredSFTTrainer

    work = Path(tempfile.mkdtemp(prefix="profile_anchored_"))
    cfg = ExperimentConfig(
        preset="default",
        n_train=a.n_train,
        reference_epochs=a.epochs,
        outer_iterations=a.epochs,
        inner_epochs=1,
        output_dir=str(work),
    ).resolved()
    rows = load_training_rows(cfg, make_task(cfg))
    timers = Timers()
    timers.wrap(HiddenStateCache, "build", "cache_build")
    timers.wrap(AnchoredSFTTrainer, "_log_refresh", "refresh_diagnostics")
    timers.wrap(ProjectedLogits, "__getitem__", "anchor_projections")  # inside the objective and the diagnostics
    timers.wrap(objectives, "anchored_kl_loss", "objective_anchored_kl")
    timers.wrap(objectives, "sft_loss", "objective_sft")
    stages = {}
    for name in ("reference", "anchored"):
        if name == "reference":
            args = P.reference_args(cfg, work)
        else:
            args, _ = P.variant_args(cfg, work, Variant("anchored", "anchored", {}))
            args.num_train_epochs = cfg.outer_iterations * cfg.inner_epochs
        model, tok = load_model_and_tokenizer(None)
        trainer = AnchoredSFTTrainer(model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
        before = timers.as_dict()
        w, c = time.perf_counter(), time.process_time()
        trainer.train()
        stage = {
            "wall_s": round(time.perf_counter() - w, 2),
            "cpu_s": round(time.process_time() - c, 2),
            "steps": trainer.state.global_step,
        }
        after = timers.as_dict()
        stage["parts"] = {
            k: {m: round(v[m] - before.get(k, {}).get(m, 0), 2) for m in v} for k, v in after.items() if v != before.get(k)
        }
        if name == "reference":
            trainer.save_model(str(work / "models" / "reference" / "final"))
        stages[name] = stage
        print(name, stage, flush=True)
        del trainer, model
    sft, anc = stages["reference"], stages["anchored"]
    parts = anc["parts"]
    part = lambda k, m: parts.get(k, {}).get(m, 0.0)  # noqa: E731
    out = {
        "command": " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?"), "python", *sys.argv]),
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "n_train": a.n_train,
        "epochs": a.epochs,
        "stages": stages,
        **{f"anchored_over_sft_{m}": round(anc[f"{m}_s"] / sft[f"{m}_s"], 3) for m in ("wall", "cpu")},
        **{
            f"floor_over_sft_{m}": round(
                (sft[f"{m}_s"] + part("cache_build", f"{m}_s") + part("anchor_projections", f"{m}_s")) / sft[f"{m}_s"], 3
            )
            for m in ("wall", "cpu")
        },
    }
    write_json_atomic(a.out, out)
    print({k: v for k, v in out.items() if "over" in k})


if __name__ == "__main__":
    main()
