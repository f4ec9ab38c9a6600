"""``anchored run``, ``sweep``, ``frontier``, ``compare`` and ``tune``: the commands that drive an
experiment.

Their flags are not written here: they are the fields of the config dataclasses
(:class:`~anchored_learning.experiment.experiment_config.ExperimentConfig` for ``run``, ``sweep`` and
``frontier``, :class:`~anchored_learning.experiment.experiment_config.CompareConfig`,
:class:`~anchored_learning.experiment.tune.TuneConfig`), parsed by
:mod:`anchored_learning.arguments`: ``--help`` lists every field with its help text and default,
and ``--config recipe.yaml`` (or JSON) sets fields that flags then override.  Each command
resolves its settings once (:meth:`~ExperimentConfig.resolved`) and hands the resolved config on.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

import typer

from anchored_learning.arguments import blame, exit_diverged, hold_output_lock, parse_config_args

#: one-word field names a validation message may start with
_PLAIN_FIELDS = ("seed", "seeds", "preset", "task", "model", "data", "sweep", "baselines")


@functools.cache
def _field_names() -> frozenset[str]:
    """Every field (flag) name of the commands' config dataclasses."""
    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.experiment.experiment_config import CompareConfig, ExperimentConfig
    from anchored_learning.experiment.tune_config import TuneConfig

    names = {f.name for cls in (AnchoredSFTConfig, ExperimentConfig, CompareConfig, TuneConfig) for f in dataclasses.fields(cls)}
    return frozenset(names | set(_PLAIN_FIELDS))


def usage_error(message: str) -> typer.BadParameter:
    """A usage error (exit code 2) for an experiment's validation ``message``, blamed on the flag the
    user gave: a value of a --sweep entry (``"sft(learning_rate=abc): ..."``) on --sweep, a planned
    stage's field (``"<stage>: <field> must ..."``) on that field (the reference stage's
    learning_rate on --reference_learning_rate), else the field the message starts with."""
    words = message.split(" ", 2)
    if words[0].endswith("):"):  # "sft(learning_rate=abc): ...": a value that a --sweep entry gave
        return typer.BadParameter(message, param_hint="--sweep")
    if len(words) > 1 and words[0].endswith(":"):  # "<stage>: <field> must ..." (a planned variant)
        stage, field_name = words[0][:-1], words[1]
        own = f"{stage}_{field_name}"  # the reference stage's learning_rate is --reference_learning_rate
        if stage == "reference" and own in _field_names():
            return typer.BadParameter(f"{own} {' '.join(words[2:])}", param_hint=f"--{own}")
        error = blame(field_name, _field_names())
        return typer.BadParameter(message, param_hint=error.param_hint)
    return blame(message, _field_names())


@functools.cache
def recipe_fields() -> frozenset[str]:
    """The fields that some bundled recipe (``configs/<task>/<preset>.yaml``) sets."""
    import yaml

    from anchored_learning.experiment.experiment_config import recipe_path

    root = recipe_path("default").parent.parent
    return frozenset(k for path in root.glob("*/*.yaml") for k in (yaml.safe_load(path.read_text()) or {}))


def _parse(argv: list[str], dataclass_types, **kw) -> tuple:
    """:func:`~anchored_learning.arguments.parse_config_args` with the recipes' fields and the
    experiments' usage errors."""
    return parse_config_args(argv, dataclass_types, recipe_fields=recipe_fields(), usage_error=usage_error, **kw)


@dataclass
class SeedArguments:
    """Flags of ``anchored run`` that are not experiment settings."""

    seeds: list[str] | None = field(
        default=None,
        metadata={
            "help": (
                "Seeds (0,1,2 or 0 1 2): one run per seed in OUTPUT/seed-N, then a mean ± sd table and plot. Overrides --seed."
            )
        },
    )


def _seeds(value: list[str] | str | None) -> list[int] | None:
    """``["0,1", "2"]`` or ``"0,1,2"`` -> [0, 1, 2]; None stays None."""
    if not value:
        return None
    value = ",".join([value] if isinstance(value, str) else value)
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a comma-separated list of integers", param_hint="--seeds") from None


def _resolved(cfg):
    """``cfg.resolved()``: the preset's values filled in and the settings checked as a whole.

    Raises:
        typer.BadParameter: the first setting that is wrong.
    """
    try:
        return cfg.resolved()
    except ValueError as e:
        raise usage_error(str(e)) from None


