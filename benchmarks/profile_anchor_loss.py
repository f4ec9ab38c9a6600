"""Where the anchored loss spends time and memory (loss level, SmolLM2-135M shapes).

    python benchmarks/profile_anchor_loss.py [--rows 256] [--vocab 49152] [--hidden 576] [--reps 9]
                                             [--output results/benchmarks/profile_anchor_loss.json]

Isolates the per-step work the anchor adds on top of SFT, for the N response rows of one batch
(default 4 x 64 = 256, the ``step_cost.py`` SmolLM2 setting):

* ``sft``: ``objectives.sft_loss`` forward + backward on student logits ``[N, V]``.
* ``anchored_cache``: ``objectives.anchored_kl_loss`` with snapshot/reference given as
  :class:`anchor_cache.ProjectedLogits` (cached hidden states + frozen heads), forward + backward.
* ``anchored_tensors``: the same loss with precomputed teacher logits (no head projection), to
  separate the projection cost from the KL arithmetic.
* ``project_2``: the two ``ProjectedLogits`` projections alone.
* ``fused_reference``: a closed-form implementation of the same loss and gradient, written here
  only as a reference for what the arithmetic could cost (``grad = tau * (softmax(z/tau) - q) / N``);
  its values/gradients are checked against ``anchored_kl_loss``.

Time: all variants interleaved in one process, warm-up, median of ``--reps``.  Memory: peak RSS
increment of each call (Linux ``VmHWM`` reset via ``/proc/self/clear_refs`` right before the call,
minus RSS before it); tensors of this size (50 MB) are mmap-allocated by glibc and returned on
free, so RSS tracks live tensor memory.  A ``torch.profiler`` table of the cache variant's top ops is
included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from procmem import reset_hwm, rss  # benchmarks/procmem.py (this script's folder is on sys.path)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--hidden", type=int, default=576)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default="results/benchmarks/profile_anchor_loss.json")
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from anchored_learning import objectives as O
    from anchored_learning.anchor_cache import ProjectedLogits

    torch.manual_seed(args.seed)
    N, V, H = args.rows, args.vocab, args.hidden
    w_student = (torch.randn(V, H) * 0.05).requires_grad_(True)
    w_snap = w_student.detach().clone()
    w_ref = w_snap + 0.001 * torch.randn(V, H)
    h_student = torch.randn(N, H)
    h_snap = h_student.clone()
    h_ref = h_student + 0.01 * torch.randn(N, H)
    y = torch.randint(0, V, (N,))

    def student_logits():
        return F.linear(h_student, w_student)  # [N, V] with grad to the head (like the real step)

    def run_sft():
        z = student_logits()
        loss = O.sft_loss(z, y, num_response_tokens=N)
        loss.backward()
        return loss

    def run_cache():
        z = student_logits()
        loss = O.anchored_kl_loss(
            z, ProjectedLogits(h_snap, w_snap), ProjectedLogits(h_ref, w_ref), y, alpha=args.alpha, num_response_tokens=N
        )
        loss.backward()
        return loss

    zt_pre = F.linear(h_snap, w_snap)
    zs_pre = F.linear(h_ref, w_ref)

    def run_tensors():
        z = student_logits()
        loss = O.anchored_kl_loss(z, zt_pre, zs_pre, y, alpha=args.alpha, num_response_tokens=N)
        loss.backward()
        return loss

    def run_project():
        with torch.no_grad():
            idx = torch.arange(N)
            a = ProjectedLogits(h_snap, w_snap)[idx]
            b = ProjectedLogits(h_ref, w_ref)[idx]
        return a.sum() + b.sum()

    class _Fused(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, zt, zs, alpha, tau, norm):
            with torch.no_grad():
                mix = torch.lerp(zt, zs, alpha) if alpha not in (0.0, 1.0) else (zt if alpha == 0.0 else zs)
                if tau != 1.0:
                    mix = mix / tau
                log_q = torch.log_softmax(mix, -1)
                del mix
                zz = z.detach() if tau == 1.0 else z.detach() / tau
                log_p = torch.log_softmax(zz, -1)
                del zz
                q = log_q.exp()
                log_q.sub_(log_p)  # log q - log p (q > 0 everywhere for finite logits)
                kl = (q * log_q).sum()
                del log_q
                # grad wrt z of tau^2 * KL(q || softmax(z / tau)) = tau * (p - q)
                log_p.exp_().sub_(q).mul_(tau / norm)
                ctx.save_for_backward(log_p)
            return kl * (tau * tau) / norm

        @staticmethod
        def backward(ctx, g):
            (grad,) = ctx.saved_tensors
            return grad * g, None, None, None, None, None

    def run_fused():
        z = student_logits()
        with torch.no_grad():
            zt = F.linear(h_snap, w_snap)
            zs = F.linear(h_ref, w_ref)
        loss = _Fused.apply(z, zt, zs, args.alpha, 1.0, float(N))
        loss.backward()
        return loss

    class _SftSlice(torch.autograd.Function):
        """sft_loss with the one-chunk fast path: slice instead of index gather, no zeros + index_copy_."""

        @staticmethod
        def forward(ctx, z, y, norm):
            rows = z.detach().float().requires_grad_(True)
            with torch.enable_grad():
                value = -torch.log_softmax(rows, -1).gather(-1, y.unsqueeze(-1)).sum()
            (g,) = torch.autograd.grad(value, rows)
            g.div_(norm)
            ctx.save_for_backward(g)
            return value.detach() / norm

        @staticmethod
        def backward(ctx, go):
            (g,) = ctx.saved_tensors
            return g * go, None, None

    def run_sft_slice():
        z = student_logits()
        loss = _SftSlice.apply(z, y, float(N))
        loss.backward()
        return loss

    variants = {
        "sft": run_sft,
        "sft_slice_reference": run_sft_slice,
        "anchored_cache": run_cache,
        "anchored_tensors": run_tensors,
        "project_2": run_project,
        "fused_reference": run_fused,
    }

    # correctness of the fused reference
    w_student.grad = None
    l1 = run_cache()
    g1 = w_student.grad.clone()
    w_student.grad = None
    l2 = run_fused()
    g2 = w_student.grad.clone()
    w_student.grad = None
    check = {
        "loss_abs_diff": abs(l1.item() - l2.item()),
        "grad_max_abs_diff": (g1 - g2).abs().max().item(),
        "grad_max_abs": g1.abs().max().item(),
    }

    times = {k: [] for k in variants}
    mem = {k: [] for k in variants}
    for _ in range(2):  # warm-up
        for f in variants.values():
            f()
            w_student.grad = None
    if not reset_hwm():
        raise OSError("cannot reset VmHWM through /proc/self/clear_refs; the memory column needs it")
    for r in range(args.reps):
        names = list(variants)
        names = names[r % len(names) :] + names[: r % len(names)]
        for k in names:
            w_student.grad = torch.zeros_like(w_student)  # grad buffer exists, as during training
            before = rss("VmRSS")
            reset_hwm()
            t0 = time.perf_counter()
            variants[k]()
            times[k].append(time.perf_counter() - t0)
            mem[k].append(rss("VmHWM") - before)
    w_student.grad = None
    res = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": {"rows": N, "vocab": V, "hidden": H, "alpha": args.alpha},
        "bytes_per_NxV_float32": N * V * 4,
        "fused_check": check,
        "median_seconds": {k: statistics.median(v) for k, v in times.items()},
        "median_peak_increment_bytes": {k: statistics.median(v) for k, v in mem.items()},
        "peak_increment_in_NxV_units": {k: statistics.median(v) / (N * V * 4) for k, v in mem.items()},
    }
    res["anchored_cache_minus_sft_seconds"] = res["median_seconds"]["anchored_cache"] - res["median_seconds"]["sft"]

    # op-level profile of the cache variant
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        for _ in range(3):
            run_cache()
            w_student.grad = None
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    res["profiler_anchored_cache_top_ops_3_calls"] = table
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        for _ in range(3):
            run_sft()
            w_student.grad = None
    res["profiler_sft_top_ops_3_calls"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if not k.startswith("profiler")}, indent=2))
    print(table)
    print(res["profiler_sft_top_ops_3_calls"])


if __name__ == "__main__":
    main()
