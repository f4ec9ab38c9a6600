"""Sampling responses from a model: the one place the on-policy methods and self-generated SFT draw from.

* :func:`sample_responses`: token ids sampled from ``softmax(z / temperature)`` for tokenized
  prompts (no top-k, top-p or other warper, whatever the model's generation config says), cut
  after the first stop token.  The on-policy methods (``anchored_on_policy``, ``distill_on_policy``)
  call it at every refresh with the snapshot p_t and train on exactly these tokens.
* :func:`self_generated_rows`: rejection sampling for ``sft_self_generated`` (Retaining by Doing,
  arXiv:2510.18874; RFT): sample responses from the base model for the training prompts, keep the
  first one the task's scoring rule accepts, else the dataset response.
* :func:`write_record` / :func:`read_record`: the JSONL files that record the samples of a run
  (one header line, then one line per row), written atomically so a resumed run reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from anchored_learning.io import atomic_file

#: the bool column :func:`self_generated_rows` adds (True: the row trains on an accepted sample)
SELF_GENERATED_COLUMN = "self_generated"

#: GenerationConfig values that make ``generate`` sample from softmax(z / temperature) itself: the
#: model's own generation config (top_k 50 by default in transformers, top_p, penalties) fills every
#: field left unset, so each warper is set to its neutral value here
_PURE_SAMPLING = dict(
    do_sample=True,
    num_beams=1,
    top_k=0,
    top_p=1.0,
    min_p=0.0,
    typical_p=1.0,
    epsilon_cutoff=0.0,
    eta_cutoff=0.0,
    repetition_penalty=1.0,
    no_repeat_ngram_size=0,
    min_new_tokens=0,
)


def _cut_after_stop(tokens: Sequence[int], stops: set[int]) -> list[int]:
    for k, t in enumerate(tokens):
        if t in stops:
            return list(tokens[: k + 1])
    return list(tokens)


@torch.no_grad()
def sample_responses(
    model: torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    *,
    stop_ids: Sequence[int],
    pad_id: int,
    max_new_tokens: int | Sequence[int],
    num_samples: int = 1,
    temperature: float = 0.9,
    batch_size: int = 8,
    seed: int = 0,
    autocast_bf16: bool = False,
) -> list[list[list[int]]]:
    """Sample ``num_samples`` responses per prompt from ``softmax(z / temperature)``.

    Args:
        model: a causal LM (a PEFT model samples with its adapters); it is put in eval mode for
            the call and its training flag restored.
        prompt_ids: the prompts' token ids (chat template already applied), one list per prompt.
        stop_ids: token ids that end a response (EOS, end of turn); the stop token is kept.
        pad_id: id used to left-pad the prompts of a batch.
        max_new_tokens: the budget in new tokens, one for all prompts or one per prompt (>= 1).
        num_samples: responses per prompt.
        temperature: > 0; no top-k / top-p / penalty (the distribution itself, tempered).
        batch_size: prompts per ``generate`` call (sorted by length, left-padded).
        seed: seeds torch's generators for the call (the caller's random state is restored after).
        autocast_bf16: run the forward passes under bf16 autocast (as the trainer's forward does
            with ``bf16=True``).

    Returns:
        ``out[i][j]``: the token ids of prompt i's j-th response, up to and including the first
        stop token, or ``max_new_tokens[i]`` tokens when none came.

    Raises:
        ValueError: no stop id, a budget below 1, a temperature <= 0, an empty prompt.
    """
    n = len(prompt_ids)
    budgets = [int(max_new_tokens)] * n if isinstance(max_new_tokens, int) else [int(b) for b in max_new_tokens]
    if len(budgets) != n or any(b < 1 for b in budgets):
        raise ValueError(f"max_new_tokens must be >= 1 for each of the {n} prompts")
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not stop_ids:
        raise ValueError("sampling needs at least one stop token id (EOS)")
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("every prompt needs at least one token")
    stops = {int(s) for s in stop_ids}
    device = next(model.parameters()).device
    order = sorted(range(n), key=lambda i: -len(prompt_ids[i]))
    out: list[list[list[int]]] = [[] for _ in range(n)]
    was_training = model.training
    model.eval()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
            torch.manual_seed(int(seed))
            for b in range(0, n, batch_size):
                batch = order[b : b + batch_size]
                new = _generate_batch(model, [prompt_ids[i] for i in batch], pad_id, stops, temperature, num_samples,
                                      max(budgets[i] for i in batch))  # fmt: skip
                for r, i in enumerate(batch):
                    for j in range(int(num_samples)):
                        tokens = _cut_after_stop(new[r * int(num_samples) + j], stops)
                        out[i].append(tokens[: budgets[i]])
    finally:
        model.train(was_training)
    return out


def _generate_batch(model, prompts, pad_id: int, stops: set[int], temperature: float, num_samples: int, max_new: int):
    """One ``generate`` call on ``prompts`` (left-padded): the new tokens of every sample,
    ``[len(prompts) * num_samples]`` lists, the samples of a prompt adjacent."""
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):  # left padding
        ids[r, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
        mask[r, width - len(p) :] = 1
    cfg = GenerationConfig(
        **_PURE_SAMPLING,
        temperature=float(temperature),
        max_new_tokens=max_new,
        num_return_sequences=int(num_samples),
        eos_token_id=sorted(stops),
        pad_token_id=int(pad_id),
    )
    gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=cfg)
    return gen[:, width:].tolist()


def self_generated_rows(
    model: torch.nn.Module,
    tokenizer,
    rows: Sequence[dict[str, Any]],
    score: Callable[[int, str], float],
    *,
    samples_per_prompt: int = 1,
    temperature: float = 0.9,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rejection-sampled SFT rows (``sft_self_generated``; Retaining by Doing, arXiv:2510.18874).

    For every training row, ``samples_per_prompt`` responses are sampled from ``model`` (the base
    model) for its prompt; the row's completion becomes the first response that ``score`` gives
    full marks (1.0), else it keeps the dataset response.

    Args:
        model: the model to sample from (the base model p0).
        tokenizer: its tokenizer; conversational prompts get its chat template with the generation prompt.
        rows: TRL prompt-completion rows (``{"prompt": [turns] | str, "completion": [turn] | str}``).
        score: ``score(i, response_text) -> float`` in [0, 1]: the task's scoring rule for row i
            (e.g. ``lambda i, text: task.score(examples[i], text)``).
        samples_per_prompt: tries per prompt.
        temperature: sampling temperature (> 0).
        max_new_tokens: budget per response; None: the longest dataset response in tokens, plus one
            for the end-of-turn token.
        seed: seeds the sampling.

    Returns:
        ``(rows, report)``: the rows in input order with their ``completion`` replaced where a
        sample was accepted, each with a bool column ``self_generated`` (False: the dataset
        response was kept); ``report`` holds ``n``, ``accepted`` and ``accepted_share``, the
        share of rows that train on a sample, and the sampling settings.

    Raises:
        ValueError: a score outside [0, 1], and as :func:`sample_responses`.
    """
    from anchored_learning.evaluation._util import encode, pad_id
    from anchored_learning.evaluation.generation import chat_prompt, stop_token_ids

    def text_of(turns) -> str:
        return turns if isinstance(turns, str) else turns[-1]["content"]

    prompts = [
        encode(tokenizer, chat_prompt(tokenizer, r["prompt"]) if not isinstance(r["prompt"], str) else r["prompt"]) for r in rows
    ]
    if max_new_tokens is None:
        max_new_tokens = max((len(encode(tokenizer, text_of(r["completion"]))) for r in rows), default=0) + 1
    stops = stop_token_ids(model, tokenizer)
    samples = sample_responses(
        model,
        prompts,
        stop_ids=stops,
        pad_id=pad_id(tokenizer),
        max_new_tokens=int(max_new_tokens),
        num_samples=samples_per_prompt,
        temperature=temperature,
        batch_size=batch_size,
        seed=seed,
    )
    out, accepted = _accepted_rows(tokenizer, rows, samples, score, set(stops))
    report = {
        "n": len(rows),
        "accepted": accepted,
        "accepted_share": accepted / len(rows) if rows else float("nan"),
        "samples_per_prompt": int(samples_per_prompt),
        "temperature": float(temperature),
        "max_new_tokens": int(max_new_tokens),
        "seed": int(seed),
    }
    return out, report