def _resolve_and_check_data(cfg):
    """``cfg`` resolved, after its data files are read before any work (the first bad row is
    reported).

    Raises:
        typer.BadParameter: a bad setting, or naming the file, the row and what is wrong with it.
    """
    from anchored_learning.data import load_conversations

    cfg = _resolved(cfg)
    for flag, source, split in (("--data", getattr(cfg, "data", None), "train"), ("--test_data", cfg.test_data, "test")):
        if source is None:
            continue
        try:
            load_conversations(source, split=split, prompt_column=cfg.prompt_column, response_column=cfg.response_column)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint=flag) from None
    return cfg


def _console_log():
    """A rich console and a plain-text log function printing to it."""
    from rich.console import Console

    console = Console()
    return console, lambda s: console.print(s, markup=False)


# ---------------------------------------------------------------------------------------- run / sweep


def run_command(ctx: typer.Context) -> None:
    """Run the whole experiment: base eval, reference SFT, Anchored Learning, baselines, report +
    Pareto plot.  Every ExperimentConfig field is a flag (--help); --config RECIPE.yaml."""
    from anchored_learning.experiment import ExperimentConfig

    cfg, seed_args = _parse(
        ctx.args,
        (ExperimentConfig, SeedArguments),
        prog="anchored run",
        description="Run the whole experiment: evaluate the base model, train the reference (SFT), Anchored "
        "Learning and the baselines, evaluate every model, write the gain / degradation table and the "
        "Pareto plot. Every field below is a flag; --config RECIPE.yaml (e.g. a copy of "
        "anchored_learning/configs/igsm/quick.yaml) sets fields that flags override.",
    )
    _run_experiment(ctx, _resolve_and_check_data(cfg), seeds=_seeds(seed_args.seeds))


def sweep_command(ctx: typer.Context) -> None:
    """Run the main experiment plus a hyper-parameter grid per method (--grid method.field=v1,v2),
    all drawn on one Pareto frontier.  The flags of `anchored run` apply (--help)."""
    from anchored_learning.experiment import ExperimentConfig

    (cfg,) = _parse(
        ctx.args,
        (ExperimentConfig,),
        prog="anchored sweep",
        defaults={"preset": "quick"},
        description="The experiment of `anchored run` (quick recipe by default) plus extra points on the same "
        "frontier: --grid method.field=v1,v2 (repeatable). Output: runs/<task>-<preset>-sweep unless -o.",
    )
    if not cfg.sweep:
        raise typer.BadParameter("give at least one --grid method.field=v1,v2", param_hint="--grid")
    if cfg.output_dir is None:
        cfg.output_dir = f"runs/{cfg.task or cfg.default_task()}-{cfg.preset}-sweep"
    _run_experiment(ctx, _resolved(cfg))


def _run_experiment(ctx: typer.Context, cfg, seeds: list[int] | None = None) -> None:
    """Run an experiment of the resolved ``cfg`` (once, or once per seed) with console progress,
    then print the table and where the files are."""
    from anchored_learning.experiment import Experiment, check_seeds, run_seeds
    from anchored_learning.tables import summary_table

    console, log = _console_log()
    try:  # validate everything before any work
        exp = Experiment(cfg, console_log=log)
        if seeds is not None:
            check_seeds(seeds)
    except ValueError as e:
        raise usage_error(str(e)) from None
    hold_output_lock(ctx, cfg.output_dir)
    try:
        out = run_seeds(cfg, seeds, console_log=log) if seeds else exp.run()
    except FloatingPointError as e:  # a diverged stage: its last complete checkpoint is kept for a resume
        exit_diverged(e)
    if not out:  # a non-main process of a launch: the main process reports
        return
    console.print(summary_table(out["rows"]), markup=False, soft_wrap=True)
    console.print(
        f"\n[bold green]done[/] in {out['wall_time_s'] / 60:.1f} min. Results in [bold]{exp.out}[/]: "
        "results.md (every score and interval), results.json, pareto.png" + (" (per seed: seed-*/)" if seeds else "")
    )


# ---------------------------------------------------------------------------------------- frontier


@dataclass
class FrontierArguments:
    """Flags of ``anchored frontier`` that are not experiment settings."""

    report_only: bool = field(
        default=False,
        metadata={
            "help": "Train nothing: analyse the runs already finished in the output folder for --seeds (e.g. --seeds 0 "
            "while later seeds are still running; runs not finished in every one of those seeds are left out)."
        },
    )
    n_boot: int = field(default=2000, metadata={"help": "Bootstrap resamples (over seeds and items) of every interval."})


def frontier_recipe() -> dict:
    """The fields of the bundled frontier grid (``anchored_learning/configs/frontier.yaml``)."""
    from importlib import resources

    import yaml

    return yaml.safe_load((resources.files("anchored_learning") / "configs" / "frontier.yaml").read_text())


