"""AnchoredSFTTrainer on a tiny random Llama: outer loop, cache == live, baselines, bad input."""

from __future__ import annotations

import pytest
import reference_losses as R
import torch
from datasets import Dataset
from transformers import TrainerCallback

from anchored_learning import anchor_bounds as B
from anchored_learning import objectives as O
from anchored_learning.anchor_cache import HiddenStateCache, response_hidden_states
from anchored_learning.config import AnchoredSFTConfig
from anchored_learning.testing import tiny_llama
from anchored_learning.trainer import AnchoredSFTTrainer, train_reference, wise_ft


def make_data(n=12, conversational=True):
    rows = []
    for i in range(n):
        q, a = f"add {i} and {i + 3}", f"the sum is {2 * i + 3}" + "!" * (i % 4)  # varied lengths -> padding
        if conversational:
            rows.append({"prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]})
        else:
            rows.append({"prompt": q + " =", "completion": " " + a})
    return Dataset.from_list(rows)


def base_args(tmp_path, **kw):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        seed=0,
        data_seed=0,
        lr_scheduler_type="constant",
    )
    defaults.update(kw)
    return defaults


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    model, tok = tiny_llama(seed=0)
    return train_reference(
        model,
        make_data(),
        str(d),
        processing_class=tok,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        num_train_epochs=3,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )


class SnapshotRecorder(TrainerCallback):
    def __init__(self):
        self.trainer = None
        self.seen = []  # (global_step at step end, snapshot iteration, id of snapshot object)

    def on_step_end(self, args, state, control, **kw):
        self.seen.append((state.global_step, self.trainer._snapshot_iteration, id(self.trainer._snapshot)))


def test_anchored_lowers_loss_and_refreshes_only_at_iteration_boundaries(tmp_path, reference_dir):
    model, tok = tiny_llama(seed=0)
    rec = SnapshotRecorder()
    args = AnchoredSFTConfig(**base_args(tmp_path, reference_model=reference_dir, outer_iterations=3, inner_epochs=2))
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok, callbacks=[rec])
    rec.trainer = tr
    tr.train()
    steps_per_epoch = 3  # 12 examples / batch 4
    assert args.num_train_epochs == 6
    iters = [it for _, it, _ in rec.seen]
    assert iters == [s_ // (2 * steps_per_epoch) for s_ in range(len(iters))]
    # the snapshot object changes exactly when the iteration changes, never in between
    for (s0, i0, o0), (s1, i1, o1) in zip(rec.seen, rec.seen[1:]):
        assert (o0 != o1) == (i0 != i1), (s0, s1)
    refresh_steps = [int(r["step"]) for r in tr.anchor_history]
    assert refresh_steps == [0, 6, 12]
    losses = [h["loss"] for h in tr.state.log_history if "loss" in h]
    # within each outer iteration the anchored loss goes down (the anchor is fixed there)
    for t in range(3):
        chunk = losses[t * 6 : (t + 1) * 6]
        assert chunk[-1] < chunk[0], (t, chunk)
    # diagnostics: after the first iteration the realised move is measured and finite
    assert all("kl_student_prev_snapshot" in r for r in tr.anchor_history[1:])
    assert all(r["kl_snapshot_anchor"] <= r["alpha_kl_snapshot_reference"] + 1e-6 for r in tr.anchor_history)


def test_logged_outer_iteration_is_the_last_steps_t_and_absent_without_outer_iterations(tmp_path, reference_dir):
    # 3 steps per epoch, K = 1, logging every 2 steps: the window of step 4 holds steps 3 (t = 0) and
    # 4 (t = 1); the log says t = 1 (an integer), not the window mean 0.5
    model, tok = tiny_llama(seed=0)
    args = AnchoredSFTConfig(
        **base_args(tmp_path, reference_model=reference_dir, outer_iterations=2, inner_epochs=1, logging_steps=2)
    )
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
    tr.train()
    logged = [(h["step"], h["outer_iteration"]) for h in tr.state.log_history if "loss" in h]
    assert logged == [(2, 0), (4, 1), (6, 1)] and all(type(t) is int for _, t in logged)
    # plain SFT has no outer iterations: nothing is logged under that name
    model, tok = tiny_llama(seed=0)
    sft = AnchoredSFTTrainer(
        model,
        args=AnchoredSFTConfig(**base_args(tmp_path / "sft", method="sft", num_train_epochs=1, logging_steps=2)),
        train_dataset=make_data(),
        processing_class=tok,
    )
    sft.train()
    assert [h for h in sft.state.log_history if "loss" in h] and all("outer_iteration" not in h for h in sft.state.log_history)


def _first_batch(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    return {k: v for k, v in batch.items()}


@pytest.mark.parametrize("interpolation", ["logit", "probability"])
def test_cache_matches_live_anchor_logits_and_loss(tmp_path, reference_dir, interpolation):
    _check_cache_matches_live(tmp_path, reference_dir, anchor_interpolation=interpolation)


def test_cache_matches_live_with_length_grouped_batches(tmp_path, reference_dir):
    """The cache is read by example index, so transformers' group_by_length sampler (batches of
    similar lengths, another order) changes nothing in the anchors."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    tr = _check_cache_matches_live(tmp_path, reference_dir, train_sampling_strategy="group_by_length", need_padding=False)
    assert isinstance(tr._get_train_sampler(), LengthGroupedSampler)


def test_shared_anchor_caches_are_reused_and_change_nothing(tmp_path, reference_dir, monkeypatch):
    """With a shared folder, a second run builds neither the reference's cache nor the starting
    model's snapshot (it links the first run's), only its own later snapshot, and trains the same
    weights, bit for bit, as a run that builds all of its own caches."""
    builds = []
    real_build = HiddenStateCache.build.__func__
    monkeypatch.setattr(
        HiddenStateCache,
        "build",
        classmethod(lambda cls, path, *a, **k: builds.append(path.name) or real_build(cls, path, *a, **k)),
    )

    def run(name, shared, alpha):
        model, tok = tiny_llama(seed=0)
        args = AnchoredSFTConfig(
            **base_args(tmp_path / name, reference_model=reference_dir, outer_iterations=2, inner_epochs=1, anchor_alpha=alpha,
                        shared_anchor_cache_dir=shared)
        )  # fmt: skip
        tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
        tr.train()
        return tr.model.state_dict()

    shared = str(tmp_path / "shared")
    run("a", shared, 0.25)
    assert (
        sorted(n.split("-")[0] for n in builds) == ["reference", "snapshot", "snapshot"]
        and len(list((tmp_path / "shared").iterdir())) == 2
    )
    builds.clear()
    reused = run("b", shared, 0.75)
    assert builds == ["snapshot-001"]
    own = run("c", None, 0.75)
    assert all(torch.equal(reused[k], own[k]) for k in own)


def _check_cache_matches_live(tmp_path, reference_dir, need_padding=True, **kw):
    """Train 2 steps with the cache and with live frozen models, then compare the reference and
    snapshot logits and the loss on one training batch; returns the cache run's trainer."""
    results, trainers = {}, {}
    for source in ("cache", "live"):
        model, tok = tiny_llama(seed=0)
        args = AnchoredSFTConfig(
            **base_args(
                tmp_path / source,
                reference_model=reference_dir,
                anchor_source=source,
                max_steps=2,
                keep_anchor_cache=True,
                outer_iterations=2,
                inner_epochs=1,
                **kw,
            )
        )
        tr = trainers[source] = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
        tr.train()  # builds reference and snapshot (snapshot = the student at step 0)
        tr.model.train()
        torch.manual_seed(1)  # the same batch from both runs' samplers
        batch = _first_batch(tr)  # shuffled, right-padded
        assert not need_padding or (batch["attention_mask"] == 0).any(), "the test needs padding in the batch"
        index = batch["anchor_index"]
        ref = tr._anchor_logits(tr._reference, batch, index)
        snap = tr._anchor_logits(tr._snapshot, batch, index)
        rows = torch.arange(ref.shape[0])
        n = R.count_response_tokens(O.shift_labels(batch["labels"]))
        with torch.no_grad():
            loss = tr.compute_loss(tr.model, dict(batch), num_items_in_batch=n)
        results[source] = (ref[rows], snap[rows], loss.item(), index)
    (rc, sc, lc, ic), (rl, sl, ll, il) = results["cache"], results["live"]
    assert torch.equal(ic, il)
    assert torch.allclose(rc, rl, atol=1e-4, rtol=1e-5)
    assert torch.allclose(sc, sl, atol=1e-4, rtol=1e-5)
    assert lc == pytest.approx(ll, rel=1e-5)
    return trainers["cache"]


def test_alpha_one_single_iteration_equals_distillation(tmp_path, reference_dir):
    finals = {}
    for name, kw in {
        "anchored": dict(method="anchored", anchor_alpha=1.0, outer_iterations=1, inner_epochs=2),
        "distill": dict(method="distill", num_train_epochs=2),
    }.items():
        model, tok = tiny_llama(seed=0)
        args = AnchoredSFTConfig(**base_args(tmp_path / name, reference_model=reference_dir, **kw))
        tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
        tr.train()
        finals[name] = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
    for k in finals["anchored"]:
        assert torch.allclose(finals["anchored"][k], finals["distill"][k], atol=1e-6), k
    # and training moved the weights at all
    base, _ = tiny_llama(seed=0)
    assert any(not torch.allclose(v, finals["distill"][k]) for k, v in base.state_dict().items())


@pytest.mark.parametrize("method", ["sft", "sft_kl", "dft", "asft", "psft", "distill", "anchored", "anchored_per_step"])
def test_step0_loss_equals_objective_on_the_same_batch(tmp_path, reference_dir, method):
    from transformers import AutoModelForCausalLM

    model, tok = tiny_llama(seed=0)
    extra = {"reference_model": reference_dir} if method in ("distill", "anchored", "anchored_per_step") else {}
    args = AnchoredSFTConfig(**base_args(tmp_path, method=method, kl_coef=0.3, max_steps=1, **extra))
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
    tr.model.train()
    batch = _first_batch(tr)
    n = R.count_response_tokens(O.shift_labels(batch["labels"]))
    tr.refresh_snapshot()  # what the outer-loop callback does at the start of training
    loss = tr.compute_loss(tr.model, dict(batch), num_items_in_batch=torch.tensor(n)).item()

    # direct computation from full logits of independent model copies
    base, _ = tiny_llama(seed=0)
    base.eval()
    labels = O.shift_labels(batch["labels"])
    fwd = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    with torch.no_grad():
        student = base(**fwd).logits
        ref = AutoModelForCausalLM.from_pretrained(reference_dir).eval()(**fwd).logits if extra else None
    if method == "sft":
        expected = O.sft_loss(student, labels)
    elif method == "dft":
        expected = O.dft_loss(student, labels)
    elif method == "sft_kl":
        expected = O.sft_kl_loss(student, student, labels, kl_coef=0.3)  # at step 0 the student is p0
    elif method == "asft":
        expected = O.asft_loss(student, student, labels, kl_coef=0.3)
    elif method == "psft":
        expected = O.psft_loss(student, O.token_logprobs(student, labels), labels)  # ratio 1 everywhere
        assert expected.item() == pytest.approx(-1.0)
    elif method == "distill":
        expected = R.distillation_loss(student, ref, labels)
    else:  # anchored at step 0: snapshot == student
        expected = O.anchored_kl_loss(student, student, ref, labels, alpha=0.5)
    assert loss == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)


