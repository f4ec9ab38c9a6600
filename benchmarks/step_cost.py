"""Per-step cost of Anchored Learning vs plain SFT: time and peak memory.

    python benchmarks/step_cost.py [--model smollm2|tiny] [--steps N] [--warmup W]
                                   [--output results/benchmarks/step_cost_<model>.json]

What is measured (all with the real ``AnchoredSFTTrainer.train()``, i.e. what a user runs):

* configurations: (a) ``method="sft"``, (b) ``method="anchored", anchor_source="live"``
  (frozen snapshot + reference models in memory), (c) ``method="anchored", anchor_source="cache"``.
  Every other setting is the ``AnchoredSFTConfig`` default (e.g. activation checkpointing on, fused
  AdamW, max_grad_norm 1.0) unless ``--no-gradient-checkpointing`` is given.
* step time: the three trainers run in ONE process, each ``trainer.train()`` in its own thread, and a
  turn-taking callback lets exactly one of them run at a time, one optimizer step per turn, the order
  rotating every round (sft, live, cache / live, cache, sft / ...).  A step's time is the wall time
  from receiving the turn to ``on_step_end``: data collation, forward, loss, backward, gradient
  clipping, the AdamW step, scheduler step, zero_grad (and the Trainer's periodic logging).  The first
  ``--warmup`` steps of every trainer are discarded (the first one also builds the caches / loads
  the frozen models; those one-off costs are timed separately).  Ratios are median(config) /
  median(sft) from that same interleaved run.
* peak memory: ``ru_maxrss`` is a process-lifetime high-water mark, so each configuration runs in
  its OWN fresh subprocess (same data, same settings, ``--mem-steps`` steps).  Inside it the Linux
  high-water mark ``VmHWM`` is reset (``echo 5 > /proc/self/clear_refs``) at phase boundaries, so we
  get the peak RSS of (1) setup (model load + trainer init), (2) the first step (cache build / frozen
  model load, optimizer-state allocation), (3) the steady-state steps after it.  Reported: the
  process peak (= ru_maxrss) and the steady-state peak, absolute and as increments over the RSS after
  imports, plus ratios to SFT.  (``ru_maxrss`` is not used: through fork+exec Linux carries the
  parent's high-water mark into the child's ``ru_maxrss``.)
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
import threading
import time
from pathlib import Path

CONFIGS = {
    "sft": {"method": "sft"},
    "live": {"method": "anchored", "anchor_source": "live"},
    "cache": {"method": "anchored", "anchor_source": "cache"},
}
ORDER = ["sft", "live", "cache"]


# ------------------------------------------------------------------------------------------- memory


def _status(field: str) -> int:
    """``VmRSS``/``VmHWM`` of this process in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu() -> float:
    """CPU seconds (user + system) of the whole process, all threads (OpenMP workers included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ------------------------------------------------------------------------------------------- setup


def machine_info() -> dict:
    import torch

    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import transformers
    import trl

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

    base_dir, ref_dir = workdir / "base", workdir / "ref"
    if (ref_dir / "config.json").exists():
        return str(base_dir if model == "tiny" else _smollm2_path()), str(ref_dir)
    if model == "tiny":
        from anchored_learning.testing import tiny_llama

        m, tok = tiny_llama(seed=seed)
        m.save_pretrained(base_dir)
        tok.save_pretrained(base_dir)
        base = str(base_dir)
    else:
        base = _smollm2_path()
    from anchored_learning.models import load_model_and_tokenizer

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


def _smollm2_path() -> str:
    from anchored_learning.models import resolve_model_path

    return resolve_model_path(None)


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
        labels = [-100] * prompt_len + ids[prompt_len:]
        rows.append({"input_ids": ids, "labels": labels})
    return Dataset.from_list(rows)


def build_trainer(name: str, args, base: str, ref: str, workdir: Path, callbacks=()):
    import torch

    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.models import load_model_and_tokenizer
    from anchored_learning.trainer import AnchoredSFTTrainer

    torch.manual_seed(args.seed)
    model, tok = load_model_and_tokenizer(base)
    model.train()
    n_examples = max(64, args.batch_size * (args.warmup + args.steps + 1))
    data = make_dataset(model.config.vocab_size, n_examples, args.seq_len, args.seed, tok.eos_token_id)
    out = workdir / f"run-{name}-{os.getpid()}-{threading.get_ident()}"
    extra = {}
    if args.no_gradient_checkpointing:
        extra["gradient_checkpointing"] = False
    cfg = AnchoredSFTConfig(
        output_dir=str(out),
        **CONFIGS[name],
        **({"reference_model": ref} if CONFIGS[name]["method"] != "sft" else {}),
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
        **extra,
    )
    tr = AnchoredSFTTrainer(model, args=cfg, train_dataset=data, processing_class=tok, callbacks=list(callbacks))
    return tr, data


class BuildTimer:
    """Times ``HiddenStateCache.build`` and the trainer's one-off anchor set-up (class-level patch)."""

    def __init__(self):
        self.records: list[dict] = []
        self._lock = threading.Lock()

    def install(self):
        from anchored_learning import anchor

        orig = anchor.HiddenStateCache.build.__func__
        timer = self

        def build(cls, path, model, examples, collate, **kw):
            t0 = time.perf_counter()
            out = orig(cls, path, model, examples, collate, **kw)
            dt = time.perf_counter() - t0
            p = Path(path)
            hidden = p / "hidden.npy"
            with timer._lock:
                timer.records.append(
                    {
                        "path": str(p),
                        "kind": (kw.get("extra_manifest") or {}).get("kind"),
                        "seconds": dt,
                        "num_examples": len(examples),
                        "response_tokens": int(out.manifest["num_rows"]),
                        "hidden_npy_bytes": hidden.stat().st_size,
                        "head_pt_bytes": (p / "head.pt").stat().st_size,
                        "hidden_size": int(out.manifest["hidden_size"]),
                    }
                )
            return out

        anchor.HiddenStateCache.build = classmethod(build)


