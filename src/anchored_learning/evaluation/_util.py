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


@lru_cache(maxsize=64)
def _cache_argument(cls) -> str:
    """The name of the forward's key/value-cache argument: ``cache`` (transformers >= 5.24),
    else ``past_key_values``."""
    try:
        return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"
    except (TypeError, ValueError):
        return "past_key_values"


def forward_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: int | None = None):
    """Run ``model`` and return logits ``[B, K, V]`` for the last ``K = keep`` positions (all
    positions when ``keep`` is None or the model cannot restrict its output head)."""
    return forward(model, input_ids, attention_mask, keep=keep).logits


def forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: int | None = None, cache=None, **kwargs):
    """Run ``model`` (``use_cache=False`` unless ``kwargs`` says otherwise) and return its output,
    whose ``logits`` are ``[B, K, V]`` for the last ``K = keep`` positions (all when ``keep`` is
    None).  ``cache``: a key/value cache to continue from (passed under the name the model's
    forward takes); ``kwargs`` go to the model (``position_ids``, ``use_cache``).  The output's
    cache, when asked for, is :func:`output_cache`."""
    kwargs.setdefault("use_cache", False)
    if cache is not None:
        kwargs[_cache_argument(type(model))] = cache
    if keep is not None and _accepts_logits_to_keep(type(model)):
        kwargs["logits_to_keep"] = int(keep)
    out = model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    if keep is not None and out.logits.shape[1] > keep:
        out.logits = out.logits[:, -keep:, :]
    return out


def output_cache(output):
    """The key/value cache of a model output (``cache``, earlier ``past_key_values``), or None."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


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
