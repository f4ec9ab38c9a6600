"""Helpers for fast, download-free tests: a tiny random Llama and a byte-level tokenizer.

Nothing here touches the network.  ``tiny_llama()`` builds a randomly initialised
:class:`~transformers.LlamaForCausalLM` (hidden 64, 2 layers by default: ~100k parameters, a
forward pass takes milliseconds on CPU) and a matching tokenizer that can encode any text (every
UTF-8 byte is one token) and has a ChatML-style chat template, so generation, log-likelihood
scoring, drift and training code can all be exercised in unit tests.
"""

from __future__ import annotations

import torch

#: the chat template of the tiny tokenizer (ChatML, like SmolLM2 and Qwen, without a default
#: system turn)
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def tiny_tokenizer():
    """Return a byte-level ``PreTrainedTokenizerFast`` built in memory (260 tokens).

    Ids 0..255 are the 256 byte symbols of GPT-2's byte-level alphabet (so any string encodes,
    one token per UTF-8 byte, and decodes back exactly); 256..259 are ``<|endoftext|>`` (BOS),
    ``<|im_start|>``, ``<|im_end|>`` (EOS) and ``<|pad|>`` (PAD).  No BOS is added on encoding,
    like SmolLM2.  The chat template is :data:`TINY_CHAT_TEMPLATE`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend)
    tok.add_special_tokens(
        {
            "bos_token": "<|endoftext|>",
            "eos_token": "<|im_end|>",
            "pad_token": "<|pad|>",
            "additional_special_tokens": ["<|im_start|>"],
        }
    )
    tok.chat_template = TINY_CHAT_TEMPLATE
    assert len(tok) == 256 + len(_SPECIAL_TOKENS), len(tok)
    return tok


def tiny_llama(vocab_size: int | None = None, hidden: int = 64, layers: int = 2, seed: int = 0):
    """Build a randomly initialised tiny ``LlamaForCausalLM`` and its tokenizer.

    Args:
        vocab_size: embedding rows; defaults to the tokenizer's 260 tokens.  Must be at least
            ``len(tokenizer)``.
        hidden: hidden size (heads = hidden // 16, at least 1; MLP width 2 * hidden).
        layers: number of decoder layers.
        seed: seeds ``torch`` for the weight initialisation; same seed -> identical weights.

    Returns:
        ``(model, tokenizer)``; the model is float32, in eval mode, with
        ``config.eos_token_id`` / ``pad_token_id`` / ``bos_token_id`` and its generation config
        matching the tokenizer.

    Raises:
        ValueError: ``vocab_size`` smaller than the tokenizer.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    n = len(tok)
    if vocab_size is None:
        vocab_size = n
    if vocab_size < n:
        raise ValueError(f"vocab_size={vocab_size} is smaller than the tokenizer ({n} tokens)")
    heads = max(1, hidden // 16)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    # Default init (std 0.02) gives near-uniform next-token distributions; widen the output head
    # a little so tests see non-trivial, seed-dependent distributions.
    with torch.no_grad():
        model.lm_head.weight.copy_(torch.randn(model.lm_head.weight.shape, generator=gen) * 0.5)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    model.eval()
    return model, tok


def save_tiny_llama(folder, **kwargs):
    """Save :func:`tiny_llama` (``kwargs`` passed on) and its tokenizer into ``folder``, a model
    folder that ``--model`` / ``from_pretrained`` load; returns ``folder`` as a ``Path``."""
    from pathlib import Path

    model, tok = tiny_llama(**kwargs)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return Path(folder)
