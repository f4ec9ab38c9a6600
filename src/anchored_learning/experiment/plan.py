"""Planning an experiment: which models it trains, with which training arguments, in which order.

Everything here is decided before any work, so a bad value (alpha 5, an unknown anchor source, a
sweep value of the wrong type) fails in seconds instead of after hours, and a variant that would
train the same model as an earlier one is dropped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anchored_learning.distributed import DDP_TIMEOUT_S
from anchored_learning.experiment.experiment_config import ExperimentConfig
from anchored_learning.experiment.variants import Variant, parse_sweep, short_number, wise_ft
from anchored_learning.methods import METHODS

#: marker file written last into a finished model folder ``models/<name>/final`` (holds its training log)
DONE = ".complete"
#: the row of the given model before its prior skill (sequential fine-tuning: "base", p0, is the model after it)
PRETRAINED = "pretrained"
#: rows of a run folder that are not runs on the frontier: the base model p0 and, before it, the pretrained model
NOT_RUNS = ("base", PRETRAINED)


#: the run folder's subfolder of anchor caches shared by its runs (removed when the run ends)
SHARED_ANCHOR_CACHE = "anchor-shared"


def training_args(cfg: ExperimentConfig, out: Path, name: str, **kw) -> Any:
    """The :class:`~anchored_learning.config.AnchoredSFTConfig` of stage ``name`` (checkpoints in
    ``out/models/<name>/trainer``): the experiment's shared settings, then ``kw``.

    Raises:
        ValueError, TypeError: an invalid field value (from the config's validation).
    """
    from anchored_learning.config import AnchoredSFTConfig

    c = cfg
    base = dict(
        output_dir=str(out / "models" / name / "trainer"),
        per_device_train_batch_size=c.per_device_train_batch_size,
        gradient_accumulation_steps=c.gradient_accumulation_steps,
        learning_rate=c.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,  # a float < 1 is a fraction of the total steps
        max_length=c.max_length,
        train_sampling_strategy=c.train_sampling_strategy,
        logging_steps=5,
        save_strategy="epoch",
        save_total_limit=1,
        report_to="none",
        seed=c.seed,
        ddp_timeout=DDP_TIMEOUT_S,
        disable_tqdm=False,
        bf16={"auto": None, "bf16": True, "fp32": False}[c.precision],  # None: detected (AnchoredSFTConfig)
        deepspeed=c.deepspeed,
        shared_anchor_cache_dir=str(out / SHARED_ANCHOR_CACHE),  # the reference's and the base's caches, built once per folder
    )
    # transformers 5 renamed gradient_checkpointing (now a deprecated alias) to activation_checkpointing
    names = {f.name for f in dataclasses.fields(AnchoredSFTConfig)}
    base["activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"] = bool(
        c.activation_checkpointing
    )
    base.update(kw)
    return AnchoredSFTConfig(**base)


def reference_args(cfg: ExperimentConfig, out: Path) -> Any:
    """Training arguments of the reference model p_sft: plain SFT, ``reference_epochs`` at ``reference_learning_rate``."""
    return training_args(
        cfg, out, "reference", method="sft", num_train_epochs=cfg.reference_epochs, learning_rate=cfg.reference_learning_rate
    )


def prior_args(cfg: ExperimentConfig, out: Path) -> Any:
    """Training arguments of the prior skill's stage (sequential fine-tuning): plain SFT of the
    given model on ``prior_task``, ``prior_epochs`` at ``prior_learning_rate``."""
    return training_args(
        cfg, out, "prior", method="sft", num_train_epochs=cfg.prior_epochs, learning_rate=cfg.prior_learning_rate
    )


def variant_args(cfg: ExperimentConfig, out: Path, variant: Variant):
    """``(training arguments, PEFT config or None)`` of one trained variant: its method's rules
    (:class:`~anchored_learning.methods.Method`: epochs, schedule, the anchored family's settings),
    then the variant's overrides.

    ``lora`` is plain SFT with LoRA adapters (r 16, all linear layers) at 10x the learning rate.
    """
    c, name, method, overrides = cfg, *variant
    extra: dict[str, Any] = {"method": "sft" if method == "lora" else method}
    m = METHODS[extra["method"]]
    if m.needs_reference:  # the anchored family: the anchor's settings and the reference model
        extra.update(anchor_alpha=c.anchor_alpha, anchor_interpolation=c.anchor_interpolation, anchor_source=c.anchor_source)
        extra["reference_model"] = str(out / "models" / "reference" / "final")
    if m.schedule is not None:
        extra["lr_scheduler_type"] = m.schedule
    if "kl_coef" in m.reads:
        extra["kl_coef"] = c.kl_coef
    peft_config = None
    if method == "lora":
        from peft import LoraConfig

        extra["learning_rate"] = 10 * c.learning_rate
        peft_config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    if m.snapshot == "outer":  # the outer loop: T refreshes, K epochs each
        extra.update(outer_iterations=c.outer_iterations, inner_epochs=c.inner_epochs)
    extra.update(overrides)
    T, K = extra.get("outer_iterations", c.outer_iterations), extra.get("inner_epochs", c.inner_epochs)
    if m.epochs == "outer" and "num_train_epochs" not in overrides and isinstance(T, int) and isinstance(K, int):
        extra["num_train_epochs"] = T * K  # with the T and K the variant may have swept (others: the config's error)
    else:
        extra.setdefault("num_train_epochs", c.baseline_epochs)
    return training_args(cfg, out, name, **extra), peft_config


def settings_key(args, peft_config) -> str:
    """Everything that determines a trained model, without the folders it is written to."""
    d = {k: v for k, v in args.to_dict().items() if k not in ("output_dir", "logging_dir", "run_name")}
    return json.dumps(d, sort_keys=True, default=str) + repr(peft_config)


def plan(cfg: ExperimentConfig, out: Path, log: Callable[[str], None] = print) -> list[Variant]:
    """The :class:`Variant` of every model after the base and the reference, in run
    order (WiSE-FT points, method ``wise_ft``, last).  Every stage's training arguments are
    built here, so a bad value fails before any work.  A variant that would train the same model
    as an earlier one (e.g. ``--baselines sft`` when the student's lr equals the reference's, or a
    sweep point equal to the recipe) is dropped with a log line.

    Raises:
        ValueError: naming the stage and the field.
    """
    c = cfg
    try:
        seen = {settings_key(reference_args(c, out), None): "sft"}
        if c.prior_task:
            prior_args(c, out)  # validated with the others
    except (TypeError, ValueError) as e:
        raise ValueError(f"reference: {e}") from None
    wise = [wise_ft(w) for w in (c.wise_weights if "wise_ft" in c.baselines else ())]
    trained = [Variant("anchored", "anchored", {})] + [Variant(b, b, {}) for b in c.baselines if b != "wise_ft"]
    for v in parse_sweep(c.sweep):
        if v.method == "wise_ft":
            wise.append(wise_ft(v.overrides["weight"]))
        else:
            trained.append(v)
    planned, names = [], {*NOT_RUNS, "sft", "prior"}  # "sft" is the reference model's label
    for v in trained + wise:
        if v.label == "sft":  # the plain-SFT baseline at the student's learning rate
            v = Variant(f"sft(learning_rate={short_number(c.learning_rate)})", "sft", {"learning_rate": c.learning_rate})
        if v.method == "wise_ft":
            key = f"wise_ft {v.overrides['weight']!r}"
        else:
            try:
                key = settings_key(*variant_args(c, out, v))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{v.label}: {e}") from None
        if key in seen or v.label in names:
            log(f"[skip] {v.label}: the same model as {seen.get(key, v.label)}")
            continue
        seen[key] = v.label
        names.add(v.label)
        planned.append(v)
    return planned


def training_record(run: Path, label: str) -> dict[str, Any] | None:
    """The training record (``train_time_s``, ``log_history``, ``anchor_history``) of run
    ``label`` in the run folder ``run``: ``models/<name>/final/.complete`` of a run folder, or
    ``train_log_<name>.json`` of one exported with ``scripts/export_run.py`` (``<name>`` is
    ``reference`` for the row ``sft``); None for a run that was not trained (WiSE-FT)."""
    name = "reference" if label == "sft" else label
    for path in (run / "models" / name / "final" / DONE, run / f"train_log_{name}.json"):
        if path.exists():
            return json.loads(path.read_text())
    return None
