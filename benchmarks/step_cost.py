"""Per-step cost of Anchored Learning vs plain SFT: time and peak memory.

    python benchmarks/step_cost.py [--model smollm2|tiny] [--steps N] [--warmup W] [--mem-steps M]
                                   [--batch-size B] [--seq-len L] [--seed S] [--threads T]
                                   [--no-gradient-checkpointing] [--skip-memory] [--workdir DIR]
                                   [--output results/benchmarks/step_cost_<model>[_nogc].json]

What is measured (all with the real ``AnchoredSFTTrainer.train()``, i.e. what a user runs):

* configurations: (a) ``method="sft"``, (b) ``method="anchored", anchor_source="live"``
  (frozen snapshot + reference models in memory), (c) ``method="anchored", anchor_source="cache"``.
  Every other setting is the ``AnchoredSFTConfig`` default (e.g. activation checkpointing on, fused
  AdamW, max_grad_norm 1.0) unless ``--no-gradient-checkpointing`` is given.
* every configuration runs in its own subprocess (a worker: this script with ``--worker-config``),
  which builds its trainer, trains, and reports its step times, phase peaks and one-off costs.
  The worker waits for a turn (a line on its stdin) before building its trainer, at the start of
  training and after every optimizer step, and announces each step's end on its stdout.
* step time: the three workers run side by side and the parent gives the turn to exactly one of
  them at a time (the trainers are built one after the other), one optimizer step per turn, the
  order rotating every round (sft, live, cache / live, cache, sft / ...).  A step's time is the
  wall time from receiving the turn to ``on_step_end``: data collation, forward, loss, backward,
  gradient clipping, the AdamW step, scheduler step, zero_grad (and the Trainer's periodic
  logging).  The first ``--warmup`` steps of every configuration are discarded (the first one also
  builds the caches / loads the frozen models; those one-off costs are timed separately).  Ratios
  are median(config) / median(sft) from that same interleaved run.
* peak memory: each configuration then runs once more ALONE in a fresh worker (same data, same
  settings, ``--mem-steps`` steps).  Inside every worker the Linux high-water mark ``VmHWM`` is
  reset (``echo 5 > /proc/self/clear_refs``) at phase boundaries, so we get the peak RSS of (1)
  setup (model load + trainer init), (2) the first step (cache build / frozen model load,
  optimizer-state allocation), (3) the steady-state steps after it.  Reported: the process peak
  and the steady-state peak, absolute and as increments over the RSS after imports, plus ratios to
  SFT.  (``ru_maxrss`` is not used: through fork+exec Linux carries the parent's high-water mark
  into the child's ``ru_maxrss``.)
* CPU time: per step, the process CPU time (all threads) is recorded next to wall time; with other
  jobs sharing the cores it is a less contention-sensitive second measure (ratio reported too).
* cache build: ``HiddenStateCache.build`` wall time (per build and per 1,000 response tokens) and the
  on-disk size (``hidden.npy`` per response token, plus the fixed ``head.pt``).

Data: synthetic pre-tokenised examples, ``--seq-len`` tokens each (prompt = first half, labels -100;
response = second half), random token ids, no padding; ``--batch-size`` per step, no accumulation.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procmem import maxrss, reset_hwm, rss  # benchmarks/procmem.py (this script's folder is on sys.path)

CONFIGS = {
    "sft": {"method": "sft"},
    "live": {"method": "anchored", "anchor_source": "live"},
    "cache": {"method": "anchored", "anchor_source": "cache"},
}
ORDER = ["sft", "live", "cache"]
SETUP_HOOKS = ("_ensure_reference", "_take_snapshot")  # anchor set-up: the reference once, the snapshot per refresh
MARK = "@@"  # worker -> parent protocol lines: @@READY@@{}, @@STEP@@{...}, @@RESULT@@{...}


def _cpu() -> float:
    """CPU seconds (user + system) of the whole process, all threads (OpenMP workers included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


# ------------------------------------------------------------------------------------------- setup (parent)


def machine_info() -> dict:
    import torch
    import transformers
    import trl

    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "python": platform.python_version(),
        "mem_total_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_at_start": os.getloadavg(),
    }


