"""Anchored Learning end to end: ``AnchoredSFTTrainer`` and its outer loop.

Anchored Learning (arXiv:2605.04468, Algorithm 1), as this file runs it:

1. **Reference.** ``p_sft`` = the base model trained with plain SFT (:func:`train_reference`);
   its logits at every response position are read through :meth:`AnchoredSFTTrainer._anchor_logits`.
2. **Student.** The trainer's model, starting again from the base model.
3. **Outer loop** (:class:`OuterLoopCallback`): at the start of outer iteration
   ``t = epoch // K`` the student is frozen as the snapshot ``p_t``
   (:meth:`AnchoredSFTTrainer.refresh_snapshot`); ``T * K`` epochs in all.
4. **Anchor and loss** (:meth:`AnchoredSFTTrainer.compute_loss`): for every response token,
   ``q_t = softmax((1 - alpha) z_t + alpha z_sft)`` and the loss ``KL(q_t || p_theta)``
   (:func:`anchored_learning.objectives.anchored_kl_loss`, via the method registry
   :mod:`anchored_learning.methods`, which also holds every baseline's objective).

Anchor sources (``AnchoredSFTConfig.anchor_source``):

* ``"live"``: frozen snapshot and reference models in memory, each run forward on every batch.
* ``"cache"`` (default): the reference's and the snapshot's final hidden states at every response
  position are computed once (the reference at the start, the snapshot at each refresh, by the
  student itself), memory-mapped on disk, and projected through frozen copies of the output heads
  chunk by chunk.  Exact (float32), one full model in memory.

On-policy methods (``anchored_on_policy``, ``distill_on_policy``): the training set is fixed at
prompts x ``samples_per_prompt`` rows whose responses are replaced at every refresh by responses
sampled from the snapshot p_t (:mod:`anchored_learning.on_policy`; the collator reads the current
rows by index, so the dataloader's length never changes); the reference and snapshot caches are
then built on those responses.  The KL-budget anchor (``anchored_budget``) sets
``alpha_t = min(1, eps / KL(p_t || p_sft))`` at each refresh from the caches, over every training
response, and stops the outer loop once ``KL(p_t || p_sft) < eps``.

Resume: snapshots live in ``<anchor_cache_dir>/snapshot-<t>`` (written atomically), on-policy
samples in ``<output_dir>/on_policy/iteration-<t>.jsonl``; the callback
runs at the start of every epoch, including the partial epoch a resumed run starts in, so
``trainer.train(resume_from_checkpoint=...)`` continues with the right snapshot.

This file holds the method's step and loop; the bookkeeping behind them lives in
:mod:`anchored_learning.anchor_refresh` (anchor caches, snapshots, on-policy rows, the budget's
alpha, refresh diagnostics: the trainer's :class:`~anchored_learning.anchor_refresh.AnchorRefresh`
mixin), :mod:`anchored_learning.anchor_cache` (the hidden-state cache) and
:mod:`anchored_learning.response_logits` (the student's forward at response positions only).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoConfig, PreTrainedModel, TrainerCallback
from transformers.trainer_callback import ExportableState
from trl import SFTTrainer

from anchored_learning import objectives as O
from anchored_learning.anchor_cache import backbone_and_head, unwrap
from anchored_learning.anchor_refresh import AnchorRefresh
from anchored_learning.config import AnchoredSFTConfig
from anchored_learning.data import as_prompt_completion, looks_like_hub_id
from anchored_learning.methods import Anchors, get_method
from anchored_learning.models import check_finite_parameters, check_same_tokenizer
from anchored_learning.response_logits import RESPONSE_LOGITS_KWARG, patch_response_logits_forward
from anchored_learning.sampling import SELF_GENERATED_COLUMN

logger = logging.getLogger(__name__)

INDEX_COLUMN = "anchor_index"


class OuterLoopCallback(TrainerCallback):
    """The outer loop of Anchored Learning as a ``TrainerCallback`` (like TRL's ``SyncRefModelCallback``).

    At the start of every epoch (integer epoch ``e``, from the trainer's own epoch counter) it
    makes sure the anchors the loss reads are in place: the reference model p_sft, and the frozen
    copy of the student for outer iteration ``t = min(e // K, T - 1)``
    (:meth:`AnchoredSFTTrainer.refresh_snapshot`).  ``compute_loss`` only computes a loss.
    """

    def __init__(self, trainer: AnchoredSFTTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        """Warn when ``max_steps`` makes the run other than its ``T x K`` epochs (fewer outer
        iterations, or a longer last one): the step limit wins over the outer loop."""
        k, t = args.refresh_epochs, int(args.outer_iterations)
        if k is None or args.max_steps is None or args.max_steps <= 0 or float(state.num_train_epochs) == t * k:
            return
        reached = min(-(-int(state.num_train_epochs) // k), t)
        warnings.warn(
            f"max_steps={args.max_steps} trains {args.method!r} for {state.num_train_epochs} epoch(s), not its "
            f"T x K = {t} x {k} epochs: {reached} of {t} outer iterations run"
            + (", the last one longer" if state.num_train_epochs > t * k else "")
            + ". Drop max_steps to run the outer loop as configured (set outer_iterations and inner_epochs instead)",
            UserWarning,
            stacklevel=2,
        )

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch is e + (step + 1) / steps_in_epoch after each step: exactly e at the start of
        # epoch e, and e + a fraction when a resumed run starts inside epoch e
        self.trainer.refresh_snapshot(epoch=int(state.epoch or 0))
        if self.trainer.budget_reached:  # anchored_budget: KL(p_t || p_sft) < eps, the outer loop ends here
            control.should_training_stop = True


class RunLossTotal(TrainerCallback, ExportableState):
    """The training loss summed over every optimizer step up to the newest checkpoint (stored in its
    ``trainer_state.json``), so that a resumed run's ``train_loss`` is the mean over the whole run,
    as an uninterrupted run's is (transformers averages over the steps of the current call only)."""

    def __init__(self, loss_sum: float | None = 0.0):
        self.loss_sum = loss_sum  # None: unknown (resumed from a checkpoint saved without it)

    def state(self) -> dict[str, Any]:
        return {"args": {"loss_sum": self.loss_sum}, "attributes": {}}


class _IndexCollator:
    """Wraps the TRL collator and carries each example's row index (``anchor_index``) along."""

    def __init__(self, inner):
        self.inner = inner
        #: on-policy methods: the current outer iteration's rows ({"input_ids", "labels"}), read by index
        self.rows: list[dict[str, Any]] | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        index = [ex.pop(INDEX_COLUMN) for ex in examples] if examples and INDEX_COLUMN in examples[0] else None
        if index is not None and self.rows is not None:
            examples = [{**ex, **self.rows[i]} for ex, i in zip(examples, index)]
        batch = self.inner(examples)
        if index is not None:
            batch[INDEX_COLUMN] = torch.tensor(index, dtype=torch.long)
        return batch


class AnchoredSFTTrainer(AnchorRefresh, SFTTrainer):
    """Train a causal LM with Anchored Learning or a baseline (``args.method``, see
    :data:`anchored_learning.methods.METHODS`).

    Args:
        model: the student: a model id/path or a ``PreTrainedModel`` (the base model p0).
        args: :class:`AnchoredSFTConfig`.
        train_dataset: a ``datasets.Dataset`` in a ``trl`` format: prompt-completion (text or
            conversational; a ``response`` column is read as ``completion``), conversational
            ``messages`` (the loss is on the final assistant turn, the turns before it are the
            prompt: :func:`anchored_learning.data.as_prompt_completion`; with
            ``assistant_only_loss=True`` TRL's loss on every assistant turn instead), or pre-tokenized
            ``input_ids``/``labels``.  ``anchored_learning.data.load_dataset_file(path)`` reads
            the files the command line reads into exactly the rows it trains on.
        reference_model: optional ``PreTrainedModel`` or path overriding ``args.reference_model``.
        **kwargs: passed to ``trl.SFTTrainer`` (``processing_class``, ``peft_config``, ``callbacks``, ...).

    Raises:
        ValueError: a reference is needed but missing, base and reference vocabularies differ,
            the dataset has no response tokens, or a config field is invalid.
    """

    def __init__(self, model, args: AnchoredSFTConfig, train_dataset=None, reference_model=None, **kwargs):
        if not isinstance(args, AnchoredSFTConfig):
            raise ValueError("args must be an AnchoredSFTConfig")
        self.method = get_method(args.method)
        if reference_model is None and args.needs_reference and not args.reference_model:
            raise ValueError(f"method {args.method!r} needs a reference model (args.reference_model)")
        if args.needs_reference:
            self._check_reference_path(reference_model if reference_model is not None else args.reference_model)
        if isinstance(train_dataset, Dataset):
            # 'response' -> 'completion'; messages -> prompt + final assistant turn, unless the user asked
            # TRL for the loss on every assistant turn (assistant_only_loss, a template with generation tags)
            train_dataset = as_prompt_completion(train_dataset, keep_messages=bool(args.assistant_only_loss))
        if self.method.responses == "self_generated" and not (
            isinstance(train_dataset, Dataset) and SELF_GENERATED_COLUMN in train_dataset.column_names
        ):
            raise ValueError(
                f"method {args.method!r} trains on rows built by anchored_learning.sampling.self_generated_rows(model, "
                "tokenizer, rows, score) (samples of the base model that the task's rule accepts); pass those rows "
                f"(they carry a {SELF_GENERATED_COLUMN!r} column), or use method='sft' for the dataset's own responses"
            )
        n_given = len(train_dataset) if isinstance(train_dataset, Dataset) else None
        if args.deepspeed:
            from accelerate.state import AcceleratorState

            # one process may train several models in turn (the reference, then the student): accelerate
            # refuses a second DeepSpeed Accelerator in a process unless the previous one's state is cleared
            AcceleratorState._reset_state(reset_partial_state=False)
        self._loss_before: float | None = 0.0  # the loss summed over the steps before this train() call
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), RunLossTotal()]  # before the state is made
        super().__init__(model, args=args, train_dataset=train_dataset, **kwargs)
        if n_given is not None and self.train_dataset is not None and len(self.train_dataset) < n_given:
            # trl drops examples whose every label is masked: a prompt longer than max_length loses its response
            raise ValueError(
                f"{n_given - len(self.train_dataset)} of {n_given} training examples have no response tokens left "
                f"after truncation to max_length={args.max_length} (their prompts fill the whole length, or the "
                "response is empty): raise max_length or shorten those prompts; no example is dropped silently"
            )
        # our compute_loss always normalises by the global response-token count (num_items_in_batch)
        self.model_accepts_loss_kwargs = True
        patch_response_logits_forward(self.model)
        self.data_collator = _IndexCollator(self.data_collator)
        if self.train_dataset is not None:
            if not isinstance(self.train_dataset, Dataset):
                raise ValueError("AnchoredSFTTrainer needs a map-style datasets.Dataset (not an IterableDataset)")
            if self.method.responses == "on_policy":  # prompts x samples_per_prompt rows, row r holds prompt r // S
                s_ = int(args.samples_per_prompt)
                self.train_dataset = self.train_dataset.select([i for i in range(len(self.train_dataset)) for _ in range(s_)])
            self.train_dataset = self.train_dataset.map(lambda _ex, i: {INDEX_COLUMN: i}, with_indices=True)
            self._check_response_tokens()
        self._reference_arg = reference_model
        self._reference: Any = None  # live model or HiddenStateCache
        self._snapshot: Any = None  # live model or HiddenStateCache
        self._snapshot_iteration: int | None = None
        self._fingerprint: str | None = None
        self.anchor_history: list[dict[str, float]] = []
        self._rows: list[dict[str, Any]] | None = None  # on-policy: the current iteration's rows
        self._rows_iteration: int | None = None
        on_policy = self.method.responses == "on_policy" and self.train_dataset is not None
        self._on_policy = self._make_on_policy() if on_policy else None
        self._refresh_info: dict[str, float] = {}  # sampling / budget numbers for the next refresh record
        self._alpha_t: float | None = None  # anchored_budget: alpha of the current outer iteration
        self.budget_reached = False  # anchored_budget: KL(p_t || p_sft) < eps at the last refresh
        self._step_outer_iteration: int | None = None  # outer iteration t of the last training step
        self._eval_nll: list[float] | None = None  # [sum of response-token NLL, response tokens] while evaluating
        if args.needs_reference:
            self._check_vocab_against_student()
        self.add_callback(OuterLoopCallback(self))

    # ------------------------------------------------------------------ the method

    def outer_iteration(self, epoch: int) -> int:
        """Outer iteration ``t = min(epoch // K, T - 1)`` of integer epoch ``epoch`` (0 for methods
        whose frozen copy is taken once)."""
        k = self.args.refresh_epochs
        return 0 if k is None else min(int(epoch) // k, int(self.args.outer_iterations) - 1)

    def refresh_snapshot(self, epoch: int = 0) -> None:
        """Put the anchors of integer epoch ``epoch`` in place (called by :class:`OuterLoopCallback`
        at the start of every epoch; call it yourself before :meth:`compute_loss` outside ``train``).

        On-policy methods first replace the training responses by samples of the student, which at
        the boundary is p_t (:meth:`_use_on_policy_rows`).  Loads (or caches) the reference model
        (once, or per iteration on the new responses); freezes the student as the snapshot of outer
        iteration :meth:`outer_iteration` when that iteration has no snapshot yet (the base model
        p0 for ``sft_kl``/``asft``, taken once); for ``anchored_budget`` chooses alpha_t
        (:meth:`_choose_budget_alpha`); and logs the refresh diagnostics.

        Raises:
            RuntimeError: a resumed run whose snapshot folder or on-policy samples are missing mid-iteration.
        """
        t, start = self.outer_iteration(epoch), time.perf_counter()
        new_rows = self._on_policy is not None and self._rows_iteration != t
        if new_rows:
            self._use_on_policy_rows(t)
        self._ensure_reference()
        new_snapshot = self.args.needs_snapshot and not (self._snapshot_iteration == t and self._snapshot is not None)
        if not (new_snapshot or new_rows):
            return
        previous = self._snapshot
        if new_snapshot:
            self._snapshot = self._take_snapshot(t, self.model)
            self._snapshot_iteration = t
        if self.method.alpha_rule == "kl_budget":
            self._choose_budget_alpha(t)
        self._refresh_info["refresh_s"] = time.perf_counter() - start  # sampling + caches (+ the budget's KL)
        self._log_refresh(t, previous)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Loss of ``args.method`` on the batch's response tokens (nats per response token).

        Training: the method's objective (:data:`anchored_learning.methods.METHODS`) on the
        student's logits at the ``N`` response positions ``[N, V]`` and the anchors it reads,
        normalised by the global response-token count ``num_items_in_batch``.  Evaluation: the
        gold-response NLL, the same for every method so that eval losses are comparable.

        Raises:
            RuntimeError: training before the anchors are in place (call :meth:`refresh_snapshot`).
        """
        index = inputs.pop(INDEX_COLUMN, None)
        labels = inputs["labels"]
        forward_inputs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "position_ids")}
        student = model(**forward_inputs, labels=labels, **{RESPONSE_LOGITS_KWARG: True})  # [N, V]
        shifted = O.shift_labels(labels)
        y = shifted[shifted != O.IGNORE_INDEX]  # [N] response tokens
        if y.numel() == 0 and num_items_in_batch is None:
            raise ValueError("a batch with no response tokens reached the loss; check masking and max_length")
        a = self.args
        if not model.training:
            loss = O.sft_loss(student, y, chunk_size=a.anchor_chunk_size) if y.numel() else student.sum() * 0.0
            if self._eval_nll is not None:  # token-weighted over the whole evaluation (evaluation_loop)
                self._eval_nll[0] += float(loss.detach()) * y.numel()
                self._eval_nll[1] += y.numel()
        else:
            anchors = self._anchors(student, inputs, index)
            loss = self.method.loss(
                student, y, anchors, a, num_response_tokens=num_items_in_batch, chunk_size=a.anchor_chunk_size
            )
            if not torch.isfinite(loss.detach()).item():
                raise FloatingPointError(
                    f"non-finite {a.method} loss ({loss.item()}) at step {self.state.global_step + 1} "
                    f"(epoch {float(self.state.epoch or 0):.2f}): training stopped before the update. The last "
                    f"complete checkpoint in {a.output_dir} is kept; lower the learning rate (now {a.learning_rate}) "
                    "or check the data, then resume"
                )
            self._step_outer_iteration = self.outer_iteration(int(self.state.epoch or 0))
            if a.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # DDP averages gradients over ranks
        if return_outputs:
            return loss, {"logits": student}
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """TRL's logging, plus ``outer_iteration``: the outer iteration t (an integer) of the last
        training step, for methods that refresh a snapshot (not a window mean, and absent for SFT and
        the other methods without outer iterations)."""
        if "loss" in logs and self.args.refresh_epochs is not None and self._step_outer_iteration is not None:
            logs["outer_iteration"] = self._step_outer_iteration
        super().log(logs, start_time)

    def _anchors(self, student: torch.Tensor, inputs: dict[str, torch.Tensor], index: torch.Tensor | None) -> Anchors:
        """The frozen logits the method reads at this batch's response positions."""
        a = self.args
        if (a.needs_reference and self._reference is None) or (a.needs_snapshot and self._snapshot is None):
            raise RuntimeError(
                "the anchors are not in place: trainer.train() does this at every epoch start; "
                "outside train() call trainer.refresh_snapshot() first"
            )
        anchors = Anchors(alpha=self._alpha_t)
        if a.needs_reference:
            anchors.reference = self._anchor_logits(self._reference, inputs, index)
        if a.needs_snapshot:
            anchors.snapshot = self._anchor_logits(self._snapshot, inputs, index)
        elif a.snapshot_mode == "per_step" and float(a.anchor_alpha) < 1.0:
            anchors.snapshot = student.detach()  # the per-step anchor: the student's own logits
        return anchors

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"):
        """``Trainer.evaluation_loop`` whose ``<prefix>_loss`` is the gold-response NLL per response
        token over the whole evaluation set (nats), summed over processes: the same for any
        evaluation batch size (the Trainer's own is a mean of batch means)."""
        self._eval_nll = [0.0, 0]
        try:
            out = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
            total = torch.tensor(self._eval_nll, dtype=torch.float64, device=self.accelerator.device)
            nll, n = self.accelerator.reduce(total, reduction="sum").tolist()
        finally:
            self._eval_nll = None
        if n > 0 and out.metrics is not None:
            out.metrics[f"{metric_key_prefix}_loss"] = nll / n
        return out

    def _run_epoch(self, *args, **kwargs):
        # transformers >= 5 runs an epoch here after on_epoch_begin whatever the callbacks said: an outer
        # loop stopped at the refresh (anchored_budget) takes no step of the next iteration
        if self.budget_reached:
            return None
        return super()._run_epoch(*args, **kwargs)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """``Trainer.save_model`` (also used for every checkpoint), refusing NaN or infinite weights.

        Raises:
            FloatingPointError: a weight is not finite; nothing is written, earlier checkpoints stay.
        """
        check_finite_parameters(
            unwrap(self.model), f"the model at step {self.state.global_step} ({output_dir or self.args.output_dir})"
        )
        super().save_model(output_dir, _internal_call=_internal_call)

    def _save_checkpoint(self, model, trial) -> None:
        # the loss summed over the steps before this call and in it so far; the steps not yet logged
        # averaged over the processes, as transformers averages them when it logs them
        from transformers.trainer_pt_utils import nested_gather

        pending = nested_gather(self._tr_loss.detach(), self.args.parallel_mode).mean().item()
        before = self._loss_before
        # the instance in the handler (restore_callback_states_from_checkpoint replaces the one given)
        total = next(cb for cb in self.callback_handler.callbacks if isinstance(cb, RunLossTotal))
        total.loss_sum = None if before is None else before + self._total_loss_scalar + pending
        super()._save_checkpoint(model, trial)

    def last_complete_checkpoint(self) -> str | None:
        """The newest ``checkpoint-<step>`` folder in ``output_dir`` whose save finished (it holds
        ``trainer_state.json``, written after the weights, optimizer and scheduler), or None.
        Newer incomplete ones (a crash or a full disk during a save) are named in the log and skipped."""
        folders = sorted(
            (p for p in Path(self.args.output_dir).glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()),
            key=lambda p: int(p.name[11:]),
            reverse=True,
        )
        for p in folders:
            if (p / "trainer_state.json").is_file():
                return str(p)
            logger.warning("skipping %s: its save did not finish (no trainer_state.json)", p)
        return None

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """``transformers.Trainer.train``, then drops the anchor caches unless ``keep_anchor_cache``.

        ``resume_from_checkpoint=True`` resumes from the newest *complete* checkpoint
        (:meth:`last_complete_checkpoint`) and starts from scratch when there is none; a path is
        used as given. After a resume, ``train_loss`` (in the returned ``TrainOutput`` and the last
        ``log_history`` entry) is the mean step loss over the whole run, as without the interruption.
        """
        if resume_from_checkpoint is True:
            resume_from_checkpoint = self.last_complete_checkpoint()
            if resume_from_checkpoint is None:
                logger.warning("no complete checkpoint in %s: training from the start", self.args.output_dir)
        start_step, self._loss_before = 0, 0.0
        if resume_from_checkpoint:
            saved = json.loads((Path(resume_from_checkpoint) / "trainer_state.json").read_text())
            start_step = int(saved["global_step"])
            total = saved.get("stateful_callbacks", {}).get(RunLossTotal.__name__)
            self._loss_before = total["args"]["loss_sum"] if isinstance(total, dict) else None
        out = super().train(resume_from_checkpoint, *args, **kwargs)
        if start_step and self._loss_before is not None and self.state.global_step > 0:
            # the whole run's mean step loss, not only this call's (see RunLossTotal)
            whole = (self._loss_before + out.training_loss * (self.state.global_step - start_step)) / self.state.global_step
            out = out._replace(training_loss=whole)
            out.metrics["train_loss"] = whole
            last = next((h for h in reversed(self.state.log_history) if "train_loss" in h), None)
            if last is not None:
                last["train_loss"] = whole
        if not self.args.keep_anchor_cache and self.accelerator.is_main_process and self.anchor_dir.exists():
            shutil.rmtree(self.anchor_dir, ignore_errors=True)
        return out

    # ------------------------------------------------------------------ validation
    # (how the anchors are stored and refreshed: anchored_learning.anchor_refresh.AnchorRefresh)

    def _check_reference_path(self, ref) -> None:
        if isinstance(ref, (str, os.PathLike)) and not Path(ref).exists() and not looks_like_hub_id(str(ref)):
            raise ValueError(f"reference_model {str(ref)!r} does not exist: train the reference first (train_reference)")

    def _reference_vocab(self) -> int:
        ref = self._reference_arg if self._reference_arg is not None else self.args.reference_model
        if isinstance(ref, torch.nn.Module):
            return backbone_and_head(ref)[1].weight.shape[0]
        cfg = AutoConfig.from_pretrained(ref)
        return int(cfg.get_text_config().vocab_size)

    def _check_vocab_against_student(self) -> None:
        student_vocab = backbone_and_head(self.model)[1].weight.shape[0]
        ref_vocab = self._reference_vocab()
        if ref_vocab != student_vocab:
            raise ValueError(
                f"the reference model has a vocabulary of {ref_vocab} entries but the student (base model) has "
                f"{student_vocab}: the reference must be fine-tuned from the same base model with the same tokenizer"
            )
        ref = self._reference_arg if self._reference_arg is not None else self.args.reference_model
        if isinstance(ref, (str, os.PathLike)) and (Path(ref) / "tokenizer.json").exists():
            from transformers import AutoTokenizer

            tok = getattr(self.processing_class, "tokenizer", self.processing_class)
            check_same_tokenizer(AutoTokenizer.from_pretrained(ref), tok, f"the reference model {ref}")

    def _check_response_tokens(self) -> None:
        total = sum(sum(1 for y in ex[1:] if y != O.IGNORE_INDEX) for ex in self.train_dataset["labels"])
        if total == 0:
            raise ValueError(
                "the training dataset has no response tokens (every label is -100 after masking/truncation): "
                "check the prompt/completion fields, assistant_only_loss and max_length"
            )

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and INDEX_COLUMN not in self._signature_columns:
            self._signature_columns = list(self._signature_columns) + [INDEX_COLUMN]


# ---------------------------------------------------------------------- convenience entry points


def train_reference(model, train_dataset, output_dir: str, *, resume: bool = False, **config_kwargs) -> str:
    """Stage 1 of Anchored Learning: plain SFT of the base model, saved as the reference p_sft.

    Args:
        model: base model id/path or ``PreTrainedModel`` (a model object is copied, never changed,
            so the same object can start the anchored student afterwards).
        train_dataset: the same data (and format) the anchored stage will use.
        output_dir: where the reference is written; the final model is saved there.
        **config_kwargs: :class:`AnchoredSFTConfig` fields (defaults: 3 epochs, as in arXiv:2605.04468),
            or ``args=`` a ready ``AnchoredSFTConfig`` with ``method="sft"``; ``processing_class``,
            ``peft_config`` (LoRA adapters, merged before the save) and ``callbacks`` go to the trainer.
        resume: continue from the newest complete checkpoint in the config's ``output_dir`` when there
            is one (:meth:`AnchoredSFTTrainer.train` with ``resume_from_checkpoint=True``); the caller
            makes sure its checkpoints were written with the same data and settings.

    Returns:
        ``output_dir`` (a folder ``from_pretrained`` can load, with ``trainer_state.json`` holding
        the training log history).
    """
    trainer_kwargs = {k: config_kwargs.pop(k) for k in ("processing_class", "peft_config", "callbacks") if k in config_kwargs}
    if isinstance(model, torch.nn.Module):
        # train a copy: the caller's object is usually the base model the anchored student starts from
        model = copy.deepcopy(model)
    args = config_kwargs.pop("args", None)
    if args is None:
        config_kwargs.setdefault("num_train_epochs", 3)
        args = AnchoredSFTConfig(output_dir=output_dir, method="sft", **config_kwargs)
    elif config_kwargs or args.method != "sft":
        raise ValueError("train_reference(args=...) takes an AnchoredSFTConfig with method='sft' and no other config fields")
    trainer = AnchoredSFTTrainer(model, args=args, train_dataset=train_dataset, **trainer_kwargs)
    trainer.train(resume_from_checkpoint=True if resume else None)
    if trainer.accelerator.is_main_process:  # one writer when several processes trained together
        final = trainer.model
        if hasattr(final, "merge_and_unload"):
            final = final.merge_and_unload()
        check_finite_parameters(final, output_dir)
        final.save_pretrained(output_dir, safe_serialization=True)
        if trainer.processing_class is not None:
            trainer.processing_class.save_pretrained(output_dir)
        trainer.state.save_to_json(os.path.join(output_dir, "trainer_state.json"))  # loss curve
    trainer.accelerator.wait_for_everyone()
    return output_dir


@torch.no_grad()
def wise_ft(base_model: PreTrainedModel, finetuned_model: PreTrainedModel, weight: float) -> PreTrainedModel:
    """WiSE-FT weight interpolation ``theta = (1 - w) * theta_base + w * theta_ft`` (Wortsman et al. 2022).

    Args:
        base_model: the base model p0 (left unchanged).
        finetuned_model: a fine-tuned copy of the same architecture (left unchanged).
        weight: w in [0, 1] (0 = base, 1 = fine-tuned).

    Returns:
        a new model (deep copy of ``base_model``) holding the interpolated weights.

    Raises:
        ValueError: w outside [0, 1] or mismatched parameter names/shapes.
    """
    if not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"WiSE-FT weight must be in [0, 1], got {weight}")
    out = copy.deepcopy(base_model)
    ft = dict(finetuned_model.state_dict())
    sd = out.state_dict()
    if set(sd) != set(ft):
        raise ValueError("base and fine-tuned models have different parameters; WiSE-FT needs the same architecture")
    for name, p in sd.items():
        q = ft[name]
        if q.shape != p.shape:
            raise ValueError(f"parameter {name} has shape {tuple(p.shape)} in the base and {tuple(q.shape)} fine-tuned")
        if p.is_floating_point():
            p.copy_((1.0 - weight) * p.float() + weight * q.float().to(p.device))
    return out
