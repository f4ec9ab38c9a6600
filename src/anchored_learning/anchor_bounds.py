"""KL measurements of the anchor, outside the loss: the per-iteration KL-bound terms logged at every
snapshot refresh, KL(p || q) summed over many batches, and the KL-budget anchor's alpha_t built on it.

Conventions (logits, aligned labels, :class:`~anchored_learning.objectives.LogitRows`, chunking) as in
:mod:`anchored_learning.objectives`.
"""

from __future__ import annotations

import math

import torch

from anchored_learning.objectives import (
    DEFAULT_CHUNK_SIZE,
    IGNORE_INDEX,
    Interpolation,
    LogitRows,
    _check_alpha_tau,
    _flat_rows,
    _kl_rows,
    _rows,
    anchor_log_probs,
)

BOUND_TERMS = ("kl_anchor_snapshot", "kl_snapshot_anchor", "alpha_kl_reference_snapshot", "alpha_kl_snapshot_reference")


@torch.no_grad()
def anchor_bound_terms(
    snapshot_logits: torch.Tensor | LogitRows,
    reference_logits: torch.Tensor | LogitRows,
    labels: torch.Tensor,
    *,
    alpha: float = 0.5,
    interpolation: Interpolation = "logit",
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, float]:
    """The per-iteration KL-bound terms of Anchored Learning (arXiv:2605.04468, theory), mean over response tokens.

    All distributions at temperature tau (p_t = softmax(z_t/tau), p_sft = softmax(z_sft/tau)).

    Returns a dict with
      * ``kl_anchor_snapshot``: KL(q_t || p_t), the step size of one outer iteration;
      * ``kl_snapshot_anchor``: KL(p_t || q_t);
      * ``alpha_kl_reference_snapshot``: alpha * KL(p_sft || p_t), the bound on KL(q_t || p_t) for
        the probability anchor (convexity);
      * ``alpha_kl_snapshot_reference``: alpha * KL(p_t || p_sft), the bound on KL(p_t || q_t) for
        the logit anchor (Hoelder).

    Raises:
        ValueError: as :func:`anchored_kl_loss` (alpha, tau, shapes, no response tokens).
    """
    _check_alpha_tau(alpha, temperature)
    if not isinstance(labels, torch.Tensor):
        raise ValueError("labels must be a tensor")
    zt_flat = _flat_rows(snapshot_logits, "snapshot_logits")
    zt_flat_shape = zt_flat.shape
    y = labels.reshape(-1)
    if tuple(zt_flat_shape[:-1]) != tuple(y.shape):
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match snapshot logits {tuple(snapshot_logits.shape)}")
    zs_flat = _flat_rows(reference_logits, "reference_logits")
    if tuple(zs_flat.shape) != tuple(zt_flat_shape):
        raise ValueError(
            f"reference logits {tuple(reference_logits.shape)} and snapshot logits {tuple(snapshot_logits.shape)} "
            "must have the same shape (same tokens, same vocabulary)"
        )
    idx = (y != IGNORE_INDEX).nonzero(as_tuple=True)[0]
    if idx.numel() == 0:
        raise ValueError("the batch has no response tokens (every label is -100)")
    tau, a = float(temperature), float(alpha)
    sums = dict.fromkeys(BOUND_TERMS, 0.0)
    for start in range(0, idx.numel(), chunk_size):
        ci = idx[start : start + chunk_size]
        zt, zs = _rows(zt_flat, ci), _rows(zs_flat, ci)
        log_q = anchor_log_probs(zt, zs, alpha, interpolation, tau)
        log_t = torch.log_softmax(zt / tau, -1)
        log_s = torch.log_softmax(zs / tau, -1)
        sums["kl_anchor_snapshot"] += _kl_rows(log_q, log_t).sum().item()
        sums["kl_snapshot_anchor"] += _kl_rows(log_t, log_q).sum().item()
        sums["alpha_kl_reference_snapshot"] += a * _kl_rows(log_s, log_t).sum().item()
        sums["alpha_kl_snapshot_reference"] += a * _kl_rows(log_t, log_s).sum().item()
    n = float(idx.numel())
    return {k: v / n for k, v in sums.items()}


def budget_alpha(kl_snapshot_reference: float, budget: float) -> float:
    """alpha_t of the KL-budget anchor (``anchored_budget``; ours, beyond arXiv:2605.04468).

    ``alpha_t = min(1, eps / KL(p_t || p_sft))``, so that the logit anchor's bound
    ``KL(p_t || q_t) <= alpha_t * KL(p_t || p_sft)`` (Hoelder; see :func:`anchor_bound_terms`)
    equals the radius eps whenever the snapshot is farther than eps from p_sft, and alpha_t = 1
    (distil p_sft itself) once it is within eps.

    Args:
        kl_snapshot_reference: KL(p_t || p_sft), nats per response token (>= 0).
        budget: eps, nats per response token (> 0).

    Returns:
        alpha_t in (0, 1].

    Raises:
        ValueError: eps <= 0, or a KL that is negative or not finite.
    """
    kl, eps = float(kl_snapshot_reference), float(budget)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"the KL budget eps must be a finite number > 0 (nats per token), got {budget}")
    if not (math.isfinite(kl) and kl >= 0):
        raise ValueError(f"KL(p_t || p_sft) must be a finite number >= 0, got {kl_snapshot_reference}")
    return 1.0 if kl <= eps else eps / kl


@torch.no_grad()
def token_kl_sum(
    p_logits: torch.Tensor | LogitRows,
    q_logits: torch.Tensor | LogitRows,
    labels: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[float, int]:
    """``(sum over response tokens of KL(p^tau || q^tau), number of response tokens)``, for means
    over many batches (e.g. KL(p_t || p_sft) over a whole training set, :func:`budget_alpha`).

    Args:
        p_logits, q_logits: ``[B, T, V]`` or ``[N, V]`` tensors or :class:`LogitRows` of the same shape.
        labels: aligned labels, ``-100`` off the response (the rows to sum over).
        temperature: tau > 0 (both distributions are ``softmax(z / tau)``).

    Returns:
        the KL sum in nats (float64 accumulation) and the token count (0 when every label is -100).

    Raises:
        ValueError: tau <= 0, shapes that differ or do not match the labels.
    """
    if not float(temperature) > 0:
        raise ValueError(f"temperature tau must be > 0, got {temperature}")
    p, q = _flat_rows(p_logits, "p_logits"), _flat_rows(q_logits, "q_logits")
    y = labels.reshape(-1)
    if tuple(p.shape) != tuple(q.shape) or tuple(p.shape[:-1]) != tuple(y.shape):
        raise ValueError(
            f"p_logits {tuple(p_logits.shape)}, q_logits {tuple(q_logits.shape)} and labels {tuple(labels.shape)} "
            "must cover the same tokens and vocabulary"
        )
    idx = (y != IGNORE_INDEX).nonzero(as_tuple=True)[0]
    tau, total = float(temperature), 0.0
    for start in range(0, idx.numel(), chunk_size):
        ci = idx[start : start + chunk_size]
        log_p = torch.log_softmax(_rows(p, ci) / tau, dim=-1)
        log_q = torch.log_softmax(_rows(q, ci) / tau, dim=-1)
        total += _kl_rows(log_p, log_q).double().sum().item()
    return total, int(idx.numel())