_FRONTIER_DESCRIPTION = (
    "The frontier study of one target task: the runs of the bundled grid (configs/frontier.yaml: SFT "
    "over learning rate x epochs, Anchored Learning over alpha and T x K, SFT+KL, DFT, ASFT, the per-step "
    "anchor, distillation, LoRA, WiSE-FT) on top of the task's recipe (--preset, default 'default'), for each "
    "seed (default 0,1,2); then frontier.md / frontier.json / frontier.png: each family's Pareto frontier, "
    "every run's degradation at SFT-matched gain and gain at SFT-matched degradation, each family's "
    "hypervolume, with paired bootstrap 95% intervals over seeds and items. Resumable: finished runs are "
    "skipped, and variants added later only train the new ones. --sweep and --baselines replace the grid's "
    "lists (give every entry you want; configs/frontier.yaml has the bundled ones). Output: "
    "runs/<task>-frontier unless -o."
)


def frontier_command(ctx: typer.Context) -> None:
    """The frontier study: SFT over learning rate x epochs, Anchored Learning over alpha, T and K,
    and every baseline, over 3 seeds; then each family's frontier, anchored's degradation at
    SFT-matched gain and the hypervolumes, with paired bootstrap intervals."""
    from anchored_learning.distributed import is_main_process
    from anchored_learning.experiment import ExperimentConfig, check_seeds

    cfg, seed_args, args = _parse(
        ctx.args,
        (ExperimentConfig, SeedArguments, FrontierArguments),
        prog="anchored frontier",
        defaults=frontier_recipe(),
        description=_FRONTIER_DESCRIPTION,
    )
    task = cfg.task  # the target the user asked for (None: whichever the folder's runs have)
    if cfg.output_dir is None:
        cfg.output_dir = f"runs/{cfg.task or cfg.default_task()}-frontier"
    if int(args.n_boot) < 10:
        raise typer.BadParameter(f"n_boot must be >= 10, got {args.n_boot}", param_hint="--n_boot")
    try:
        seeds = check_seeds(_seeds(seed_args.seeds) or [])
    except ValueError as e:
        raise usage_error(str(e)) from None
    if not args.report_only or Path(cfg.output_dir).is_dir():  # a report of no folder says so, creating none
        hold_output_lock(ctx, cfg.output_dir)
    if not args.report_only:
        _train_frontier(cfg, seeds)
    if is_main_process():  # under a launcher the main process writes the report
        _report_frontier(cfg.output_dir, seeds, int(args.n_boot), task)


def _train_frontier(cfg, seeds: list[int]) -> None:
    """Train (or resume) every run of the frontier grid ``cfg`` for each seed, after checking every stage."""
    from anchored_learning.experiment import Experiment, run_seeds

    cfg = _resolve_and_check_data(cfg)
    try:
        Experiment(cfg, console_log=lambda m: None)  # validates every stage before any work
    except ValueError as e:
        raise usage_error(str(e)) from None
    try:
        run_seeds(cfg, seeds, console_log=_console_log()[1])
    except FloatingPointError as e:
        exit_diverged(e)


def _report_frontier(folder: str, seeds: list[int], n_boot: int, task: str | None) -> None:
    """Write the frontier report of ``folder`` and print its summary."""
    from anchored_learning.experiment.frontier_report import write_frontier_report

    console, _ = _console_log()
    try:
        res = write_frontier_report(folder, seeds=seeds, n_boot=n_boot, task=task)
    except ValueError as e:
        raise usage_error(str(e)) from None
    if res.get("left_out"):
        from anchored_learning.evaluation.metrics import left_out_note

        console.print(f"[warning] {left_out_note(res['left_out'])}", markup=False, style="yellow")
    console.print(frontier_summary(res), markup=False, soft_wrap=True)
    console.print("\n" + res["verdict"], markup=False, style="bold")  # its intervals' brackets are not markup
    if res.get("drift_view"):
        console.print("Drift view: " + res["drift_view"]["verdict"], markup=False)
    console.print(
        f"Results in [bold]{folder}[/]: frontier.md (every interval), frontier.json, "
        "frontier.png, training_curves.png, anchor_bound.png (per seed: seed-*/)"
    )


