"""Multiple-choice scoring by log-likelihood, following lm-evaluation-harness.

For an item with context ``c`` and choices ``a_1..a_n`` the model scores each continuation
``delimiter + a_i`` (lm-eval's ``target_delimiter``, one space) by the summed log-probability of
its tokens given the context (teacher forcing, no chat template, the tokenizer's own special
tokens -- a BOS for Llama- and Gemma-style tokenizers, none for SmolLM2's: lm-eval's ``hf``
model defaults for a causal LM).  Then, as lm-eval's ``multiple_choice`` output type
defines them (``ConfigurableTask.process_results``)::

    acc       = [argmax_i  LL_i            == gold]
    acc_norm  = [argmax_i  LL_i / len(a_i)  == gold]      # len in characters of the choice text
    acc_bytes = [argmax_i  LL_i / len(utf8(a_i)) == gold]  # reported for information

``argmax`` takes the first maximum on ties (``numpy.argmax``).  Tokenisation follows lm-eval's
``_encode_pair``: trailing whitespace of the context moves into the continuation, the pair is
encoded as one string and the context's tokens are cut off the front, so the continuation tokens
are exactly those the model sees after the context.

Each distinct context is run once and every choice is scored from its key/value cache (the same
tokens at the same positions as running each ``context + continuation`` in full, as lm-eval does:
equal to float tolerance; SciQ's support paragraph is no longer sent four times).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from anchored_learning.evaluation._util import (
    encode,
    eval_mode,
    forward,
    forward_logits,
    model_device,
    output_cache,
    pad_id,
    progress_bar,
)


def _prefix_token_id(tokenizer) -> int | None:
    """lm-eval's ``prefix_token_id``: BOS, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def tok_encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` as lm-eval's ``HFLM.tok_encode`` makes them (``add_bos_token`` unset):
    with the tokenizer's own special tokens -- a BOS first for Llama- and Gemma-style tokenizers,
    nothing for GPT-2-style ones such as SmolLM2's -- and none when ``text`` already starts with
    the prefix token's text.  Source: ``lm_eval/models/huggingface.py`` (``tok_encode``) and
    ``lm_eval/models/utils.py`` (``_add_special_kwargs``, ``has_bos_prefix``)."""
    prefix = _prefix_token_id(tokenizer)
    if prefix is not None and text.startswith(tokenizer.decode([prefix])):
        return encode(tokenizer, text)
    return list(tokenizer(text)["input_ids"])


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Tokenise a (context, continuation) pair the way lm-eval does (``LM._encode_pair`` and
    ``LM.loglikelihood`` in ``lm_eval/api/model.py``).

    Returns:
        ``(context_ids, continuation_ids)``: the context encoded with :func:`tok_encode`, and the
        tokens the whole string adds after it.  An empty context becomes one prefix token (BOS,
        else EOS) before the continuation's tokens (no special tokens) -- or, when the
        continuation already starts with that token, its first token.

    Raises:
        ValueError: the continuation encodes to no token.
    """
    n_trailing = len(context) - len(context.rstrip())
    if n_trailing:
        continuation = context[-n_trailing:] + continuation
        context = context[:-n_trailing]
    if context == "":
        prefix = _prefix_token_id(tokenizer)
        if prefix is None:
            raise ValueError("empty context and the tokenizer has neither BOS nor EOS")
        cont = encode(tokenizer, continuation)
        ctx, cont = ([int(prefix)], cont) if not cont or cont[0] != prefix else (cont[:1], cont[1:])
    else:
        whole = tok_encode(tokenizer, context + continuation)
        ctx = tok_encode(tokenizer, context)
        cont = whole[len(ctx) :]
    if not cont:
        raise ValueError(f"continuation {continuation!r} encodes to no token after {context[-40:]!r}")
    return ctx, cont


