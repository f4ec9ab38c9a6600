"""Losses the package does not train with, kept for the tests: the response-token count (the global
normaliser of gradient accumulation) and plain forward-KL distillation, which
:func:`anchored_learning.objectives.anchored_kl_loss` at ``alpha = 1`` must equal."""

from __future__ import annotations

import torch

from anchored_learning.objectives import (
    DEFAULT_CHUNK_SIZE,
    IGNORE_INDEX,
    LogitRows,
    _kl_rows,
    _prepare,
    _reduce,
    _rows,
)


def count_response_tokens(labels: torch.Tensor) -> int:
    """Number of positions whose label is not ``-100``."""
    return int((labels != IGNORE_INDEX).sum().item())


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | LogitRows,
    labels: torch.Tensor,
    *,
    temperature: float = 1.0,
    num_response_tokens: int | float | torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Plain forward-KL distillation ``tau^2 (1/N) sum_k KL(p_teacher^tau || p_theta^tau)``.

    Equal to :func:`anchored_kl_loss` with ``alpha = 1`` (the anchor is the teacher).
    Shapes, normaliser and errors as in :func:`anchored_kl_loss`.
    """
    if not float(temperature) > 0:
        raise ValueError(f"temperature tau must be > 0, got {temperature}")
    s, _, idx, norm, o = _prepare(student_logits, labels, num_response_tokens, {"teacher_logits": teacher_logits})
    zt, tau = o["teacher_logits"], float(temperature)

    def per_token(rows: torch.Tensor, ci: torch.Tensor) -> torch.Tensor:
        log_t = torch.log_softmax(_rows(zt, ci) / tau, dim=-1)
        return _kl_rows(log_t, torch.log_softmax(rows / tau, dim=-1)) * (tau * tau)

    return _reduce(s, per_token, idx, norm, chunk_size)
