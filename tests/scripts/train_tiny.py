"""Tiny, deterministic Anchored Learning run used by ``tests/test_resume_distributed.py``.

Runs as a separate process (so it can SIGKILL itself, or be started under ``torchrun``):

1. builds a 16-example prompt-completion dataset and the tiny random Llama (``tiny_llama(seed=0)``);
2. trains the reference p_sft with ``train_reference`` into ``--reference-dir`` unless that folder
   already holds a model (single process only; ``--reference-only`` stops here);
3. trains ``method="anchored"`` with T=2 outer iterations x K=2 inner epochs (16 examples,
   global batch 4 -> 4 steps/epoch, 8 steps/outer iteration, 16 steps), optionally killing itself
   with SIGKILL from ``on_step_end`` at ``--max-kill-step`` and optionally resuming with
   ``trainer.train(resume_from_checkpoint=True)``;
4. on the main process writes ``<output-dir>/final/model.safetensors`` (final weights),
   ``log_history.json`` (``trainer.state.log_history``) and ``anchor_history.json``.

Example::

    python tests/scripts/train_tiny.py --output-dir /tmp/a --reference-dir /tmp/ref --anchor-source cache
    torchrun --standalone --nproc_per_node 2 tests/scripts/train_tiny.py --output-dir /tmp/b \
        --reference-dir /tmp/ref --per-device-batch-size 2 --save-steps 0
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

NUM_EXAMPLES = 16
SEED = 0


def make_data():
    from datasets import Dataset

    rows = []
    for i in range(NUM_EXAMPLES):
        q, a = f"add {i} and {i + 3}", f"the sum is {2 * i + 3}" + "!" * (i % 4)  # varied lengths -> padding
        rows.append({"prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]})
    return Dataset.from_list(rows)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output-dir", required=True)
    p.add_argument("--reference-dir", required=True)
    p.add_argument("--anchor-source", choices=("cache", "live"), default="cache")
    p.add_argument(
        "--max-kill-step", default="none", help="global step at whose on_step_end the process SIGKILLs itself, or 'none'"
    )
    p.add_argument("--resume", action="store_true", help="trainer.train(resume_from_checkpoint=True)")
    p.add_argument("--save-steps", type=int, default=1, help="checkpoint every N steps; 0 = save_strategy='no'")
    p.add_argument("--per-device-batch-size", type=int, default=4)
    p.add_argument("--logging-steps", type=int, default=1, help="log the training loss every N steps")
    p.add_argument("--reference-only", action="store_true", help="only make sure the reference exists")
    p.add_argument(
        "--watchdog",
        type=float,
        default=0.0,
        help="if > 0: after this many seconds dump every thread's traceback to stderr and exit (diagnoses hangs)",
    )
    p.add_argument(
        "--stagger-snapshot",
        type=float,
        default=0.0,
        help="ranks other than 0 sleep this many seconds before every snapshot refresh (forces the "
        "rank-0-writes-first interleaving of AnchoredSFTTrainer._take_snapshot)",
    )
    p.add_argument(
        "--step-watchdog",
        type=float,
        default=0.0,
        help="if > 0: once training starts, a single optimizer step taking longer than this many seconds dumps "
        "every thread's traceback and exits (replaces --watchdog from then on; a deadlock fails fast)",
    )
    args = p.parse_args(argv)
    args.max_kill_step = None if str(args.max_kill_step).lower() == "none" else int(args.max_kill_step)
    return args


def ensure_reference(ref_dir: str, data) -> None:
    from anchored_learning.testing import tiny_llama
    from anchored_learning.trainer import train_reference

    if (Path(ref_dir) / "config.json").exists():
        return
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SystemExit(f"reference {ref_dir} missing: build it with a single process first (--reference-only)")
    model, tok = tiny_llama(seed=SEED)
    train_reference(
        model,
        data,
        ref_dir,
        processing_class=tok,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        num_train_epochs=2,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=SEED,
        disable_tqdm=True,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.watchdog > 0:
        import faulthandler

        faulthandler.dump_traceback_later(args.watchdog, exit=True)
    import torch
    from safetensors.torch import save_file
    from transformers import TrainerCallback

    from anchored_learning.anchor_cache import unwrap
    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.testing import tiny_llama
    from anchored_learning.trainer import AnchoredSFTTrainer

    torch.manual_seed(SEED)
    data = make_data()
    ensure_reference(args.reference_dir, data)
    if args.reference_only:
        return 0

    class KillAt(TrainerCallback):
        """SIGKILL this process at the end of global step ``step`` (before that step's checkpoint is saved)."""

        def __init__(self, step: int):
            self.step = step

        def on_step_end(self, targs, state, control, **kwargs):
            if state.global_step == self.step:
                sys.stdout.flush()
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    if args.stagger_snapshot > 0:
        import time

        original_take_snapshot = AnchoredSFTTrainer._take_snapshot

        def staggered_take_snapshot(self, t, model):
            if not self.accelerator.is_main_process:
                time.sleep(args.stagger_snapshot)
            return original_take_snapshot(self, t, model)

        AnchoredSFTTrainer._take_snapshot = staggered_take_snapshot

    model, tok = tiny_llama(seed=SEED)
    config = AnchoredSFTConfig(
        output_dir=args.output_dir,
        method="anchored",
        reference_model=args.reference_dir,
        anchor_source=args.anchor_source,
        outer_iterations=2,
        inner_epochs=2,
        per_device_train_batch_size=args.per_device_batch_size,
        learning_rate=1e-2,
        logging_steps=args.logging_steps,
        save_strategy="steps" if args.save_steps > 0 else "no",
        save_steps=max(1, args.save_steps),
        seed=SEED,
        data_seed=SEED,
        use_cpu=True,
        report_to="none",
        keep_anchor_cache=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )

    class StepWatchdog(TrainerCallback):
        """Re-arm faulthandler's timer at every step: a step (or the final save) that hangs exits the process."""

        def __init__(self, seconds: float):
            self.seconds = seconds

        def on_train_begin(self, targs, state, control, **kwargs):
            import faulthandler

            faulthandler.dump_traceback_later(self.seconds, exit=True)

        on_step_end = on_train_begin

        def on_train_end(self, targs, state, control, **kwargs):
            import faulthandler

            faulthandler.dump_traceback_later(max(self.seconds, 60.0), exit=True)

    callbacks = [KillAt(args.max_kill_step)] if args.max_kill_step is not None else []
    if args.step_watchdog > 0:
        callbacks.append(StepWatchdog(args.step_watchdog))
    trainer = AnchoredSFTTrainer(model, args=config, train_dataset=data, processing_class=tok, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=True if args.resume else None)

    if trainer.accelerator.is_main_process:
        out = Path(args.output_dir)
        (out / "final").mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().cpu().contiguous() for k, v in unwrap(trainer.model).state_dict().items()}
        save_file(sd, str(out / "final" / "model.safetensors"))
        (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
        (out / "anchor_history.json").write_text(json.dumps(trainer.anchor_history, indent=1))
        (out / "run_info.json").write_text(
            json.dumps(
                {
                    "world_size": trainer.accelerator.num_processes,
                    "global_step": trainer.state.global_step,
                    "epoch": trainer.state.epoch,
                }
            )
        )
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()  # destroys the process group: exiting with it alive can SIGABRT
    return 0


if __name__ == "__main__":
    code = main()
    # every output is written and the process group destroyed: leave without running C++ destructors,
    # where a gloo thread still joinable at exit aborts a finished rank now and then ("terminate called
    # without an active exception", SIGABRT; seen in a full-suite run on a loaded 2-core machine)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
