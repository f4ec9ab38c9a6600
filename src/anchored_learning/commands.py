"""``anchored run`` (the main job) and ``anchored train`` (one method on your data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from anchored_learning.pipeline import PRESETS


def run_command(
    preset: str = typer.Option("default", "--preset", "-p", help=f"One of {sorted(PRESETS)}: 'quick' (a smoke run of every stage), 'default' (the measured trade-off run; wall times in the README), 'paper' (the paper's defaults, for a GPU)."),
    task: str = typer.Option("igsm", "--task", "-t", help="Target task: igsm, medcalc or ifeval."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="HF model id or folder (default: the bundled SmolLM2-135M-Instruct)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Your training data: jsonl with 'prompt' and 'response' (or 'completion') fields; replaces the generated training set."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", file_okay=False, help="Output folder (default: runs/<task>-<preset>). Re-running resumes."),
    seed: int = typer.Option(0, "--seed", min=0),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated seeds (e.g. 0,1,2): one run per seed in OUTPUT/seed-N, then a mean ± sd table and plot. Overrides --seed."),
    alpha: float = typer.Option(0.5, "--alpha", help="Anchored Learning alpha."),
    anchor_source: str = typer.Option("cache", "--anchor-source", help="'cache' (exact, one model in memory) or 'live'."),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="Comma-separated: sft (plain SFT at the student's learning rate; the reference is always reported as 'sft'), sft_kl, dft, asft, psft, distill, anchored_per_step, wise_ft, lora (default preset: sft,wise_ft; quick: wise_ft; paper: sft_kl,wise_ft)."),
) -> None:
    """Run the whole experiment: base eval, reference SFT, Anchored Learning, baselines, report + Pareto plot."""
    from anchored_learning.pipeline import ExperimentConfig, load_training_rows

    if data is not None:
        if not data.is_file():
            raise typer.BadParameter(f"{data} does not exist", param_hint="--data")
        try:
            load_training_rows(ExperimentConfig(data=str(data)), task=None)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--data") from None
    _run_experiment(ExperimentConfig(
        preset=preset, task=task, model=model, data=str(data) if data else None,
        output_dir=str(output_dir or Path("runs") / f"{task}-{preset}"), seed=seed, anchor_alpha=alpha,
        anchor_source=anchor_source, baselines=_csv(baselines),
    ), seeds=_seeds(seeds))


def _csv(value: str | None) -> tuple[str, ...] | None:
    """"a, b" -> ("a", "b"); None stays None (the preset decides)."""
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def _seeds(value: str | None) -> list[int] | None:
    """"0,1,2" -> [0, 1, 2]; None stays None."""
    if not value:
        return None
    try:
        return [int(v) for v in _csv(value)]
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a comma-separated list of integers", param_hint="--seeds") from None


def _run_experiment(cfg, seeds: list[int] | None = None) -> None:
    """Run an experiment (once, or once per seed) with console progress, then print the table and
    where the files are."""
    from rich.console import Console
    from rich.markdown import Markdown

    from anchored_learning.pipeline import Experiment, check_seeds, run_seeds

    console = Console()
    log = lambda s: console.print(s, markup=False)  # noqa: E731
    try:  # validate everything before any work
        exp = Experiment(cfg, console_log=log)
        if seeds is not None:
            check_seeds(seeds)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    out = run_seeds(cfg, seeds, console_log=log) if seeds else exp.run()
    console.print(Markdown((exp.out / "results.md").read_text()))
    console.print(f"\n[bold green]done[/] in {out['wall_time_s'] / 60:.1f} min. Results in [bold]{exp.out}[/]: "
                  "results.json, results.md, pareto.png" + (" (per seed: seed-*/)" if seeds else ""))


def train_command(
    data: Path = typer.Option(..., "--data", exists=True, dir_okay=False, help="jsonl, one {\"prompt\": ..., \"response\": ...} per line ('completion' is accepted for 'response')."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", file_okay=False, help="Folder for checkpoints and OUTPUT/final (re-running resumes)."),
    method: str = typer.Option("anchored", "--method", help="anchored, anchored_per_step, distill, sft, sft_kl, dft, asft, psft, lora."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Base model id or folder (default: bundled SmolLM2)."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Reference (SFT) model folder for anchored/distill; trained first (3 epochs SFT) when omitted."),
    config: Optional[Path] = typer.Option(None, "--config", exists=True, dir_okay=False, help="JSON or YAML file of AnchoredSFTConfig fields (e.g. anchor_alpha, outer_iterations, learning_rate)."),
) -> None:
    """Train one method on your data and save the model to OUTPUT_DIR/final."""
    import hashlib

    import yaml
    from datasets import Dataset

    from anchored_learning.config import METHODS, AnchoredSFTConfig
    from anchored_learning.evaluation.commands import check_output_path
    from anchored_learning.models import check_model_source, load_model_and_tokenizer, resolve_model_path
    from anchored_learning.pipeline import ExperimentConfig, load_training_rows, save_model_atomically
    from anchored_learning.trainer import AnchoredSFTTrainer, train_reference

    # everything is validated before any training
    if method not in (*METHODS, "lora"):
        raise typer.BadParameter(f"unknown method {method!r}; choose one of {', '.join((*METHODS, 'lora'))}", param_hint="--method")
    fields = {}
    if config is not None:
        text = config.read_text()
        try:
            fields = json.loads(text)
        except json.JSONDecodeError:
            try:
                fields = yaml.safe_load(text) or {}
            except yaml.YAMLError as e:
                raise typer.BadParameter(f"{config} is neither valid JSON nor YAML: {e}", param_hint="--config") from None
        if not isinstance(fields, dict):
            raise typer.BadParameter(f"{config} must hold a mapping of AnchoredSFTConfig field: value", param_hint="--config")
        for key, opt in (("method", "--method"), ("output_dir", "--output-dir"), ("reference_model", "--reference")):
            if key in fields:
                raise typer.BadParameter(f"{config} sets {key!r}; give it on the command line with {opt} instead", param_hint="--config")
    try:
        check_output_path(output_dir, "folder")
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--output-dir") from None
    try:
        rows = load_training_rows(ExperimentConfig(data=str(data)), task=None)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--data") from None
    for name, value in (("--model", model), ("--reference", reference)):
        try:
            check_model_source(value)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint=name) from None
    peft_config = None
    if method == "lora":
        from peft import LoraConfig

        method, peft_config = "sft", LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    needs_ref = method in ("anchored", "anchored_per_step", "distill")
    ref_dir = reference or str(output_dir / "reference")
    try:
        args = AnchoredSFTConfig(output_dir=str(output_dir / "trainer"), method=method, report_to="none",
                                 **({"reference_model": ref_dir} if needs_ref else {}), **fields)
    except (TypeError, ValueError) as e:
        raise typer.BadParameter(f"{e}" + (f" (in {config})" if config else ""), param_hint="--config" if config else "--method") from None
    dataset = Dataset.from_list(rows)
    path = resolve_model_path(model)
    # a reference trained by an earlier invocation on the same data and base model is reused
    marker = Path(ref_dir) / ".anchored_reference.json"
    stamp = {"data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(), "base_model": str(path)}
    reuse = needs_ref and reference is None and marker.is_file() and json.loads(marker.read_text()) == stamp
    train_ref = needs_ref and reference is None and not reuse
    stages = (["reference SFT (3 epochs)"] if train_ref else [f"reference {ref_dir}" + (" (reused)" if reuse else "")] if needs_ref else []) + [f"{method} training"]
    typer.echo(f"model: {path}; {len(rows)} training examples; stages: {' -> '.join(stages)}; output: {output_dir}")
    if train_ref:
        m, tok = load_model_and_tokenizer(path)
        train_reference(m, dataset, ref_dir, processing_class=tok, report_to="none")
        marker.write_text(json.dumps(stamp))  # written last: a killed save is never reused
    m, tok = load_model_and_tokenizer(path)
    trainer = AnchoredSFTTrainer(m, args=args, train_dataset=dataset, processing_class=tok, peft_config=peft_config)
    ckpt = any((output_dir / "trainer").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if ckpt else None)
    save_model_atomically(trainer.model, tok, output_dir / "final",
                          {"train_log.json": json.dumps(trainer.state.log_history, default=str)})
    typer.echo(f"saved {output_dir / 'final'}")


def sweep_command(
    grid: list[str] = typer.Option(..., "--grid", "-g", help="method.field=v1,v2 (repeatable), e.g. anchored.anchor_alpha=0.25,0.75 or sft.learning_rate=3e-5,3e-4 or wise_ft.weight=0.25,0.75."),
    preset: str = typer.Option("quick", "--preset", "-p", help=f"One of {sorted(PRESETS)}."),
    task: str = typer.Option("igsm", "--task", "-t"),
    model: Optional[str] = typer.Option(None, "--model", "-m"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", file_okay=False, help="Default: runs/<task>-<preset>-sweep. Re-running resumes and adds new grid points."),
    seed: int = typer.Option(0, "--seed", min=0),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="Comma-separated baselines (preset default if omitted)."),
) -> None:
    """Run the main experiment plus a hyper-parameter grid per method, all drawn on one Pareto frontier."""
    from anchored_learning.pipeline import ExperimentConfig

    _run_experiment(ExperimentConfig(preset=preset, task=task, model=model, seed=seed,
                                     output_dir=str(output_dir or Path("runs") / f"{task}-{preset}-sweep"),
                                     baselines=_csv(baselines), sweep=tuple(grid)))