def wrap_setup_timers(tr, sink: dict):
    """Time the trainer's lazy one-off anchor set-up (runs inside the first training step)."""
    for attr in ("_ensure_reference", "_maybe_refresh"):
        orig = getattr(tr, attr)

        def timed(*a, _orig=orig, _attr=attr, **k):
            t0 = time.perf_counter()
            r = _orig(*a, **k)
            sink[_attr] = sink.get(_attr, 0.0) + time.perf_counter() - t0
            return r

        setattr(tr, attr, timed)


# ------------------------------------------------------------------------------------------- timing (interleaved)


class TurnScheduler:
    """One trainer runs at a time; turns follow a fixed schedule of config names."""

    def __init__(self, schedule: list[str]):
        self.schedule = schedule
        self.ptr = 0
        self.cv = threading.Condition()
        self.failed: set[str] = set()

    def current(self) -> str | None:
        while self.ptr < len(self.schedule) and self.schedule[self.ptr] in self.failed:
            self.ptr += 1
        return self.schedule[self.ptr] if self.ptr < len(self.schedule) else None

    def wait_turn(self, name: str):
        with self.cv:
            self.cv.wait_for(lambda: self.current() == name or self.current() is None)

    def pass_turn(self):
        with self.cv:
            self.ptr += 1
            self.cv.notify_all()

    def fail(self, name: str):
        with self.cv:
            self.failed.add(name)
            self.cv.notify_all()


def make_turn_callback(name: str, sched: TurnScheduler, times: list[float], cpu_times: list[float], total: int):
    from transformers import TrainerCallback

    class Turn(TrainerCallback):
        t0 = 0.0
        c0 = 0.0

        def _start(self):
            self.t0 = time.perf_counter()
            self.c0 = _cpu()

        def on_train_begin(self, args, state, control, **kw):
            sched.wait_turn(name)
            self._start()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)
            cpu_times.append(_cpu() - self.c0)
            print(f"[timing] {name} step {state.global_step}: {times[-1]:.3f}s wall, {cpu_times[-1]:.3f}s cpu", file=sys.stderr, flush=True)
            if state.global_step >= total:
                return  # keep the turn until train() has fully returned (see run_thread)
            sched.pass_turn()
            sched.wait_turn(name)
            self._start()

    return Turn()