def prepare_models(model: str, workdir: Path, seed: int) -> tuple[str, str]:
    """Write (or find) the base model folder and a reference model folder; return their paths."""
    import torch

    from anchored_learning.models import load_model_and_tokenizer, resolve_model_path

    base_dir, ref_dir = workdir / "base", workdir / "ref"
    base = str(base_dir) if model == "tiny" else resolve_model_path(None)
    if (ref_dir / "config.json").exists():
        return base, str(ref_dir)
    if model == "tiny":
        from anchored_learning.testing import tiny_llama

        m, tok = tiny_llama(seed=seed)
        m.save_pretrained(base_dir)
        tok.save_pretrained(base_dir)
    # the reference: the base model with every weight perturbed a little (stands in for p_sft; the
    # cost of a forward pass does not depend on the values)
    m, tok = load_model_and_tokenizer(base)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 1e-3 * (p.float().std() if p.numel() > 1 else 1.0))
    m.save_pretrained(ref_dir)
    tok.save_pretrained(ref_dir)
    return base, str(ref_dir)


# ------------------------------------------------------------------------------------------- worker (one config, own process)


def make_dataset(vocab: int, n: int, seq_len: int, seed: int, eos: int | None):
    import numpy as np
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    lo = 0 if vocab <= 300 else 100  # stay clear of special tokens
    hi = 256 if vocab <= 300 else vocab
    prompt_len = seq_len // 2
    rows = []
    for _ in range(n):
        ids = rng.integers(lo, hi, size=seq_len).tolist()
        if eos is not None:
            ids[-1] = int(eos)
        rows.append({"input_ids": ids, "labels": [-100] * prompt_len + ids[prompt_len:]})
    return Dataset.from_list(rows)


def build_trainer(name: str, args, callbacks=()):
    """The ``AnchoredSFTTrainer`` of configuration ``name`` on the synthetic data (CPU)."""
    import torch

    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.models import load_model_and_tokenizer
    from anchored_learning.trainer import AnchoredSFTTrainer

    torch.manual_seed(args.seed)
    model, tok = load_model_and_tokenizer(args.base)
    model.train()
    n_examples = max(64, args.batch_size * (args.total_steps + 1))
    data = make_dataset(model.config.vocab_size, n_examples, args.seq_len, args.seed, tok.eos_token_id)
    out = Path(args.workdir) / f"run-{name}-{os.getpid()}"
    cfg = AnchoredSFTConfig(
        output_dir=str(out),
        **CONFIGS[name],
        **({"reference_model": args.ref} if CONFIGS[name]["method"] != "sft" else {}),
        outer_iterations=1,
        inner_epochs=1,
        max_steps=args.total_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=1e-5,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=args.seed,
        keep_anchor_cache=True,
        anchor_cache_dir=str(out / "anchor"),
        disable_tqdm=True,
        **({"activation_checkpointing": False} if args.no_gradient_checkpointing else {}),
        bf16=args.precision == "bf16",
    )
    return AnchoredSFTTrainer(model, args=cfg, train_dataset=data, processing_class=tok, callbacks=list(callbacks))


def _say(tag: str, payload: dict) -> None:
    print(f"{MARK}{tag}{MARK}{json.dumps(payload)}", flush=True)


def _wait_turn() -> None:
    if not sys.stdin.readline():  # the parent is gone
        sys.exit(1)


def record_cache_builds() -> list[dict]:
    """Patch ``HiddenStateCache.build`` (class-level) to time every build; returns the record list."""
    from anchored_learning import anchor_cache

    orig = anchor_cache.HiddenStateCache.build.__func__
    records: list[dict] = []

    def build(cls, path, model, examples, collate, **kw):
        t0 = time.perf_counter()
        out = orig(cls, path, model, examples, collate, **kw)
        p = Path(path)
        records.append(
            {
                "path": str(p),
                "kind": (kw.get("extra_manifest") or {}).get("kind"),
                "seconds": time.perf_counter() - t0,
                "num_examples": len(examples),
                "response_tokens": int(out.manifest["num_rows"]),
                "hidden_npy_bytes": (p / "hidden.npy").stat().st_size,
                "head_pt_bytes": (p / "head.pt").stat().st_size,
                "hidden_size": int(out.manifest["hidden_size"]),
            }
        )
        return out

    anchor_cache.HiddenStateCache.build = classmethod(build)
    return records


