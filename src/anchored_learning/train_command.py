"""``anchored train``: one method on your data, the model saved to ``OUTPUT_DIR/final``.

The flags are the fields of :class:`TrainArguments` (what is trained on and from) and of
:class:`~anchored_learning.config.AnchoredSFTConfig` (every ``trl.SFTConfig`` /
``TrainingArguments`` field included), parsed once by :mod:`anchored_learning.arguments`; the
reference SFT that a method needing p_sft trains first takes its config from the same parse.
The command validates everything before any training (method, output folder, flags, data,
models), records its settings, trains (the reference, the self-generated rows, the method) and
writes the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from anchored_learning.arguments import (
    build_dataclasses,
    drop_flag,
    exit_diverged,
    hold_output_lock,
    parse_config_values,
    peek_flag,
)
from anchored_learning.distributed import is_rank0


@dataclass
class TrainArguments:
    """What ``anchored train`` trains on and from (the training settings are AnchoredSFTConfig's)."""

    data: str = field(
        metadata={
            "help": "Training data: jsonl/json/parquet/arrow/CSV, a save_to_disk folder (FOLDER:SPLIT picks a split) or a "
            "Hub id, in prompt/response (or completion) or messages form; the loss is on the (final) assistant turn."
        }
    )
    prompt_column: str | None = field(
        default=None, metadata={"help": "Column of the prompt, or of a whole conversation (default: detected)."}
    )
    response_column: str | None = field(default=None, metadata={"help": "Column of the response (default: detected)."})
    model: str | None = field(
        default=None,
        metadata={"help": "Base model id or folder (default: the bundled SmolLM2-135M-Instruct).", "aliases": ["-m"]},
    )
    reference_epochs: float = field(
        default=3,
        metadata={
            "help": "Epochs of the reference SFT trained first when a method needs p_sft and --reference_model is not given."
        },
    )
    score: str | None = field(
        default=None,
        metadata={
            "help": "Scoring rule that accepts the base model's samples for --method sft_self_generated: a rule name "
            "(exact_match, normalized_match, last_number, regex, choice_letter, ifeval) or module:function."
        },
    )
    answer_column: str | None = field(
        default=None,
        metadata={
            "help": "Column the --score rule compares a sample with (default: 'answer' when a row has it, else the response)."
        },
    )
    answer_regex: str | None = field(default=None, metadata={"help": "The answer pattern of --score regex."})
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters (any method) instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (with --use_peft)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (with --use_peft)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (with --use_peft)."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"], metadata={"help": "Modules that get LoRA adapters (with --use_peft)."}
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "Keep the checkpoints (weights and optimizer state) of OUTPUT_DIR/trainer and OUTPUT_DIR/reference "
            "once the model is final (default: removed then; a killed run still resumes from them)."
        },
    )

    def __post_init__(self):
        if not float(self.reference_epochs) > 0:  # (named here: the reference's own config calls it num_train_epochs)
            raise ValueError(f"reference_epochs must be > 0, got {self.reference_epochs}")

    def peft_config(self):
        """The ``peft.LoraConfig`` of these flags, or None without ``use_peft``."""
        if not self.use_peft:
            return None
        from peft import LoraConfig

        target = self.lora_target_modules
        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=target[0] if target == ["all-linear"] else target,
            task_type="CAUSAL_LM",
        )


#: ``anchored train``'s defaults that differ from TrainingArguments': no reporting to trackers, and a
#: checkpoint at every epoch end (one kept), so that a killed run resumes (TRL saves every 500 steps)
TRAIN_DEFAULTS = {"report_to": "none", "save_strategy": "epoch", "save_total_limit": 1}

#: short flags of ``anchored train`` whose field is TrainingArguments' (which has no short names)
SHORT_FLAGS = {"-o": "--output_dir"}

