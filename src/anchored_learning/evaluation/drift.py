"""Held-out language-modelling loss and distributional drift from the base model.

* :func:`mean_nll`: negative log-likelihood (nats per token) of plain general text.
* :func:`drift_kl`: the drift of a fine-tuned model ``p`` from the base model ``p0`` on held-out
  prompt/response pairs (teacher-forced on the response, chat template applied to the prompt)::

      drift = mean over response token positions k of KL( p0(.|x, y_<k) || p(.|x, y_<k) )
            = mean_k sum_v p0(v) * (log p0(v) - log p(v))          (nats)

  the quantity Shenfeld et al. ("RL's Razor", 2025) found to track forgetting and that Anchored
  Learning bounds.  Log-softmax and the KL sum are computed in float32, in chunks of positions.

  The base model's side is the same for every model measured against it: its final hidden states
  at the response positions are computed once per process (per base model object, sequences,
  batch size and autocast state) and its logits re-projected from them through its own head
  (:class:`BaseSide`, the hidden-state cache of :mod:`anchored_learning.anchor_cache`), so every model
  after the first runs only its own forward pass, and all of them read the same base numbers.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from anchored_learning.evaluation._util import encode, eval_mode, forward_logits, model_device, pad_id, progress_bar
from anchored_learning.evaluation.generation import chat_prompt


def _batches(seqs: list[list[int]], batch_size: int, pid: int):
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        T = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), T), pid, dtype=torch.long)
        mask = torch.zeros((len(idx), T), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, : len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
            mask[r, : len(seqs[i])] = 1
        yield idx, ids, mask


def mean_nll(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    max_length: int = 512,
    progress: bool = False,
) -> dict[str, Any]:
    """Mean negative log-likelihood of ``texts`` (plain text, no chat template).

    Each text is tokenised without special tokens, truncated to ``max_length`` tokens and prefixed
    with one BOS (else EOS) token so that every text token is predicted.

    Returns:
        ``{"nll": token-weighted mean NLL (nats/token), "ppl": exp(nll), "nll_macro": mean of the
        per-text means, "items": per-text mean NLL, "weights": per-text token counts,
        "n_tokens": int, "n": int}``.

    Raises:
        ValueError: a text that encodes to no token.
    """
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    seqs = []
    for t in texts:
        ids = encode(tokenizer, t)[:max_length]
        if not ids:
            raise ValueError(f"text encodes to no token: {t[:60]!r}")
        seqs.append(([int(prefix)] if prefix is not None else []) + ids)
    sums = np.zeros(len(seqs))
    counts = np.zeros(len(seqs), dtype=np.int64)
    device = model_device(model)
    bar = progress_bar(len(seqs), "nll", progress, unit="text")
    with eval_mode(model):
        for idx, ids, mask in _batches(seqs, batch_size, pad_id(tokenizer)):
            logits = forward_logits(model, ids.to(device), mask.to(device))
            lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            tok = lp.gather(-1, ids[:, 1:, None].to(lp.device))[..., 0]
            m = mask[:, 1:].to(lp.device).float()
            s = -(tok * m).double().sum(1).cpu().numpy()
            for r, i in enumerate(idx):
                sums[i] = s[r]
                counts[i] = len(seqs[i]) - 1
            bar.update(len(idx))
    bar.close()
    per = sums / np.maximum(counts, 1)
    total = float(sums.sum() / max(counts.sum(), 1))
    return {
        "nll": total,
        "ppl": float(np.exp(total)),
        "nll_macro": float(per.mean()) if len(per) else float("nan"),
        "items": per.tolist(),
        "weights": counts.tolist(),
        "n_tokens": int(counts.sum()),
        "n": len(seqs),
    }


def encode_prompt_response(
    tokenizer,
    prompt: str | list[dict[str, str]],
    response: str,
    *,
    chat: bool = True,
    system: str | None = None,
    max_length: int = 512,
) -> tuple[list[int], int]:
    """Token ids of ``chat_prompt(prompt) + response + EOS`` and the number of prompt tokens.

    The response is truncated (never the prompt) so the total fits ``max_length``.

    Raises:
        ValueError: the prompt alone reaches ``max_length`` or the response is empty.
    """
    p_ids = encode(tokenizer, chat_prompt(tokenizer, prompt, system) if chat else prompt)
    r_ids = encode(tokenizer, response)
    if tokenizer.eos_token_id is not None:
        r_ids = r_ids + [int(tokenizer.eos_token_id)]
    if len(p_ids) >= max_length:
        raise ValueError(f"prompt of {len(p_ids)} tokens does not fit max_length={max_length}")
    r_ids = r_ids[: max_length - len(p_ids)]
    if not r_ids:
        raise ValueError("empty response")
    return p_ids + r_ids, len(p_ids)


def kl_rows(logits_p0: torch.Tensor, logits_p: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Per-row ``KL(softmax(logits_p0) || softmax(logits_p))`` in float32, chunked over rows.

    Args:
        logits_p0, logits_p: ``[N, V]`` logits (any float dtype).
        chunk: rows per chunk (bounds memory to a few ``[chunk, V]`` float32 buffers).

    Returns:
        ``[N]`` float32 tensor of KL values (nats), clamped at 0 from below.
    """
    out = []
    for s in range(0, logits_p0.shape[0], chunk):
        a = torch.log_softmax(logits_p0[s : s + chunk].float(), dim=-1)
        b = torch.log_softmax(logits_p[s : s + chunk].float(), dim=-1)
        out.append((a.exp() * (a - b)).sum(-1).clamp_min(0.0))
    return torch.cat(out) if out else torch.zeros(0)


