"""Batched greedy generation with the model's chat template.

Prompts are wrapped as one user turn (plus an optional system turn) with the tokenizer's chat
template and ``add_generation_prompt=True``, tokenised without extra special tokens, sorted by
length, left-padded and decoded greedily up to a token budget; each sequence stops at EOS (the
tokenizer's and the generation config's EOS ids, plus ``<|im_end|>`` / ``<|eot_id|>`` /
``<end_of_turn>`` when the vocabulary has them), and, when a ``stop_regex`` is given, as soon as
its decoded new text matches it (e.g. a task's "final answer given" pattern).  Outputs come back
in input order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from transformers import StoppingCriteria

from anchored_learning.evaluation._util import encode, eval_mode, model_device, pad_id, progress_bar

_END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>")


def chat_prompt(tokenizer, prompt: str | list[dict[str, str]], system: str | None = None) -> str:
    """The text the model sees for a chat ``prompt`` (generation prompt appended).

    Args:
        prompt: one user turn (text), or a whole conversation so far (a list of
            ``{"role", "content"}`` turns, system turns included).
        system: a system turn put first (only with a text prompt).

    Without a chat template the turns' texts are joined by blank lines (base models)."""
    if isinstance(prompt, str):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    else:
        messages = list(prompt)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages)


def stop_token_ids(model, tokenizer) -> list[int]:
    """EOS / end-of-turn token ids generation stops at (sorted, unique)."""
    ids: set[int] = set()
    for src in (
        tokenizer.eos_token_id,
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
        getattr(model.config, "eos_token_id", None),
    ):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(x) for x in src)
    vocab = tokenizer.get_vocab()
    for t in _END_OF_TURN_TOKENS:
        if t in vocab and t != tokenizer.bos_token:
            ids.add(int(vocab[t]))
    return sorted(ids)


class RegexStop(StoppingCriteria):
    """Stop each sequence once its new text (decoded from ``prompt_len`` on) matches ``pattern``.

    Args:
        tokenizer: decodes the new tokens (special tokens skipped).
        pattern: a regular expression searched in the new text of every sequence.
        prompt_len: number of (left-padded) prompt positions in ``input_ids``.

    ``__call__`` takes ``input_ids`` [B, T] and returns a bool tensor [B] (True = done), as
    :class:`transformers.StoppingCriteria` requires.  Only the last ``window`` new tokens are
    decoded, so the cost per step does not grow with the output.
    """

    def __init__(self, tokenizer, pattern: str, prompt_len: int, window: int = 32) -> None:
        self.tokenizer = tokenizer
        self.regex = re.compile(pattern)
        self.prompt_len = int(prompt_len)
        self.window = int(window)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_len :][:, -self.window :].tolist()
        done = [bool(self.regex.search(self.tokenizer.decode(row, skip_special_tokens=True))) for row in new]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class BatchProgress(StoppingCriteria):
    """Moves a progress bar as the sequences of one ``generate`` batch finish (never stops one).

    A sequence counts as finished once its last token is a stop id, or once ``inner`` (an optional
    criterion whose answer this one returns unchanged, e.g. :class:`RegexStop`) says it is done.
    The bar's postfix shows the new tokens generated so far.  :meth:`close` adds the sequences the
    budget cut off, so after a batch the bar has advanced by exactly its size.

    Args:
        bar: a tqdm bar (``update`` / ``set_postfix_str``).
        stops: stop token ids.
        batch: number of sequences in the batch.
        max_new_tokens: the generation budget (for the postfix).
        inner: a stopping criterion to delegate to, or None.
    """

    def __init__(self, bar, stops: Sequence[int], batch: int, max_new_tokens: int, inner=None) -> None:
        self.bar, self.inner = bar, inner
        self.stops = torch.tensor(sorted(set(stops)) or [-1], dtype=torch.long)
        self.finished = torch.zeros(batch, dtype=torch.bool)
        self.max_new_tokens = int(max_new_tokens)
        self.steps = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        done = self.inner(input_ids, scores, **kwargs) if self.inner is not None else None
        now = torch.isin(input_ids[:, -1].cpu(), self.stops)
        if done is not None:
            now |= done.cpu()
        newly = int((now & ~self.finished).sum())
        self.finished |= now
        self.steps += 1
        if newly:
            self.bar.update(newly)
        self.bar.set_postfix_str(f"{self.steps}/{self.max_new_tokens} tokens", refresh=False)
        if done is None:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return done

    def close(self) -> None:
        """Count the sequences still running when the batch ended (cut by the budget)."""
        rest = int((~self.finished).sum())
        if rest:
            self.bar.update(rest)
        self.finished[:] = True


