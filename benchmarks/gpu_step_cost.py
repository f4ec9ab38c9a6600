"""Step time and peak GPU memory of Anchored Learning (exact cache, live snapshot) against plain SFT
on a GPU, with a randomly initialised ~1B Llama (no download).  Prepared for a GPU machine; on a
CPU it runs only with ``--size tiny`` (a check that the script works).

    python benchmarks/gpu_step_cost.py [--size 1b|tiny] [--steps 20] [--warmup 5] [--batch-size 8]
                                       [--seq-len 512] [--rounds 2] [--output results/benchmarks/gpu_step_cost.json]

What is measured (the real ``AnchoredSFTTrainer.train()``, bf16 autocast where the device supports it):

* configurations: ``sft``; ``anchored`` with ``anchor_source="live"`` (snapshot and reference
  models on the device); ``anchored`` with ``anchor_source="cache"`` (the exact hidden-state cache:
  one model on the device).  T = K = 1, so the snapshot pass and the cache build happen once,
  before the first step, and are timed apart (``setup_seconds``).
* each configuration runs in its own subprocess (a clean CUDA context), ``--rounds`` times, the
  order rotating each round (sft, live, cache / live, cache, sft / ...).  Step time: wall time from
  ``on_step_begin`` to ``on_step_end`` with ``torch.cuda.synchronize()`` at both ends; the first
  ``--warmup`` steps are discarded; medians over the rest of all rounds.  Ratios are to SFT.
* peak memory: ``torch.cuda.max_memory_allocated()`` over the steady steps (reset after the warm-up)
  and over the whole process (set-up included), in GiB, and their ratios to SFT.

The ~1B model: LlamaConfig(hidden 2048, 22 layers, 32 heads, 4 KV heads, intermediate 5632,
vocab 32000), TinyLlama-1.1B's shapes, random weights (the cost of a step does not depend on the
values); the reference is the same model with every weight perturbed.  Data: random token ids,
``--seq-len`` tokens per example (first half prompt, second half response), no padding.

Target of issue #13 (measured on CPU in results/benchmarks/step_cost_*.json): cache step <= 1.05x
SFT, peak memory <= 1.10x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "sft": {"method": "sft"},
    "anchored_live": {"method": "anchored", "anchor_source": "live"},
    "anchored_cache": {"method": "anchored", "anchor_source": "cache"},
}
ORDER = list(CONFIGS)
SIZES = {
    "1b": dict(
        hidden_size=2048,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        intermediate_size=5632,
        vocab_size=32000,
    ),
    "tiny": dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, vocab_size=512
    ),
}


def prepare_models(size: str, workdir: Path, seed: int) -> tuple[str, str]:
    """Random-initialised base and perturbed reference model folders (with a tokenizer whose
    vocabulary covers the model's) under ``workdir``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from anchored_learning.testing import tiny_llama

    base, ref = workdir / f"base-{size}", workdir / f"ref-{size}"
    if (ref / "config.json").exists():
        return str(base), str(ref)
    _, tok = tiny_llama(seed=seed)  # a small tokenizer: the benchmark's data are token ids
    torch.manual_seed(seed)
    cfg = LlamaConfig(**SIZES[size], max_position_embeddings=4096, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(base)
    tok.save_pretrained(base)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    model.save_pretrained(ref)
    tok.save_pretrained(ref)
    return str(base), str(ref)


def worker(args) -> dict:
    """Train configuration ``args.worker`` for warm-up + timed steps; return its record."""
    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.trainer import AnchoredSFTTrainer

    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    total = args.warmup + args.steps
    rng = np.random.default_rng(args.seed)
    model = AutoModelForCausalLM.from_pretrained(args.base)
    tok = AutoTokenizer.from_pretrained(args.base)
    vocab = model.config.vocab_size
    rows = []
    for _ in range(args.batch_size * (total + 1)):
        ids = rng.integers(10, vocab, size=args.seq_len).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * (args.seq_len // 2) + ids[args.seq_len // 2 :]})
    rec: dict = {"config": args.worker, "step_seconds": [], "device": "cuda" if cuda else "cpu"}

    class Timer(TrainerCallback):
        def on_train_begin(self, a, state, control, **kw):
            sync()
            rec["setup_seconds"] = time.perf_counter() - t_start

        def on_step_begin(self, a, state, control, **kw):
            sync()
            self.t0 = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            sync()
            rec["step_seconds"].append(time.perf_counter() - self.t0)
            if cuda and state.global_step == args.warmup:
                rec["peak_until_warmup_gib"] = torch.cuda.max_memory_allocated() / 2**30
                torch.cuda.reset_peak_memory_stats()

    with tempfile.TemporaryDirectory() as out:
        cfg = AnchoredSFTConfig(
            output_dir=out,
            **CONFIGS[args.worker],
            **({"reference_model": args.ref} if args.worker != "sft" else {}),
            outer_iterations=1,
            inner_epochs=1,
            max_steps=total,
            per_device_train_batch_size=args.batch_size,
            learning_rate=1e-5,
            report_to="none",
            save_strategy="no",
            logging_steps=10**6,
            seed=args.seed,
            anchor_cache_dir=str(Path(out) / "anchor"),
            disable_tqdm=True,
        )
        t_start = time.perf_counter()
        tr = AnchoredSFTTrainer(model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[Timer()])
        tr.train()
    if cuda:
        rec["peak_steady_gib"] = torch.cuda.max_memory_allocated() / 2**30
        rec["peak_process_gib"] = max(rec["peak_steady_gib"], rec.get("peak_until_warmup_gib", 0.0))
    rec["bf16"] = bool(cfg.bf16)
    rec["timed_step_seconds"] = rec["step_seconds"][args.warmup :]
    return rec


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=list(SIZES), default="1b")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per configuration and round")
    ap.add_argument("--warmup", type=int, default=5, help="discarded steps per configuration and round")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--output", default=None)
    ap.add_argument("--worker", choices=ORDER, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--base", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ref", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    import torch

    if not torch.cuda.is_available() and args.size != "tiny":
        sys.exit("no GPU: this benchmark is for a GPU machine (on a CPU: --size tiny checks that it runs)")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gpu-step-cost-"))
    t0 = time.perf_counter()
    base, ref = prepare_models(args.size, workdir, args.seed)
    runs: dict[str, list[dict]] = {n: [] for n in ORDER}
    for r in range(args.rounds):
        for n in ORDER[r % len(ORDER) :] + ORDER[: r % len(ORDER)]:
            cmd = [sys.executable, __file__, "--worker", n, "--base", base, "--ref", ref]
            for k in ("steps", "warmup", "batch_size", "seq_len", "seed"):
                cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{n} failed:\n{proc.stderr[-4000:]}")
            runs[n].append(json.loads(line[len("RESULT ") :]))
            print(f"[round {r}] {n}: median step {statistics.median(runs[n][-1]['timed_step_seconds']):.4f} s", flush=True)
    summary = {}
    for n, rs in runs.items():
        steps = [s for r in rs for s in r["timed_step_seconds"]]
        summary[n] = {
            "median_step_seconds": statistics.median(steps),
            "setup_seconds": statistics.median(r["setup_seconds"] for r in rs),
            "peak_steady_gib": max((r.get("peak_steady_gib") for r in rs), default=None),
            "peak_process_gib": max((r.get("peak_process_gib") for r in rs), default=None),
        }
    for n, s in summary.items():
        s["step_ratio_to_sft"] = s["median_step_seconds"] / summary["sft"]["median_step_seconds"]
        for k in ("peak_steady_gib", "peak_process_gib"):
            if s[k] is not None:
                s[k.replace("_gib", "_ratio_to_sft")] = s[k] / summary["sft"][k]
    result = {
        "command": "python benchmarks/gpu_step_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "size": args.size,
        "settings": {k: getattr(args, k) for k in ("steps", "warmup", "batch_size", "seq_len", "rounds", "seed")},
        "machine": {
            "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
        },
        "wall_seconds": time.perf_counter() - t0,
        "summary": summary,
        "runs": runs,
    }
    for n, s in summary.items():
        peak = "" if s["peak_steady_gib"] is None else f", steady peak {s['peak_steady_gib']:.2f} GiB"
        print(f"{n:15s} step {s['median_step_seconds']:.4f} s ({s['step_ratio_to_sft']:.3f}x SFT){peak}")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