_DESCRIPTION = (
    "Train one method on your data and save the model to OUTPUT_DIR/final (checkpoints in "
    "OUTPUT_DIR/trainer; re-running resumes). A method that needs the reference model p_sft "
    "trains it first (plain SFT, --reference_epochs) into OUTPUT_DIR/reference unless "
    "--reference_model is given. Every field below is a flag; --config RECIPE.yaml sets fields "
    "that flags override. --precision auto|bf16|fp32 sets --bf16 (auto: bf16 autocast where the hardware "
    "does bf16 natively)."
)

#: the settings of an `anchored train` folder, written before training starts
TRAIN_SETTINGS = "train_settings.json"
#: TrainingArguments fields that change where and how often things are written, not the model
_NOT_SETTINGS = (
    "output_dir",
    "logging_dir",
    "run_name",
    "logging_steps",
    "logging_strategy",
    "logging_first_step",
    "report_to",
    "disable_tqdm",
    "save_steps",
    "save_strategy",
    "save_total_limit",
    "save_only_model",
    "use_cpu",  # set by the config under a launcher on a CPU-only machine
    "ddp_timeout",
)
#: settings entries added after train_settings.json existed (a folder without them is not refused for that)
_FINGERPRINTS = ("base_model_sha256", "reference_model_sha256")


def _long_flag(arg: str) -> str:
    """``-o`` (or ``-o=X``) as ``--output_dir``; any other argument as it is."""
    name, eq, value = arg.partition("=")
    return SHORT_FLAGS[name] + eq + value if name in SHORT_FLAGS else arg


def _reference_length(targs, args) -> str:
    """How long the reference trains: ``3 epochs``, or ``3 epochs, cut at 2 steps`` under --max_steps."""
    return f"{targs.reference_epochs:g} epochs" + (f", cut at {args.max_steps} steps" if args.max_steps > 0 else "")


@dataclass
class TrainJob:
    """One ``anchored train`` invocation, filled in as it is validated (the parse, the data, the
    models, the settings) and then run."""

    argv: list[str]
    output_dir: Path
    reference: str | None  # --reference_model, None: trained here when the method needs one
    needs_ref: bool
    values: dict[str, Any] = field(default_factory=dict)  # the parsed flags and config file
    targs: TrainArguments | None = None
    args: Any = None  # AnchoredSFTConfig
    convs: list = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    score: Any = None  # score(i, text) of --method sft_self_generated
    path: str = ""  # the base model's resolved path
    settings: dict = field(default_factory=dict)

    @property
    def ref_dir(self) -> str:
        return self.reference or str(self.output_dir / "reference")

    @property
    def self_generated(self) -> bool:
        from anchored_learning.methods import get_method

        return get_method(self.args.method).responses == "self_generated"


def precision_as_bf16(argv: list[str]) -> list[str]:
    """``--precision auto|bf16|fp32`` (every command's flag) as ``anchored train``'s ``--bf16``
    (TrainingArguments' field; unset = detected from the hardware).

    Raises:
        typer.BadParameter: another value.
    """
    from anchored_learning.models import PRECISIONS

    value = peek_flag(argv, "--precision")
    if value is None:
        return argv
    choices = {"auto": [], "bf16": ["--bf16", "true"], "fp32": ["--bf16", "false"]}
    if value not in PRECISIONS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(PRECISIONS)}", param_hint="--precision")
    if value != "auto" and peek_flag(argv, "--bf16") is not None:
        raise typer.BadParameter("give --precision or --bf16, not both", param_hint="--precision")
    return drop_flag(argv, "--precision") + choices[value]


