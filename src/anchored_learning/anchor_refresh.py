"""How :class:`anchored_learning.trainer.AnchoredSFTTrainer` keeps its anchors: the reference and
snapshot anchors (live frozen models or hidden-state caches, shared across runs when asked), the
on-policy rows, the KL-budget alpha, and the diagnostics logged at every refresh.

:class:`AnchorRefresh` is a mixin of the trainer: it reads the trainer's ``args``, ``state``,
``accelerator``, ``model``, ``method`` and the anchor attributes set in its ``__init__``;
:meth:`~anchored_learning.trainer.AnchoredSFTTrainer.refresh_snapshot` (the outer loop) calls it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from anchored_learning import anchor_bounds as B
from anchored_learning import objectives as O
from anchored_learning.anchor_cache import (
    HiddenStateCache,
    ProjectedLogits,
    backbone_and_head,
    check_plain_head,
    dataset_fingerprint,
    response_hidden_states,
    unwrap,
)
from anchored_learning.io import atomic_folder, link_folder, write_json_atomic
from anchored_learning.response_logits import PATCH_ATTRS

logger = logging.getLogger(__name__)


class AnchorRefresh:
    """The trainer's anchor bookkeeping (a mixin of :class:`~anchored_learning.trainer.AnchoredSFTTrainer`)."""

    @property
    def anchor_dir(self) -> Path:
        """Folder holding the reference cache and the snapshots."""
        return Path(self.args.anchor_cache_dir or os.path.join(self.args.output_dir, "anchor"))

    def _examples(self) -> list[dict[str, Any]]:
        if self._rows is not None:  # on-policy: this outer iteration's sampled responses
            return self._rows
        ds = self.train_dataset
        return [{"input_ids": ids, "labels": lab} for ids, lab in zip(ds["input_ids"], ds["labels"])]

    def _collate_plain(self, examples):
        return self.data_collator.inner(examples)

    def _barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def _build_cache(self, path: Path, model: torch.nn.Module, kind: str, shareable: bool = False) -> HiddenStateCache:
        """The anchor cache of ``model`` at ``path``: opened when complete, else built there, or,
        when ``shareable`` and ``args.shared_anchor_cache_dir`` is set, hard-linked there from the
        shared folder's copy under the same content key (built there first when missing)."""
        examples = self._examples()
        if self._fingerprint is None:
            self._fingerprint = dataset_fingerprint(examples)
        cache = HiddenStateCache.open(path, self._fingerprint) if path.exists() else None
        if cache is not None:
            return cache
        key = self._shared_cache_key(model) if shareable else None
        if key is not None:
            shared = Path(self.args.shared_anchor_cache_dir) / f"{kind.split('-')[0]}-{key}"
            if HiddenStateCache.open(shared, self._fingerprint) is None:
                self._build_cache(shared, model, kind)
            elif self.accelerator.is_main_process:
                logger.info("reusing the %s anchor cache %s", kind, shared)
            if self.accelerator.is_main_process:
                link_folder(shared, path)
            self._barrier()
            return HiddenStateCache.open(path, self._fingerprint, device=next(unwrap(model).parameters()).device)
        if self.accelerator.is_main_process:
            logger.info("building %s anchor cache at %s", kind, path)
        first = self._collate_plain(examples[: min(2, len(examples))])
        dev = next(unwrap(model).parameters()).device
        check_plain_head(
            model, first["input_ids"].to(dev), first.get("attention_mask").to(dev) if "attention_mask" in first else None
        )
        # the same precision as the training forward passes (bf16 autocast when args.bf16), stored as float32
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bool(self.args.bf16)):
            return HiddenStateCache.build(
                path,
                model,
                examples,
                self._collate_plain,
                fingerprint=self._fingerprint,
                batch_size=self.args.cache_batch_size,
                rank=self.accelerator.process_index,
                world_size=self.accelerator.num_processes,
                barrier=self._barrier,
                extra_manifest={"kind": kind, "bf16_autocast": bool(self.args.bf16)},
            )

    def _shared_cache_key(self, model: torch.nn.Module) -> str | None:
        """SHA-256 over what a cache's numbers depend on: every weight of ``model``, the training
        examples, the precision, the cache batch size and the world size; None without a shared
        folder, or under DeepSpeed (sharded weights)."""
        if not self.args.shared_anchor_cache_dir or self.is_deepspeed_enabled:
            return None
        h = hashlib.sha256(json.dumps([self._fingerprint, bool(self.args.bf16), self.args.cache_batch_size,
                                       self.accelerator.num_processes]).encode())  # fmt: skip
        for name, t in unwrap(model).state_dict().items():
            h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def _load_reference_model(self) -> PreTrainedModel:
        ref = self._reference_arg if self._reference_arg is not None else self.args.reference_model
        if isinstance(ref, torch.nn.Module):
            m = ref
        else:
            dtype = next(unwrap(self.model).parameters()).dtype
            m = AutoModelForCausalLM.from_pretrained(ref, dtype=dtype)
        m.to(self.accelerator.device)
        m.eval().requires_grad_(False)
        return m

    def _ensure_reference(self) -> None:
        if self._reference is not None or not self.args.needs_reference:
            return
        model = self._load_reference_model()
        if self.args.anchor_source == "live":
            self._reference = model
            return
        t = self._rows_iteration  # on-policy: the reference's hidden states on this iteration's responses
        path = self.anchor_dir / ("reference" if t is None else f"reference-{t:03d}")
        self._reference = self._build_cache(path, model, "reference", shareable=t is None)
        if model is not self._reference_arg:
            del model  # only the student stays in memory

    def _at_boundary(self, t: int) -> bool:
        """True when training stands at the start of outer iteration ``t`` (no step of it taken)."""
        k = self.args.refresh_epochs
        if k is None:
            return self.state.global_step == 0
        return float(self.state.epoch or 0.0) == float(t * k)

    def _snapshot_path(self, t: int) -> Path:
        return self.anchor_dir / f"snapshot-{t:03d}"

    def _take_snapshot(self, t: int, model: torch.nn.Module) -> Any:
        path = self._snapshot_path(t)
        complete = (path / "manifest.json").exists()
        self._barrier()  # every rank decides `complete` before rank 0 may write the snapshot
        if not complete and not self._at_boundary(t):
            raise RuntimeError(
                f"the snapshot of outer iteration {t} is missing from {path} and training is not at an iteration "
                "boundary, so it cannot be rebuilt: resume from a checkpoint whose snapshot folder exists"
            )
        if self.args.anchor_source == "cache":  # the starting model's snapshot is shareable across runs
            return self._build_cache(path, model, f"snapshot-{t}", shareable=self.state.global_step == 0)
        snap = copy.deepcopy(unwrap(model))
        # drop instance-level forward patches (trl's fused head, ours): deepcopy keeps them bound to the student
        for attr in PATCH_ATTRS:  # a deep copy leaves them out already; kept for models patched elsewhere
            snap.__dict__.pop(attr, None)
        snap.eval().requires_grad_(False)
        weights = path / "model.safetensors"
        if complete:
            from safetensors.torch import load_model

            load_model(snap, str(weights))
        else:
            if self.accelerator.is_main_process:
                from safetensors.torch import save_model

                with atomic_folder(path) as tmp:
                    save_model(snap, str(tmp / "model.safetensors"))
                    write_json_atomic(tmp / "manifest.json", {"kind": f"snapshot-{t}", "epoch": float(self.state.epoch or 0.0)})
            self._barrier()
        return snap

    # ------------------------------------------------------------------ on-policy responses, KL budget

    def _make_on_policy(self):
        from anchored_learning.evaluation._util import pad_id
        from anchored_learning.evaluation.generation import stop_token_ids
        from anchored_learning.on_policy import RECORD_FOLDER, OnPolicyResponses

        a = self.args
        tok = getattr(self.processing_class, "tokenizer", self.processing_class)
        return OnPolicyResponses(
            self._examples(),
            Path(a.output_dir) / RECORD_FOLDER,
            samples_per_prompt=a.samples_per_prompt,
            temperature=a.sampling_temperature,
            dataset_response_share=a.dataset_response_share,
            max_new_tokens=a.sampling_max_new_tokens,
            max_length=a.max_length,
            stop_ids=stop_token_ids(unwrap(self.model), tok),
            pad_id=pad_id(tok),
            decode=lambda ids: tok.decode(ids),
            seed=a.seed,
            batch_size=a.cache_batch_size,
            autocast_bf16=bool(a.bf16),
        )

    def _use_on_policy_rows(self, t: int) -> None:
        """Make outer iteration ``t``'s on-policy rows the training rows: sampled from the student
        (p_t at the boundary) or read from the run's record; the anchor caches are rebuilt on them."""
        rows, info = self._on_policy.rows(
            t, unwrap(self.model), at_boundary=self._at_boundary(t), main=self.accelerator.is_main_process, barrier=self._barrier
        )
        self._rows, self._rows_iteration = rows, t
        self.data_collator.rows = rows  # the dataloader reads them by anchor_index from now on
        self._fingerprint = None
        if self.args.anchor_source == "cache":
            self._reference = None  # its cache holds the previous responses
        self._refresh_info.update(info)

    def _choose_budget_alpha(self, t: int) -> None:
        """``anchored_budget``: alpha_t = min(1, eps / KL(p_t || p_sft)) over every training response
        (:func:`anchored_learning.anchor_bounds.budget_alpha`); the outer loop stops (``budget_reached``)
        once KL(p_t || p_sft) < eps after the first iteration."""
        eps = float(self.args.anchor_kl_budget)
        kl = self._kl_snapshot_reference()
        self._alpha_t = B.budget_alpha(kl, eps)
        self.budget_reached = t > 0 and kl < eps
        self._refresh_info.update(
            kl_snapshot_reference=kl,
            alpha_t=self._alpha_t,
            alpha_t_kl_bound=self._alpha_t * kl,
            budget_reached=float(self.budget_reached),
        )

    @torch.no_grad()
    def _kl_snapshot_reference(self) -> float:
        """KL(p_t || p_sft) at temperature tau, mean over every response token of the training rows
        (nats per token), from the anchors the loss reads (the caches, or the live models)."""
        examples, bs = self._examples(), int(self.args.cache_batch_size)
        dev = self.accelerator.device
        total, count = 0.0, 0
        for start in range(0, len(examples), bs):
            batch = self._collate_plain(examples[start : start + bs])
            inputs = {k: v.to(dev) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            index = torch.arange(start, start + len(batch["input_ids"]))
            labels = O.shift_labels(inputs["labels"])
            y = labels[labels != O.IGNORE_INDEX]
            snap = self._anchor_logits(self._snapshot, inputs, index)
            ref = self._anchor_logits(self._reference, inputs, index)
            s_, n_ = B.token_kl_sum(
                snap, ref, y, temperature=self.args.anchor_temperature, chunk_size=self.args.anchor_chunk_size
            )
            total, count = total + s_, count + n_
        return total / max(count, 1)

    def _anchor_logits(self, source: Any, inputs: dict[str, torch.Tensor], index: torch.Tensor | None) -> ProjectedLogits:
        if isinstance(source, HiddenStateCache):
            if index is None:
                raise ValueError("anchor cache lookup needs the batch's anchor_index (is the collator wrapped?)")
            return source.logits(index, inputs["labels"])
        with torch.no_grad():
            h = response_hidden_states(source, inputs["input_ids"], inputs.get("attention_mask"), inputs["labels"])
        head = backbone_and_head(source)[1]
        return ProjectedLogits(h, head.weight, getattr(head, "bias", None))

    @torch.no_grad()
    def _log_refresh(self, t: int, previous: Any) -> None:
        """Diagnostics on a fixed probe batch at each snapshot refresh."""
        examples = self._examples()[: max(1, int(self.args.probe_size))]
        batch = self._collate_plain(examples)
        dev = self.accelerator.device
        inputs = {k: v.to(dev) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        index = torch.arange(len(examples))
        labels = O.shift_labels(inputs["labels"])
        y = labels[labels != O.IGNORE_INDEX]
        if y.numel() == 0:
            return
        record: dict[str, float] = {
            "outer_iteration": float(t),
            "epoch": float(self.state.epoch or 0.0),
            "step": float(self.state.global_step),
        }
        if previous is None and t > 0 and self.args.needs_snapshot:
            record["resumed"] = 1.0  # first refresh after resume_from_checkpoint: same snapshot, reloaded
        record.update(self._refresh_info)
        self._refresh_info = {}
        snap = self._anchor_logits(self._snapshot, inputs, index) if self._snapshot is not None else None
        if (
            previous is not None
            and snap is not None
            and not (self._on_policy is not None and isinstance(previous, HiddenStateCache))
        ):
            # (an on-policy run's previous cache holds other responses than this iteration's)
            prev = self._anchor_logits(previous, inputs, index)
            # KL(student || previous snapshot): the move made by the last outer iteration
            record["kl_student_prev_snapshot"] = O.kl_to_reference_loss(
                snap[torch.arange(len(y))], prev, y, direction="reverse"
            ).item()
        if self.method.needs_reference and snap is not None and self._reference is not None:  # the anchored family
            ref = self._anchor_logits(self._reference, inputs, index)
            rows = torch.arange(len(y))
            record.update(
                B.anchor_bound_terms(
                    snap[rows],
                    ref[rows],
                    y,
                    alpha=self.args.anchor_alpha if self._alpha_t is None else self._alpha_t,
                    interpolation=self.args.anchor_interpolation,
                    temperature=self.args.anchor_temperature,
                )
            )
        self._record_refresh(record)

    def _record_refresh(self, record: dict[str, float]) -> None:
        """Append a refresh record to ``anchor_history``, the training logs and ``anchor_diagnostics.jsonl``."""
        self.anchor_history.append(record)
        for k, v in record.items():
            if k not in ("epoch", "step", "outer_iteration"):  # outer_iteration is logged every step
                self._metrics["train"][f"anchor/{k}"].append(v)
        if self.accelerator.is_main_process:
            os.makedirs(self.args.output_dir, exist_ok=True)
            with open(os.path.join(self.args.output_dir, "anchor_diagnostics.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
