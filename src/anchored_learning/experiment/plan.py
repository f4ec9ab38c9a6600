"""Planning an experiment: which models it trains, with which training arguments, in which order.

Everything here is decided before any work, so a bad value (alpha 5, an unknown anchor source, a
sweep value of the wrong type) fails in seconds instead of after hours, and a variant that would
train the same model as an earlier one is dropped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anchored_learning.methods import METHODS

if TYPE_CHECKING:  # the config module imports this one
    from anchored_learning.experiment.config import ExperimentConfig

#: variants an experiment can add after the reference and the anchored student: any registered
#: method, "lora" (plain SFT with LoRA adapters) and "wise_ft" (weight interpolation, no training)
VARIANTS = (*METHODS, "lora", "wise_ft")
#: marker file written last into a finished model folder ``models/<name>/final`` (holds its training log)
DONE = ".complete"
#: the row of the given model before its prior skill (sequential fine-tuning: "base", p0, is the model after it)
PRETRAINED = "pretrained"
#: rows of a run folder that are not runs on the frontier: the base model p0 and, before it, the pretrained model
NOT_RUNS = ("base", PRETRAINED)

#: AnchoredSFTConfig fields the experiment sets for every stage (a sweep cannot vary them)
PLANNED_FIELDS = ("method", "output_dir", "reference_model", "logging_dir", "run_name")

#: one planned model: (label, method or "lora" / "wise_ft", field overrides)
Variant = tuple[str, str, dict[str, Any]]


def short_number(x: float) -> str:
    """``1e-4`` -> ``"1e-4"``, ``3e-4`` -> ``"3e-4"``, ``0.25`` -> ``"0.25"`` (labels of runs)."""
    e = f"{x:.0e}"
    if float(e) == x and abs(x) < 1e-2:
        mant, exp = e.split("e")
        return f"{mant}e{int(exp)}"
    return f"{x:g}"


def _sweep_value(entry: str, raw: str) -> Any:
    """One sweep value: int, then float, else the string."""
    raw = raw.strip()
    if raw == "":
        raise ValueError(f"sweep entry {entry!r} has an empty value; write method.field=v1,v2")
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def parse_sweep(entries: Sequence[str]) -> list[Variant]:
    """Sweep entries -> variants, one per value (or per combination of values).

    ``"anchored.anchor_alpha=0.25,0.75"`` gives ``anchored(anchor_alpha=0.25)`` and
    ``anchored(anchor_alpha=0.75)``; ``"sft.learning_rate=3e-5,1e-4;num_train_epochs=1,3"`` (fields
    joined by ``;``) gives the 4 combinations, e.g. ``sft(learning_rate=3e-5,num_train_epochs=1)``,
    the last field varying fastest.  Values are parsed as int, then float, then kept as strings.

    Raises:
        ValueError: an entry not of the form ``method.field=v1[,v2...][;field=...]``, an unknown
            method or field, a field given twice, an empty value, a WiSE-FT weight outside [0, 1].
    """
    import itertools

    from anchored_learning.config import AnchoredSFTConfig

    fields = {f.name for f in dataclasses.fields(AnchoredSFTConfig)}
    out = []
    for entry in entries:
        try:
            method, rest = entry.split(".", 1)
            grid = []
            for part in rest.split(";"):
                fld, values = part.split("=", 1)
                grid.append((fld.strip(), [v.strip() for v in values.split(",")]))
        except ValueError:
            raise ValueError(
                f"sweep entry {entry!r} must look like method.field=v1,v2 (e.g. anchored.anchor_alpha=0.25,0.75; "
                "several fields: sft.learning_rate=1e-4,3e-4;num_train_epochs=1,3)"
            ) from None
        if method not in VARIANTS:
            raise ValueError(f"sweep entry {entry!r}: unknown method {method!r}; choose one of {', '.join(VARIANTS)}")
        names = [fld for fld, _ in grid]
        if len(set(names)) != len(names):
            raise ValueError(f"sweep entry {entry!r} names a field twice")
        for fld, raws in grid:
            if fld in PLANNED_FIELDS:
                raise ValueError(f"sweep entry {entry!r}: {fld!r} is set by the experiment itself and cannot be swept")
            if method == "wise_ft" and fld != "weight":
                raise ValueError(f"sweep entry {entry!r}: wise_ft takes one field, 'weight' (wise_ft.weight=0.25,0.75)")
            if method != "wise_ft" and fld not in fields:
                import difflib

                close = difflib.get_close_matches(fld, sorted(fields), n=1, cutoff=0.75)
                raise ValueError(
                    f"sweep entry {entry!r}: {fld!r} is not a field of AnchoredSFTConfig"
                    + (f" (did you mean {close[0]!r}?)" if close else " (the fields of `anchored train --help`)")
                )
            for raw in raws:
                val = _sweep_value(entry, raw)
                if method == "wise_ft" and not (isinstance(val, (int, float)) and 0.0 <= val <= 1.0):
                    raise ValueError(f"sweep entry {entry!r}: wise_ft.weight must be a number in [0, 1], got {raw!r}")
        for combo in itertools.product(*(raws for _, raws in grid)):
            label = ",".join(f"{fld}={raw}" for fld, raw in zip(names, combo))
            out.append((f"{method}({label})", method, {fld: _sweep_value(entry, raw) for fld, raw in zip(names, combo)}))
    return out


#: the process group's timeout under a launcher (seconds): the other processes wait at a barrier
#: while the main process evaluates a model, which can take hours on a large model and suite
DDP_TIMEOUT_S = 12 * 3600


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


def needs_reference(method: str) -> bool:
    """True when variant ``method``'s training reads the reference model p_sft."""
    return method in METHODS and METHODS[method].needs_reference


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


