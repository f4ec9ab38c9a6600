"""``AnchoredSFTConfig``: every knob of Anchored Learning and its baselines, on top of ``trl.SFTConfig``.

Defaults follow the reference implementation of the paper (arXiv:2605.04468 reference implementation): alpha 0.5, logit
interpolation, tau 1, K = 5 inner epochs, T = 5 outer iterations.  The paper trains at lr 1e-5; the
``learning_rate`` field keeps TRL's default (2e-5), so pass ``learning_rate=1e-5`` to match it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Literal

import torch
from trl import SFTConfig

from anchored_learning.distributed import accelerator_available, check_deepspeed, under_launcher
from anchored_learning.methods import HYPERPARAMETERS, METHODS, get_method

#: TrainingArguments' own default of num_train_epochs (a value the user did not choose)
_TRAINING_ARGS_DEFAULT_EPOCHS = 3.0


def _hyperparameter(name: str):
    """The dataclass field of a method hyper-parameter declared in :data:`~anchored_learning.methods.HYPERPARAMETERS`
    (its choices come from the field's ``Literal`` type here)."""
    h = HYPERPARAMETERS[name]
    return field(default=h["default"], metadata={"help": h["help"]})


@dataclass
class AnchoredSFTConfig(SFTConfig):
    """Configuration of :class:`anchored_learning.trainer.AnchoredSFTTrainer`.

    All ``trl.SFTConfig`` / ``transformers.TrainingArguments`` fields apply.  For the methods with a
    snapshot refreshed every K epochs (``anchored``, ``anchored_on_policy``, ``anchored_budget``,
    ``distill_on_policy``, ``psft``) the number of training epochs is
    ``outer_iterations * inner_epochs`` and ``num_train_epochs`` is set from them.

    Precision: ``bf16`` left unset means bf16 autocast with float32 master weights where the
    hardware computes bf16 natively (a bf16 GPU, or a CPU with AVX-512 BF16 / AMX, detected at run
    time by :func:`anchored_learning.models.bf16_autocast_available`), float32 elsewhere; the
    objectives compute in float32 inside either way.  ``bf16=False`` forces float32.

    Raises:
        ValueError: from ``__post_init__`` for any invalid combination, with what to change.
    """

    # TRL's default (activation checkpointing on) under transformers 5's name: TRL's own
    # `gradient_checkpointing=True` default makes transformers warn on every run that the name is deprecated
    activation_checkpointing: bool | None = field(
        default=True,
        metadata={"help": "Recompute activations in the backward pass (less memory, ~20-30%% slower steps)."},
    )
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated alias of activation_checkpointing.", "nargs": "?", "const": True}
    )
    method: str = field(
        default="anchored",
        metadata={
            "help": "Training objective: "
            + "; ".join(f"'{m.name}': {m.description}" for m in METHODS.values())
            + ". LoRA is an option of any method (--use_peft), not a method.",
            "choices": list(METHODS),
        },
    )
    anchor_alpha: float = _hyperparameter("anchor_alpha")
    anchor_interpolation: Literal["logit", "probability"] = _hyperparameter("anchor_interpolation")
    anchor_temperature: float = field(
        default=1.0, metadata={"help": "Temperature tau > 0 of anchor and student; the KL is multiplied by tau^2."}
    )
    outer_iterations: int = _hyperparameter("outer_iterations")
    inner_epochs: int = _hyperparameter("inner_epochs")
    reference_model: str | None = field(
        default=None,
        metadata={"help": "Path or Hub id of the reference model p_sft (an SFT model of the same base; see train_reference)."},
    )
    snapshot_mode: Literal["snapshot", "per_step"] = field(
        default="snapshot",
        metadata={"help": "'snapshot' (frozen copy refreshed every K epochs) or 'per_step' (the student's own detached logits)."},
    )
    anchor_source: Literal["cache", "live"] = _hyperparameter("anchor_source")
    ce_weight: float = field(
        default=0.0, metadata={"help": "w in [0, 1]: loss = (1 - w) * anchored KL + w * cross-entropy (debug/warm-start)."}
    )
    kl_coef: float = _hyperparameter("kl_coef")
    kl_direction: Literal["forward", "reverse"] = field(
        default="forward", metadata={"help": "'forward' KL(p0 || p_theta) or 'reverse' KL(p_theta || p0) for sft_kl and asft."}
    )
    psft_epsilon: float = field(default=0.2, metadata={"help": "Clip range epsilon of PSFT."})
    anchor_chunk_size: int = field(
        default=1024, metadata={"help": "Response tokens per chunk in the token-level losses (memory bound)."}
    )
    anchor_cache_dir: str | None = field(
        default=None, metadata={"help": "Where anchor caches and snapshots are stored (default: <output_dir>/anchor)."}
    )
    cache_batch_size: int = field(default=8, metadata={"help": "Batch size used to build hidden-state caches."})
    shared_anchor_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "A folder where the caches of models that do not depend on the run (the reference, and the "
            "first snapshot: the starting model) are kept by content (the model's weights, the training examples, "
            "precision, cache batch size) and reused by other runs; default: none, every run builds its own."
        },
    )
    keep_anchor_cache: bool = field(
        default=False, metadata={"help": "Keep the anchor caches and snapshots after training finishes."}
    )
    probe_size: int = field(default=8, metadata={"help": "Training examples in the fixed probe batch for refresh diagnostics."})
    anchor_kl_budget: float = field(
        default=0.1,
        metadata={
            "help": "eps > 0 (nats per response token) of anchored_budget: alpha_t = min(1, eps / KL(p_t || p_sft)) at "
            "each refresh, and the outer loop stops once KL(p_t || p_sft) < eps."
        },
    )
    sampling_temperature: float = field(
        default=0.9,
        metadata={
            "help": "Temperature > 0 of the sampled responses (on-policy methods, sft_self_generated); no top-k / top-p "
            "(0.9: the authors' on-policy v1)."
        },
    )
    samples_per_prompt: int = field(
        default=1,
        metadata={
            "help": "Responses sampled per training prompt: on-policy methods train on each one (prompts x samples "
            "rows); sft_self_generated keeps the first one its scoring rule accepts."
        },
    )
    dataset_response_share: float = field(
        default=0.0,
        metadata={
            "help": "Share in [0, 1) of the on-policy rows that keep the dataset response instead of a sample, drawn "
            "anew at each refresh (1 - GKD's lmbda; 0 = fully on-policy, as the authors' v1)."
        },
    )
    sampling_max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Most new tokens per sampled response (default: the longest training response, in tokens; "
            "never past max_length)."
        },
    )

    def __post_init__(self):
        self._check_numeric_fields()
        if self.bf16 is None and not self.fp16:
            # bf16 autocast (float32 master weights) where the hardware does bf16 natively: a GPU that
            # supports it, or a CPU with AVX-512 BF16 / AMX (2.7x faster steps measured); float32 elsewhere
            from anchored_learning.models import bf16_autocast_available

            self.bf16 = bf16_autocast_available()
        if self.bf16 and not torch.cuda.is_available() and not torch.backends.mps.is_available():
            self.use_cpu = True  # transformers accepts bf16 without a GPU only with use_cpu (CPU autocast)
        if under_launcher() and not accelerator_available():
            # accelerate sets up DDP over gloo for CPU processes only with use_cpu: without it, each
            # process that torchrun / accelerate launch started trains alone on all the data
            self.use_cpu = True
        self._validate_anchor_fields()
        if self.refresh_epochs is not None and self.snapshot_mode == "snapshot":
            total = float(self.outer_iterations * self.inner_epochs)
            if float(self.num_train_epochs) not in (_TRAINING_ARGS_DEFAULT_EPOCHS, total):
                warnings.warn(
                    f"num_train_epochs={self.num_train_epochs:g} is replaced by outer_iterations * inner_epochs = {total:g} "
                    f"for method {self.method!r}; set outer_iterations (T) and inner_epochs (K) instead",
                    UserWarning,
                    stacklevel=3,
                )
            self.num_train_epochs = total
        check_deepspeed(self.deepspeed)  # before transformers registers the config for model loading
        super().__post_init__()

    def _check_numeric_fields(self) -> None:
        """Every field whose default is a number must hold a number.  YAML 1.1 reads ``1e-5`` as the
        string "1e-5" and TrainingArguments does not check types, so numeric strings are converted
        here and anything else fails now instead of mid-training.  Fields added by this class with a
        whole-number default must be whole numbers.

        Raises:
            ValueError: naming the field and the value.
        """
        own = {f.name for f in dataclasses.fields(AnchoredSFTConfig)} - {f.name for f in dataclasses.fields(SFTConfig)}
        for f in dataclasses.fields(self):
            default = f.default
            if isinstance(default, bool) or not isinstance(default, (int, float)):
                continue
            v = getattr(self, f.name)
            if isinstance(v, str):
                try:
                    v = float(v)
                except ValueError:
                    raise ValueError(f"{f.name} must be a number, got {v!r}") from None
                if isinstance(default, int) and v.is_integer():
                    v = int(v)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{f.name} must be a number, got {v!r}")
            if not math.isfinite(v):
                raise ValueError(f"{f.name} must be a finite number, got {v!r}")
            if f.name in own and isinstance(default, int) and not isinstance(default, bool):
                if not float(v).is_integer():
                    raise ValueError(f"{f.name} must be a whole number, got {v!r}")
                v = int(v)
            setattr(self, f.name, v)
        if not self.learning_rate >= 0:
            raise ValueError(f"learning_rate must be >= 0, got {self.learning_rate}")
        if self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError(
                f"per_device_train_batch_size and gradient_accumulation_steps must be >= 1, got "
                f"{self.per_device_train_batch_size} and {self.gradient_accumulation_steps}"
            )
        if self.max_length is not None and int(self.max_length) < 1:
            raise ValueError(f"max_length must be >= 1 (or None for no truncation), got {self.max_length}")
        if not self.num_train_epochs > 0:
            raise ValueError(f"num_train_epochs must be > 0, got {self.num_train_epochs}")

    def _validate_anchor_fields(self) -> None:
        for name, value in get_method(self.method).fixed.items():
            setattr(self, name, value)
        if not 0.0 <= float(self.anchor_alpha) <= 1.0:
            raise ValueError(f"anchor_alpha must be in [0, 1], got {self.anchor_alpha}")
        if self.anchor_interpolation not in ("logit", "probability"):
            raise ValueError(f"anchor_interpolation must be 'logit' or 'probability', got {self.anchor_interpolation!r}")
        if not float(self.anchor_temperature) > 0:
            raise ValueError(f"anchor_temperature must be > 0, got {self.anchor_temperature}")
        if int(self.outer_iterations) < 1:
            raise ValueError(f"outer_iterations (T) must be >= 1, got {self.outer_iterations}")
        if int(self.inner_epochs) < 1:
            raise ValueError(f"inner_epochs (K) must be >= 1, got {self.inner_epochs}")
        if self.snapshot_mode not in ("snapshot", "per_step"):
            raise ValueError(f"snapshot_mode must be 'snapshot' or 'per_step', got {self.snapshot_mode!r}")
        if self.anchor_source not in ("cache", "live"):
            raise ValueError(f"anchor_source must be 'cache' or 'live', got {self.anchor_source!r}")
        if not 0.0 <= float(self.ce_weight) <= 1.0:
            raise ValueError(f"ce_weight must be in [0, 1], got {self.ce_weight}")
        if float(self.kl_coef) < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if self.kl_direction not in ("forward", "reverse"):
            raise ValueError(f"kl_direction must be 'forward' or 'reverse', got {self.kl_direction!r}")
        if not float(self.psft_epsilon) > 0:
            raise ValueError(f"psft_epsilon must be > 0, got {self.psft_epsilon}")
        if int(self.anchor_chunk_size) < 1 or int(self.cache_batch_size) < 1:
            raise ValueError("anchor_chunk_size and cache_batch_size must be >= 1")
        self._validate_sampling_fields()
        if self.needs_reference and not self.reference_model:
            raise ValueError(
                f"method {self.method!r} needs reference_model (the SFT model p_sft): train one with "
                "anchored_learning.trainer.train_reference(...) or `anchored train --method sft`, then pass its folder"
            )
        if self.packing:
            raise ValueError("packing=True is not supported by AnchoredSFTTrainer: the anchor is per example; set packing=False")
        # TRL / transformers options that the methods' own losses would ignore without a word
        if getattr(self, "loss_type", "nll") != "nll":
            raise ValueError(
                f"loss_type {self.loss_type!r} is TRL's switch; here the loss is the method's: use method='dft' "
                "(--method dft) and leave loss_type at 'nll'"
            )
        if float(self.label_smoothing_factor) != 0.0:
            raise ValueError("label_smoothing_factor is not applied by the methods' losses; leave it at 0")
        if self.padding_free:
            raise ValueError("padding_free=True is not supported by AnchoredSFTTrainer; set padding_free=False")

    def _validate_sampling_fields(self) -> None:
        if not float(self.anchor_kl_budget) > 0:
            raise ValueError(f"anchor_kl_budget (eps, nats per token) must be > 0, got {self.anchor_kl_budget}")
        if not float(self.sampling_temperature) > 0:
            raise ValueError(f"sampling_temperature must be > 0, got {self.sampling_temperature}")
        if int(self.samples_per_prompt) < 1:
            raise ValueError(f"samples_per_prompt must be >= 1, got {self.samples_per_prompt}")
        if not 0.0 <= float(self.dataset_response_share) < 1.0:
            raise ValueError(f"dataset_response_share must be in [0, 1), got {self.dataset_response_share}")
        n = self.sampling_max_new_tokens
        if n is not None and (isinstance(n, bool) or not float(n).is_integer() or int(n) < 1):
            raise ValueError(f"sampling_max_new_tokens must be a whole number >= 1 (or None), got {n!r}")
        if get_method(self.method).alpha_rule == "kl_budget" and self.snapshot_mode != "snapshot":
            raise ValueError(f"method {self.method!r} chooses alpha from the snapshot p_t: leave snapshot_mode='snapshot'")
        if get_method(self.method).responses == "on_policy":
            if self.assistant_only_loss:
                raise ValueError(
                    f"method {self.method!r} samples the final assistant turn; assistant_only_loss (every assistant "
                    "turn) is not supported with it"
                )
            if self.dataloader_persistent_workers:
                raise ValueError(
                    f"method {self.method!r} replaces the responses at every refresh; persistent dataloader workers "
                    "would keep the old ones: set dataloader_persistent_workers=False"
                )
            if self.snapshot_mode != "snapshot":
                raise ValueError(f"method {self.method!r} samples from the snapshot p_t: leave snapshot_mode='snapshot'")

    @property
    def needs_reference(self) -> bool:
        """True when the loss reads the reference model p_sft."""
        return get_method(self.method).needs_reference

    @property
    def needs_snapshot(self) -> bool:
        """True when the loss reads a frozen copy of the student (snapshot, base model or old policy)."""
        m = get_method(self.method)
        if m.snapshot is None:
            return False
        if m.needs_reference:  # the anchored family: the snapshot's weight in the anchor is 1 - alpha (or 1 - alpha_t)
            return self.snapshot_mode == "snapshot" and (m.alpha_rule == "kl_budget" or float(self.anchor_alpha) < 1.0)
        return True

    @property
    def refresh_epochs(self) -> int | None:
        """Epochs between snapshot refreshes (K), or None for a frozen copy taken once (base model p0)."""
        return int(self.inner_epochs) if get_method(self.method).snapshot == "outer" else None