def check_prompts_fit(
    tokenizer, prompts: Sequence[str | list[dict[str, str]]], max_new_tokens: int, context: int | None, what: str
) -> None:
    """Refuse, before any model is loaded, prompts that do not leave room for the generation budget
    in the model's context: the prompt as :func:`generate` feeds it (chat template applied) plus
    ``max_new_tokens`` must fit in ``context`` tokens (past it a model generates from positions it
    was never trained on, without an error).

    Args:
        prompts: as in :func:`generate`.
        context: the model's context length in tokens (``max_position_embeddings``); None: not checked.
        what: names the prompts in the message (e.g. ``"the test prompts of file"``).

    Raises:
        ValueError: how many prompts do not fit, the longest one's index and length, the budget, the
            context, and what to do.
    """
    if context is None:
        return
    lengths = [len(encode(tokenizer, chat_prompt(tokenizer, p))) for p in prompts]
    over = [i for i, n in enumerate(lengths) if n + int(max_new_tokens) > context]
    if over:
        i = max(over, key=lambda k: lengths[k])
        raise ValueError(
            f"{len(over)} of {len(prompts)} {what} do not fit the model's context of {context} tokens with "
            f"max_new_tokens={max_new_tokens} (the longest: item {i}, {lengths[i]} prompt tokens): lower max_new_tokens "
            f"to {max(context - max(lengths), 0)} or less, or shorten those prompts"
        )


def generate(
    model,
    tokenizer,
    prompts: Sequence[str | list[dict[str, str]]],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    system: str | None = None,
    chat: bool = True,
    progress: bool = False,
    desc: str = "generate",
    stop_regex: str | None = None,
) -> list[str]:
    """Greedy completions of ``prompts`` (one string per prompt, in input order).

    Args:
        prompts: user turns (plain text) or conversations (lists of turns, see :func:`chat_prompt`);
            with ``chat=False`` text prompts are fed verbatim.
        max_new_tokens: generation budget per prompt (tokens).
        batch_size: prompts per ``generate`` call (left-padded).
        system: optional system turn.
        stop_regex: stop a sequence as soon as its new text matches this regular expression
            (the text up to that point is kept; e.g. ``Answer\\s*:\\s*\\d+\\D`` ends a solution
            right after its final answer instead of letting it run to the budget).

    Returns:
        The decoded new text, cut at the first stop token, special tokens removed, stripped of
        surrounding whitespace.
    """
    if not prompts:
        return []
    texts = [chat_prompt(tokenizer, p, system) if chat else p for p in prompts]
    ids = [encode(tokenizer, t) for t in texts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    stops = stop_token_ids(model, tokenizer)
    pid = pad_id(tokenizer)
    device = model_device(model)
    from transformers import GenerationConfig

    gen_cfg = GenerationConfig(
        max_new_tokens=int(max_new_tokens),
        do_sample=False,
        num_beams=1,
        eos_token_id=stops or None,
        pad_token_id=pid,
        bos_token_id=tokenizer.bos_token_id,
    )
    outputs: list[str] = [""] * len(ids)
    bar = progress_bar(len(ids), desc, progress, unit="prompt")
    with eval_mode(model):
        for b in range(0, len(order), batch_size):
            batch = order[b : b + batch_size]
            T = max(len(ids[i]) for i in batch)
            inp = torch.full((len(batch), T), pid, dtype=torch.long)
            mask = torch.zeros((len(batch), T), dtype=torch.long)
            for r, i in enumerate(batch):  # left padding
                inp[r, T - len(ids[i]) :] = torch.tensor(ids[i], dtype=torch.long)
                mask[r, T - len(ids[i]) :] = 1
            tracker = BatchProgress(
                bar, stops, len(batch), max_new_tokens, inner=RegexStop(tokenizer, stop_regex, T) if stop_regex else None
            )
            out = model.generate(
                input_ids=inp.to(device),
                attention_mask=mask.to(device),
                generation_config=gen_cfg,
                stopping_criteria=[tracker],
            )
            tracker.close()
            new = out[:, T:].tolist()
            for r, i in enumerate(batch):
                toks = new[r]
                for k, t in enumerate(toks):
                    if t in stops:
                        toks = toks[:k]
                        break
                outputs[i] = tokenizer.decode(toks, skip_special_tokens=True).strip()
    bar.close()
    return outputs