def train_command(ctx: typer.Context) -> None:
    """Train one method on your data and save the model to OUTPUT_DIR/final.  Every
    AnchoredSFTConfig / TrainingArguments field is a flag (--help); --config RECIPE.yaml;
    --precision auto|bf16|fp32 sets --bf16 (unset: detected)."""
    argv = precision_as_bf16([_long_flag(a) for a in ctx.args])
    # everything is validated before any training: the method, the output folder, the flags and
    # config, then data and models
    job = _start_job(argv)
    _parse_job(job)
    _load_data(job)
    _record_settings(job)
    hold_output_lock(ctx, job.output_dir)  # one command at a time in a folder
    if _already_trained(job.output_dir, job.settings):
        typer.echo(f"already trained with the same data and settings: {job.output_dir / 'final'} (delete it to train again)")
        return
    trainer, tok = _train(job)
    _save(job, trainer, tok)


def _start_job(argv: list[str]) -> TrainJob:
    """The method and output folder that ``argv`` names, checked before the flags are parsed.

    Raises:
        typer.BadParameter: ``--method lora``, an unknown method, no or a bad ``--output_dir``.
    """
    from anchored_learning.io import check_output_path
    from anchored_learning.methods import METHODS, get_method

    help_asked = "--help" in argv or "-h" in argv
    method = peek_flag(argv, "--method") or "anchored"
    if method == "lora":
        raise typer.BadParameter(
            "LoRA is an option of any method now: use --method sft --use_peft (or --method anchored --use_peft)",
            param_hint="--method",
        )
    if method not in METHODS and not help_asked:
        raise typer.BadParameter(f"unknown method {method!r}; choose one of {', '.join(METHODS)}", param_hint="--method")
    out = peek_flag(argv, "--output_dir")
    if out is None and not help_asked:
        raise typer.BadParameter("give the output folder with --output_dir (or -o)", param_hint="--output_dir")
    output_dir = Path(out or ".").expanduser()
    if not help_asked:
        try:
            check_output_path(output_dir, "folder")
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--output_dir") from None
    needs_ref = method in METHODS and get_method(method).needs_reference
    return TrainJob(argv=argv, output_dir=output_dir, reference=peek_flag(argv, "--reference_model"), needs_ref=needs_ref)


def _parse_job(job: TrainJob) -> None:
    """The flags and config file of ``job``, parsed once into its TrainArguments and AnchoredSFTConfig.

    Raises:
        typer.Exit: ``--help`` was printed.
        typer.BadParameter: an unknown or bad flag, evaluation settings, --resume_from_checkpoint.
    """
    from anchored_learning.config import AnchoredSFTConfig

    types = (TrainArguments, AnchoredSFTConfig)
    overrides = {
        "output_dir": str(job.output_dir / "trainer"),
        "reference_model": job.ref_dir if job.needs_ref else job.reference,
    }
    job.values = parse_config_values(
        drop_flag(job.argv, "--output_dir"),
        types,
        prog="anchored train",
        description=_DESCRIPTION,
        defaults=TRAIN_DEFAULTS,
        overrides=overrides,
        short_flags=SHORT_FLAGS,
    )
    job.targs, job.args = build_dataclasses(types, job.values)
    if job.args.eval_strategy != "no":  # (TrainingArguments stores an IntervalStrategy, a str enum)
        raise typer.BadParameter(
            "anchored train takes no evaluation data; score the saved model with `anchored compare` or `anchored eval`",
            param_hint="--eval_strategy",
        )
    if job.args.resume_from_checkpoint is not None:
        raise typer.BadParameter(
            f"anchored train resumes by itself from the last checkpoint in {job.output_dir / 'trainer'}: "
            "run the same command again, without --resume_from_checkpoint",
            param_hint="--resume_from_checkpoint",
        )