def scored_split(c_ids: Sequence[int], k_ids: Sequence[int], max_length: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split an encoded (context, continuation) pair into what the model reads and what it scores.

    lm-eval's model input is ``(context + continuation)[-(max_length + 1):][:-1]``; its last
    ``n`` positions predict the scored tokens, ``n = len(continuation)`` unless the window cuts
    the continuation too.  The input is returned as a ``prefix`` (up to and including the position
    that predicts the first scored token: the context, when nothing is cut) and the scored tokens
    ``targets``; the input is ``prefix + targets[:-1]``.

    Returns:
        ``(prefix, targets)``: non-empty token-id tuples.
    """
    whole = (list(c_ids) + list(k_ids))[-(max_length + 1) :]
    n = min(len(k_ids), len(whole) - 1)
    return tuple(whole[: len(whole) - n]), tuple(whole[len(whole) - n :])


def loglikelihood(
    model,
    tokenizer,
    requests: Sequence[tuple[str, str]],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool = False,
    desc: str = "loglik",
    share_context: bool = True,
) -> list[tuple[float, bool]]:
    """Summed log-probability (natural log) of each continuation given its context.

    With ``share_context`` (the default) each distinct context is run once (batches of
    ``batch_size`` contexts sorted by length, right-padded); the log-probabilities of the first
    continuation token come from its last position, and the rest of every continuation is run
    from the context's key/value cache, repeated across its choices (:func:`_score_shared`).
    Without it every ``context + continuation`` input is run in full as lm-eval runs it
    (:func:`_score_full`: the reference path, kept for tests and benchmarks).  Both read the same
    tokens at the same positions (:func:`scored_split`); log-softmax is taken in float32 over the
    needed positions only, and the two agree to float tolerance.

    Args:
        requests: ``[(context, continuation), ...]``; the continuation includes its delimiter.
        batch_size: sequences per forward pass (contexts, then continuation rows).
        max_length: truncate each input from the left to this many tokens (default: the model's
            ``max_position_embeddings``, else 2048).
        share_context: run each context once (see above); not where an input is longer than
            the model's sliding attention window.

    Returns:
        ``[(loglik, is_greedy), ...]`` in request order; ``is_greedy`` says every continuation
        token was the argmax.

    Raises:
        ValueError: from :func:`encode_pair`; with ``share_context``, a model that returns no
            key/value cache.
    """
    if not requests:
        return []
    if max_length is None:
        max_length = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    split = [scored_split(*encode_pair(tokenizer, ctx, cont), max_length) for ctx, cont in requests]
    window = getattr(model.config.get_text_config(), "sliding_window", None) if share_context else None
    if window and max(len(p) + len(t) for p, t in split) > int(window):
        share_context = False  # a sliding-window cache would drop context tokens behind the padding
    score = _score_shared if share_context else _score_full
    return score(model, tokenizer, split, batch_size=batch_size, progress=progress, desc=desc)


def _token_scores(lp: torch.Tensor, targets: Sequence[int]) -> tuple[float, bool]:
    """``(sum of lp[i, targets[i]], every target the row's argmax)`` for float32 log-probs
    ``lp [n, V]`` (the sum in float64)."""
    tgt = torch.tensor(targets, dtype=torch.long, device=lp.device)
    tok_lp = lp.gather(-1, tgt[:, None])[:, 0]
    return float(tok_lp.double().sum()), bool((lp.argmax(dim=-1) == tgt).all())


def _right_padded(seqs: Sequence[Sequence[int]], pid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)``, both ``[B, T]`` long, ``T`` the longest sequence; pads on the right."""
    T = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), T), pid, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for r, x in enumerate(seqs):
        ids[r, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[r, : len(x)] = 1
    return ids, mask


def _score_full(model, tokenizer, split, *, batch_size, progress, desc) -> list[tuple[float, bool]]:
    """Score ``split`` (``[(prefix, targets)]`` from :func:`scored_split`) by running every input
    ``prefix + targets[:-1]`` in full, once per distinct input (e.g. MMLU's single-token letter
    choices after one prompt).  Inputs are sorted by length, right-padded and batched."""
    encoded = [(p + t[:-1], t) for p, t in split]
    unique: dict[tuple[int, ...], int] = {}  # unique model inputs -> the longest continuation read from them
    for inp, cont in encoded:
        unique[inp] = max(unique.get(inp, 0), len(cont))
    order = sorted(unique, key=lambda t: -len(t))
    logprobs: dict[tuple[int, ...], torch.Tensor] = {}  # input -> [L, V] float32 log-probs
    device = model_device(model)
    bar = progress_bar(len(order), desc, progress, unit="input")  # unique model inputs, not items
    with eval_mode(model):
        for b in range(0, len(order), batch_size):
            batch = order[b : b + batch_size]
            ids, mask = _right_padded(batch, pad_id(tokenizer))
            start = min(len(x) - unique[x] for x in batch)
            keep = ids.shape[1] - start
            logits = forward_logits(model, ids.to(device), mask.to(device), keep=keep)
            for r, x in enumerate(batch):
                L = unique[x]
                lo = len(x) - L - start
                logprobs[x] = torch.log_softmax(logits[r, lo : lo + L].float(), dim=-1).cpu()
            bar.update(len(batch))
    bar.close()
    return [_token_scores(logprobs[inp][-len(cont) :], cont) for inp, cont in encoded]


def _score_shared(model, tokenizer, split, *, batch_size, progress, desc) -> list[tuple[float, bool]]:
    """Score ``split`` (``[(prefix, targets)]`` from :func:`scored_split`) running each distinct
    prefix once: a batch of ``batch_size`` prefixes (longest first, right-padded) gives the first
    target's log-probs at each prefix's last position and a key/value cache; every distinct
    ``targets[:-1]`` of those prefixes then runs from its prefix's cache rows
    (:func:`_continuation_logprobs`, ``batch_size`` rows per pass)."""
    by_prefix: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = {}  # prefix -> suffix -> request indices
    for i, (p, t) in enumerate(split):
        by_prefix.setdefault(p, {}).setdefault(t[:-1], []).append(i)
    order = sorted(by_prefix, key=lambda p: -len(p))
    out: list[tuple[float, bool]] = [(0.0, False)] * len(split)
    device, pid = model_device(model), pad_id(tokenizer)
    bar = progress_bar(len(order), desc, progress, unit="context")  # distinct contexts, not items
    with eval_mode(model):
        for b in range(0, len(order), batch_size):
            batch = order[b : b + batch_size]
            ids, mask = _right_padded(batch, pid)
            keep = ids.shape[1] - len(batch[-1]) + 1  # from the shortest prefix's last position on
            o = forward(model, ids.to(device), mask.to(device), keep=keep, use_cache=True)
            if output_cache(o) is None:
                raise ValueError(f"{type(model).__name__} returns no key/value cache: score with share_context=False")
            first = {
                p: torch.log_softmax(o.logits[r, len(p) - 1 - (ids.shape[1] - keep)].float(), dim=-1) for r, p in enumerate(batch)
            }
            rows = [(r, s) for r, p in enumerate(batch) for s in by_prefix[p] if s]
            rest = _continuation_logprobs(model, output_cache(o), mask, rows, [len(p) for p in batch], batch_size, pid)
            for r, p in enumerate(batch):
                for s, idx in by_prefix[p].items():
                    for i in idx:
                        lp = first[p][None] if not s else torch.cat([first[p][None], rest[(r, s)]])
                        out[i] = _token_scores(lp, split[i][1])
            bar.update(len(batch))
    bar.close()
    return out


def _continuation_logprobs(model, cache, ctx_mask, rows, ctx_lens, batch_size, pid) -> dict[tuple, torch.Tensor]:
    """Run continuations from cached contexts.

    Args:
        cache: the contexts' key/value cache (a transformers ``Cache`` of batch ``B``, length ``T``).
        ctx_mask: ``[B, T]`` the contexts' attention mask (right-padded).
        rows: ``[(context row, suffix tokens), ...]`` to run, ``batch_size`` rows per pass.
        ctx_lens: real length of each context row (the suffix's first position id).

    Returns:
        ``{(row, suffix): [len(suffix), V] float32 log-probs}``: position ``j`` predicts the
        continuation's token ``j + 1``.
    """
    from transformers import DynamicCache

    device = model_device(model)
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    out = {}
    for c in range(0, len(rows), batch_size):
        chunk = rows[c : c + batch_size]
        sel = torch.tensor([r for r, _ in chunk], device=layers[0][0].device)
        kv = DynamicCache(ddp_cache_data=[(k[sel], v[sel]) for k, v in layers], config=model.config)
        ids, mask = _right_padded([s for _, s in chunk], pid)
        start = torch.tensor([ctx_lens[r] for r, _ in chunk])[:, None]
        pos = start + torch.arange(ids.shape[1])[None]
        full_mask = torch.cat([ctx_mask[sel.cpu()], mask], dim=1)
        o = forward(model, ids.to(device), full_mask.to(device), position_ids=pos.to(device), cache=kv, use_cache=True)
        for j, (r, s) in enumerate(chunk):
            out[(r, s)] = torch.log_softmax(o.logits[j, : len(s)].float(), dim=-1)
    return out


def mc_predictions(logliks: Sequence[float], choices: Sequence[str]) -> dict[str, int]:
    """Predicted choice index under each lm-eval rule.

    Args:
        logliks: summed log-likelihood per choice.
        choices: the choice texts (without delimiter), for the length normalisations.

    Returns:
        ``{"acc": i, "acc_norm": j, "acc_bytes": k}`` (first maximum on ties).

    Raises:
        ValueError: lengths differ, or a choice is empty.
    """
    if len(logliks) != len(choices) or not choices:
        raise ValueError(f"{len(logliks)} log-likelihoods for {len(choices)} choices")
    if any(len(c) == 0 for c in choices):
        raise ValueError("empty choice text: acc_norm is undefined")
    ll = np.asarray(logliks, dtype=np.float64)
    chars = np.asarray([len(c) for c in choices], dtype=np.float64)
    nbytes = np.asarray([len(c.encode("utf-8")) for c in choices], dtype=np.float64)
    return {
        "acc": int(np.argmax(ll)),
        "acc_norm": int(np.argmax(ll / chars)),
        "acc_bytes": int(np.argmax(ll / nbytes)),
    }


def score_multiple_choice(
    model,
    tokenizer,
    items: Sequence[Any],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool = False,
    desc: str = "mc",
    share_context: bool = True,
) -> dict[str, Any]:
    """Score multiple-choice items (objects with ``context``, ``choices``, ``gold`` and optional
    ``delimiter``, e.g. :class:`anchored_learning.tasks.benchmarks.MCItem`), each item's context run
    once for all its choices (``share_context=False``: every choice's input in full, the
    reference path; see :func:`loglikelihood`).

    Returns:
        ``{"acc", "acc_norm", "acc_bytes"}`` as fractions in [0, 1], plus per-item lists in item
        order: ``items_acc``, ``items_acc_norm``, ``items_acc_bytes`` (0/1 ints), ``logliks``
        (per-choice summed log-likelihoods, nats) and ``n``.

    Raises:
        ValueError: an item whose gold index is out of range.
    """
    reqs, spans = [], []
    for it in items:
        if not 0 <= int(it.gold) < len(it.choices):
            raise ValueError(f"gold index {it.gold} out of range for item {getattr(it, 'uid', '')!r}")
        delim = getattr(it, "delimiter", " ")
        spans.append((len(reqs), len(it.choices)))
        reqs.extend((it.context, delim + c) for c in it.choices)
    lls = loglikelihood(
        model,
        tokenizer,
        reqs,
        batch_size=batch_size,
        max_length=max_length,
        progress=progress,
        desc=f"{desc} ({len(items)} items)",
        share_context=share_context,
    )
    res: dict[str, Any] = {"items_acc": [], "items_acc_norm": [], "items_acc_bytes": [], "logliks": []}
    for it, (s, n) in zip(items, spans):
        ll = [lls[s + j][0] for j in range(n)]
        pred = mc_predictions(ll, it.choices)
        for key in ("acc", "acc_norm", "acc_bytes"):
            res[f"items_{key}"].append(int(pred[key] == int(it.gold)))
        res["logliks"].append(ll)
    n = len(items)
    for key in ("acc", "acc_norm", "acc_bytes"):
        res[key] = float(np.mean(res[f"items_{key}"])) if n else float("nan")
    res["n"] = n
    return res
