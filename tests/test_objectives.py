"""Objectives against brute-force float64 references, theory properties and bad input."""

from __future__ import annotations

import math

import pytest
import reference_losses as R
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anchored_learning import anchor_bounds as B
from anchored_learning import objectives as O

V = 37  # odd vocabulary size


# ---------------------------------------------------------------- brute-force references (float64,
# explicit loops over tokens and vocabulary entries, no shared code with the module)


def ref_softmax(z, tau=1.0):
    z = [v / tau for v in z]
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]


def ref_kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q) if pi > 0)


def ref_anchor(zt, zs, alpha, mode, tau):
    if mode == "logit":
        return ref_softmax([(1 - alpha) * a + alpha * b for a, b in zip(zt, zs)], tau)
    pt, ps = ref_softmax(zt, tau), ref_softmax(zs, tau)
    return [(1 - alpha) * a + alpha * b for a, b in zip(pt, ps)]


def response_rows(student, labels):
    s = student.reshape(-1, student.shape[-1]).double().tolist()
    y = labels.reshape(-1).tolist()
    return [(i, y[i]) for i in range(len(y)) if y[i] != -100], s


def ref_loss(
    kind,
    student,
    labels,
    teacher=None,
    old=None,
    *,
    alpha=0.5,
    mode="logit",
    tau=1.0,
    ce=0.0,
    coef=0.1,
    direction="forward",
    eps=0.2,
    norm=None,
    frozen=None,
):
    """``frozen``: the point at which stop-gradient weights (DFT, ASFT) are evaluated."""
    rows, s = response_rows(student, labels)
    sg = response_rows(frozen if frozen is not None else student, labels)[1]
    t = teacher[0].reshape(-1, V).double().tolist() if teacher is not None else None
    r = teacher[1].reshape(-1, V).double().tolist() if teacher is not None and len(teacher) > 1 else None
    total = 0.0
    for i, y in rows:
        p1 = ref_softmax(s[i])
        if kind == "anchored":
            q = ref_anchor(t[i], r[i], alpha, mode, tau)
            val = (1 - ce) * tau * tau * ref_kl(q, ref_softmax(s[i], tau)) - ce * math.log(p1[y])
        elif kind == "distill":
            val = tau * tau * ref_kl(ref_softmax(t[i], tau), ref_softmax(s[i], tau))
        elif kind == "sft":
            val = -math.log(p1[y])
        elif kind == "kl":
            pr = ref_softmax(t[i])
            val = ref_kl(pr, p1) if direction == "forward" else ref_kl(p1, pr)
        elif kind == "sft_kl":
            pr = ref_softmax(t[i])
            val = -math.log(p1[y]) + coef * (ref_kl(pr, p1) if direction == "forward" else ref_kl(p1, pr))
        elif kind == "dft":
            val = -ref_softmax(sg[i])[y] * math.log(p1[y])
        elif kind == "asft":
            val = -ref_softmax(sg[i])[y] * math.log(p1[y]) + coef * ref_kl(ref_softmax(t[i]), p1)
        elif kind == "psft":
            ratio = p1[y] / math.exp(old.reshape(-1)[i].item())
            val = -min(ratio, min(max(ratio, 1 - eps), 1 + eps))
        total += val
    return total / (norm if norm is not None else len(rows))


def numeric_grad(kind, student, labels, **kw):
    """Central-difference gradient of the float64 reference, for a few coordinates."""
    g = {}
    base = student.double().clone()
    gen = torch.Generator().manual_seed(1)
    coords = [tuple(int(torch.randint(0, d, (1,), generator=gen)) for d in base.shape) for _ in range(6)]
    rows, _ = response_rows(base, labels)
    first = rows[0][0]  # always include a response row
    coords.append(tuple(list(divmod(first, base.shape[1])) + [3]) if base.dim() == 3 else (first, 3))
    h = 1e-5
    for c in coords:
        plus, minus = base.clone(), base.clone()
        plus[c] += h
        minus[c] -= h
        g[c] = (ref_loss(kind, plus, labels, frozen=base, **kw) - ref_loss(kind, minus, labels, frozen=base, **kw)) / (2 * h)
    return g