def time_setup_hooks(tr) -> dict:
    """Time the trainer's anchor set-up (run by its OuterLoopCallback at epoch starts, not inside a step)."""
    sink: dict = {}
    for attr in SETUP_HOOKS:
        orig = getattr(tr, attr, None)
        if orig is None:
            continue

        def timed(*a, _orig=orig, _attr=attr, **k):
            t0 = time.perf_counter()
            r = _orig(*a, **k)
            sink[_attr] = sink.get(_attr, 0.0) + time.perf_counter() - t0
            return r

        setattr(tr, attr, timed)
    return sink


def _callbacks(rec: dict):
    """(PeakRSS, StepTimer): phase peaks into ``rec``; one turn per step, timed (wall + CPU)."""
    from transformers import TrainerCallback

    class PeakRSS(TrainerCallback):
        def on_train_begin(self, a, state, control, **kw):
            rec["peak_setup"] = rss("VmHWM")  # model load, trainer init, optimizer creation
            rec["rss_train_begin"] = rss("VmRSS")
            reset_hwm()

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == 1:
                rec["peak_first_step"] = rss("VmHWM")  # cache build / frozen models + Adam states
                rec["rss_after_first_step"] = rss("VmRSS")
                reset_hwm()
            if state.global_step == a.max_steps:
                rec["peak_steady_steps"] = rss("VmHWM")  # steps 2..n
                rec["rss_end"] = rss("VmRSS")

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.wall: list[float] = []
            self.cpu: list[float] = []
            self.t0 = self.c0 = 0.0

        def _turn(self):
            _wait_turn()
            self.t0, self.c0 = time.perf_counter(), _cpu()

        def on_train_begin(self, a, state, control, **kw):
            self._turn()

        def on_step_end(self, a, state, control, **kw):
            self.wall.append(time.perf_counter() - self.t0)
            self.cpu.append(_cpu() - self.c0)
            _say("STEP", {"step": state.global_step, "wall": self.wall[-1], "cpu": self.cpu[-1]})
            if state.global_step < a.max_steps:  # the last turn ends when the worker exits
                self._turn()

    return PeakRSS(), StepTimer()


def worker(args) -> dict:
    """Run configuration ``args.worker_config`` in this (fresh) process, one step per turn."""
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401

    import anchored_learning.trainer  # noqa: F401

    torch.set_num_threads(args.threads)
    rec: dict = {"config": args.worker_config, "rss_after_imports": rss("VmRSS"), "hwm_reset_supported": reset_hwm()}
    _wait_turn()  # trainers are built one at a time
    builds = record_cache_builds()
    peaks, timer = _callbacks(rec)
    tr = build_trainer(args.worker_config, args, callbacks=[peaks, timer])
    setup = time_setup_hooks(tr)
    _say("READY", {})
    tr.train()
    # ru_maxrss is NOT usable here: Linux carries the pre-exec image's high-water mark (the forked
    # copy of the parent process) into the child's ru_maxrss.  VmHWM was reset after imports.
    rec["ru_maxrss_including_parent_image"] = maxrss()
    rec["process_peak"] = max(rec["rss_after_imports"], rec["peak_setup"], rec["peak_first_step"], rec["peak_steady_steps"])
    rec["step_seconds_all"] = timer.wall
    rec["step_cpu_seconds_all"] = timer.cpu
    rec["one_off_setup_seconds"] = setup
    rec["cache_builds"] = builds
    shutil.rmtree(tr.args.output_dir, ignore_errors=True)
    return rec


# ------------------------------------------------------------------------------------------- parent: run workers