def frontier_summary(res: dict) -> str:
    """The terminal summary of a frontier study (80 columns): each run's gain, degradation and
    degradation at SFT-matched gain with its interval."""
    from anchored_learning.experiment.frontier_report import format_number as num
    from anchored_learning.tables import text_table

    def v(e):
        return "" if e is None else ("n/a" if e["value"] is None else num("{:+.1f}", e["value"]))

    def ci(e):
        if e is None:
            return ""
        if e["value"] is None:
            return "beyond SFT's range"
        lo, hi = e["ci"] or (float("nan"),) * 2
        return f"{num('{:+.1f}', e['value'])} [{num('{:+.1f}', lo)}, {num('{:+.1f}', hi)}]"

    rows = [[p["label"], v(p["gain"]), v(p["degradation"]), ci(p["degradation_at_matched_gain"])] for p in res["points"]]
    table = text_table(["run", "gain", "degr. %", "degr. vs SFT at same gain"], rows)
    if res.get("incomplete"):
        table += f"\nNot in every seed yet (left out): {', '.join(res['incomplete'])}."
    return table


# ---------------------------------------------------------------------------------------- tune / compare

_TUNE_DESCRIPTION = (
    "A budgeted multi-objective recipe search (Optuna) on the task's recipe (--preset): each trial "
    "trains one variant (a --methods entry with values from --search_space, configs/tune.yaml by default) in "
    "OUTPUT/run, where the base model's evaluation and the reference are made once, and scores it on a "
    "validation split disjoint from the test items (first on a --cheap_fraction of them; promising trials go "
    "on). Objectives: target gain (max) and mean degradation over the held-out suite (min), or the retention "
    "of --objective_member (max). The Pareto set and the recommended model (--max_degradation or "
    "--min_retention) are then reported on the test split with paired bootstrap intervals and the "
    "degradation at SFT-matched gain (tune.md, tune.json, frontier.png). The study is OUTPUT/study.db: "
    "re-running continues it (raise --n_trials for more). Output: runs/<task>-tune unless -o."
)


def tune_command(ctx: typer.Context) -> None:
    """Search recipes (methods and their hyper-parameters) for the best gain at the least forgetting,
    within a budget; report the Pareto set and a recommended model on the test split."""
    from anchored_learning.experiment.tune import tune
    from anchored_learning.experiment.tune_config import TuneConfig, tune_recipe

    (cfg,) = _parse(
        ctx.args,
        (TuneConfig,),
        prog="anchored tune",
        defaults={k: v for k, v in tune_recipe().items() if k != "search_space"},  # (filled in resolved())
        description=_TUNE_DESCRIPTION,
    )
    cfg = _resolve_and_check_data(cfg)
    hold_output_lock(ctx, cfg.output_dir)
    console, log = _console_log()
    try:
        res = tune(cfg, console_log=log)
    except ValueError as e:
        raise usage_error(str(e)) from None
    folder = Path(res["storage"].removeprefix("sqlite:///")).parent
    console.print((folder / "tune.md").read_text(), markup=False, soft_wrap=True)
    console.print(
        f"Results in [bold]{folder}[/]: tune.md, tune.json, frontier.png; models and test evaluations in run/. "
        f"Browse the study with: {res['dashboard']}",
        soft_wrap=True,
    )


def compare_command(ctx: typer.Context) -> None:
    """A forgetting report for any fine-tuned model: score the base and each --model on the same
    items, then the gain / degradation table, paired intervals and the Pareto plot."""
    from anchored_learning.experiment.compare import compare_models
    from anchored_learning.experiment.experiment_config import CompareConfig
    from anchored_learning.tables import summary_table

    (cfg,) = _parse(
        ctx.args,
        (CompareConfig,),
        prog="anchored compare",
        description="How much did a fine-tuned model forget? Scores the base model (--base) and each fine-tuned "
        "model (--model, repeatable; Hugging Face folders or ids, or LoRA adapter folders applied to the base) on the "
        "same items of the stability suite, and of a target when given (--task, or your --test_data with --score), "
        "and writes the gain / degradation table with paired bootstrap 95% intervals, drift KL and the Pareto plot "
        "(results.md, results.json, pareto.png). Limits come from --preset (default) unless set.",
    )
    console, log = _console_log()
    cfg = _resolve_and_check_data(cfg)
    hold_output_lock(ctx, cfg.output_dir)
    try:
        out = compare_models(cfg, console_log=log)
    except ValueError as e:
        raise usage_error(str(e)) from None
    folder = Path(out["config"]["output_dir"])
    console.print(summary_table(out["rows"]), markup=False, soft_wrap=True)
    files = "results.json, results.md" + (", pareto.png" if out["config"]["task"] else "")
    console.print(f"\n[bold green]done[/] in {out['wall_time_s'] / 60:.1f} min. Results in [bold]{folder}[/]: {files}")
