"""Mixed precision: detection, the config default, bf16 caches and evaluation."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset

from anchored_learning import models
from anchored_learning.testing import tiny_llama

CPUINFO = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f {extra}\nbogomips\t: 1\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert models.cpu_has_native_bf16(CPUINFO.format(extra="avx512_bf16")) is True
    assert models.cpu_has_native_bf16(CPUINFO.format(extra="amx_bf16 amx_tile")) is True
    assert models.cpu_has_native_bf16(CPUINFO.format(extra="avx512_vnni")) is False  # AVX-512 alone emulates bf16
    assert models.cpu_has_native_bf16("") is False


def test_environment_overrides_the_detection(monkeypatch):
    monkeypatch.setenv(models.BF16_ENV, "1")
    assert models.bf16_autocast_available("cpu") is True
    monkeypatch.setenv(models.BF16_ENV, "0")
    assert models.bf16_autocast_available("cpu") is False
    monkeypatch.setenv(models.BF16_ENV, "yes")
    with pytest.raises(ValueError, match="ANCHORED_BF16 must be 0 or 1"):
        models.bf16_autocast_available("cpu")


@pytest.mark.parametrize("env, expected", [("1", True), ("0", False)])
def test_config_default_follows_the_detection(monkeypatch, tmp_path, env, expected):
    from anchored_learning import AnchoredSFTConfig

    monkeypatch.setenv(models.BF16_ENV, env)
    args = AnchoredSFTConfig(output_dir=str(tmp_path), method="sft", report_to="none")
    assert args.bf16 is expected
    if expected and not torch.cuda.is_available():
        assert args.use_cpu is True  # transformers' condition for bf16 autocast on a CPU
    # an explicit choice wins over the detection
    assert AnchoredSFTConfig(output_dir=str(tmp_path), method="sft", report_to="none", bf16=False).bf16 is False


def test_bf16_training_keeps_float32_weights_and_builds_the_cache_under_autocast(tmp_path):
    """bf16 autocast: float32 master weights, bf16 matmuls in the forward pass, a float32 loss,
    and the anchor cache computed at the training forward's precision (recorded in its manifest)."""
    from anchored_learning import AnchoredSFTConfig, AnchoredSFTTrainer, train_reference

    rows = [{"prompt": f"{i} plus one?", "completion": f"{i + 1}, of course."} for i in range(8)]
    data = Dataset.from_list(rows)
    model, tok = tiny_llama(seed=0)
    common = dict(report_to="none", use_cpu=True, per_device_train_batch_size=4, learning_rate=3e-3, save_strategy="no")
    ref = train_reference(model, data, str(tmp_path / "ref"), processing_class=tok, num_train_epochs=1, bf16=True, **common)
    args = AnchoredSFTConfig(
        output_dir=str(tmp_path / "a"),
        reference_model=ref,
        outer_iterations=2,
        inner_epochs=1,
        bf16=True,
        keep_anchor_cache=True,
        **common,
    )
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=data, processing_class=tok)
    seen = []
    tr.model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    out = tr.train()
    assert torch.bfloat16 in seen and all(p.dtype == torch.float32 for p in tr.model.parameters())
    assert torch.isfinite(torch.tensor(out.training_loss))
    manifest = json.loads((tr.anchor_dir / "reference" / "manifest.json").read_text())
    assert manifest["bf16_autocast"] is True and manifest["dtype"] == "float32"


def test_evaluation_under_bf16_is_close_to_float32_and_says_so():
    from anchored_learning.evaluation.suites import evaluate

    model, tok = tiny_llama(seed=0)
    base, _ = tiny_llama(seed=1)
    kw = dict(limits={"heldout_nll": 4, "drift": 4, "arc_easy": 8}, batch_size=4, base_model=base)
    fp32 = evaluate(model, tok, ["heldout_nll", "drift", "arc_easy"], precision="fp32", **kw)
    bf16 = evaluate(model, tok, ["heldout_nll", "drift", "arc_easy"], precision="bf16", **kw)
    assert fp32["meta"]["precision"] == "float32" and bf16["meta"]["precision"] == "bf16 autocast"
    assert fp32["meta"]["limits"] == kw["limits"] and fp32["meta"]["limit"] is None  # what ran, per suite
    a, b = fp32["results"], bf16["results"]
    assert b["heldout_nll"]["primary"] == pytest.approx(a["heldout_nll"]["primary"], rel=0.01)
    assert b["drift"]["primary"] == pytest.approx(a["drift"]["primary"], rel=0.05)
    assert a["heldout_nll"]["primary"] != b["heldout_nll"]["primary"]  # bf16 really ran
    with pytest.raises(ValueError, match="precision must be 'auto', 'bf16' or 'fp32'"):
        evaluate(model, tok, ["heldout_nll"], precision="fp16")