def test_loss_on_assistant_turns_of_conversations(tmp_path):
    """``messages`` data with assistant_only_loss: labels cover exactly the assistant content."""
    model, tok = tiny_llama(seed=0)
    tok.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}"
        "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] + '<|im_end|>' }}{% endgeneration %}"
        "{% else %}{{ m['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}"
    )
    data = Dataset.from_list(
        [
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "ok1"},
                    {"role": "user", "content": "again"},
                    {"role": "assistant", "content": "ok22"},
                ]
            }
        ]
        * 4
    )
    args = AnchoredSFTConfig(**base_args(tmp_path, method="sft", assistant_only_loss=True, max_steps=1))
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=data, processing_class=tok)
    labels = tr.train_dataset[0]["labels"]
    text = tok.decode([t for t in labels if t != -100])
    assert text == "ok1<|im_end|>ok22<|im_end|>"
    tr.train()


def test_lora_student_anchored(tmp_path, reference_dir):
    from peft import LoraConfig

    model, tok = tiny_llama(seed=0)
    args = AnchoredSFTConfig(
        **base_args(tmp_path, reference_model=reference_dir, outer_iterations=2, inner_epochs=1, learning_rate=1e-2)
    )
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok, peft_config=peft_config)
    before = {k: v.clone() for k, v in tr.model.named_parameters() if "lora_B" in k}
    tr.train()
    after = dict(tr.model.named_parameters())
    assert before and all(not torch.equal(v, after[k]) for k, v in before.items())
    frozen = [k for k, v in tr.model.named_parameters() if not v.requires_grad]
    assert frozen, "LoRA must leave the base weights frozen"
    assert len(tr.anchor_history) == 2