def run_workers(
    args, base: str, ref: str, workdir: Path, schedule: list[str], steps: int, warmup: int, label: str
) -> tuple[dict, float]:
    """One worker per configuration in ``schedule``; each worker's turns follow ``schedule``.

    Returns ({config: {"steps": [STEP messages], "result": worker record or None, "error": text or None}},
    wall seconds from the first training turn, after every trainer is built, to the last worker's end).
    """
    names = list(dict.fromkeys(schedule))
    total = warmup + steps
    runs: dict = {}
    for n in names:
        log = tempfile.TemporaryFile("w+", dir=workdir)
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker-config",
            n,
            "--workdir",
            str(workdir),
            "--base",
            base,
            "--ref",
            ref,
            "--model",
            args.model,
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            "--batch-size",
            str(args.batch_size),
            "--seq-len",
            str(args.seq_len),
            "--seed",
            str(args.seed),
            "--threads",
            str(args.threads),
            "--precision",
            args.precision,
        ] + (["--no-gradient-checkpointing"] if args.no_gradient_checkpointing else [])
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        runs[n] = {"proc": proc, "log": log, "steps": [], "result": None, "error": None}

    def turn(n: str, until: str, give: bool = True) -> dict | None:
        """Give ``n`` the turn (unless ``give``=False) and read its output up to an ``until`` line."""
        r = runs[n]
        if r["error"] is not None:
            return None
        try:
            if give:
                r["proc"].stdin.write("go\n")
                r["proc"].stdin.flush()
            while line := r["proc"].stdout.readline():
                if line.startswith(MARK + until + MARK):
                    return json.loads(line[len(MARK + until + MARK) :])
        except BrokenPipeError:
            pass
        r["proc"].kill()
        r["proc"].wait()
        r["log"].seek(0)
        r["error"] = r["log"].read()[-4000:] or f"worker exited with {r['proc'].returncode}"
        print(f"[{label} {n}] FAILED\n{r['error']}", file=sys.stderr, flush=True)
        return None

    for n in names:
        turn(n, "READY")
    t0 = time.perf_counter()
    for n in schedule:
        msg = turn(n, "STEP")
        if msg is None:
            continue
        runs[n]["steps"].append(msg)
        print(f"[{label}] {n} step {msg['step']}: {msg['wall']:.3f}s wall, {msg['cpu']:.3f}s cpu", file=sys.stderr, flush=True)
        if msg["step"] >= total:  # the turn is kept until train() has fully returned
            runs[n]["result"] = turn(n, "RESULT", give=False)
    wall = time.perf_counter() - t0
    for r in runs.values():
        r["proc"].stdin.close()
        r["proc"].wait()
        r["log"].close()
        del r["proc"], r["log"]
    return runs, wall


def run_timing(args, base: str, ref: str, workdir: Path) -> dict:
    rounds = args.total_steps
    schedule = []
    for r in range(rounds):
        k = r % len(ORDER)
        schedule += ORDER[k:] + ORDER[:k]
    runs, wall_seconds = run_workers(args, base, ref, workdir, schedule, args.steps, args.warmup, "timing")
    res: dict = {
        "wall_seconds": wall_seconds,
        "schedule_rounds": rounds,
        "per_config": {},
        "errors": {n: r["error"] for n, r in runs.items() if r["error"] is not None},
    }
    w = args.warmup
    wall = {n: [s["wall"] for s in runs[n]["steps"]] for n in ORDER}
    cpu = {n: [s["cpu"] for s in runs[n]["steps"]] for n in ORDER}
    for n in ORDER:
        ts, timed = wall[n], wall[n][w:]
        res["per_config"][n] = {
            "step_seconds_all": ts,
            "first_step_seconds": ts[0] if ts else None,
            "median_step_seconds": _median(timed),
            "min_step_seconds": min(timed, default=None),
            "max_step_seconds": max(timed, default=None),
            "n_timed": len(timed),
            "one_off_setup_seconds": (runs[n]["result"] or {}).get("one_off_setup_seconds", {}),
            "step_cpu_seconds_all": cpu[n],
            "median_step_cpu_seconds": _median(cpu[n][w:]),
        }
    sft = res["per_config"]["sft"]
    for n in ORDER:
        r = res["per_config"][n]
        m, c = r["median_step_seconds"], r["median_step_cpu_seconds"]
        r["ratio_to_sft"] = (m / sft["median_step_seconds"]) if (m and sft["median_step_seconds"]) else None
        r["cpu_ratio_to_sft"] = (c / sft["median_step_cpu_seconds"]) if (c and sft["median_step_cpu_seconds"]) else None
    # paired per-round ratios (same round = adjacent in time): a robustness check of the median ratio
    for n in ORDER:
        res["per_config"][n]["median_paired_ratio"] = _median([a / b for a, b in zip(wall[n][w:], wall["sft"][w:])])
    res["cache_builds"] = [b for n in ORDER for b in (runs[n]["result"] or {}).get("cache_builds", [])]
    return res