def _load_data(job: TrainJob) -> None:
    """Read and check ``job``'s training rows, its scoring rule and models, before any work.

    Raises:
        typer.BadParameter: a bad data row, score rule or model source; a response cut away by --max_length.
    """
    import anchored_learning.models as models
    from anchored_learning.data import check_response_tokens_fit, load_conversations

    targs, args = job.targs, job.args
    try:
        job.convs = load_conversations(
            targs.data, split="train", prompt_column=targs.prompt_column, response_column=targs.response_column
        )
        job.rows = [c.as_row() for c in job.convs]
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--data") from None
    job.score = _sample_score(job.convs, targs) if job.self_generated else None
    for name, value in (("--model", targs.model), ("--reference_model", job.reference)):
        try:
            models.check_model_source(value)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint=name) from None
    if not (args.packing or args.assistant_only_loss):  # (packing does not truncate; assistant turns: TRL's masks)
        try:
            check_response_tokens_fit(job.rows, models.load_tokenizer(targs.model), args.max_length, args.truncation_mode)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--max_length") from None
    job.path = models.resolve_model_path(targs.model)


def _record_settings(job: TrainJob) -> None:
    """``job.settings``: everything that decides the model (a folder made with other data or
    settings is refused, a finished one reported, like ``anchored run``)."""
    import hashlib

    path = job.path
    base_model = str(Path(path).resolve()) if Path(path).exists() else str(path)
    data_file = Path(job.targs.data).expanduser()
    content = data_file.read_bytes() if data_file.is_file() else json.dumps(job.rows, sort_keys=True).encode()
    job.settings = _train_settings(job.targs, job.args, base_model, hashlib.sha256(content).hexdigest(), job.reference)
    if job.self_generated:  # the rule decides the rows trained on
        job.settings["score"] = [job.targs.score, job.targs.answer_column, job.targs.answer_regex]


def _reference_plan(job: TrainJob) -> tuple[Any, dict, bool, bool]:
    """The reference SFT of ``job``: its config (plain SFT with the same training flags and LoRA
    option, for --reference_epochs, from the same parse), the stamp of a reference trained here,
    whether one trained by an earlier invocation with the same data, base model and settings is
    reused, and whether it is trained now."""
    from anchored_learning.config import AnchoredSFTConfig

    ref_args = None
    if job.needs_ref and job.reference is None:
        overrides = {"output_dir": job.ref_dir, "method": "sft", "num_train_epochs": job.targs.reference_epochs}
        (ref_args,) = build_dataclasses((AnchoredSFTConfig,), {**job.values, **overrides, "reference_model": None})
    stamp = {
        "data_sha256": job.settings["data_sha256"],
        "base_model": job.settings["base_model"],
        "base_model_sha256": job.settings["base_model_sha256"],
        "peft": repr(job.targs.peft_config()),
        "training_arguments": _settings_of(ref_args) if ref_args is not None else None,
    }
    marker = Path(job.ref_dir) / ".anchored_reference.json"
    reuse = ref_args is not None and marker.is_file() and json.loads(marker.read_text()) == stamp
    return ref_args, stamp, reuse, ref_args is not None and not reuse


def _train(job: TrainJob):
    """Train ``job``'s stages (the reference when needed, the self-generated rows, the method);
    returns the trainer and tokenizer.  A diverged training exits with code 1."""
    import anchored_learning.models as models
    import anchored_learning.trainer as trainer_mod
    from anchored_learning.io import write_json_atomic

    ref_args, stamp, reuse, train_ref = _reference_plan(job)
    targs, args = job.targs, job.args
    if train_ref:
        stages = [f"reference SFT ({_reference_length(targs, ref_args)})"]
    else:
        stages = [f"reference {job.ref_dir}" + (" (reused)" if reuse else "")] if job.needs_ref else []
    if is_rank0():  # under a launcher: said and written once, by the main process
        typer.echo(
            f"model: {job.path}; {len(job.rows)} training examples; stages: {' -> '.join(stages + [f'{args.method} training'])}; "
            f"output: {job.output_dir}"
        )
        write_json_atomic(job.output_dir / TRAIN_SETTINGS, job.settings)
    try:
        if train_ref:
            m, tok = models.load_model_and_tokenizer(job.path)
            trainer_mod.train_reference(
                m,
                _dataset(job.rows),
                job.ref_dir,
                processing_class=tok,
                args=ref_args,
                peft_config=targs.peft_config(),
                resume=True,
            )
            # written last: a killed save is never reused
            write_json_atomic(Path(job.ref_dir) / ".anchored_reference.json", stamp)
            _remove_checkpoints(job.ref_dir, keep=targs.keep_checkpoints)
        m, tok = models.load_model_and_tokenizer(job.path)
        dataset = _self_generated_dataset(job, m, tok) if job.self_generated else _dataset(job.rows)
        try:
            trainer = trainer_mod.AnchoredSFTTrainer(
                m, args=args, train_dataset=dataset, processing_class=tok, peft_config=targs.peft_config()
            )
        except ValueError as e:  # e.g. a reference model with another vocabulary
            raise typer.BadParameter(str(e)) from None
        ckpt = any(Path(args.output_dir).glob("checkpoint-*"))
        trainer.train(resume_from_checkpoint=True if ckpt else None)
    except FloatingPointError as e:
        exit_diverged(e, f". With other settings, `anchored train` needs a new --output_dir (or delete {job.output_dir})")
    return trainer, tok