def make_batch(seed=0, B=3, T=7, scale=3.0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    s = (torch.randn(B, T, V, generator=gen) * scale).to(dtype)
    t = (torch.randn(B, T, V, generator=gen) * scale).to(dtype)
    r = (torch.randn(B, T, V, generator=gen) * scale).to(dtype)
    labels = torch.randint(0, V, (B, T), generator=gen)
    mask = torch.rand(B, T, generator=gen) < 0.4
    labels[mask] = -100
    labels[0, 0] = 5  # at least one response token
    old = torch.randn(B, T, generator=gen) * 0.5 - 3.0
    return s, t, r, labels, old


def run_module(kind, s, t, r, labels, old, **kw):
    if kind == "anchored":
        return O.anchored_kl_loss(s, t, r, labels, **kw)
    if kind == "distill":
        return R.distillation_loss(s, t, labels, **kw)
    if kind == "sft":
        return O.sft_loss(s, labels, **kw)
    if kind == "kl":
        return O.kl_to_reference_loss(s, t, labels, **kw)
    if kind == "sft_kl":
        return O.sft_kl_loss(s, t, labels, **kw)
    if kind == "dft":
        return O.dft_loss(s, labels, **kw)
    if kind == "asft":
        return O.asft_loss(s, t, labels, **kw)
    if kind == "psft":
        return O.psft_loss(s, old, labels, **kw)
    raise AssertionError(kind)


CASES = [
    ("anchored", dict(alpha=0.5, interpolation="logit", temperature=1.0), dict(alpha=0.5, mode="logit", tau=1.0)),
    ("anchored", dict(alpha=0.3, interpolation="probability", temperature=2.0), dict(alpha=0.3, mode="probability", tau=2.0)),
    (
        "anchored",
        dict(alpha=0.7, interpolation="logit", temperature=0.5, ce_weight=0.25),
        dict(alpha=0.7, mode="logit", tau=0.5, ce=0.25),
    ),
    ("distill", dict(temperature=1.5), dict(tau=1.5)),
    ("sft", {}, {}),
    ("kl", dict(direction="forward"), dict(direction="forward")),
    ("kl", dict(direction="reverse"), dict(direction="reverse")),
    ("sft_kl", dict(kl_coef=0.3, direction="reverse"), dict(coef=0.3, direction="reverse")),
    ("dft", {}, {}),
    ("asft", dict(kl_coef=0.1), dict(coef=0.1)),
    ("psft", dict(epsilon=0.2), dict(eps=0.2)),
]


@pytest.mark.parametrize("kind,kw,refkw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_value_and_gradient_match_float64_reference(kind, kw, refkw):
    s, t, r, labels, old = make_batch(seed=hash(kind) % 1000)
    if kind == "psft":  # put ratios on both sides of the clip range
        old = O.token_logprobs(s, labels) + torch.randn(labels.shape, generator=torch.Generator().manual_seed(3)) * 0.3
    s.requires_grad_(True)
    loss = run_module(kind, s, t, r, labels, old, chunk_size=5, **kw)
    expected = ref_loss(kind, s.detach(), labels, teacher=(t, r), old=old, **refkw)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    loss.backward()
    num = numeric_grad(kind, s.detach(), labels, teacher=(t, r), old=old, **refkw)
    for c, g in num.items():
        assert s.grad[c].item() == pytest.approx(g, rel=1e-3, abs=1e-5), (c, s.grad[c].item(), g)
    # non-response rows get exactly zero gradient
    ignored = labels == -100
    assert torch.all(s.grad[ignored] == 0)


def test_anchor_limits_and_geometric_mixture():
    _, t, r, _, _ = make_batch(1)
    for mode in ("logit", "probability"):
        assert torch.allclose(O.anchor_log_probs(t, r, 0.0, mode, 1.7), torch.log_softmax(t / 1.7, -1))
        assert torch.allclose(O.anchor_log_probs(t, r, 1.0, mode, 1.7), torch.log_softmax(r / 1.7, -1))
    a = 0.35
    pt, ps = torch.softmax(t.double(), -1), torch.softmax(r.double(), -1)
    geo = pt ** (1 - a) * ps**a
    geo = geo / geo.sum(-1, keepdim=True)
    assert torch.allclose(O.anchor_log_probs(t, r, a, "logit", 1.0).double().exp(), geo, atol=1e-6)
    mix = (1 - a) * pt + a * ps
    assert torch.allclose(O.anchor_log_probs(t, r, a, "probability", 1.0).double().exp(), mix, atol=1e-6)


def test_alpha_one_equals_distillation_and_alpha_zero_is_fixed_point():
    s, t, r, labels, _ = make_batch(2)
    a1 = O.anchored_kl_loss(s, t, r, labels, alpha=1.0, temperature=1.3)
    d = R.distillation_loss(s, r, labels, temperature=1.3)
    assert a1.item() == pytest.approx(d.item(), rel=1e-6)
    # alpha = 0 and student == snapshot: the anchor is the student, the loss is zero
    assert O.anchored_kl_loss(t, t, r, labels, alpha=0.0).item() == pytest.approx(0.0, abs=1e-6)


@st.composite
def dist_pair(draw):
    n = draw(st.integers(2, 9))
    zt = draw(st.lists(st.floats(-8, 8), min_size=n, max_size=n))
    zs = draw(st.lists(st.floats(-8, 8), min_size=n, max_size=n))
    alpha = draw(st.floats(0.0, 1.0))
    tau = draw(st.floats(0.25, 4.0))
    return torch.tensor([zt], dtype=torch.float64), torch.tensor([zs], dtype=torch.float64), alpha, tau


@settings(max_examples=200, deadline=None)
@given(dist_pair())
def test_probability_anchor_bound(case):
    zt, zs, alpha, tau = case
    d = B.anchor_bound_terms(zt, zs, torch.tensor([0]), alpha=alpha, interpolation="probability", temperature=tau)
    assert d["kl_anchor_snapshot"] <= d["alpha_kl_reference_snapshot"] + 1e-5


@settings(max_examples=200, deadline=None)
@given(dist_pair())
def test_logit_anchor_bound(case):
    zt, zs, alpha, tau = case
    d = B.anchor_bound_terms(zt, zs, torch.tensor([0]), alpha=alpha, interpolation="logit", temperature=tau)
    assert d["kl_snapshot_anchor"] <= d["alpha_kl_snapshot_reference"] + 1e-5


def test_forward_bound_fails_for_logit_anchor_on_counterexample():
    zt = torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    zs = torch.log(torch.tensor([[0.99, 0.01]], dtype=torch.float64))
    d = B.anchor_bound_terms(zt, zs, torch.tensor([0]), alpha=0.5, interpolation="logit")
    # METHOD.md: 0.388 > 0.318
    assert d["kl_anchor_snapshot"] == pytest.approx(0.388, abs=1e-3)
    assert d["alpha_kl_reference_snapshot"] == pytest.approx(0.3186, abs=1e-3)
    assert d["kl_anchor_snapshot"] > d["alpha_kl_reference_snapshot"]
    assert d["alpha_kl_reference_snapshot"] == pytest.approx(0.5 * ref_kl([0.99, 0.01], [0.5, 0.5]), rel=1e-6)
    # and the reverse-direction (proved) bound holds on the same example
    assert d["kl_snapshot_anchor"] <= d["alpha_kl_snapshot_reference"]


def test_bound_terms_match_reference():
    _, t, r, labels, _ = make_batch(4)
    d = B.anchor_bound_terms(t, r, labels, alpha=0.4, interpolation="probability", temperature=1.5, chunk_size=4)
    rows, tl = response_rows(t, labels)
    rl = r.reshape(-1, V).double().tolist()
    exp = {k: 0.0 for k in B.BOUND_TERMS}
    for i, _ in rows:
        q = ref_anchor(tl[i], rl[i], 0.4, "probability", 1.5)
        pt, ps = ref_softmax(tl[i], 1.5), ref_softmax(rl[i], 1.5)
        exp["kl_anchor_snapshot"] += ref_kl(q, pt)
        exp["kl_snapshot_anchor"] += ref_kl(pt, q)
        exp["alpha_kl_reference_snapshot"] += 0.4 * ref_kl(ps, pt)
        exp["alpha_kl_snapshot_reference"] += 0.4 * ref_kl(pt, ps)
    for k in B.BOUND_TERMS:
        assert d[k] == pytest.approx(exp[k] / len(rows), rel=1e-5)


@pytest.mark.parametrize("kind", ["anchored", "sft", "dft", "sft_kl", "psft"])
def test_chunked_equals_unchunked_and_half_batches_sum_to_full(kind):
    s, t, r, labels, old = make_batch(5, B=4, T=9)
    full_s = s.clone().requires_grad_(True)
    full = run_module(kind, full_s, t, r, labels, old, chunk_size=10_000)
    full.backward()
    chunked_s = s.clone().requires_grad_(True)
    chunked = run_module(kind, chunked_s, t, r, labels, old, chunk_size=3)
    chunked.backward()
    assert chunked.item() == pytest.approx(full.item(), rel=1e-6)
    assert torch.allclose(chunked_s.grad, full_s.grad, atol=1e-7)
    # gradient accumulation: two micro-batches with the global normaliser
    n = R.count_response_tokens(labels)
    acc_s = s.clone().requires_grad_(True)
    total = 0.0
    for sl in (slice(0, 2), slice(2, 4)):
        part = run_module(kind, acc_s[sl], t[sl], r[sl], labels[sl], old[sl], num_response_tokens=n)
        part.backward()
        total += part.item()
    assert total == pytest.approx(full.item(), rel=1e-6)
    assert torch.allclose(acc_s.grad, full_s.grad, atol=1e-7)


def test_flat_and_batched_inputs_agree():
    s, t, r, labels, _ = make_batch(6)
    a = O.anchored_kl_loss(s, t, r, labels)
    b = O.anchored_kl_loss(s.reshape(-1, V), t.reshape(-1, V), r.reshape(-1, V), labels.reshape(-1))
    assert a.item() == pytest.approx(b.item(), rel=1e-7)


def test_shift_labels_matches_transformers_convention():
    labels = torch.tensor([[-100, -100, 4, 5, 6]])
    assert O.shift_labels(labels).tolist() == [[-100, 4, 5, 6, -100]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["anchored", "distill", "sft", "kl", "sft_kl", "dft", "asft", "psft"])
def test_extreme_logits_finite(dtype, kind):
    s, t, r, labels, old = make_batch(7, scale=1.0)
    for x in (s, t, r):
        x[..., 0] = 1e4
        x[..., 1] = -1e4
        x[..., -1] = float("-inf")  # masked vocabulary entry, shared by all models
    s, t, r = s.to(dtype), t.to(dtype), r.to(dtype)
    s.requires_grad_(True)
    for mode in ("logit", "probability"):
        kw = {"interpolation": mode, "alpha": 0.5} if kind == "anchored" else {}
        loss = run_module(kind, s, t, r, labels, old, **kw)
        assert torch.isfinite(loss), (kind, mode, loss)
        (g,) = torch.autograd.grad(loss, s)
        assert torch.isfinite(g.float()).all()
        if kind != "anchored":
            break
    for a in (0.0, 1.0):  # alpha at the ends must not produce 0 * inf
        assert torch.isfinite(O.anchored_kl_loss(s, t, r, labels, alpha=a))


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75])
def test_logit_anchor_with_infinite_logits_is_the_weighted_sum(alpha):
    """Where a logit is infinite in one model or both, the logit anchor is (1 - alpha) z_t + alpha z_sft
    (-inf stays -inf, never NaN), elsewhere torch.lerp's value."""
    g = torch.Generator().manual_seed(0)
    zt, zs = torch.randn(4, 9, generator=g), torch.randn(4, 9, generator=g)
    zt[0, 1] = zs[0, 1] = float("-inf")  # masked in both
    zt[1, 2] = float("-inf")  # in the snapshot only
    zs[2, 3] = float("-inf")  # in the reference only
    got = O.anchor_log_probs(zt, zs, alpha)
    want = torch.log_softmax((1.0 - alpha) * zt + alpha * zs, dim=-1)
    assert not torch.isnan(got).any()
    assert torch.allclose(got, want, atol=1e-6) and torch.equal(torch.isinf(got), torch.isinf(want))
    finite = torch.randn(4, 9, generator=g)
    assert torch.equal(
        O.anchor_log_probs(finite, zs.clamp_min(-5), alpha), torch.log_softmax(torch.lerp(finite, zs.clamp_min(-5), alpha), -1)
    )