def run_memory(args, base: str, ref: str, workdir: Path) -> dict:
    out = {}
    for n in ORDER:  # one after the other, each alone
        t0 = time.perf_counter()
        run = run_workers(args, base, ref, workdir, [n] * args.mem_steps, args.mem_steps - 1, 1, "memory")[0][n]
        if run["result"] is None:
            out[n] = {"error": run["error"]}
            continue
        out[n] = run["result"]
        del out[n]["step_cpu_seconds_all"]
        out[n]["subprocess_wall_seconds"] = time.perf_counter() - t0
        print(
            f"[memory {n}] peak {out[n]['process_peak'] / 2**20:.0f} MiB, steady {out[n].get('peak_steady_steps', 0) / 2**20:.0f} MiB",
            flush=True,
        )
    if "sft" in out and "error" not in out["sft"]:
        ok = {n: r for n, r in out.items() if "error" not in r}
        s = out["sft"]
        for r in ok.values():  # sft first (ORDER), so its increments exist when the others need them
            r["ratio_process_peak"] = r["process_peak"] / s["process_peak"]
            r["ratio_steady_peak"] = r["peak_steady_steps"] / s["peak_steady_steps"]
            r["increment_process_peak"] = r["process_peak"] - r["rss_after_imports"]
            r["increment_steady_peak"] = r["peak_steady_steps"] - r["rss_after_imports"]
            r["ratio_increment_process_peak"] = r["increment_process_peak"] / s["increment_process_peak"]
            r["ratio_increment_steady_peak"] = r["increment_steady_peak"] / s["increment_steady_peak"]
            r["median_step_seconds_alone"] = _median(r["step_seconds_all"][1:])
    return out


# ------------------------------------------------------------------------------------------- report


def summarise(res: dict) -> dict:
    t = res["timing"]["per_config"]
    m = res["memory"]
    rows = {}
    for n in ORDER:
        r = {
            "median_step_s": t[n]["median_step_seconds"],
            "step_time_ratio": t[n]["ratio_to_sft"],
            "paired_step_time_ratio": t[n]["median_paired_ratio"],
            "median_step_cpu_s": t[n]["median_step_cpu_seconds"],
            "step_cpu_time_ratio": t[n]["cpu_ratio_to_sft"],
        }
        if n in m and "error" not in m[n]:
            r.update(
                process_peak_mib=m[n]["process_peak"] / 2**20,
                steady_peak_mib=m[n]["peak_steady_steps"] / 2**20,
                first_step_peak_mib=m[n]["peak_first_step"] / 2**20,
                process_peak_ratio=m[n].get("ratio_process_peak"),
                steady_peak_ratio=m[n].get("ratio_steady_peak"),
                increment_process_peak_ratio=m[n].get("ratio_increment_process_peak"),
                median_step_s_alone=m[n].get("median_step_seconds_alone"),
            )
        rows[n] = r
    builds = res["timing"]["cache_builds"]
    cache = {}
    if builds:
        tok = sum(b["response_tokens"] for b in builds)
        sec = sum(b["seconds"] for b in builds)
        b0 = builds[0]
        cache = {
            "builds": len(builds),
            "seconds_per_1000_response_tokens": 1000 * sec / tok,
            "per_build": [
                {
                    "kind": b["kind"],
                    "seconds": b["seconds"],
                    "response_tokens": b["response_tokens"],
                    "seconds_per_1000_response_tokens": 1000 * b["seconds"] / b["response_tokens"],
                }
                for b in builds
            ],
            "hidden_bytes_per_response_token": b0["hidden_npy_bytes"] / b0["response_tokens"],
            "head_pt_bytes_per_cache_fixed": b0["head_pt_bytes"],
            "total_bytes_per_response_token_incl_head_at_this_dataset_size": (b0["hidden_npy_bytes"] + b0["head_pt_bytes"])
            / b0["response_tokens"],
            "note": "one cache per frozen model (reference + current snapshot: 2 live on disk); "
            "seconds include the prompt positions' forward (response ~half of each sequence)",
        }
    return {"configs": rows, "cache": cache}