def _dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def _self_generated_dataset(job: TrainJob, model, tok):
    """The rows of ``--method sft_self_generated``: rejection sampling from the base model, recorded
    in OUTPUT_DIR/self_generated.jsonl (a rerun reads the record) by the main process."""
    from anchored_learning.distributed import under_launcher
    from anchored_learning.experiment.task_data import self_generated_training_rows
    from anchored_learning.sampling import read_record

    record = job.output_dir / "self_generated.jsonl"
    if is_rank0():
        _, report = self_generated_training_rows(record, job.rows, job.score, model, tok, job.args, log=typer.echo)
        typer.echo(
            f"{report['accepted']} of {report['n']} rows train on an accepted sample of the base model "
            f"({report['accepted_share']:.1%}); the others on the dataset response ({record})"
        )
    if under_launcher():
        import torch.distributed as dist

        _ = job.args.device  # the process group, set up as the trainer sets it up
        dist.barrier()
    return _dataset(read_record(record)[1])


def _save(job: TrainJob, trainer, tok) -> None:
    """Write the trained model to OUTPUT_DIR/final (one writer), then remove the checkpoints."""
    import anchored_learning.models as models

    if trainer.accelerator.is_main_process:  # under torchrun / accelerate launch: one writer
        models.save_pretrained_atomically(
            trainer.model, tok, job.output_dir / "final", {"train_log.json": json.dumps(trainer.state.log_history, default=str)}
        )
        typer.echo(f"saved {job.output_dir / 'final'}")
    trainer.accelerator.wait_for_everyone()  # every rank is past its last checkpoint before they are removed
    if trainer.accelerator.is_main_process:
        _remove_checkpoints(job.args.output_dir, keep=job.targs.keep_checkpoints)


def _remove_checkpoints(folder: str | Path, keep: bool) -> None:
    """Remove the ``checkpoint-*`` folders (weights, optimizer state) of a stage whose model is final,
    unless ``keep`` (``--keep_checkpoints``)."""
    import shutil

    if keep or not is_rank0():
        return
    for checkpoint in Path(folder).glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)