def test_grad_dtype_follows_input():
    s, t, r, labels, _ = make_batch(8)
    s = s.to(torch.bfloat16).requires_grad_(True)
    O.anchored_kl_loss(s, t.bfloat16(), r.bfloat16(), labels).backward()
    assert s.grad.dtype == torch.bfloat16


def test_no_grad_mode_gives_same_value():
    s, t, r, labels, _ = make_batch(9)
    with torch.no_grad():
        a = O.anchored_kl_loss(s.requires_grad_(True), t, r, labels)
    b = O.anchored_kl_loss(s.detach(), t, r, labels)
    assert a.item() == pytest.approx(b.item(), rel=1e-7)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda s, t, r, y: O.anchored_kl_loss(s, t, r, y, alpha=1.5), "alpha must be in"),
        (lambda s, t, r, y: O.anchored_kl_loss(s, t, r, y, alpha=-0.1), "alpha must be in"),
        (lambda s, t, r, y: O.anchored_kl_loss(s, t, r, y, temperature=0.0), "tau must be > 0"),
        (lambda s, t, r, y: O.anchored_kl_loss(s, t, r, y, interpolation="geometric"), "interpolation"),
        (lambda s, t, r, y: O.anchored_kl_loss(s, t, r, y, ce_weight=2.0), "ce_weight"),
        (lambda s, t, r, y: O.anchored_kl_loss(s, t[..., :-1], r, y), "vocabulary size mismatch"),
        (lambda s, t, r, y: O.anchored_kl_loss(s, t[:, :-1], r, y), "same tokens"),
        (lambda s, t, r, y: O.anchored_kl_loss(s, t, r, y[:, :-1]), "does not match logits"),
        (lambda s, t, r, y: O.anchored_kl_loss(s, t, r, torch.full_like(y, -100)), "no response tokens"),
        (lambda s, t, r, y: O.sft_loss(s, torch.full_like(y, -100)), "no response tokens"),
        (lambda s, t, r, y: O.sft_loss(s, y, num_response_tokens=0), "num_response_tokens must be > 0"),
        (lambda s, t, r, y: O.sft_loss(s, torch.full_like(y, V)), "labels must be -100 or in"),
        (lambda s, t, r, y: O.kl_to_reference_loss(s, t, y, direction="sideways"), "direction"),
        (lambda s, t, r, y: O.sft_kl_loss(s, t, y, kl_coef=-1.0), "kl_coef"),
        (lambda s, t, r, y: O.psft_loss(s, y.float(), y, epsilon=0.0), "epsilon"),
        (lambda s, t, r, y: O.sft_loss(s, y, chunk_size=0), "chunk_size"),
    ],
)
def test_bad_input_raises_clear_value_error(call, match):
    s, t, r, y, _ = make_batch(10)
    with pytest.raises(ValueError, match=match):
        call(s, t, r, y)


def test_micro_batch_without_response_tokens_under_global_normaliser_is_zero():
    s, t, r, labels, _ = make_batch(11)
    s.requires_grad_(True)
    loss = O.anchored_kl_loss(s, t, r, torch.full_like(labels, -100), num_response_tokens=10)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(s.grad == 0)