def test_train_reference_leaves_the_callers_model_unchanged(tmp_path):
    model, tok = tiny_llama(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = train_reference(
        model,
        make_data(4),
        str(tmp_path / "r"),
        processing_class=tok,
        num_train_epochs=1,
        learning_rate=1e-2,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
    )
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in before.items())


def test_wise_ft_interpolates_weights():
    a, _ = tiny_llama(seed=0)
    b, _ = tiny_llama(seed=1)
    mid = wise_ft(a, b, 0.25)
    for k, v in mid.state_dict().items():
        assert torch.allclose(v, 0.75 * a.state_dict()[k] + 0.25 * b.state_dict()[k], atol=1e-6)
    assert torch.equal(wise_ft(a, b, 0.0).state_dict()["lm_head.weight"], a.state_dict()["lm_head.weight"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        wise_ft(a, b, 1.5)


def test_hidden_state_cache_round_trip(tmp_path):
    model, tok = tiny_llama(seed=0)
    args = AnchoredSFTConfig(**base_args(tmp_path, method="sft", max_steps=1))
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
    examples = tr._examples()
    cache = tr._build_cache(tmp_path / "c", model, "test")
    assert (tmp_path / "c" / "manifest.json").exists() and not (tmp_path / "c.building").exists()
    batch = tr._collate_plain([examples[3], examples[7]])
    with torch.no_grad():
        h = response_hidden_states(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    rows = cache.rows(torch.tensor([3, 7]), batch["labels"])
    assert torch.allclose(rows, h, atol=1e-5)
    # a reopened cache refuses other data
    with pytest.raises(ValueError, match="different training data"):
        HiddenStateCache.open(tmp_path / "c", fingerprint="0" * 64)


# ---------------------------------------------------------------- bad input


def test_missing_reference_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs reference_model"):
        AnchoredSFTConfig(**base_args(tmp_path, method="anchored"))
    model, tok = tiny_llama(seed=0)
    args = AnchoredSFTConfig(**base_args(tmp_path, reference_model=str(tmp_path / "nope")))
    with pytest.raises(ValueError, match="does not exist"):
        AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)


def test_vocab_mismatch_is_rejected_before_training(tmp_path):
    model, tok = tiny_llama(seed=0)
    other, _ = tiny_llama(vocab_size=300, seed=0)
    args = AnchoredSFTConfig(**base_args(tmp_path, reference_model="unused"))
    with pytest.raises(ValueError, match="vocabulary of 300 entries"):
        AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok, reference_model=other)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("outer_iterations", 0, "outer_iterations"),
        ("inner_epochs", 0, "inner_epochs"),
        ("anchor_alpha", 1.5, "anchor_alpha"),
        ("anchor_temperature", 0.0, "anchor_temperature"),
        ("anchor_source", "disk", "anchor_source"),
        ("method", "ppo", "method must be one of"),
        ("anchor_interpolation", "geo", "anchor_interpolation"),
    ],
)
def test_config_validation(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        AnchoredSFTConfig(**base_args(tmp_path, reference_model="x", **{field: value}))


def test_dataset_without_response_tokens_is_rejected(tmp_path):
    model, tok = tiny_llama(seed=0)
    data = Dataset.from_list([{"input_ids": [1, 2, 3, 4], "labels": [-100, -100, -100, -100]}] * 4)
    args = AnchoredSFTConfig(**base_args(tmp_path, method="sft"))
    with pytest.raises(ValueError, match="no response tokens"):
        AnchoredSFTTrainer(model, args=args, train_dataset=data, processing_class=tok)


# ---------------------------------------------------------------------- reliability (issue #14)


def test_non_finite_numbers_are_rejected_by_validation(tmp_path):
    for field, value in (("learning_rate", float("inf")), ("anchor_alpha", float("nan")), ("kl_coef", "inf")):
        with pytest.raises(ValueError, match=f"{field} must be a finite number"):
            AnchoredSFTConfig(**base_args(tmp_path, method="sft", **{field: value}))


def test_a_diverging_run_stops_at_the_first_non_finite_loss_and_writes_no_nan_model(tmp_path):
    # finite but absurd: one Adam step makes the weights overflow, so the next loss is not finite
    model, tok = tiny_llama(seed=0)
    args = AnchoredSFTConfig(**base_args(tmp_path, method="sft", learning_rate=1e38, num_train_epochs=2))
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
    with pytest.raises(FloatingPointError, match=r"non-finite sft loss .* at step 2 .*lower the learning rate"):
        tr.train()
    assert tr.state.global_step == 1
    # with a checkpoint due after that step, the save is refused: no checkpoint holds NaN weights
    model, tok = tiny_llama(seed=0)
    args = AnchoredSFTConfig(
        **base_args(tmp_path / "b", method="sft", learning_rate=1e38, num_train_epochs=2, save_strategy="steps", save_steps=1)
    )
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
    with pytest.raises(FloatingPointError, match=r"the model at step 1 .* was not written"):
        tr.train()
    assert not list((tmp_path / "b" / "out").glob("checkpoint-*"))


def test_nan_weights_are_never_saved(tmp_path):
    model, tok = tiny_llama(seed=0)
    tr = AnchoredSFTTrainer(
        model, args=AnchoredSFTConfig(**base_args(tmp_path, method="sft")), train_dataset=make_data(), processing_class=tok
    )
    with torch.no_grad():
        next(tr.model.parameters())[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="1 parameter tensor"):
        tr.save_model(str(tmp_path / "m"))
    assert not (tmp_path / "m").exists()


def test_a_deep_copy_of_the_trained_model_runs_its_own_weights(tmp_path):
    import copy

    model, tok = tiny_llama(seed=0)
    tr = AnchoredSFTTrainer(
        model,
        args=AnchoredSFTConfig(**base_args(tmp_path, method="sft", max_steps=1)),
        train_dataset=make_data(),
        processing_class=tok,
    )
    ids = torch.tensor([[5, 6, 7, 8]])
    twin = copy.deepcopy(tr.model)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
        ours, theirs = tr.model(input_ids=ids).logits, twin(input_ids=ids).logits
    assert not torch.allclose(ours, theirs)  # was: the copy silently returned the trainer's own outputs
    plain, _ = tiny_llama(seed=0)  # the patched forward equals the unpatched one
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=ids).logits, tr.model(input_ids=ids).logits)
    # the copy is a plain model (no instance-level forward patches); the trainer's model keeps its own
    assert "forward" not in twin.__dict__ and "forward" in tr.model.__dict__
    labels = torch.tensor([[-100, -100, 7, 8]])
    with torch.no_grad():
        rows = tr.model(input_ids=ids, labels=labels, anchored_response_logits=True)
    assert torch.allclose(rows, ours[0, 1:3], atol=1e-4)  # logits at the positions whose next label is a response token