def _accepted_rows(tokenizer, rows, samples, score, stop_set: set[int]) -> tuple[list[dict[str, Any]], int]:
    """The rows with their completion replaced by the first sample that ``score`` gives full marks
    (each with its ``self_generated`` flag), and how many were replaced."""
    out, accepted = [], 0
    for i, (row, responses) in enumerate(zip(rows, samples)):
        kept = None
        for tokens in responses:
            text = tokenizer.decode([t for t in tokens if t not in stop_set], skip_special_tokens=True).strip()
            s = float(score(i, text))
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"the scoring rule gave row {i} a score of {s}; scores must be in [0, 1]")
            if s >= 1.0:
                kept = text
                break
        new = dict(row)
        if kept is not None:
            accepted += 1
            new["completion"] = kept if isinstance(row["completion"], str) else [{"role": "assistant", "content": kept}]
        new[SELF_GENERATED_COLUMN] = kept is not None
        out.append(new)
    return out, accepted


# ---------------------------------------------------------------------------------- records


def write_record(path: str | os.PathLike, header: dict[str, Any], rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``header`` then one JSON line per row to ``path`` atomically (a killed write leaves no file)."""
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        f.write(json.dumps(header) + "\n")
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def read_record(path: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(header, rows)`` of a file written by :func:`write_record`.

    Raises:
        ValueError: an empty or malformed file (naming it).
    """
    lines = Path(path).read_text().splitlines()
    try:
        header, *rows = [json.loads(line) for line in lines]
    except (ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a sample record (a header line, then one JSON line per row): {e}") from None
    return header, rows


def tokens_sha256(sequences: Sequence[Sequence[int]]) -> str:
    """SHA-256 of token-id sequences (order-sensitive): identifies the prompts a record was sampled for."""
    h = hashlib.sha256()
    for seq in sequences:
        h.update(json.dumps(list(seq)).encode())
        h.update(b"\n")
    return h.hexdigest()


def parameters_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers (names, dtypes and bytes, in ``state_dict`` order):
    identifies the model a record was sampled from."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode() + str(t.dtype).encode())
        h.update(t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