def run_timing(args, base: str, ref: str, workdir: Path) -> dict:
    import torch

    timer = BuildTimer()
    timer.install()
    rounds = args.total_steps
    schedule = []
    for r in range(rounds):
        k = r % len(ORDER)
        schedule += ORDER[k:] + ORDER[:k]
    sched = TurnScheduler(schedule)
    times = {n: [] for n in ORDER}
    cpu_times = {n: [] for n in ORDER}
    setup = {n: {} for n in ORDER}
    errors: dict[str, str] = {}
    trainers = {}
    ready = {n: threading.Event() for n in ORDER}

    for n in ORDER:  # build trainers one after the other (main thread)
        tr, _ = build_trainer(n, args, base, ref, workdir, callbacks=[make_turn_callback(n, sched, times[n], cpu_times[n], args.total_steps)])
        wrap_setup_timers(tr, setup[n])
        trainers[n] = tr

    def run_thread(n):
        try:
            torch.set_num_threads(args.threads)
            trainers[n].train()
        except BaseException as e:  # noqa: BLE001
            import traceback

            errors[n] = traceback.format_exc()
            print(f"[{n}] failed: {e!r}", file=sys.stderr, flush=True)
            sched.fail(n)
            return
        sched.pass_turn()  # the last step's turn is released only here

    threads = []
    t_start = time.perf_counter()
    for n in ORDER:
        th = threading.Thread(target=run_thread, args=(n,), name=f"train-{n}", daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    wall = time.perf_counter() - t_start

    res: dict = {"wall_seconds": wall, "schedule_rounds": rounds, "per_config": {}, "errors": errors}
    w = args.warmup
    for n in ORDER:
        ts = times[n]
        timed = ts[w:]
        res["per_config"][n] = {
            "step_seconds_all": ts,
            "first_step_seconds": ts[0] if ts else None,
            "median_step_seconds": statistics.median(timed) if timed else None,
            "min_step_seconds": min(timed) if timed else None,
            "max_step_seconds": max(timed) if timed else None,
            "n_timed": len(timed),
            "one_off_setup_seconds": setup[n],
            "step_cpu_seconds_all": cpu_times[n],
            "median_step_cpu_seconds": statistics.median(cpu_times[n][w:]) if cpu_times[n][w:] else None,
        }
    sft = res["per_config"]["sft"]["median_step_seconds"]
    for n in ORDER:
        m = res["per_config"][n]["median_step_seconds"]
        res["per_config"][n]["ratio_to_sft"] = (m / sft) if (m and sft) else None
        c, cs = res["per_config"][n]["median_step_cpu_seconds"], res["per_config"]["sft"]["median_step_cpu_seconds"]
        res["per_config"][n]["cpu_ratio_to_sft"] = (c / cs) if (c and cs) else None
    # paired per-round ratios (same round = adjacent in time): a robustness check of the median ratio
    for n in ORDER:
        pairs = [a / b for a, b in zip(times[n][w:], times["sft"][w:])]
        res["per_config"][n]["median_paired_ratio"] = statistics.median(pairs) if pairs else None
    res["cache_builds"] = timer.records
    # disk sizes of the cache folders of the cache config
    for tr in trainers.values():
        tr._reference = None
        tr._snapshot = None
    return res


# ------------------------------------------------------------------------------------------- memory (one config per subprocess)


def memory_worker(args) -> dict:
    """Run one config alone in this (fresh) process and report phase peaks (bytes)."""
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401

    import anchored_learning.trainer  # noqa: F401
    from transformers import TrainerCallback

    torch.set_num_threads(args.threads)
    rss_imports = _status("VmRSS")
    rec: dict = {"config": args.worker_config, "rss_after_imports": rss_imports, "hwm_reset_supported": _reset_hwm()}
    step_times: list[float] = []

    class Phases(TrainerCallback):
        t = 0.0

        def on_train_begin(self, a, state, control, **kw):
            rec["peak_setup"] = _status("VmHWM")  # model load, trainer init, optimizer creation
            rec["rss_train_begin"] = _status("VmRSS")
            _reset_hwm()
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            now = time.perf_counter()
            step_times.append(now - self.t)
            self.t = now
            if state.global_step == 1:
                rec["peak_first_step"] = _status("VmHWM")  # cache build / frozen models + Adam states
                rec["rss_after_first_step"] = _status("VmRSS")
                _reset_hwm()
            if state.global_step == a.max_steps:
                rec["peak_steady_steps"] = _status("VmHWM")  # steps 2..n
                rec["rss_end"] = _status("VmRSS")

    workdir = Path(args.workdir)
    timer = BuildTimer()
    timer.install()
    setup: dict = {}
    tr, _ = build_trainer(args.worker_config, args, args.base, args.ref, workdir, callbacks=[Phases()])
    wrap_setup_timers(tr, setup)
    tr.train()
    # ru_maxrss is NOT usable here: Linux carries the pre-exec image's high-water mark (the forked
    # copy of the big parent process) into the child's ru_maxrss.  VmHWM was reset after imports.
    rec["ru_maxrss_including_parent_image"] = _maxrss()
    rec["process_peak"] = max(rec["rss_after_imports"], rec["peak_setup"], rec["peak_first_step"], rec["peak_steady_steps"])
    rec["step_seconds_all"] = step_times
    rec["one_off_setup_seconds"] = setup
    rec["cache_builds"] = timer.records
    shutil.rmtree(tr.args.output_dir, ignore_errors=True)
    return rec


def run_memory(args, base: str, ref: str, workdir: Path) -> dict:
    out = {}
    for n in ORDER:
        cmd = [
            sys.executable, os.path.abspath(__file__), "--worker-config", n, "--workdir", str(workdir),
            "--base", base, "--ref", ref, "--model", args.model, "--steps", str(args.mem_steps - 1), "--warmup", "1",
            "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--seed", str(args.seed),
            "--threads", str(args.threads),
        ] + (["--no-gradient-checkpointing"] if args.no_gradient_checkpointing else [])
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            out[n] = {"error": p.stderr[-4000:]}
            print(f"[memory {n}] FAILED\n{p.stderr[-4000:]}", file=sys.stderr)
            continue
        line = [l for l in p.stdout.splitlines() if l.startswith("@@RESULT@@")][-1]
        out[n] = json.loads(line[len("@@RESULT@@"):])
        out[n]["subprocess_wall_seconds"] = time.perf_counter() - t0
        print(f"[memory {n}] peak {out[n]['process_peak'] / 2**20:.0f} MiB, steady {out[n].get('peak_steady_steps', 0) / 2**20:.0f} MiB", flush=True)
    if "sft" in out and "error" not in out["sft"]:
        s = out["sft"]
        for n, r in out.items():
            if "error" in r:
                continue
            r["ratio_process_peak"] = r["process_peak"] / s["process_peak"]
            r["ratio_steady_peak"] = r["peak_steady_steps"] / s["peak_steady_steps"]
            r["increment_process_peak"] = r["process_peak"] - r["rss_after_imports"]
            r["increment_steady_peak"] = r["peak_steady_steps"] - r["rss_after_imports"]
        for n, r in out.items():
            if "error" in r:
                continue
            r["ratio_increment_process_peak"] = r["increment_process_peak"] / out["sft"]["increment_process_peak"]
            r["ratio_increment_steady_peak"] = r["increment_steady_peak"] / out["sft"]["increment_steady_peak"]
            st = r["step_seconds_all"][1:]
            r["median_step_seconds_alone"] = statistics.median(st) if st else None
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
    builds = [b for b in res["timing"]["cache_builds"]]
    cache = {}
    if builds:
        tok = sum(b["response_tokens"] for b in builds)
        sec = sum(b["seconds"] for b in builds)
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
            "hidden_bytes_per_response_token": builds[0]["hidden_npy_bytes"] / builds[0]["response_tokens"],
            "head_pt_bytes_per_cache_fixed": builds[0]["head_pt_bytes"],
            "total_bytes_per_response_token_incl_head_at_this_dataset_size": (builds[0]["hidden_npy_bytes"] + builds[0]["head_pt_bytes"]) / builds[0]["response_tokens"],
            "note": "one cache per frozen model (reference + current snapshot: 2 live on disk); "
            "seconds include the prompt positions' forward (response ~half of each sequence)",
        }
    return {"configs": rows, "cache": cache}