def variant_args(cfg: ExperimentConfig, out: Path, name: str, method: str, overrides: dict[str, Any]):
    """``(training arguments, PEFT config or None)`` of one trained variant.

    ``lora`` is plain SFT with LoRA adapters (r 16, all linear layers) at 10x the learning rate.
    """
    c = cfg
    ref_dir = out / "models" / "reference" / "final"
    extra: dict[str, Any] = {"method": method, "num_train_epochs": c.baseline_epochs}
    peft_config = None
    m = METHODS.get(method)
    # Anchored Learning and the variants that share its outer loop (on-policy, KL budget, on-policy distillation)
    outer_loop = m is not None and m.needs_reference and m.snapshot == "outer"
    if outer_loop or method == "anchored_per_step":
        extra.update(
            anchor_alpha=c.anchor_alpha,
            anchor_interpolation=c.anchor_interpolation,
            anchor_source=c.anchor_source,
            lr_scheduler_type="constant_with_warmup",
        )
        if outer_loop:
            extra.update(outer_iterations=c.outer_iterations, inner_epochs=c.inner_epochs)
        extra["num_train_epochs"] = c.outer_iterations * c.inner_epochs  # T * K (the config's own rule)
    if needs_reference(method):
        extra["reference_model"] = str(ref_dir)
    if method in METHODS and "kl_coef" in METHODS[method].reads:
        extra["kl_coef"] = c.kl_coef
    if method == "lora":
        from peft import LoraConfig

        extra.update(method="sft", learning_rate=10 * c.learning_rate)
        peft_config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    extra.update(overrides)
    T, K = extra.get("outer_iterations"), extra.get("inner_epochs")
    if outer_loop and {"outer_iterations", "inner_epochs"} & set(overrides) and isinstance(T, int) and isinstance(K, int):
        extra["num_train_epochs"] = T * K  # a sweep may change T or K: the epochs follow (the config's own rule)
    return training_args(cfg, out, name, **extra), peft_config


def settings_key(args, peft_config) -> str:
    """Everything that determines a trained model, without the folders it is written to."""
    d = {k: v for k, v in args.to_dict().items() if k not in ("output_dir", "logging_dir", "run_name")}
    return json.dumps(d, sort_keys=True, default=str) + repr(peft_config)


def plan(cfg: ExperimentConfig, out: Path, log: Callable[[str], None] = print) -> list[Variant]:
    """``(label, method, overrides)`` of every model after the base and the reference, in run
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
    wise = [(f"wise_ft(w={w:g})", "wise_ft", {"weight": float(w)}) for w in (c.wise_weights if "wise_ft" in c.baselines else ())]
    trained = [("anchored", "anchored", {})] + [(b, b, {}) for b in c.baselines if b != "wise_ft"]
    for name, method, overrides in parse_sweep(c.sweep):
        if method == "wise_ft":
            wise.append((f"wise_ft(w={float(overrides['weight']):g})", method, {"weight": float(overrides["weight"])}))
        else:
            trained.append((name, method, overrides))
    planned, names = [], {*NOT_RUNS, "sft", "prior"}  # "sft" is the reference model's label
    for name, method, overrides in trained + wise:
        if name == "sft":  # the plain-SFT baseline at the student's learning rate
            name, overrides = f"sft(learning_rate={short_number(c.learning_rate)})", {"learning_rate": c.learning_rate}
        if method == "wise_ft":
            key = f"wise_ft {overrides['weight']!r}"
        else:
            try:
                key = settings_key(*variant_args(c, out, name, method, overrides))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{name}: {e}") from None
        if key in seen or name in names:
            log(f"[skip] {name}: the same model as {seen.get(key, name)}")
            continue
        seen[key] = name
        names.add(name)
        planned.append((name, method, overrides))
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
