"""Token-level training objectives as pure functions.

Every loss here follows one convention:

* ``student_logits``: ``[B, T, V]`` or flattened ``[N, V]``, any float dtype (computed in
  float32 internally; the gradient flows back in the input dtype).
* ``labels``: ``[B, T]`` or ``[N]`` int64, **aligned** with the logits (``labels[i]`` is the token
  that ``logits[i]`` predicts) and ``-100`` (:data:`IGNORE_INDEX`) on every non-response
  position.  Hugging Face causal-LM labels are *unshifted*; convert them with
  :func:`shift_labels` first.
* teacher-side logits (snapshot, reference, base model) have the student's shape; instead of a
  tensor they may be any object with ``.shape`` and ``__getitem__(index_tensor)`` returning
  float rows, e.g. :class:`anchored_learning.anchor_cache.ProjectedLogits`, which rebuilds logits from
  cached hidden states chunk by chunk so ``[N, V]`` teacher logits are never held at once.
* ``num_response_tokens``: the normaliser N of ``(1/N) * sum over response tokens``.  Under
  gradient accumulation pass the number of response tokens of the *whole* accumulated batch
  (summed over micro-batches and processes): the summed micro-batch gradients are then exactly
  the full-batch gradient.  ``None`` means "this batch's own count".
* ``chunk_size``: response tokens processed at once.  Each chunk's float32 intermediates are
  freed before the next; the gradient with respect to the student logits is computed chunk by
  chunk during the forward pass (as Liger-Kernel does), so peak extra memory is
  ``O(chunk_size * V)`` float32 plus one gradient buffer of the student's shape and dtype.

Sources: Anchored Learning, arXiv:2605.04468 (and the authors' reference implementation); DFT arXiv:2508.05629;
ASFT arXiv:2509.23753; PSFT arXiv:2508.17784; Hinton et al. 2015 for the ``tau**2`` scaling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
DEFAULT_CHUNK_SIZE = 1024

Interpolation = Literal["logit", "probability"]
KLDirection = Literal["forward", "reverse"]


class LogitRows(Protocol):
    """Anything that yields float logit rows for a LongTensor of flat token indices."""

    shape: torch.Size

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor: ...


# ----------------------------------------------------------------------------------------------
# small helpers


def shift_labels(labels: torch.Tensor) -> torch.Tensor:
    """Align Hugging Face causal-LM labels with logits.

    Args:
        labels: ``[B, T]`` int, unshifted (``labels[:, t]`` is token t), ``-100`` where ignored.

    Returns:
        ``[B, T]`` with ``out[:, t] = labels[:, t + 1]`` and ``out[:, -1] = -100``, so that
        ``logits[:, t]`` predicts ``out[:, t]`` (exactly what ``transformers``' loss does).
    """
    if labels.dim() != 2:
        raise ValueError(f"labels must be [B, T], got shape {tuple(labels.shape)}")
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def _flat_rows(x: Any, name: str) -> Any:
    """[B, T, V] -> [B*T, V] for tensors and for LogitRows implementing ``flatten_tokens``."""
    shape = tuple(x.shape)
    if len(shape) == 3:
        if isinstance(x, torch.Tensor):
            return x.reshape(-1, shape[-1])
        if hasattr(x, "flatten_tokens"):
            return x.flatten_tokens()
        raise ValueError(f"{name} of shape {shape} cannot be flattened; pass [N, V] rows")
    if len(shape) != 2:
        raise ValueError(f"{name} must be [B, T, V] or [N, V], got shape {shape}")
    return x


def _prepare(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    num_response_tokens: int | float | torch.Tensor | None,
    others: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, dict[str, Any]]:
    """Validate and flatten inputs; return (student [N,V], labels [N], response idx, norm, others)."""
    if not isinstance(student_logits, torch.Tensor) or not student_logits.is_floating_point():
        raise ValueError("student_logits must be a floating-point tensor [B, T, V] or [N, V]")
    if student_logits.dim() - labels.dim() != 1 or tuple(student_logits.shape[:-1]) != tuple(labels.shape):
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match logits shape "
            f"{tuple(student_logits.shape)}: labels must be the logits' shape without the "
            "vocabulary dimension (use shift_labels() on Hugging Face labels first)"
        )
    s = _flat_rows(student_logits, "student_logits")
    y = labels.reshape(-1)
    vocab = s.shape[-1]
    flat_others: dict[str, Any] = {}
    for name, value in (others or {}).items():
        if value is None:
            flat_others[name] = None
            continue
        v = _flat_rows(value, name)
        if tuple(v.shape[:-1]) != tuple(s.shape[:-1]):
            raise ValueError(
                f"{name} has shape {tuple(value.shape)} but student_logits has "
                f"{tuple(student_logits.shape)}: both must cover the same tokens"
            )
        if v.shape[-1] != vocab:
            raise ValueError(
                f"vocabulary size mismatch: student_logits has {vocab} entries, {name} has "
                f"{v.shape[-1]}; the models must share one tokenizer/vocabulary"
            )
        flat_others[name] = v
    idx = (y != IGNORE_INDEX).nonzero(as_tuple=True)[0]
    if idx.numel() and (y[idx].min() < 0 or y[idx].max() >= vocab):
        raise ValueError(f"labels must be -100 or in [0, {vocab}); got values outside that range")
    if num_response_tokens is None:
        if idx.numel() == 0:
            raise ValueError(
                "the batch has no response tokens (every label is -100): check the prompt/response "
                "masking and truncation (max_length), or pass the global num_response_tokens"
            )
        norm = float(idx.numel())
    else:
        norm = float(num_response_tokens.item() if isinstance(num_response_tokens, torch.Tensor) else num_response_tokens)
        if not norm > 0:
            raise ValueError(f"num_response_tokens must be > 0, got {norm}: the accumulated batch has no response tokens")
    return s, y, idx, norm, flat_others


def _check_alpha_tau(alpha: float, temperature: float) -> None:
    if not (0.0 <= float(alpha) <= 1.0) or math.isnan(float(alpha)):
        raise ValueError(f"alpha must be in [0, 1] (0 = stay at the snapshot, 1 = the reference), got {alpha}")
    if not float(temperature) > 0:
        raise ValueError(f"temperature tau must be > 0, got {temperature}")


def _rows(x: Any, index: torch.Tensor) -> torch.Tensor:
    return x[index].float()


def _kl_rows(log_q: torch.Tensor, log_p: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
    """KL(q || p) per row, ``[n, V] x [n, V] -> [n]``, with 0 * log 0 = 0 (masked vocabulary);
    ``q = log_q.exp()`` when the caller has it already."""
    q = log_q.exp() if q is None else q
    diff = torch.where(q > 0, log_q - log_p, 0.0)
    return (q * diff).sum(-1)


class _ChunkedTokenLoss(torch.autograd.Function):
    """sum_i f(student[idx_i], i) / norm, with the student gradient computed chunk by chunk.

    ``forward`` evaluates the per-token function on detached float32 chunks, and (when a
    gradient is needed) immediately computes the chunk's gradient and writes it into one buffer of
    the student's dtype, so float32 intermediates never exist for more than one chunk.  A per-token
    function may take a keyword ``with_grad`` and return ``(values, grad_rows)`` to supply its
    gradient in closed form (no autograd graph); otherwise autograd differentiates it.  When every
    row is a response row (the trainer's case) chunks are contiguous slices, not gathers.
    """

    @staticmethod
    def forward(ctx, student: torch.Tensor, fn, idx: torch.Tensor, norm: float, chunk_size: int, needs_grad: bool):  # type: ignore[override]
        total = torch.zeros((), dtype=torch.float32, device=student.device)
        contiguous = idx.numel() == student.shape[0]  # idx is then arange(N)
        grad = None
        if needs_grad:
            grad = torch.empty_like(student) if contiguous else torch.zeros_like(student)
        closed_form = getattr(fn, "closed_form", False)
        for start in range(0, idx.numel(), chunk_size):
            ci = idx[start : start + chunk_size]
            end = start + ci.numel()
            rows = (student[start:end] if contiguous else student[ci]).detach().float()
            if not needs_grad:
                values = fn(rows, ci, with_grad=False)[0] if closed_form else fn(rows, ci)
                total += values.sum()
                continue
            if closed_form:
                values, g = fn(rows, ci, with_grad=True)
                value = values.sum()
            else:
                rows.requires_grad_(True)
                with torch.enable_grad():
                    value = fn(rows, ci).sum()
                (g,) = torch.autograd.grad(value, rows)
            g = g.div_(norm).to(grad.dtype)
            if contiguous:
                grad[start:end] = g
            else:
                grad.index_copy_(0, ci, g)
            total += value.detach()
        ctx.save_for_backward(grad if needs_grad else torch.empty(0))
        return total / norm

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_output.to(grad.dtype), None, None, None, None, None


def _reduce(
    student: torch.Tensor,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    idx: torch.Tensor,
    norm: float,
    chunk_size: int,
) -> torch.Tensor:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if idx.numel() == 0:
        # a micro-batch without response tokens under a global normaliser: zero, still in the graph
        return student.sum() * 0.0
    needs_grad = torch.is_grad_enabled() and student.requires_grad
    return _ChunkedTokenLoss.apply(student, fn, idx, norm, chunk_size, needs_grad)


# ----------------------------------------------------------------------------------------------
# the anchor


def anchor_log_probs(
    snapshot_logits: torch.Tensor,
    reference_logits: torch.Tensor,
    alpha: float,
    interpolation: Interpolation = "logit",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Log-probabilities of the anchor q_t (arXiv:2605.04468).

    * ``"logit"``: ``log softmax(((1 - alpha) * z_t + alpha * z_sft) / tau)``, at tau = 1 the
      normalised geometric mixture ``p_t^(1-alpha) * p_sft^alpha``.
    * ``"probability"``: ``log((1 - alpha) * softmax(z_t / tau) + alpha * softmax(z_sft / tau))``,
      computed with ``logaddexp`` for stability.

    Args:
        snapshot_logits: z_t, ``[..., V]``.
        reference_logits: z_sft, same shape.
        alpha: interpolation weight in [0, 1]; 0 returns the snapshot, 1 the reference exactly.
        interpolation: ``"logit"`` or ``"probability"``.
        temperature: tau > 0.

    Returns:
        float32 ``[..., V]`` log-probabilities.

    Raises:
        ValueError: alpha outside [0, 1], tau <= 0, unknown interpolation, shape mismatch.
    """
    _check_alpha_tau(alpha, temperature)
    if snapshot_logits.shape != reference_logits.shape:
        raise ValueError(
            f"snapshot logits {tuple(snapshot_logits.shape)} and reference logits "
            f"{tuple(reference_logits.shape)} must have the same shape (same tokens, same vocabulary)"
        )
    zt, zs = snapshot_logits.float(), reference_logits.float()
    if temperature != 1.0:
        zt, zs = zt / temperature, zs / temperature
    alpha = float(alpha)
    if interpolation == "logit":
        if alpha == 0.0:
            z = zt
        elif alpha == 1.0:
            z = zs
        else:
            z = torch.lerp(zt, zs, alpha)
            if torch.isnan(z).any():  # an infinite logit (masked vocabulary): keep inf - inf out of it
                z = (1.0 - alpha) * zt + alpha * zs
        return torch.log_softmax(z, dim=-1)
    if interpolation == "probability":
        lt = torch.log_softmax(zt, dim=-1)
        ls = torch.log_softmax(zs, dim=-1)
        if alpha == 0.0:
            return lt
        if alpha == 1.0:
            return ls
        return torch.logaddexp(lt + math.log1p(-alpha), ls + math.log(alpha))
    raise ValueError(f"interpolation must be 'logit' or 'probability', got {interpolation!r}")


# ----------------------------------------------------------------------------------------------
# losses


def anchored_kl_loss(
    student_logits: torch.Tensor,
    snapshot_logits: torch.Tensor | LogitRows,
    reference_logits: torch.Tensor | LogitRows,
    labels: torch.Tensor,
    *,
    alpha: float = 0.5,
    interpolation: Interpolation = "logit",
    temperature: float = 1.0,
    ce_weight: float = 0.0,
    num_response_tokens: int | float | torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """The Anchored Learning objective (arXiv:2605.04468).

    ``L = (1 - w) * tau^2 * (1/N) sum_k KL(q_t(.|x, y_<k) || p_theta^tau(.|x, y_<k))
    + w * (1/N) sum_k -log p_theta(y_k | x, y_<k)``

    with ``q_t`` from :func:`anchor_log_probs`, ``p_theta^tau = softmax(z_theta / tau)``, forward
    KL over the full vocabulary, ``w = ce_weight`` (default 0: pure distillation) and N the number
    of response tokens.

    Args:
        student_logits: ``[B, T, V]`` or ``[N, V]``.
        snapshot_logits: z_t of the frozen snapshot p_t, same shape (or :class:`LogitRows`).
        reference_logits: z_sft of the reference model p_sft, same shape (or :class:`LogitRows`).
        labels: aligned labels, ``-100`` off the response.
        alpha: anchor weight on the reference, in [0, 1].
        interpolation: ``"logit"`` (default) or ``"probability"``.
        temperature: tau > 0; the KL term is multiplied by tau^2.
        ce_weight: weight w in [0, 1] of the mixed-in cross-entropy on the gold tokens.
        num_response_tokens: normaliser N (see module docstring).
        chunk_size: response tokens per chunk.

    Returns:
        scalar float32 loss (nats per response token).

    Raises:
        ValueError: alpha not in [0, 1], tau <= 0, ce_weight not in [0, 1], mismatched shapes or
            vocabulary sizes, labels out of range, no response tokens, unknown interpolation.
    """
    _check_alpha_tau(alpha, temperature)
    if interpolation not in ("logit", "probability"):
        raise ValueError(f"interpolation must be 'logit' or 'probability', got {interpolation!r}")
    if not 0.0 <= float(ce_weight) <= 1.0:
        raise ValueError(f"ce_weight must be in [0, 1] (0 = pure distillation), got {ce_weight}")
    s, y, idx, norm, o = _prepare(
        student_logits, labels, num_response_tokens, {"snapshot_logits": snapshot_logits, "reference_logits": reference_logits}
    )
    zt, zs = o["snapshot_logits"], o["reference_logits"]
    tau, w = float(temperature), float(ce_weight)

    def per_token(rows: torch.Tensor, ci: torch.Tensor, with_grad: bool = False):
        # closed form: d/dz tau^2 KL(q || softmax(z/tau)) = tau * (softmax(z/tau) - q);
        #              d/dz -log softmax(z)_y = softmax(z) - onehot(y)
        log_q = anchor_log_probs(_rows(zt, ci), _rows(zs, ci), alpha, interpolation, tau)
        log_p = torch.log_softmax(rows / tau if tau != 1.0 else rows, dim=-1)
        q = log_q.exp()
        values = _kl_rows(log_q, log_p, q) * ((1.0 - w) * tau * tau)
        grad = None
        if with_grad:
            grad = log_p.exp_().sub_(q).mul_((1.0 - w) * tau)  # reuses log_p's buffer
        del log_q, log_p, q
        if w > 0.0:
            log_p1 = torch.log_softmax(rows, dim=-1)
            yy = y[ci].unsqueeze(-1)
            values = values - w * log_p1.gather(-1, yy).squeeze(-1)
            if with_grad:
                p1 = log_p1.exp_()
                p1.scatter_add_(-1, yy, torch.full_like(yy, -1.0, dtype=p1.dtype))
                grad.add_(p1, alpha=w)
        return values, grad

    per_token.closed_form = True  # type: ignore[attr-defined]
    return _reduce(s, per_token, idx, norm, chunk_size)


def sft_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_response_tokens: int | float | torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Supervised fine-tuning: ``(1/N) sum_k -log p_theta(y_k | x, y_<k)`` (nats per token).

    Shapes, normaliser and errors as in :func:`anchored_kl_loss`.
    """
    s, y, idx, norm, _ = _prepare(student_logits, labels, num_response_tokens)

    def per_token(rows: torch.Tensor, ci: torch.Tensor) -> torch.Tensor:
        return -torch.log_softmax(rows, dim=-1).gather(-1, y[ci].unsqueeze(-1)).squeeze(-1)

    return _reduce(s, per_token, idx, norm, chunk_size)


def _kl_direction(direction: str) -> str:
    if direction not in ("forward", "reverse"):
        raise ValueError(f"kl direction must be 'forward' (KL(p_ref || p)) or 'reverse' (KL(p || p_ref)), got {direction!r}")
    return direction


def kl_to_reference_loss(
    student_logits: torch.Tensor,
    reference_logits: torch.Tensor | LogitRows,
    labels: torch.Tensor,
    *,
    direction: KLDirection = "forward",
    num_response_tokens: int | float | torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """KL to a fixed reference (usually the base model p0), mean over response tokens.

    ``"forward"``: ``KL(p_ref || p_theta)`` (the paper's "SFT + KL(p0 || p_theta)");
    ``"reverse"``: ``KL(p_theta || p_ref)``.  Shapes, normaliser and errors as in
    :func:`anchored_kl_loss`; also raises ValueError for an unknown direction.
    """
    _kl_direction(direction)
    s, _, idx, norm, o = _prepare(student_logits, labels, num_response_tokens, {"reference_logits": reference_logits})
    zr = o["reference_logits"]

    def per_token(rows: torch.Tensor, ci: torch.Tensor) -> torch.Tensor:
        log_r = torch.log_softmax(_rows(zr, ci), dim=-1)
        log_p = torch.log_softmax(rows, dim=-1)
        return _kl_rows(log_r, log_p) if direction == "forward" else _kl_rows(log_p, log_r)

    return _reduce(s, per_token, idx, norm, chunk_size)


def sft_kl_loss(
    student_logits: torch.Tensor,
    reference_logits: torch.Tensor | LogitRows,
    labels: torch.Tensor,
    *,
    kl_coef: float = 0.1,
    direction: KLDirection = "forward",
    num_response_tokens: int | float | torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """SFT with a fixed anchor: ``NLL + kl_coef * KL(p_ref || p_theta)`` per response token.

    Raises ValueError for ``kl_coef < 0`` and as :func:`kl_to_reference_loss`.
    """
    return _nll_plus_kl(student_logits, reference_logits, labels, kl_coef, direction, num_response_tokens, chunk_size, dft=False)


def dft_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_response_tokens: int | float | torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Dynamic Fine-Tuning (arXiv:2508.05629): ``(1/N) sum_k -sg(p_theta(y_k)) log p_theta(y_k)``.

    ``sg`` is stop-gradient: each token's NLL is re-weighted by its own (detached) probability.
    Shapes, normaliser and errors as in :func:`anchored_kl_loss`.
    """
    s, y, idx, norm, _ = _prepare(student_logits, labels, num_response_tokens)

    def per_token(rows: torch.Tensor, ci: torch.Tensor) -> torch.Tensor:
        lp = torch.log_softmax(rows, dim=-1).gather(-1, y[ci].unsqueeze(-1)).squeeze(-1)
        return -lp.detach().exp() * lp

    return _reduce(s, per_token, idx, norm, chunk_size)


def asft_loss(
    student_logits: torch.Tensor,
    reference_logits: torch.Tensor | LogitRows,
    labels: torch.Tensor,
    *,
    kl_coef: float = 0.05,
    direction: KLDirection = "forward",
    num_response_tokens: int | float | torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Anchored SFT (arXiv:2509.23753): DFT + ``kl_coef * KL(p0 || p_theta)`` per response token.

    ``reference_logits`` are the base model's.  Raises ValueError for ``kl_coef < 0`` and as
    :func:`kl_to_reference_loss`.
    """
    return _nll_plus_kl(student_logits, reference_logits, labels, kl_coef, direction, num_response_tokens, chunk_size, dft=True)


def _nll_plus_kl(student_logits, reference_logits, labels, kl_coef, direction, num_response_tokens, chunk_size, *, dft):
    if not float(kl_coef) >= 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    _kl_direction(direction)
    s, y, idx, norm, o = _prepare(student_logits, labels, num_response_tokens, {"reference_logits": reference_logits})
    zr, lam = o["reference_logits"], float(kl_coef)

    def per_token(rows: torch.Tensor, ci: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(rows, dim=-1)
        lp = log_p.gather(-1, y[ci].unsqueeze(-1)).squeeze(-1)
        nll = -lp.detach().exp() * lp if dft else -lp
        if lam == 0.0:
            return nll
        log_r = torch.log_softmax(_rows(zr, ci), dim=-1)
        kl = _kl_rows(log_r, log_p) if direction == "forward" else _kl_rows(log_p, log_r)
        return nll + lam * kl

    return _reduce(s, per_token, idx, norm, chunk_size)


def psft_loss(
    student_logits: torch.Tensor,
    old_token_logprobs: torch.Tensor,
    labels: torch.Tensor,
    *,
    epsilon: float = 0.2,
    num_response_tokens: int | float | torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Proximal SFT (arXiv:2508.17784): ``-(1/N) sum_k min(r_k, clip(r_k, 1-eps, 1+eps))``.

    ``r_k = p_theta(y_k) / p_old(y_k)``: the PPO clipped surrogate with advantage 1, where p_old is
    the policy before the current round of updates.

    Args:
        student_logits: ``[B, T, V]`` or ``[N, V]``.
        old_token_logprobs: ``log p_old(y_k)`` at each position, ``[B, T]`` or ``[N]`` (values at
            ignored positions are not read).
        labels: aligned labels.
        epsilon: clip range > 0.

    Raises:
        ValueError: epsilon <= 0, shape mismatch, and as :func:`anchored_kl_loss`.
    """
    if not float(epsilon) > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if tuple(old_token_logprobs.shape) != tuple(labels.shape):
        raise ValueError(
            f"old_token_logprobs shape {tuple(old_token_logprobs.shape)} must equal labels shape {tuple(labels.shape)}"
        )
    s, y, idx, norm, _ = _prepare(student_logits, labels, num_response_tokens)
    old = old_token_logprobs.reshape(-1).detach().float()
    eps = float(epsilon)

    def per_token(rows: torch.Tensor, ci: torch.Tensor) -> torch.Tensor:
        lp = torch.log_softmax(rows, dim=-1).gather(-1, y[ci].unsqueeze(-1)).squeeze(-1)
        ratio = torch.exp(lp - old[ci])
        return -torch.minimum(ratio, ratio.clamp(1.0 - eps, 1.0 + eps))

    return _reduce(s, per_token, idx, norm, chunk_size)


def token_logprobs(logits: torch.Tensor | LogitRows, labels: torch.Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """``log p(y_k)`` at every position, ``[..., V] x [...] -> [...]`` float32, 0 where label is -100.

    ``logits`` may be a tensor or :class:`LogitRows` (e.g. cached hidden states x a frozen head).
    No gradient (used for PSFT's old policy).
    """
    flat = _flat_rows(logits, "logits")
    y = labels.reshape(-1)
    out = torch.zeros(y.shape, dtype=torch.float32, device=labels.device)
    idx = (y != IGNORE_INDEX).nonzero(as_tuple=True)[0]
    with torch.no_grad():
        for start in range(0, idx.numel(), chunk_size):
            ci = idx[start : start + chunk_size]
            out[ci] = torch.log_softmax(_rows(flat, ci), -1).gather(-1, y[ci].unsqueeze(-1)).squeeze(-1)
    return out.reshape(labels.shape)
