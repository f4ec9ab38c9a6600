"""The method registry: every training objective the trainer knows, declared once.

A :class:`Method` says what a method's loss reads (the reference model p_sft, a frozen copy of the
student) and how that frozen copy is kept (taken once at the start, or refreshed every K epochs
by the outer loop), which config fields it fixes, and which pure objective of
:mod:`anchored_learning.objectives` computes its loss.  The trainer, the experiment pipeline and
the command line all read :data:`METHODS`; adding a method is one entry here.

LoRA is not a method: it is a PEFT option of any method (``peft_config=`` on the trainer,
``--use_peft`` on the command line).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from anchored_learning import objectives as O

#: how a method's frozen copy of the student is kept
#: - "outer": the snapshot p_t, refreshed at the start of every outer iteration (every K epochs)
#: - "base": the base model p0, taken once before the first step
#: - None: the method reads no frozen copy of the student
SnapshotKind = Literal["outer", "base"] | None

#: where a method's training responses come from
#: - "dataset": the gold responses of the training data
#: - "on_policy": sampled from the snapshot p_t at every refresh (every K epochs), for the dataset's
#:   prompts; the trainer samples, records and caches them (``AnchoredSFTTrainer.refresh_snapshot``)
#: - "self_generated": sampled from the base model once, before training, and kept where the task's
#:   scoring rule accepts them; built by the caller, who knows the task
#:   (:func:`anchored_learning.sampling.self_generated_rows`), and then trained on as given
ResponseSource = Literal["dataset", "on_policy", "self_generated"]

#: how the anchored family's alpha is chosen at each refresh
#: - "fixed": ``anchor_alpha``
#: - "kl_budget": ``alpha_t = min(1, anchor_kl_budget / KL(p_t || p_sft))`` (:func:`anchored_learning.anchor_bounds.budget_alpha`)
AlphaRule = Literal["fixed", "kl_budget"]


@dataclass(frozen=True)
class Method:
    """One training objective.

    Attributes:
        name: the registry key (``AnchoredSFTConfig.method``, ``--method``).
        loss: ``loss(student, y, anchors, args, num_response_tokens=, chunk_size=)`` -> scalar
            tensor in nats per response token.  ``student`` is the student's logits at the
            ``N`` response positions ``[N, V]``, ``y`` the response tokens ``[N]``, ``anchors``
            an :class:`Anchors` of the frozen logits the method reads, ``args`` the
            :class:`~anchored_learning.config.AnchoredSFTConfig`.
        needs_reference: the loss reads the reference model p_sft.
        snapshot: how the frozen copy of the student is kept (:data:`SnapshotKind`).
        fixed: config fields the method sets, whatever the user gave (e.g. distill: alpha = 1).
        reads: the config fields the method reads besides the chunking (its hyper-parameters).
        responses: where its training responses come from (:data:`ResponseSource`).
        alpha_rule: how alpha is chosen at each refresh (:data:`AlphaRule`; anchored family only).
        epochs: how many epochs an experiment trains it: ``"outer"``: ``outer_iterations x
            inner_epochs`` (T x K, the anchored student's budget; every method with an outer loop),
            ``"baseline"``: the experiment's ``baseline_epochs``.
        schedule: its learning-rate schedule in an experiment (``lr_scheduler_type``); None: the
            experiment's (cosine).
        description: one line for ``--help`` and the README.

    Raises:
        ValueError: from ``__post_init__``: a method with an outer loop (``snapshot="outer"``)
            whose ``epochs`` is not ``"outer"``.
    """

    name: str
    loss: Callable[..., torch.Tensor]
    needs_reference: bool = False
    snapshot: SnapshotKind = None
    fixed: dict[str, Any] = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    responses: ResponseSource = "dataset"
    alpha_rule: AlphaRule = "fixed"
    epochs: Literal["outer", "baseline"] = "baseline"
    schedule: str | None = None
    description: str = ""

    def __post_init__(self):
        if self.snapshot == "outer" and self.epochs != "outer":
            raise ValueError(f"method {self.name!r} refreshes its snapshot every K epochs: its epochs are T x K (epochs='outer')")


@dataclass
class Anchors:
    """The frozen logits a method's loss reads, at the batch's response positions.

    Each is ``None`` when the method does not read it, else a ``[N, V]`` tensor or a
    :class:`~anchored_learning.objectives.LogitRows` (cached hidden states projected chunk by chunk).

    Attributes:
        reference: the reference model p_sft.
        snapshot: the frozen copy of the student: the snapshot p_t (anchored), the base model p0
            (sft_kl, asft) or the old policy (psft); for the per-step anchor, the student's own
            detached logits.
        alpha: the anchor's alpha for this outer iteration when the method chooses it at each
            refresh (``anchored_budget``); None: ``args.anchor_alpha``.
    """

    reference: Any = None
    snapshot: Any = None
    alpha: float | None = None


def _sft(student, y, anchors, args, **common):
    return O.sft_loss(student, y, **common)


def _dft(student, y, anchors, args, **common):
    return O.dft_loss(student, y, **common)


def _sft_kl(student, y, anchors, args, **common):
    return O.sft_kl_loss(student, anchors.snapshot, y, kl_coef=args.kl_coef, direction=args.kl_direction, **common)


def _asft(student, y, anchors, args, **common):
    return O.asft_loss(student, anchors.snapshot, y, kl_coef=args.kl_coef, direction=args.kl_direction, **common)


def _psft(student, y, anchors, args, **common):
    old_logprobs = O.token_logprobs(anchors.snapshot, y, chunk_size=common["chunk_size"])
    return O.psft_loss(student, old_logprobs, y, epsilon=args.psft_epsilon, **common)


def _anchored(student, y, anchors, args, **common):
    # alpha = 1 (distill) reads no snapshot: the anchor is p_sft itself
    snapshot = anchors.reference if anchors.snapshot is None else anchors.snapshot
    return O.anchored_kl_loss(
        student,
        snapshot,
        anchors.reference,
        y,
        alpha=args.anchor_alpha if anchors.alpha is None else anchors.alpha,
        interpolation=args.anchor_interpolation,
        temperature=args.anchor_temperature,
        ce_weight=args.ce_weight,
        **common,
    )


#: the methods' hyper-parameters that a training config (:class:`~anchored_learning.config.AnchoredSFTConfig`,
#: ``anchored train``) and an experiment's recipe (``ExperimentConfig``, ``anchored run``) both set, declared
#: once: their default, their meaning and, for a choice, its values
HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "anchor_alpha": {
        "default": 0.5,
        "help": "alpha in [0, 1]: weight of the reference model p_sft in the anchor (0 = no movement, 1 = distill p_sft).",
    },
    "anchor_interpolation": {
        "default": "logit",
        "help": "'logit' (geometric mixture, default) or 'probability' (arithmetic mixture) anchor.",
        "choices": ["logit", "probability"],
    },
    "anchor_source": {
        "default": "cache",
        "help": "'cache': cached final hidden states + frozen output heads, one model in memory (exact); "
        "'live': frozen snapshot and reference models in memory.",
        "choices": ["cache", "live"],
    },
    "outer_iterations": {"default": 5, "help": "T: number of outer iterations (snapshot refreshes)."},
    "inner_epochs": {"default": 5, "help": "K: epochs over the data per outer iteration (the snapshot is fixed within one)."},
    "kl_coef": {"default": 0.1, "help": "lambda of the KL-to-base term of sft_kl and asft."},
}


#: what the anchored objective reads
_ANCHOR_FIELDS = ("anchor_alpha", "anchor_interpolation", "anchor_temperature", "ce_weight")
_KL_FIELDS = ("kl_coef", "kl_direction")
#: what sampling reads (the on-policy methods and self-generated SFT)
_SAMPLING_FIELDS = ("sampling_temperature", "samples_per_prompt", "sampling_max_new_tokens")
_ON_POLICY_FIELDS = (*_ANCHOR_FIELDS, *_SAMPLING_FIELDS, "dataset_response_share")

#: how an experiment trains the anchored family: T x K epochs at a constant learning rate after warm-up
_ANCHORED = {"epochs": "outer", "schedule": "constant_with_warmup"}

#: the registry: every training objective, by name
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("anchored", _anchored, needs_reference=True, snapshot="outer", reads=_ANCHOR_FIELDS, **_ANCHORED,
               description="Anchored Learning (arXiv:2605.04468): KL(q_t || p_theta), anchor q_t between the "
                           "snapshot p_t and p_sft, snapshot refreshed every K epochs"),
        Method("anchored_per_step", _anchored, needs_reference=True, fixed={"snapshot_mode": "per_step"},
               reads=_ANCHOR_FIELDS, **_ANCHORED,
               description="anchored KL with the student's own detached logits as z_t (TAID-like, no snapshot)"),
        Method("distill", _anchored, needs_reference=True, fixed={"anchor_alpha": 1.0}, reads=_ANCHOR_FIELDS,
               description="distillation KL(p_sft || p_theta) (alpha = 1)"),
        Method("anchored_on_policy", _anchored, needs_reference=True, snapshot="outer", reads=_ON_POLICY_FIELDS,
               responses="on_policy", **_ANCHORED,
               description="anchored KL on responses sampled from the snapshot p_t at every refresh (on-policy; "
                           "the authors' v1, GKD lmbda 1)"),
        Method("distill_on_policy", _anchored, needs_reference=True, snapshot="outer", fixed={"anchor_alpha": 1.0},
               reads=_ON_POLICY_FIELDS, responses="on_policy", **_ANCHORED,
               description="on-policy distillation KL(p_sft || p_theta) on the student's samples, drawn every K epochs "
                           "(GKD arXiv:2306.13649, lmbda 1)"),
        Method("anchored_budget", _anchored, needs_reference=True, snapshot="outer",
               fixed={"anchor_interpolation": "logit"},
               reads=("anchor_kl_budget", "anchor_temperature", "ce_weight"), alpha_rule="kl_budget", **_ANCHORED,
               description="anchored KL with alpha_t = min(1, eps / KL(p_t || p_sft)) at each refresh, stopping once "
                           "KL(p_t || p_sft) < eps (KL budget eps = anchor_kl_budget; ours, beyond the paper)"),
        Method("sft", _sft, description="plain SFT: -log p_theta(y_k)"),
        Method("sft_self_generated", _sft, reads=_SAMPLING_FIELDS, responses="self_generated",
               description="SFT on the base model's own samples that the task's scoring rule accepts, the dataset "
                           "response where none is (rejection sampling; arXiv:2510.18874)"),
        Method("sft_kl", _sft_kl, snapshot="base", reads=_KL_FIELDS,
               description="SFT + kl_coef * KL(p0 || p_theta) to the fixed base model"),
        Method("dft", _dft, description="DFT (arXiv:2508.05629): -sg(p_theta(y_k)) log p_theta(y_k)"),
        Method("asft", _asft, snapshot="base", reads=_KL_FIELDS,
               description="ASFT (arXiv:2509.23753): DFT + kl_coef * KL(p0 || p_theta)"),
        Method("psft", _psft, snapshot="outer", reads=("psft_epsilon",), epochs="outer",
               description="PSFT (arXiv:2508.17784): clipped ratio to the old policy, refreshed every K epochs"),
    )
}  # fmt: skip


def get_method(name: str) -> Method:
    """The registered :class:`Method` called ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones, and says where LoRA went).
    """
    if name in METHODS:
        return METHODS[name]
    hint = " (LoRA is an option of any method: method='sft' with a peft_config / --use_peft)" if name == "lora" else ""
    raise ValueError(f"method must be one of {tuple(METHODS)}, got {name!r}{hint}")
