"""``anchored eval``: score a model on named suites and write the results as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from anchored_learning.io import check_output_path, write_json_atomic
from anchored_learning.tasks.benchmarks import BENCHMARKS
from anchored_learning.tasks.registry import TASKS


def results_table(out: dict[str, Any], title: str = "evaluation"):
    """A rich Table of ``evaluate()`` output: suite, metric, value (with 95% bootstrap CI for
    item means), n, wall time."""
    from rich.table import Table

    from anchored_learning.evaluation.metrics import bootstrap_ci

    t = Table(title=title)
    for col in ("suite", "metric", "value", "95% CI", "n", "time (s)"):
        t.add_column(col, justify="left" if col in ("suite", "metric") else "right")
    for name, r in out["results"].items():
        if "skipped" in r or "error" in r:
            t.add_row(
                name,
                "-",
                "[yellow]skipped[/]" if "skipped" in r else "[red]error[/]",
                (r.get("skipped") or r.get("error", ""))[:60],
                "-",
                f"{r.get('wall_time_s', 0):.1f}",
            )
            continue
        ci = ""
        if r.get("items"):
            _, lo, hi = bootstrap_ci(r["items"], weights=r.get("weights"), n_boot=1000, seed=0)
            ci = f"[{lo:.3f}, {hi:.3f}]"
        t.add_row(name, r["primary_metric"], f"{r['primary']:.4f}", ci, str(r["n"]), f"{r['wall_time_s']:.1f}")
    return t


#: the help of --suite: every suite name, from the registries
_SUITE_HELP = (
    "Suite name, repeatable or comma-separated. Tasks (generated answers): "
    + ", ".join(t for t in TASKS if t != "file")
    + " (igsm is the paper's mod-23 iGSM, igsm_add the CPU recipes'). Multiple choice: "
    + ", ".join(BENCHMARKS)
    + ". Also heldout_nll, drift, drift:<task> (need --base-model), and the bundle stability."
)


def eval_command(
    model: str | None = typer.Option(
        None, "--model", "-m", help="HF model id or local folder (default: bundled SmolLM2-135M-Instruct)."
    ),
    suite: list[str] = typer.Option(
        ["stability"],
        "--suite",
        "-s",
        help=_SUITE_HELP,
    ),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="Items per suite (default: per-suite default)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the fixed item subsets."),
    output: Path | None = typer.Option(None, "--output", "-o", dir_okay=False, help="Write the JSON results to this file."),
    base_model: str | None = typer.Option(
        None,
        "--base-model",
        "--base_model",
        help="Reference model p0 for drift suites (e.g. 'smollm2-135m-instruct'); without it the stability bundle skips drift, and a drift suite named with -s is an error.",
    ),
    batch_size: int = typer.Option(8, "--batch-size", "--batch_size", min=1, help="Sequences per forward pass."),
    generation_batch_size: int = typer.Option(
        32, "--generation-batch-size", "--generation_batch_size", min=1, help="Prompts per generate call (generation suites)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    precision: str = typer.Option(
        "auto",
        "--precision",
        metavar="[auto|bf16|fp32]",
        help="auto (bf16 autocast where the hardware computes bf16 natively, else float32), bf16 or fp32.",
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="torch CPU threads (1 is often fastest on a busy machine)."
    ),
) -> None:
    """Score a model on evaluation suites (offline) and print a table; optionally write JSON."""
    from rich.console import Console

    from anchored_learning.evaluation.suites import evaluate
    from anchored_learning.models import BUNDLED_MODEL

    console = Console(stderr=True)
    suite, names = _check_eval_args(model, suite, output, base_model, precision, threads)
    label = model or BUNDLED_MODEL
    m, tok, base = _load_models(console, label, model, base_model, names)
    out = evaluate(
        m,
        tok,
        suite,
        limit=limit,
        seed=seed,
        base_model=base,
        batch_size=batch_size,
        generation_batch_size=generation_batch_size,
        progress=progress,
        model_name=label,
        base_model_name=base_model,
        on_result=lambda name, r: _print_result(console, name, r),
        precision=precision,
    )
    if output is not None:
        write_json_atomic(output, out)
        console.print(f"wrote {output}")
    Console().print(results_table(out, title=f"{label} (seed {seed})"))


def _check_eval_args(
    model: str | None, suite: list[str], output: Path | None, base_model: str | None, precision: str, threads: int | None
) -> tuple[list[str], list[str]]:
    """The suites as given (comma-separated entries split) and their expansion into suite names,
    after every option is checked (the torch threads set), before any model is loaded.

    Raises:
        typer.BadParameter: an unknown precision or suite, the file task, drift without a base
            model, a missing model, models with different vocabularies, a bad output path.
    """
    from anchored_learning.evaluation.suites import expand_suites
    from anchored_learning.models import BUNDLED_MODEL, PRECISIONS, check_model_source, check_same_vocabulary

    if precision not in PRECISIONS:
        raise typer.BadParameter(f"{precision!r} is not one of {', '.join(PRECISIONS)}", param_hint="--precision")
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))
    try:
        suite = [s.strip() for item in suite for s in item.split(",") if s.strip()]
        names = expand_suites(suite)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0]), param_hint="--suite") from None
    if "file" in names or "drift:file" in names:
        raise typer.BadParameter(
            "the 'file' task is your own test set: score it with `anchored compare --model M --test_data FILE --score RULE`",
            param_hint="--suite",
        )
    if base_model is None and any(s == "drift" or s.startswith("drift:") for s in suite):
        raise typer.BadParameter(
            "drift is the KL from a base model p0: give it with --base-model (e.g. smollm2-135m-instruct)",
            param_hint="--suite",
        )
    for hint, value in (("--model", model), ("--base-model", base_model)):
        try:
            check_model_source(value)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint=hint) from None
    if base_model is not None:  # drift compares the two models' next-token distributions, token by token
        try:
            check_same_vocabulary(model, base_model, what=f"the model {model or BUNDLED_MODEL!r}")
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--base-model") from None
    if output is not None:
        try:
            check_output_path(output, "file")
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--output") from None
    return suite, names


def _load_models(console, label: str, model: str | None, base_model: str | None, names: list[str]):
    """The model and tokenizer, and the base model p0 when a drift suite is run (else None)."""
    from anchored_learning.models import load_model_and_tokenizer

    console.print(f"loading model [bold]{label}[/]")
    m, tok = load_model_and_tokenizer(model)
    base = None
    if base_model is not None and any(n == "drift" or n.startswith("drift:") for n in names):
        console.print(f"loading base model [bold]{base_model}[/]")
        base, _ = load_model_and_tokenizer(base_model)
    return m, tok, base


def _print_result(console, name: str, r: dict) -> None:
    """One suite's line as soon as it is scored."""
    if "primary" in r:
        console.print(f"  {name}: {r['primary_metric']}={r['primary']:.4f} (n={r['n']}, {r['wall_time_s']:.0f}s)")
    else:
        console.print(f"  {name}: {r.get('skipped') or r.get('error')}")