def test_resume_skips_a_checkpoint_whose_save_did_not_finish(tmp_path):
    model, tok = tiny_llama(seed=0)
    kw = base_args(tmp_path, method="sft", num_train_epochs=3, save_strategy="epoch")
    AnchoredSFTTrainer(model, args=AnchoredSFTConfig(**kw), train_dataset=make_data(), processing_class=tok).train()
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6", "checkpoint-9"]
    (out / "checkpoint-9" / "trainer_state.json").unlink()  # killed (or disk full) while checkpoint-9 was written
    model, tok = tiny_llama(seed=0)
    tr = AnchoredSFTTrainer(model, args=AnchoredSFTConfig(**kw), train_dataset=make_data(), processing_class=tok)
    assert tr.last_complete_checkpoint() == str(out / "checkpoint-6")
    tr.train(resume_from_checkpoint=True)  # was: a traceback (trainer_state.json not found)
    assert tr.state.global_step == 9
    shutil_rm = __import__("shutil").rmtree
    for p in out.glob("checkpoint-*"):
        shutil_rm(p)
    assert tr.last_complete_checkpoint() is None


def test_examples_that_lose_every_response_token_are_an_error_not_dropped_silently(tmp_path):
    model, tok = tiny_llama(seed=0)
    rows = [{"prompt": "x " * (40 if i == 3 else 2), "completion": f" answer {i}"} for i in range(6)]
    args = AnchoredSFTConfig(**base_args(tmp_path, method="sft", max_length=48))
    with pytest.raises(
        ValueError, match=r"1 of 6 training examples have no response tokens left after truncation to max_length=48"
    ):
        AnchoredSFTTrainer(model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    with pytest.raises(ValueError, match="max_length must be >= 1"):
        AnchoredSFTConfig(**base_args(tmp_path, method="sft", max_length=0))


@pytest.mark.parametrize("conversational", [True, False])
def test_up_front_response_token_check_agrees_with_the_trainer(tmp_path, conversational):
    """data.check_response_tokens_fit (run before any model load) against the trainer's own count of
    the rows TRL drops, at max_length just below, at and above the longest prompt."""
    import re

    from anchored_learning.data import check_response_tokens_fit

    model, tok = tiny_llama(seed=0)
    prompts = ["x " * n for n in (2, 9, 15)]
    if conversational:
        rows = [
            {"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": "ok"}]} for p in prompts
        ]
        longest = len(
            tok.apply_chat_template(rows[-1]["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        )
    else:
        rows = [{"prompt": p, "completion": " ok"} for p in prompts]
        longest = len(tok(prompts[-1])["input_ids"])
    drops = []
    for max_length in (longest - 1, longest, longest + 1, 8):
        args = AnchoredSFTConfig(**base_args(tmp_path, method="sft", max_length=max_length))
        try:
            AnchoredSFTTrainer(model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
            dropped = 0
        except ValueError as e:
            dropped = int(re.match(r"(\d+) of 3 training examples have no response tokens", str(e)).group(1))
        if dropped == 0:
            check_response_tokens_fit(rows, tok, max_length)
        else:
            with pytest.raises(ValueError, match=rf"^{dropped} of 3 training examples have no response tokens left"):
                check_response_tokens_fit(rows, tok, max_length)
        drops.append(dropped)
    # the longest prompt alone fills longest - 1 and longest tokens; at 8 only the shortest plain prompt fits
    assert drops == [1, 1, 0, 3 if conversational else 2]


def test_num_train_epochs_replaced_by_t_times_k_is_said(tmp_path, reference_dir):
    with pytest.warns(UserWarning, match=r"num_train_epochs=1 is replaced by outer_iterations \* inner_epochs = 4"):
        cfg = AnchoredSFTConfig(
            **base_args(tmp_path, reference_model=reference_dir, num_train_epochs=1, outer_iterations=2, inner_epochs=2)
        )
    assert cfg.num_train_epochs == 4
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # TrainingArguments' default or T*K itself: no warning
        AnchoredSFTConfig(**base_args(tmp_path, reference_model=reference_dir, outer_iterations=2, inner_epochs=2))
        AnchoredSFTConfig(
            **base_args(tmp_path, reference_model=reference_dir, num_train_epochs=4, outer_iterations=2, inner_epochs=2)
        )


def test_an_output_folder_that_exists_but_cannot_be_written_is_refused(tmp_path, monkeypatch):
    import os

    from anchored_learning.io import check_output_path

    (tmp_path / "ro").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path / "ro") else real(p, mode))
    with pytest.raises(ValueError, match="exists and is not writable"):
        check_output_path(tmp_path / "ro", "folder")


def test_eval_loss_is_the_token_weighted_nll_whatever_the_batch_size(tmp_path):
    data = make_data()
    model, tok = tiny_llama(seed=0)
    losses = []
    for bs in (1, 3, 7):
        args = AnchoredSFTConfig(**base_args(tmp_path / str(bs), method="sft", per_device_eval_batch_size=bs))
        tr = AnchoredSFTTrainer(model, args=args, train_dataset=data, eval_dataset=data, processing_class=tok)
        losses.append(tr.evaluate()["eval_loss"])
    # brute force: the mean NLL over every response token of the evaluation set
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for ex in tr.eval_dataset:
            ids = torch.tensor([ex["input_ids"]])
            labels = O.shift_labels(torch.tensor([ex["labels"]]))
            logp = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)
            mask = labels != O.IGNORE_INDEX
            total += -logp[mask].gather(-1, labels[mask][:, None]).sum().item()
            count += int(mask.sum())
    assert losses == pytest.approx([total / count] * 3, rel=1e-5)  # was 11.18 / 10.71 / 10.55 on another set


# ---------------------------------------------------------------------- issue 30: on-policy, KL budget, self-generated


def test_on_policy_cache_matches_live_frozen_models_on_the_sampled_responses(tmp_path, reference_dir):
    """The anchors cached on responses sampled from p_t equal live frozen models run on those
    responses; the batch the loss sees is the recorded sample (prompt + sampled tokens)."""
    import json

    tr = _check_cache_matches_live(tmp_path, reference_dir, method="anchored_on_policy", samples_per_prompt=2)
    assert len(tr.train_dataset) == 24  # 12 prompts x 2 samples: the dataloader's length is fixed
    records = {}
    for source in ("cache", "live"):  # both runs sampled the same tokens from the same p_0 and seed
        lines = (tmp_path / source / "out" / "on_policy" / "iteration-000.jsonl").read_text().splitlines()
        records[source] = [json.loads(line) for line in lines]
    assert records["cache"][1:] == records["live"][1:] and len(records["cache"]) == 25
    assert {r["source"] for r in records["cache"][1:]} == {"sample"}
    torch.manual_seed(1)
    batch = _first_batch(tr)
    for row, ids, labels in zip(batch["anchor_index"].tolist(), batch["input_ids"], batch["labels"]):
        response = records["cache"][1 + row]["response_ids"]
        kept = labels[labels != O.IGNORE_INDEX].tolist()
        assert kept == response and ids[: len(labels)][labels != O.IGNORE_INDEX].tolist() == response
        assert records["cache"][1 + row]["prompt"] == row // 2


def test_on_policy_rows_keep_the_dataset_share_and_fit_max_length(tmp_path, reference_dir):
    import json

    model, tok = tiny_llama(seed=0)
    args = AnchoredSFTConfig(
        **base_args(
            tmp_path, method="distill_on_policy", reference_model=reference_dir, dataset_response_share=0.5, max_length=40
        )
    )
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
    original = [dict(e) for e in tr._examples()]
    tr.refresh_snapshot(0)
    lines = (tmp_path / "out" / "on_policy" / "iteration-000.jsonl").read_text().splitlines()
    header, recs = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert header["dataset_response_share"] == 0.5 and header["temperature"] == 0.9
    kept = [r["row"] for r in recs if r["source"] == "dataset"]
    assert len(kept) == 6 and set(kept) == tr._on_policy.dataset_rows(0)
    stop = tok.convert_tokens_to_ids("<|im_end|>")
    for r, row in enumerate(tr._examples()):
        assert len(row["input_ids"]) <= 40
        if r in kept:
            assert row == original[r]
        else:
            n_prompt = len(tr._on_policy.prompts[r])
            assert row["input_ids"][:n_prompt] == original[r]["input_ids"][:n_prompt]
            assert row["labels"][:n_prompt] == [O.IGNORE_INDEX] * n_prompt
            response = row["input_ids"][n_prompt:]
            assert response == recs[r]["response_ids"] == row["labels"][n_prompt:]
            assert response[-1] == stop or len(response) == tr._on_policy.budgets[r]
            assert stop not in response[:-1]
    # the next iteration draws other rows to keep
    assert tr._on_policy.dataset_rows(1) != tr._on_policy.dataset_rows(0)


def test_on_policy_samples_are_recorded_and_a_resumed_run_reuses_them(tmp_path, reference_dir, monkeypatch):
    """Kill-and-resume inside outer iteration 1: the resumed run reads iteration 1's recorded samples
    (sampling again would fail here) and ends with the uninterrupted run's weights."""
    import shutil

    import anchored_learning.on_policy as on_policy

    kw = base_args(
        tmp_path,
        method="anchored_on_policy",
        reference_model=reference_dir,
        outer_iterations=2,
        inner_epochs=1,
        save_strategy="steps",
        save_steps=4,  # checkpoint-4: epoch 1.33, inside outer iteration 1 (3 steps per epoch)
        keep_anchor_cache=True,  # a killed run leaves its anchor folder behind
    )
    model, tok = tiny_llama(seed=0)
    full = AnchoredSFTTrainer(model, args=AnchoredSFTConfig(**kw), train_dataset=make_data(), processing_class=tok)
    full.train()
    out = tmp_path / "out"
    record = out / "on_policy" / "iteration-001.jsonl"
    recorded = record.read_text()
    assert (out / "on_policy" / "iteration-000.jsonl").exists()
    final = {k: v.clone() for k, v in full.model.state_dict().items()}
    shutil.rmtree(out / "checkpoint-6")  # "killed" after step 4's checkpoint

    def no_sampling(*a, **k):
        raise AssertionError("a resumed run must read the recorded samples, not sample again")

    monkeypatch.setattr(on_policy, "sample_responses", no_sampling)
    model, tok = tiny_llama(seed=0)
    resumed = AnchoredSFTTrainer(model, args=AnchoredSFTConfig(**kw), train_dataset=make_data(), processing_class=tok)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 6 and record.read_text() == recorded
    for k, v in resumed.model.state_dict().items():
        assert torch.allclose(v, final[k], atol=1e-6), k
    # without the record, the samples of p_1 cannot be drawn again mid-iteration
    record.unlink()
    model, tok = tiny_llama(seed=0)
    again = AnchoredSFTTrainer(model, args=AnchoredSFTConfig(**kw), train_dataset=make_data(), processing_class=tok)
    with pytest.raises(RuntimeError, match="on-policy samples of outer iteration 1 are missing"):
        again.train(resume_from_checkpoint=str(out / "checkpoint-4"))


def test_budget_alpha_from_a_known_kl():
    assert B.budget_alpha(2.0, 0.5) == pytest.approx(0.25)
    assert B.budget_alpha(0.5, 0.5) == 1.0 and B.budget_alpha(0.1, 0.5) == 1.0 and B.budget_alpha(0.0, 0.5) == 1.0
    assert B.budget_alpha(4.0, 0.5) * 4.0 == pytest.approx(0.5)  # the bound alpha_t * KL equals the radius
    for kl, eps in ((1.0, 0.0), (1.0, -1.0), (-0.1, 0.5), (float("nan"), 0.5), (1.0, float("inf"))):
        with pytest.raises(ValueError):
            B.budget_alpha(kl, eps)
    # token_kl_sum against the brute-force sum of KL(p || q) over the response rows, at tau = 2
    g = torch.Generator().manual_seed(0)
    p, q = torch.randn(7, 11, generator=g) * 3, torch.randn(7, 11, generator=g) * 3
    labels = torch.tensor([1, -100, 2, 3, -100, 4, 5])
    lp, lq = torch.log_softmax(p / 2, -1), torch.log_softmax(q / 2, -1)
    brute = (lp.exp() * (lp - lq)).sum(-1)[labels != -100].sum().item()
    total, n = B.token_kl_sum(p, q, labels, temperature=2.0, chunk_size=2)
    assert n == 5 and total == pytest.approx(brute, rel=1e-5)


def test_budget_alpha_t_is_eps_over_the_exact_kl_and_the_loss_uses_it(tmp_path, reference_dir):
    from transformers import AutoModelForCausalLM

    model, tok = tiny_llama(seed=0)
    args = AnchoredSFTConfig(**base_args(tmp_path, method="anchored_budget", reference_model=reference_dir, anchor_kl_budget=0.5))
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
    tr.refresh_snapshot(0)
    # brute force: KL(p0 || p_sft) over every response token of the training set, from full logits
    base, _ = tiny_llama(seed=0)
    ref = AutoModelForCausalLM.from_pretrained(reference_dir).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for ex in tr._examples():
            ids = torch.tensor([ex["input_ids"]])
            mask = O.shift_labels(torch.tensor([ex["labels"]])) != O.IGNORE_INDEX
            lp = torch.log_softmax(base(input_ids=ids).logits[mask].float(), -1)
            lq = torch.log_softmax(ref(input_ids=ids).logits[mask].float(), -1)
            total += (lp.exp() * (lp - lq)).sum().item()
            count += int(mask.sum())
    kl = total / count
    assert kl > 0.5
    assert tr._alpha_t == pytest.approx(0.5 / kl, rel=1e-4)
    record = tr.anchor_history[-1]
    assert record["kl_snapshot_reference"] == pytest.approx(kl, rel=1e-4)
    assert record["alpha_t_kl_bound"] == pytest.approx(0.5, rel=1e-6) and record["budget_reached"] == 0.0
    # the loss reads alpha_t: at step 0 (student = snapshot = p0) it is the anchored KL at alpha_t
    tr.model.train()
    batch = _first_batch(tr)
    n = R.count_response_tokens(O.shift_labels(batch["labels"]))
    loss = tr.compute_loss(tr.model, dict(batch), num_items_in_batch=n).item()
    fwd = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    with torch.no_grad():
        student, reference = base(**fwd).logits, ref(**fwd).logits
    expected = O.anchored_kl_loss(student, student, reference, O.shift_labels(batch["labels"]), alpha=tr._alpha_t)
    assert loss == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("eps,steps,reached", [(1e3, 3, [0.0, 1.0]), (1e-3, 6, [0.0, 0.0])])
def test_budget_stops_the_outer_loop_once_kl_is_below_eps(tmp_path, reference_dir, eps, steps, reached):
    """eps above every KL: iteration 0 distils p_sft (alpha_0 = 1), the refresh of iteration 1 finds
    KL(p_1 || p_sft) < eps and no step of it is taken; eps below every KL: all T x K epochs run."""
    model, tok = tiny_llama(seed=0)
    args = AnchoredSFTConfig(
        **base_args(
            tmp_path,
            method="anchored_budget",
            reference_model=reference_dir,
            anchor_kl_budget=eps,
            outer_iterations=2,
            inner_epochs=1,
        )
    )
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
    tr.train()
    assert tr.state.global_step == steps
    assert [r["budget_reached"] for r in tr.anchor_history] == reached
    assert tr.anchor_history[0]["alpha_t"] == (
        1.0 if eps > 1 else pytest.approx(eps / tr.anchor_history[0]["kl_snapshot_reference"])
    )
    for r in tr.anchor_history:  # logged at every refresh: alpha_t and the bound alpha_t * KL(p_t || p_sft)
        assert r["alpha_t_kl_bound"] == pytest.approx(min(eps, r["kl_snapshot_reference"]), rel=1e-6)


def test_self_generated_rows_keep_exactly_the_accepted_samples_and_report_the_share(tmp_path):
    from anchored_learning.sampling import self_generated_rows

    model, tok = tiny_llama(seed=0)
    rows = [dict(r) for r in make_data()]
    calls: dict[int, list[str]] = {}

    def score(i, text):  # accepts row i's second try when i % 3 == 0, the first when i % 3 == 1, never else
        calls.setdefault(i, []).append(text)
        return float((i % 3 == 0 and len(calls[i]) == 2) or (i % 3 == 1 and len(calls[i]) == 1))

    out, report = self_generated_rows(model, tok, rows, score, samples_per_prompt=2, max_new_tokens=6, seed=3)
    assert report["n"] == 12 and report["accepted"] == 8 and report["accepted_share"] == pytest.approx(8 / 12)
    for i, (row, new) in enumerate(zip(rows, out)):
        assert new["prompt"] == row["prompt"]
        if i % 3 == 2:
            assert new["completion"] == row["completion"] and new["self_generated"] is False
            assert len(calls[i]) == 2
        else:
            accepted = calls[i][-1]
            assert new["completion"] == [{"role": "assistant", "content": accepted}] and new["self_generated"] is True
            assert len(calls[i]) == (2 if i % 3 == 0 else 1)  # sampling stops at the first accepted response
    # the trainer trains sft_self_generated on such rows only
    args = AnchoredSFTConfig(**base_args(tmp_path, method="sft_self_generated", max_steps=1))
    with pytest.raises(ValueError, match="self_generated_rows"):
        AnchoredSFTTrainer(model, args=args, train_dataset=make_data(), processing_class=tok)
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=Dataset.from_list(out), processing_class=tok)
    tr.train()
    assert tr.state.global_step == 1


def test_sampling_ignores_the_models_generation_config_warpers():
    """Samples come from softmax(z / T) itself: a model whose generation config says top_k = 1
    (greedy in effect) still gives diverse samples, and the same seed gives the same tokens."""
    from anchored_learning.sampling import sample_responses

    model, tok = tiny_llama(seed=0)
    model.generation_config.top_k = 1
    prompt = [tok("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")["input_ids"]]
    kw = dict(stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id, max_new_tokens=5, num_samples=8, temperature=1.0, seed=7)
    samples = sample_responses(model, prompt, **kw)[0]
    assert len(samples) == 8 and len({tuple(s) for s in samples}) > 1
    assert sample_responses(model, prompt, **kw)[0] == samples
    assert all(len(s) <= 5 for s in samples)
