"""Small shared helpers of the evaluation package (private)."""

from __future__ import annotations

import contextlib
import inspect
from functools import lru_cache

import torch


def model_device(model) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-less model)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@lru_cache(maxsize=64)
def _accepts_logits_to_keep(cls) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False


def forward_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: int | None = None):
    """Run ``model`` and return logits ``[B, K, V]`` for the last ``K = keep`` positions (all
    positions when ``keep`` is None or the model cannot restrict its output head)."""
    kwargs = {}
    if keep is not None and _accepts_logits_to_keep(type(model)):
        kwargs["logits_to_keep"] = int(keep)
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs)
    logits = out.logits
    if keep is not None and logits.shape[1] > keep:
        logits = logits[:, -keep:, :]
    return logits


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "it"):
    """A tqdm bar writing to stderr (a no-op object when disabled); ``unit`` names what it counts."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True)


@contextlib.contextmanager
def eval_mode(*models):
    """Put models in eval mode under ``torch.inference_mode`` and restore their training flags."""
    flags = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        with torch.inference_mode():
            yield
    finally:
        for m, f in zip(models, flags):
            m.train(f)


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (no BOS/EOS added)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def pad_id(tokenizer) -> int:
    """The tokenizer's pad id, else EOS, else 0."""
    for t in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if t is not None:
            return int(t)
    return 0
