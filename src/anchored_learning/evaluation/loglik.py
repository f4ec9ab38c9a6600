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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from anchored_learning.evaluation._util import (
    encode,
    eval_mode,
    forward_logits,
    model_device,
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


def loglikelihood(
    model,
    tokenizer,
    requests: Sequence[tuple[str, str]],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool = False,
    desc: str = "loglik",
) -> list[tuple[float, bool]]:
    """Summed log-probability (natural log) of each continuation given its context.

    Requests that share the same model input (e.g. MMLU's single-token letter choices after one
    prompt) are run once.  Inputs are sorted by length, right-padded and batched; log-softmax is
    taken in float32 over the needed positions only.

    Args:
        requests: ``[(context, continuation), ...]``; the continuation includes its delimiter.
        batch_size: sequences per forward pass.
        max_length: truncate each input from the left to this many tokens (default: the model's
            ``max_position_embeddings``, else 2048).

    Returns:
        ``[(loglik, is_greedy), ...]`` in request order; ``is_greedy`` says every continuation
        token was the argmax.
    """
    if not requests:
        return []
    if max_length is None:
        max_length = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    encoded = []
    for ctx, cont in requests:
        c_ids, k_ids = encode_pair(tokenizer, ctx, cont)
        whole = (c_ids + k_ids)[-(max_length + 1) :]
        n_scored = min(len(k_ids), len(whole) - 1)  # a continuation longer than the window is cut
        encoded.append((tuple(whole[:-1]), k_ids[len(k_ids) - n_scored :]))
    # unique model inputs -> the longest continuation read from them
    unique: dict[tuple[int, ...], int] = {}
    for inp, cont in encoded:
        unique[inp] = max(unique.get(inp, 0), len(cont))
    order = sorted(unique, key=lambda t: -len(t))
    logprobs: dict[tuple[int, ...], torch.Tensor] = {}  # input -> [L, V] float32 log-probs
    device = model_device(model)
    pid = pad_id(tokenizer)
    bar = progress_bar(len(order), desc, progress, unit="input")  # unique model inputs, not items
    with eval_mode(model):
        for b in range(0, len(order), batch_size):
            batch = order[b : b + batch_size]
            T = max(len(x) for x in batch)
            ids = torch.full((len(batch), T), pid, dtype=torch.long)
            mask = torch.zeros((len(batch), T), dtype=torch.long)
            for r, x in enumerate(batch):
                ids[r, : len(x)] = torch.tensor(x, dtype=torch.long)
                mask[r, : len(x)] = 1
            start = min(len(x) - unique[x] for x in batch)
            keep = T - start
            logits = forward_logits(model, ids.to(device), mask.to(device), keep=keep)
            for r, x in enumerate(batch):
                L = unique[x]
                lo = len(x) - L - start
                logprobs[x] = torch.log_softmax(logits[r, lo : lo + L].float(), dim=-1).cpu()
            bar.update(len(batch))
    bar.close()
    out = []
    for inp, cont in encoded:
        lp = logprobs[inp][-len(cont) :]
        tgt = torch.tensor(cont, dtype=torch.long)
        tok_lp = lp.gather(-1, tgt[:, None])[:, 0]
        greedy = bool((lp.argmax(dim=-1) == tgt).all())
        out.append((float(tok_lp.double().sum()), greedy))
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
) -> dict[str, Any]:
    """Score multiple-choice items (objects with ``context``, ``choices``, ``gold`` and optional
    ``delimiter``, e.g. :class:`anchored_learning.tasks.heldout.MCItem`).

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