def print_table(summary: dict):
    nan = float("nan")
    print(
        "\nconfig | median step s | ratio (paired) | cpu-time ratio | proc peak MiB (ratio) | steady peak MiB (ratio) | 1st-step peak MiB"
    )
    for n, r in summary["configs"].items():
        g = {k: (nan if v is None else v) for k, v in r.items()}
        print(
            f"{n:6s} | {g['median_step_s']:.3f} | {g['step_time_ratio']:.3f} ({g['paired_step_time_ratio']:.3f}) | {g['step_cpu_time_ratio']:.3f} | "
            f"{g.get('process_peak_mib', nan):.0f} ({g.get('process_peak_ratio', nan):.3f}) | "
            f"{g.get('steady_peak_mib', nan):.0f} ({g.get('steady_peak_ratio', nan):.3f}) | "
            f"{g.get('first_step_peak_mib', nan):.0f}"
        )
    c = summary["cache"]
    if c:
        print(
            f"cache build: {c['seconds_per_1000_response_tokens']:.3f} s / 1000 response tokens; "
            f"disk {c['hidden_bytes_per_response_token']:.0f} B / response token + {c['head_pt_bytes_per_cache_fixed'] / 2**20:.1f} MiB head per cache"
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per config (after warm-up)")
    ap.add_argument("--warmup", type=int, default=3, help="discarded steps per config (the first builds caches)")
    ap.add_argument("--mem-steps", type=int, default=3, help="steps per memory subprocess (first = set-up)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--no-gradient-checkpointing", action="store_true", help="override the config default (on)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument(
        "--precision", choices=["fp32", "bf16"], default="fp32", help="float32, or bf16 autocast with float32 weights"
    )
    ap.add_argument("--output", default=None)
    ap.add_argument("--workdir", default=None)
    # internal: worker
    ap.add_argument("--worker-config", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--base", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ref", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.threads = args.threads or os.cpu_count()
    args.total_steps = args.warmup + args.steps

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    if args.worker_config:
        _say("RESULT", worker(args))
        return

    import torch

    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=f"step_cost_{args.model}_"))
    workdir.mkdir(parents=True, exist_ok=True)
    output = Path(
        args.output
        or f"results/benchmarks/step_cost_{args.model}{'_nogc' if args.no_gradient_checkpointing else ''}"
        f"{'_bf16' if args.precision == 'bf16' else ''}.json"
    )
    res: dict = {
        "benchmark": "step_cost",
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "machine": machine_info(),
        "seed": args.seed,
        "settings": {
            "model": args.model,
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "response_tokens_per_example": args.seq_len - args.seq_len // 2,
            "loss_positions_per_step": args.batch_size * (args.seq_len - args.seq_len // 2),
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "memory_steps_per_subprocess": args.mem_steps,
            "gradient_checkpointing": not args.no_gradient_checkpointing,
            "precision": args.precision,
            "threads": args.threads,
            "configs": CONFIGS,
        },
    }
    base, ref = prepare_models(args.model, workdir, args.seed)
    res["settings"]["base_model"] = base
    print(f"[step_cost] model {args.model}: base {base}, reference {ref}, workdir {workdir}", flush=True)

    t0 = time.perf_counter()
    res["timing"] = run_timing(args, base, ref, workdir)
    print(f"[step_cost] timing done in {time.perf_counter() - t0:.0f}s", flush=True)
    for n in ORDER:
        r = res["timing"]["per_config"][n]
        print(
            f"  {n}: median {r['median_step_seconds']} s  ratio {r['ratio_to_sft']}  steps {['%.3f' % x for x in r['step_seconds_all']]}",
            flush=True,
        )
    res["memory"] = {}
    if not args.skip_memory:
        t0 = time.perf_counter()
        res["memory"] = run_memory(args, base, ref, workdir)
        print(f"[step_cost] memory done in {time.perf_counter() - t0:.0f}s", flush=True)
    res["summary"] = summarise(res)
    res["wall_seconds"] = time.perf_counter() - t_all
    res["machine"]["loadavg_at_end"] = os.getloadavg()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(res, indent=2))
    print_table(res["summary"])
    print(f"[step_cost] wrote {output} ({res['wall_seconds']:.0f}s)")
    if own_workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
