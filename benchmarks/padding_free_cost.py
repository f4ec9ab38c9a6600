"""One training step on right-padded batches against padding-free (packed, ``position_ids``) ones.

    OMP_NUM_THREADS=1 python benchmarks/padding_free_cost.py [--task igsm|ifeval|medcalc] [--batches 3]
                                                             [--batch-size 8] [--attn sdpa|eager]
                                                             [--out results/benchmarks/padding_free_cost_<task>.json]

TRL's ``padding_free=True`` concatenates a batch's examples into one row with ``position_ids``
restarting at 0 and no attention mask; transformers then builds a block-diagonal causal mask from
the position ids (``masking_utils.find_packed_sequence_indices``).  With flash-attention's varlen
kernel only the real tokens are computed; with SDPA or eager attention (CPU, and GPUs without
flash-attn) the mask is a dense ``[1, 1, S, S]`` over the packed length ``S = sum of lengths``, so
attention grows with ``S^2`` while the linear layers save the padded tokens.  This measures which
wins on this machine: the bundled SmolLM2-135M-Instruct (float32), batches of the task's training
examples at their real token lengths (chat template; token ids random, the cost does not depend on
them), forward + backward of the summed next-token NLL, paired (padded, packed alternating), and
checks that the two give the same loss.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path


def task_lengths(task: str, n: int) -> list[int]:
    """Token lengths of the default recipe's first ``n`` training examples (chat template)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from anchored_learning.models import load_tokenizer
    from anchored_learning.tasks.registry import get_task

    tok = load_tokenizer(None)
    kw = {"igsm": dict(op_min=2, op_max=3, arithmetic="add"), "ifeval": {}, "medcalc": {}}[task]
    out = []
    for e in get_task(task, **kw).examples("train", n, seed=0):
        turns = [{"role": "user", "content": e.prompt}] if isinstance(e.prompt, str) else list(e.prompt)
        ids = tok.apply_chat_template(turns + [{"role": "assistant", "content": e.response}], tokenize=True, return_dict=True)
        out.append(len(ids["input_ids"]))
    return out


def batches(lengths: list[int], vocab: int, batch_size: int, n_batches: int, seed: int = 0):
    """``n_batches`` random batches as lists of LongTensors of the given lengths (random ids)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=g).tolist()
    for b in range(n_batches):
        idx = order[b * batch_size : (b + 1) * batch_size]
        yield [torch.randint(100, vocab, (lengths[i],), generator=g) for i in idx]


def padded_step(model, seqs) -> float:
    """Forward + backward of the summed NLL on a right-padded batch; the loss (nats)."""
    import torch
    import torch.nn.functional as F

    T = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, : len(s)], mask[r, : len(s)] = s, 1
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1]
    labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), reduction="sum")
    loss.backward()
    return float(loss)


def packed_step(model, seqs) -> float:
    """Forward + backward of the summed NLL on the batch packed into one row (``position_ids``)."""
    import torch
    import torch.nn.functional as F

    ids = torch.cat(seqs)[None]
    pos = torch.cat([torch.arange(len(s)) for s in seqs])[None]
    logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits[:, :-1]
    labels = ids[:, 1:].masked_fill(pos[:, 1:] == 0, -100)  # no target across an example boundary
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), reduction="sum")
    loss.backward()
    return float(loss)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="igsm", choices=["igsm", "ifeval", "medcalc"])
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    from shared_context_scoring import timed
    from step_cost import machine_info

    machine = machine_info()  # the load average at the start
    from transformers import AutoModelForCausalLM

    from anchored_learning.io import write_json_atomic
    from anchored_learning.models import resolve_model_path

    lengths = task_lengths(a.task, 96)
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(None), attn_implementation=a.attn)
    model.train()
    rows = []
    for k, seqs in enumerate(batches(lengths, model.config.vocab_size, a.batch_size, a.batches)):
        runs = {}
        for name in ("padded", "packed") if k % 2 == 0 else ("packed", "padded"):
            model.zero_grad(set_to_none=True)
            runs[name] = timed(lambda: (padded_step if name == "padded" else packed_step)(model, seqs))
        real = sum(len(s) for s in seqs)
        row = {
            "real_tokens": real,
            "padded_tokens": max(len(s) for s in seqs) * len(seqs),
            **{f"{n}_wall_s": round(runs[n][1], 2) for n in runs},
            **{f"{n}_cpu_s": round(runs[n][2], 2) for n in runs},
            "loss_rel_diff": abs(runs["padded"][0] - runs["packed"][0]) / abs(runs["padded"][0]),
        }
        print(row, flush=True)
        rows.append(row)
    med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
    out = {
        "command": " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?"), "python", *sys.argv]),
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "attn_implementation": a.attn,
        "task": a.task,
        "padded_over_real_tokens": sum(r["padded_tokens"] for r in rows) / sum(r["real_tokens"] for r in rows),
        "rows": rows,
        "packed_over_padded_cpu_median": round(statistics.median(r["packed_cpu_s"] / r["padded_cpu_s"] for r in rows), 3),
        "packed_over_padded_wall_median": round(statistics.median(r["packed_wall_s"] / r["padded_wall_s"] for r in rows), 3),
        "median_padded_cpu_s": med("padded_cpu_s"),
        "median_packed_cpu_s": med("packed_cpu_s"),
    }
    write_json_atomic(a.out or Path(f"results/benchmarks/padding_free_cost_{a.task}.json"), out)
    print({k: out[k] for k in ("padded_over_real_tokens", "packed_over_padded_cpu_median", "packed_over_padded_wall_median")})


if __name__ == "__main__":
    main()