class BaseSide:
    """The base model's final hidden states at the response positions of fixed sequences, and its
    logits re-projected from them (exact for a plain ``logits = head(h)`` model, as the anchor
    cache: :class:`~anchored_learning.anchor_cache.ProjectedLogits`).

    Sequences are identified by their index in the list the side was made for; each is computed
    on first use, with the batch it arrives in, and kept (``[n_i, H]`` in the backbone's dtype:
    40 SciQ pairs of SmolLM2 are ~5 MB).
    """

    def __init__(self, base_model):
        from anchored_learning.anchor_cache import backbone_and_head

        self.backbone, head = backbone_and_head(base_model)
        self.weight = head.weight.detach()
        self.bias = head.bias.detach() if getattr(head, "bias", None) is not None else None
        self.hidden: dict[int, torch.Tensor] = {}

    def logits(self, idx: Sequence[int], ids: torch.Tensor, mask: torch.Tensor, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Base logits ``[sum(hi - lo), V]`` (float32) at positions ``lo:hi`` of each sequence
        ``idx[r]`` (row ``r`` of ``ids``/``mask`` ``[B, T]``), rows in batch order; the backbone
        runs only when a sequence of the batch was not computed before."""
        from anchored_learning.anchor_cache import ProjectedLogits

        if any(i not in self.hidden for i in idx):
            dev = self.weight.device
            h = self.backbone(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False).last_hidden_state
            for r, (i, (lo, hi)) in enumerate(zip(idx, spans)):
                self.hidden[i] = h[r, lo:hi].clone()
        rows = torch.cat([self.hidden[i] for i in idx])
        return ProjectedLogits(rows, self.weight, self.bias)[slice(None)]


#: base model -> {(sequences, prompt lengths, batch size, autocast, parameter versions): BaseSide or None}
_BASE_SIDES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def base_side(base_model, seqs: Sequence[Sequence[int]], n_prompt: Sequence[int], batch_size: int) -> BaseSide | None:
    """The process's :class:`BaseSide` of ``base_model`` for these sequences and settings (made on
    first call), or None when the model's logits are not a plain head projection (soft-capping,
    scaling: :func:`~anchored_learning.anchor_cache.check_plain_head`), so drift runs it live.

    The key holds the parameters' in-place version counters: a base model changed in place (an
    optimizer step, ``load_state_dict``) gets a new side.
    """
    from anchored_learning.anchor_cache import check_plain_head

    dev = model_device(base_model)
    autocast = (torch.is_autocast_enabled(dev.type), torch.get_autocast_dtype(dev.type))
    try:
        versions = sum(p._version for p in base_model.parameters())
    except RuntimeError:  # inference tensors keep no version counter (nor can they change outside inference mode)
        versions = None
    key = (tuple(map(tuple, seqs)), tuple(n_prompt), int(batch_size), autocast, versions)
    sides = _BASE_SIDES.setdefault(base_model, {})
    if key not in sides:
        try:
            check_plain_head(base_model, torch.tensor([seqs[0]], device=dev), None)
            sides[key] = BaseSide(base_model)
        except ValueError:
            sides[key] = None
    return sides[key]


def drift_kl(
    base_model,
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 8,
    max_length: int = 512,
    chunk_tokens: int = 1024,
    chat: bool = True,
    system: str | None = None,
    progress: bool = False,
    reuse_base: bool = True,
) -> dict[str, Any]:
    """Drift ``KL(p0 || p)`` of ``model`` from ``base_model`` on prompt/response pairs.

    Both models read the same tokens (``tokenizer`` must fit both; vocabularies must match).

    Args:
        pairs: ``[(prompt, response), ...]``; the prompt gets the chat template, the response is
            teacher-forced and followed by EOS.
        chunk_tokens: response positions per KL chunk.
        reuse_base: take the base model's side from :func:`base_side` (computed once per process
            and reused by every model measured against the same base on the same pairs; equal to
            the live base forward pass within float tolerance); False runs the base model live.

    Returns:
        ``{"kl": token-weighted mean KL (nats/token) over all response positions, "kl_macro":
        mean of per-pair means, "kl_max": largest per-position KL, "items": per-pair mean KL,
        "weights": response tokens per pair, "n_tokens", "n"}``.

    Raises:
        ValueError: vocabulary sizes differ, or a pair cannot be encoded.
    """
    seqs, n_prompt = [], []
    for p, r in pairs:
        ids, k = encode_prompt_response(tokenizer, p, r, chat=chat, system=system, max_length=max_length)
        seqs.append(ids)
        n_prompt.append(k)
    sums = np.zeros(len(seqs))
    counts = np.zeros(len(seqs), dtype=np.int64)
    kl_max = 0.0
    dev0, dev1 = model_device(base_model), model_device(model)
    bar = progress_bar(len(seqs), "drift", progress, unit="text")
    with eval_mode(base_model, model):
        side = base_side(base_model, seqs, n_prompt, batch_size) if reuse_base and seqs else None
        for idx, ids, mask in _batches(seqs, batch_size, pad_id(tokenizer)):
            spans = [(n_prompt[i] - 1, len(seqs[i]) - 1) for i in idx]  # positions predicting the response
            start = min(lo for lo, _ in spans)
            keep = ids.shape[1] - start
            z1 = forward_logits(model, ids.to(dev1), mask.to(dev1), keep=keep)
            if side is not None:
                z0 = side.logits(idx, ids, mask, spans)
            else:
                z0 = forward_logits(base_model, ids.to(dev0), mask.to(dev0), keep=keep)
                z0 = torch.cat([z0[r, lo - start : hi - start] for r, (lo, hi) in enumerate(spans)])
            if z0.shape[-1] != z1.shape[-1]:
                raise ValueError(f"vocabulary sizes differ: {z0.shape[-1]} vs {z1.shape[-1]}")
            rows1 = torch.cat([z1[r, lo - start : hi - start].to(z0.device) for r, (lo, hi) in enumerate(spans)])
            owner = np.repeat(idx, [hi - lo for lo, hi in spans])
            kl = kl_rows(z0, rows1, chunk=chunk_tokens).double().cpu().numpy()
            np.add.at(sums, owner, kl)
            np.add.at(counts, owner, 1)
            if kl.size:
                kl_max = max(kl_max, float(kl.max()))
            bar.update(len(idx))
    bar.close()
    per = sums / np.maximum(counts, 1)
    return {
        "kl": float(sums.sum() / max(counts.sum(), 1)),
        "kl_macro": float(per.mean()) if len(per) else float("nan"),
        "kl_max": kl_max,
        "items": per.tolist(),
        "weights": counts.tolist(),
        "n_tokens": int(counts.sum()),
        "n": len(seqs),
    }