def print_table(summary: dict):
    print("\nconfig | median step s | ratio (paired) | cpu-time ratio | proc peak MiB (ratio) | steady peak MiB (ratio) | 1st-step peak MiB")
    for n, r in summary["configs"].items():
        print(
            f"{n:6s} | {r['median_step_s']:.3f} | {r['step_time_ratio']:.3f} ({r['paired_step_time_ratio']:.3f}) | {r['step_cpu_time_ratio']:.3f} | "
            f"{r.get('process_peak_mib', float('nan')):.0f} ({r.get('process_peak_ratio', float('nan')):.3f}) | "
            f"{r.get('steady_peak_mib', float('nan')):.0f} ({r.get('steady_peak_ratio', float('nan')):.3f}) | "
            f"{r.get('first_step_peak_mib', float('nan')):.0f}"
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
    ap.add_argument("--output", default=None)
    ap.add_argument("--workdir", default=None)
    # internal: memory worker
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
        rec = memory_worker(args)
        print("@@RESULT@@" + json.dumps(rec), flush=True)
        return

    import torch

    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=f"step_cost_{args.model}_"))
    workdir.mkdir(parents=True, exist_ok=True)
    output = Path(args.output or f"results/benchmarks/step_cost_{args.model}{'_nogc' if args.no_gradient_checkpointing else ''}.json")
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
        print(f"  {n}: median {r['median_step_seconds']} s  ratio {r['ratio_to_sft']}  steps {['%.3f' % x for x in r['step_seconds_all']]}", flush=True)
    if not args.skip_memory:
        t0 = time.perf_counter()
        res["memory"] = run_memory(args, base, ref, workdir)
        print(f"[step_cost] memory done in {time.perf_counter() - t0:.0f}s", flush=True)
    else:
        res["memory"] = {}
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