def _sample_score(convs, targs):
    """``score(i, text)`` of ``anchored train --method sft_self_generated``: the ``--score`` rule
    against row i's ``--answer_column`` (``answer`` when the row has it, else its response), as the
    file task scores (:mod:`anchored_learning.tasks.rules`).

    Raises:
        typer.BadParameter: no ``--score``, an unknown rule, or a row without the answer column.
    """
    from anchored_learning.tasks.rules import RuleOptions, get_rule

    if targs.score is None:
        raise typer.BadParameter(
            "--method sft_self_generated keeps the base model's samples that a scoring rule accepts: give --score "
            "(e.g. last_number, exact_match, or module:function)",
            param_hint="--score",
        )
    try:
        rule = get_rule(targs.score, RuleOptions(answer_regex=targs.answer_regex))
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--score") from None
    refs = []
    for c in convs:
        col = targs.answer_column or ("answer" if "answer" in c.columns else None)
        if col is not None and col not in c.columns:
            raise typer.BadParameter(f"{c.where}: no answer column {col!r}", param_hint="--answer_column")
        refs.append(c.response if col is None else c.columns[col])
    user = [next((t["content"] for t in reversed(c.prompt) if t["role"] == "user"), "") for c in convs]
    return lambda i, text: float(rule(text, refs[i], {**convs[i].columns, "prompt": user[i]}))


def _settings_of(args) -> dict:
    """The training arguments that decide a model (JSON-normalised; no output paths or logging)."""
    fields = {k: v for k, v in args.to_dict().items() if k not in _NOT_SETTINGS and not k.startswith(("hub_", "push_to_hub"))}
    return json.loads(json.dumps(fields, default=str))


def _train_settings(targs, args, base_model: str, data_sha: str, reference: str | None) -> dict:
    """Everything that decides the model `anchored train` writes (JSON-normalised): the models by
    path and by content (:func:`~anchored_learning.models.model_fingerprint`)."""
    from anchored_learning.models import model_fingerprint

    settings = {
        "data_sha256": data_sha,
        "base_model": base_model,
        "base_model_sha256": model_fingerprint(base_model),
        "reference_model": reference if reference is not None else f"trained here ({_reference_length(targs, args)})",
        "reference_model_sha256": model_fingerprint(reference) if reference is not None else None,
        "peft": repr(targs.peft_config()),
        "training_arguments": _settings_of(args),
    }
    return json.loads(json.dumps(settings, default=str))


def _already_trained(output_dir: Path, settings: dict) -> bool:
    """True when ``output_dir`` holds a finished training with ``settings``.

    Raises:
        typer.BadParameter: the folder holds a training with other settings (named), or one from a
            version that did not record them.
    """
    saved = output_dir / TRAIN_SETTINGS
    if not saved.is_file():
        if (output_dir / "final").exists() or (output_dir / "trainer").exists():
            raise typer.BadParameter(
                f"{output_dir} holds a training whose settings were not recorded (an earlier version); its checkpoints "
                f"or model would be reused under the new settings. Choose a new --output_dir, or delete {output_dir}",
                param_hint="--output_dir",
            )
        return False
    a, b = _flat_settings(json.loads(saved.read_text())), _flat_settings(settings)
    # a folder written before the models' fingerprints were recorded is compared without them
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and (k in a or k not in _FINGERPRINTS))
    reusable = (output_dir / "final").exists() or any(
        any((output_dir / stage).glob("checkpoint-*")) for stage in ("trainer", "reference")
    )
    if diff and not reusable:  # a training that stopped before its first checkpoint: nothing would be reused
        return False
    if diff:
        shown = "; ".join(
            f"the contents of {k.removesuffix('_sha256')} changed"
            if k.endswith("_sha256")
            else f"{k}: {a.get(k)!r} -> {b.get(k)!r}"
            for k in diff[:8]
        ) + (" ..." if len(diff) > 8 else "")
        raise typer.BadParameter(
            f"{output_dir} holds a training made with other data or settings ({shown}); its checkpoints or model would "
            f"be reused under the new ones. Choose a new --output_dir, or delete {output_dir} to start over",
            param_hint="--output_dir",
        )
    return (output_dir / "final" / "config.json").is_file()


def _flat_settings(settings: dict) -> dict:
    """``settings`` with its training arguments (less those that decide no model) at the top level."""
    return {
        **{k: v for k, v in settings.items() if k != "training_arguments"},
        **{k: v for k, v in settings.get("training_arguments", {}).items() if k not in _NOT_SETTINGS},
    }
