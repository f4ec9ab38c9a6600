"""``anchored run`` / ``sweep`` (an experiment) and ``anchored train`` (one method on your data).

Their flags are not written here: they are the fields of the config dataclasses
(:class:`~anchored_learning.experiment.config.ExperimentConfig` for ``run`` and ``sweep``;
:class:`~anchored_learning.config.AnchoredSFTConfig`, every ``trl.SFTConfig`` /
``TrainingArguments`` field included, for ``train``), parsed by TRL's ``TrlParser``
(``HfArgumentParser``): ``--help`` lists every field with its help text and default, and
``--config recipe.yaml`` (or JSON) sets fields that flags then override.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import typer

#: typer settings of a command whose arguments are parsed from dataclasses
PASSTHROUGH = {
    "context_settings": {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    "add_help_option": False,
}


class _ParseError(Exception):
    pass


#: one-word field names a validation message may start with
_PLAIN_FIELDS = ("seed", "seeds", "preset", "task", "model", "data", "sweep", "baselines")


def _bad(message: str) -> typer.BadParameter:
    """A usage error (exit code 2) for ``message``, blamed on the flag whose field the message
    starts with (``"anchor_alpha must be in [0, 1]"`` -> ``--anchor_alpha``)."""
    words = message.split(" ", 2)
    if words[0].endswith("):"):  # "sft(learning_rate=abc): ...": a value that a --sweep entry gave
        return typer.BadParameter(message, param_hint="--sweep")
    if len(words) > 1 and words[0].endswith(":"):  # "<stage>: <field> must ..." (a planned variant)
        stage, words = words[0][:-1], words[1:]
        own = f"{stage}_{words[0]}"  # the reference stage's learning_rate is --reference_learning_rate
        if stage == "reference" and own in _field_names():
            return typer.BadParameter(f"{own} {' '.join(words[1:])}", param_hint=f"--{own}")
    head = words[0].strip(":'\"")
    is_field = head in _field_names() or head in _PLAIN_FIELDS
    return typer.BadParameter(message, param_hint=f"--{head.lstrip('-')}" if is_field else None)


@functools.cache
def _field_names() -> frozenset[str]:
    """Every field (flag) name of the commands' config dataclasses."""
    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.experiment.config import CompareConfig, ExperimentConfig
    from anchored_learning.experiment.tune import TuneConfig

    names = {f.name for cls in (AnchoredSFTConfig, ExperimentConfig, CompareConfig, TuneConfig) for f in dataclasses.fields(cls)}
    return frozenset(names | {f"--{n}" for n in names})


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """HfArgumentParser's formatter, without "(default: None)" after a field the preset fills."""

    def _get_help_string(self, action):
        return action.help if getattr(action, "preset_filled", False) else super()._get_help_string(action)


@functools.cache
def _recipe_fields() -> frozenset[str]:
    """The fields that some bundled recipe (``configs/<task>/<preset>.yaml``) sets."""
    import yaml

    from anchored_learning.experiment.config import recipe_path

    root = recipe_path("default").parent.parent
    return frozenset(k for path in root.glob("*/*.yaml") for k in (yaml.safe_load(path.read_text()) or {}))


def _parser(dataclass_types, prog: str, description: str):
    """A ``TrlParser`` over ``dataclass_types`` whose errors raise instead of exiting."""
    from trl import TrlParser

    class Parser(TrlParser):
        def error(self, message):
            raise _ParseError(message)

    # allow_abbrev=False: a truncated flag (--anchor_alph) is an error, not silently read as the full one
    parser = Parser(dataclass_types, prog=prog, description=description, allow_abbrev=False, formatter_class=_HelpFormatter)
    # --config is read before parsing (parse_config_args); declared here so that --help lists it
    parser.add_argument(
        "--config", metavar="FILE", default=argparse.SUPPRESS, help="YAML or JSON file of field: value pairs; flags override it."
    )
    # a field of a config with a `preset` that defaults to None and that a bundled recipe sets takes
    # the recipe's value: the help says so instead of "(default: None)"
    preset_filled = _recipe_fields() & {
        f.name
        for t in dataclass_types
        if "preset" in {g.name for g in dataclasses.fields(t)}
        for f in dataclasses.fields(t)
        if f.default is None
    }
    parser.description = (parser.description or "").replace("`", "")  # transformers'/TRL's markdown, in a terminal
    for action in parser._actions:
        if action.help:
            action.help = action.help.replace("`", "")
        if action.dest in preset_filled and action.default is None:
            if "default" not in (action.help or "").lower():
                action.help = f"{action.help or ''} (default: the --preset recipe's)".strip()
            action.preset_filled = True
        if not action.option_strings or action.nargs == 0 or action.metavar is not None:
            continue
        kind = getattr(action.type, "__name__", "")  # string_to_bool: transformers' or the copy in trl.scripts
        if kind == "string_to_bool" and action.nargs is None:  # a `bool | None` field (None: the preset's)
            action.nargs, action.const = "?", True  # is a switch too: --flag = --flag true
        # short value names (INT, FLOAT, ...), so that option lines fit 80 columns; a long list of
        # choices goes into the wrapped help, a short {a,b,c} stays
        if action.choices and len(", ".join(map(str, action.choices))) > 40:
            action.help = f"{action.help or ''} Choices: {', '.join(map(str, action.choices))}.".strip()
        elif action.choices:
            continue
        action.metavar = {"int": "INT", "float": "FLOAT", "string_to_bool": "BOOL"}.get(
            kind, "VALUE" if action.choices else "STR"
        )
    return parser


def _read_config_file(path: Path) -> dict:
    """The fields of a JSON or YAML config file.

    Raises:
        typer.BadParameter: a missing file, neither JSON nor YAML, or not a mapping.
    """
    import yaml

    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give a YAML or JSON file", param_hint="--config")
    if not path.is_file():
        raise typer.BadParameter(f"{path} does not exist", param_hint="--config")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise typer.BadParameter(f"{path} is not UTF-8 text ({e})", param_hint="--config") from None
    try:
        fields = json.loads(text)
    except json.JSONDecodeError:
        try:
            fields = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise typer.BadParameter(f"{path} is neither valid JSON nor YAML: {e}", param_hint="--config") from None
    if not isinstance(fields, dict):
        raise typer.BadParameter(f"{path} must hold a mapping of field: value", param_hint="--config")
    return fields


def _long_flags(argv: list[str], short: dict[str, str]) -> list[str]:
    """Short flags -> their long names (``-o X`` -> ``--output_dir X``)."""
    out: list[str] = []
    for a in argv:
        name, eq, value = a.partition("=")
        if name in short:
            a = short[name] + eq + value
        out.append(a)
    return out


def parse_config_args(
    argv: list[str],
    dataclass_types,
    *,
    prog: str,
    description: str,
    defaults: dict | None = None,
    overrides: dict | None = None,
) -> tuple:
    """Parse ``argv`` into instances of ``dataclass_types``: ``--config FILE`` (JSON or YAML) sets
    fields, flags override them.  ``--help`` prints every field and exits.

    Args:
        defaults: field defaults of this command that differ from the dataclass's (a config overrides them).
        overrides: field values that the config file cannot change (flags still can, unless removed
            from ``argv`` first).

    Raises:
        typer.BadParameter: an unknown flag or config key, a bad value (exit code 2).
    """
    argv = list(argv)
    parser = _parser(dataclass_types, prog, description)
    # a list flag given several times keeps every value (argparse would keep the last occurrence)
    list_dest = {opt: a.dest for a in parser._actions if a.nargs == "+" for opt in a.option_strings}
    options = {opt for a in parser._actions for opt in a.option_strings} | {"--config"}
    # --flag=value -> --flag value for list flags, so every occurrence is collected below
    argv = [x for a in argv for x in (a.split("=", 1) if a.split("=", 1)[0] in list_dest and "=" in a else [a])]
    lists: dict[str, list[str]] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in list_dest:
            j = i + 1
            while j < len(argv) and not argv[j].startswith("--") and argv[j] not in options:
                j += 1
            lists.setdefault(list_dest[argv[i]], []).extend(argv[i + 1 : j])
            i = j
        else:
            rest.append(argv[i])
            i += 1
    argv = _negative_values(rest + [x for dest, values in lists.items() for x in (f"--{dest}", *values)], options)
    if defaults:
        parser.set_defaults_with_config(**defaults)
    if "--help" in argv or "-h" in argv:
        parser.print_help()
        raise typer.Exit(0)
    argv = [x for a in argv for x in (a.split("=", 1) if a.startswith("--config=") else [a])]
    if "--config" in argv:
        k = argv.index("--config")
        if k + 1 >= len(argv):
            raise typer.BadParameter("--config needs a file", param_hint="--config")
        path = Path(argv[k + 1]).expanduser()
        del argv[k : k + 2]
        fields = _read_config_file(path)
        unknown = parser.set_defaults_with_config(**fields)
        if unknown:
            keys = sorted({u[2:] for u in unknown[::2]})
            raise typer.BadParameter(
                f"{path} sets {keys}, which are not fields of this command (see --help)", param_hint="--config"
            )
    if overrides:
        parser.set_defaults_with_config(**overrides)
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except _ParseError as e:
        raise typer.BadParameter(str(e)) from None
    except (TypeError, ValueError) as e:  # a dataclass's own validation (__post_init__)
        if str(e).startswith("Some specified arguments are not used"):  # HfArgumentParser's unknown flags
            import ast

            try:  # "...: ['--anchr_alpha', '0.5']": what argparse could not place
                unused = [str(a) for a in ast.literal_eval(str(e).split(": ", 1)[1])]
            except (ValueError, SyntaxError, IndexError):
                unused = [a for a in argv if a.startswith("-")]
            raise typer.BadParameter(_unknown_flags(unused, options)) from None
        raise _bad(str(e)) from None


def _negative_values(argv: list[str], options: set[str]) -> list[str]:
    """``--flag -1e-5`` -> ``--flag=-1e-5``: argparse reads a negative number in exponent notation
    as an unknown option ("expected one argument"), so the value reaches the field's own check."""
    import re

    out: list[str] = []
    for a in argv:
        if out and out[-1] in options and re.fullmatch(r"-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?|-inf|-nan", a, re.IGNORECASE):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def _unknown_flags(given: list[str], options: set[str]) -> str:
    """'unknown flag --anchr_alpha (did you mean --anchor_alpha?)' for the flags of ``given`` that are
    not in ``options``."""
    import difflib

    parts = []
    flags = [a for a in given if a.startswith("-")]
    for flag in dict.fromkeys(a.split("=", 1)[0] for a in flags):
        if flag in options:
            continue
        close = difflib.get_close_matches(flag, sorted(o for o in options if o.startswith("--")), n=1, cutoff=0.75)
        parts.append(flag + (f" (did you mean {close[0]}?)" if close else ""))
    if parts:
        return f"unknown flag{'s' if len(parts) > 1 else ''} {', '.join(parts)}; see --help"
    values = [a for a in given if not a.startswith("-")]  # a value without its flag: `anchored run data.jsonl`
    return (
        f"unexpected argument{'s' if len(values) > 1 else ''} {' '.join(values)}: every setting is a flag "
        "(--name value, e.g. --data FILE); see --help"
    )


# ---------------------------------------------------------------------------------------- run / sweep


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


def _check_data_file(cfg) -> None:
    """Check ``cfg`` as a whole, then read its data files, before any work (the first bad row is
    reported).

    Raises:
        typer.BadParameter: naming the file, the row and what is wrong with it.
    """
    from anchored_learning.data import load_conversations

    try:
        cfg.resolved()
    except ValueError as e:
        raise _bad(str(e)) from None
    for flag, source, split in (("--data", getattr(cfg, "data", None), "train"), ("--test_data", cfg.test_data, "test")):
        if source is None:
            continue
        try:
            load_conversations(source, split=split, prompt_column=cfg.prompt_column, response_column=cfg.response_column)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint=flag) from None


def run_command(ctx: typer.Context) -> None:
    """Run the whole experiment: base eval, reference SFT, Anchored Learning, baselines, report +
    Pareto plot.  Every ExperimentConfig field is a flag (--help); --config RECIPE.yaml."""
    from anchored_learning.experiment import ExperimentConfig

    cfg, seed_args = parse_config_args(
        ctx.args,
        (ExperimentConfig, SeedArguments),
        prog="anchored run",
        description="Run the whole experiment: evaluate the base model, train the reference (SFT), Anchored "
        "Learning and the baselines, evaluate every model, write the gain / degradation table and the "
        "Pareto plot. Every field below is a flag; --config RECIPE.yaml (e.g. a copy of "
        "anchored_learning/configs/igsm/quick.yaml) sets fields that flags override.",
    )
    _check_data_file(cfg)
    _run_experiment(cfg, seeds=_seeds(seed_args.seeds))


def sweep_command(ctx: typer.Context) -> None:
    """Run the main experiment plus a hyper-parameter grid per method (--grid method.field=v1,v2),
    all drawn on one Pareto frontier.  The flags of `anchored run` apply (--help)."""
    from anchored_learning.experiment import ExperimentConfig

    (cfg,) = parse_config_args(
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
    _run_experiment(cfg)


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


def frontier_command(ctx: typer.Context) -> None:
    """The frontier study: SFT over learning rate x epochs, Anchored Learning over alpha, T and K,
    and every baseline, over 3 seeds; then each family's frontier, anchored's degradation at
    SFT-matched gain and the hypervolumes, with paired bootstrap intervals."""
    from rich.console import Console

    from anchored_learning.experiment import Experiment, ExperimentConfig, check_seeds, run_seeds
    from anchored_learning.experiment.frontier import write_frontier_report
    from anchored_learning.experiment.stages import is_main_process

    cfg, seed_args, args = parse_config_args(
        ctx.args,
        (ExperimentConfig, SeedArguments, FrontierArguments),
        prog="anchored frontier",
        defaults=frontier_recipe(),
        description="The frontier study of one target task: the runs of the bundled grid (configs/frontier.yaml: SFT "
        "over learning rate x epochs, Anchored Learning over alpha and T x K, SFT+KL, DFT, ASFT, the per-step "
        "anchor, distillation, LoRA, WiSE-FT) on top of the task's recipe (--preset, default 'default'), for each "
        "seed (default 0,1,2); then frontier.md / frontier.json / frontier.png: each family's Pareto frontier, "
        "every run's degradation at SFT-matched gain and gain at SFT-matched degradation, each family's "
        "hypervolume, with paired bootstrap 95% intervals over seeds and items. Resumable: finished runs are "
        "skipped, and variants added later only train the new ones. --sweep and --baselines replace the grid's "
        "lists (give every entry you want; configs/frontier.yaml has the bundled ones). Output: "
        "runs/<task>-frontier unless -o.",
    )
    if cfg.output_dir is None:
        cfg.output_dir = f"runs/{cfg.task or cfg.default_task()}-frontier"
    if int(args.n_boot) < 10:
        raise typer.BadParameter(f"n_boot must be >= 10, got {args.n_boot}", param_hint="--n_boot")
    console = Console()
    log = lambda s: console.print(s, markup=False)  # noqa: E731
    try:
        seeds = check_seeds(_seeds(seed_args.seeds) or [])
    except ValueError as e:
        raise _bad(str(e)) from None
    if not args.report_only:
        _check_data_file(cfg)
        try:
            Experiment(cfg, console_log=lambda m: None)  # validates every stage before any work
        except ValueError as e:
            raise _bad(str(e)) from None
        try:
            run_seeds(cfg, seeds, console_log=log)
        except FloatingPointError as e:
            _diverged(e)
    if not is_main_process():  # under a launcher the main process writes the report
        return
    try:
        res = write_frontier_report(cfg.output_dir, seeds=seeds, n_boot=int(args.n_boot), task=_peek(ctx.args, "--task"))
    except ValueError as e:
        raise _bad(str(e)) from None
    if res.get("left_out"):
        from anchored_learning.evaluation.metrics import left_out_note

        console.print(f"[warning] {left_out_note(res['left_out'])}", markup=False, style="yellow")
    console.print(frontier_summary(res), markup=False, soft_wrap=True)
    console.print("\n" + res["verdict"], markup=False, style="bold")  # its intervals' brackets are not markup
    if res.get("drift_view"):
        console.print("Drift view: " + res["drift_view"]["verdict"], markup=False)
    console.print(
        f"Results in [bold]{cfg.output_dir}[/]: frontier.md (every interval), frontier.json, "
        "frontier.png, training_curves.png, anchor_bound.png (per seed: seed-*/)"
    )


def frontier_summary(res: dict) -> str:
    """The terminal summary of a frontier study (80 columns): each run's gain, degradation and
    degradation at SFT-matched gain with its interval."""
    from anchored_learning.experiment.frontier import format_number as num
    from anchored_learning.report import text_table

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


def tune_command(ctx: typer.Context) -> None:
    """Search recipes (methods and their hyper-parameters) for the best gain at the least forgetting,
    within a budget; report the Pareto set and a recommended model on the test split."""
    from rich.console import Console

    from anchored_learning.experiment.tune import TuneConfig, tune, tune_recipe

    (cfg,) = parse_config_args(
        ctx.args,
        (TuneConfig,),
        prog="anchored tune",
        defaults={k: v for k, v in tune_recipe().items() if k != "search_space"},  # (filled in resolved())
        description="A budgeted multi-objective recipe search (Optuna) on the task's recipe (--preset): each trial "
        "trains one variant (a --methods entry with values from --search_space, configs/tune.yaml by default) in "
        "OUTPUT/run, where the base model's evaluation and the reference are made once, and scores it on a "
        "validation split disjoint from the test items (first on a --cheap_fraction of them; promising trials go "
        "on). Objectives: target gain (max) and mean degradation over the held-out suite (min), or the retention "
        "of --objective_member (max). The Pareto set and the recommended model (--max_degradation or "
        "--min_retention) are then reported on the test split with paired bootstrap intervals and the "
        "degradation at SFT-matched gain (tune.md, tune.json, frontier.png). The study is OUTPUT/study.db: "
        "re-running continues it (raise --n_trials for more). Output: runs/<task>-tune unless -o.",
    )
    _check_data_file(cfg)
    console = Console()
    try:
        res = tune(cfg, console_log=lambda s: console.print(s, markup=False))
    except ValueError as e:
        raise _bad(str(e)) from None
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
    from rich.console import Console

    from anchored_learning.experiment.compare import compare_models
    from anchored_learning.experiment.config import CompareConfig
    from anchored_learning.report import summary_table

    (cfg,) = parse_config_args(
        ctx.args,
        (CompareConfig,),
        prog="anchored compare",
        description="How much did a fine-tuned model forget? Scores the base model (--base) and each fine-tuned "
        "model (--model, repeatable; Hugging Face folders or ids, or LoRA adapter folders applied to the base) on the "
        "same items of the stability suite, and of a target when given (--task, or your --test_data with --score), "
        "and writes the gain / degradation table with paired bootstrap 95% intervals, drift KL and the Pareto plot "
        "(results.md, results.json, pareto.png). Limits come from --preset (default) unless set.",
    )
    console = Console()
    log = lambda s: console.print(s, markup=False)  # noqa: E731
    _check_data_file(cfg)
    try:
        out = compare_models(cfg, console_log=log)
    except ValueError as e:
        raise _bad(str(e)) from None
    folder = Path(out["config"]["output_dir"])
    console.print(summary_table(out["rows"]), markup=False, soft_wrap=True)
    files = "results.json, results.md" + (", pareto.png" if out["config"]["task"] else "")
    console.print(f"\n[bold green]done[/] in {out['wall_time_s'] / 60:.1f} min. Results in [bold]{folder}[/]: {files}")


def _run_experiment(cfg, seeds: list[int] | None = None) -> None:
    """Run an experiment (once, or once per seed) with console progress, then print the table and
    where the files are."""
    from rich.console import Console

    from anchored_learning.experiment import Experiment, check_seeds, run_seeds
    from anchored_learning.report import summary_table

    console = Console()
    log = lambda s: console.print(s, markup=False)  # noqa: E731
    try:  # validate everything before any work
        exp = Experiment(cfg, console_log=log)
        if seeds is not None:
            check_seeds(seeds)
    except ValueError as e:
        raise _bad(str(e)) from None
    try:
        out = run_seeds(cfg, seeds, console_log=log) if seeds else exp.run()
    except FloatingPointError as e:  # a diverged stage: its last complete checkpoint is kept for a resume
        _diverged(e)
    if not out:  # a non-main process of a launch: the main process reports
        return
    console.print(summary_table(out["rows"]), markup=False, soft_wrap=True)
    console.print(
        f"\n[bold green]done[/] in {out['wall_time_s'] / 60:.1f} min. Results in [bold]{exp.out}[/]: "
        "results.md (every score and interval), results.json, pareto.png" + (" (per seed: seed-*/)" if seeds else "")
    )


def _diverged(e: FloatingPointError, hint: str = "") -> None:
    """Print a diverged training's message (no traceback) and exit with code 1."""
    from rich.console import Console

    Console(stderr=True).print(f"training diverged: {e}{hint}", style="bold red", markup=False, highlight=False)
    raise typer.Exit(1)


# ---------------------------------------------------------------------------------------- train


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


def _peek(argv: list[str], flag: str) -> str | None:
    """The value ``argv`` gives ``flag`` (``--flag v`` or ``--flag=v``), else the one its
    ``--config`` file gives, else None."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    config = _peek(argv, "--config") if flag != "--config" else None
    if config is not None:
        value = _read_config_file(Path(config).expanduser()).get(flag[2:])
        return None if value is None else str(value)
    return None


def _precision_as_bf16(argv: list[str]) -> list[str]:
    """``--precision auto|bf16|fp32`` (every command's flag) as ``anchored train``'s ``--bf16``
    (TrainingArguments' field; unset = detected from the hardware).

    Raises:
        typer.BadParameter: another value.
    """
    from anchored_learning.models import PRECISIONS

    value = _peek(argv, "--precision")
    if value is None:
        return argv
    choices = {"auto": [], "bf16": ["--bf16", "true"], "fp32": ["--bf16", "false"]}
    if value not in PRECISIONS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(PRECISIONS)}", param_hint="--precision")
    if value != "auto" and _peek(argv, "--bf16") is not None:
        raise typer.BadParameter("give --precision or --bf16, not both", param_hint="--precision")
    return _drop_flag(argv, "--precision") + choices[value]


def train_command(ctx: typer.Context) -> None:
    """Train one method on your data and save the model to OUTPUT_DIR/final.  Every
    AnchoredSFTConfig / TrainingArguments field is a flag (--help); --config RECIPE.yaml;
    --precision auto|bf16|fp32 sets --bf16 (unset: detected)."""
    import hashlib

    from datasets import Dataset

    import anchored_learning.models as models
    import anchored_learning.trainer as trainer_mod
    from anchored_learning.config import AnchoredSFTConfig, under_launcher
    from anchored_learning.data import check_response_tokens_fit, load_conversations
    from anchored_learning.io import check_output_path, lock_output_folder, write_json_atomic
    from anchored_learning.methods import METHODS, get_method

    argv = _precision_as_bf16(_long_flags(list(ctx.args), SHORT_FLAGS))
    description = (
        "Train one method on your data and save the model to OUTPUT_DIR/final (checkpoints in "
        "OUTPUT_DIR/trainer; re-running resumes). A method that needs the reference model p_sft "
        "trains it first (plain SFT, --reference_epochs) into OUTPUT_DIR/reference unless "
        "--reference_model is given. Every field below is a flag; --config RECIPE.yaml sets fields "
        "that flags override. --precision auto|bf16|fp32 sets --bf16 (auto: bf16 autocast where the hardware "
        "does bf16 natively)."
    )
    help_asked = "--help" in argv or "-h" in argv
    # everything is validated before any training: the method, the output folder, the flags and
    # config, then data and models
    method = _peek(argv, "--method") or "anchored"
    if method == "lora":
        raise typer.BadParameter(
            "LoRA is an option of any method now: use --method sft --use_peft (or --method anchored --use_peft)",
            param_hint="--method",
        )
    if method not in METHODS and not help_asked:
        raise typer.BadParameter(f"unknown method {method!r}; choose one of {', '.join(METHODS)}", param_hint="--method")
    out = _peek(argv, "--output_dir")
    if out is None and not help_asked:
        raise typer.BadParameter("give the output folder with --output_dir (or -o)", param_hint="--output_dir")
    output_dir = Path(out or ".").expanduser()
    if not help_asked:
        try:
            check_output_path(output_dir, "folder")
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--output_dir") from None
    reference = _peek(argv, "--reference_model")
    ref_dir = reference or str(output_dir / "reference")
    needs_ref = method in METHODS and get_method(method).needs_reference
    overrides = {"output_dir": str(output_dir / "trainer"), "reference_model": ref_dir if needs_ref else reference}
    targs, args = parse_config_args(
        _drop_flag(argv, "--output_dir"),
        (TrainArguments, AnchoredSFTConfig),
        prog="anchored train",
        description=description,
        defaults=TRAIN_DEFAULTS,
        overrides=overrides,
    )
    if args.eval_strategy != "no":  # (TrainingArguments stores an IntervalStrategy, a str enum)
        raise typer.BadParameter(
            "anchored train takes no evaluation data; score the saved model with `anchored compare` or `anchored eval`",
            param_hint="--eval_strategy",
        )
    if args.resume_from_checkpoint is not None:
        raise typer.BadParameter(
            f"anchored train resumes by itself from the last checkpoint in {output_dir / 'trainer'}: "
            "run the same command again, without --resume_from_checkpoint",
            param_hint="--resume_from_checkpoint",
        )
    try:
        convs = load_conversations(
            targs.data, split="train", prompt_column=targs.prompt_column, response_column=targs.response_column
        )
        rows = [c.as_row() for c in convs]
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--data") from None
    self_generated = get_method(args.method).responses == "self_generated"
    score = _sample_score(convs, targs) if self_generated else None
    for name, value in (("--model", targs.model), ("--reference_model", reference)):
        try:
            models.check_model_source(value)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint=name) from None
    if not (args.packing or args.assistant_only_loss):  # (packing does not truncate; assistant turns: TRL's masks)
        try:
            check_response_tokens_fit(rows, models.load_tokenizer(targs.model), args.max_length, args.truncation_mode)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--max_length") from None
    dataset = Dataset.from_list(rows)
    path = models.resolve_model_path(targs.model)
    base_model = str(Path(path).resolve()) if Path(path).exists() else str(path)
    data_file = Path(targs.data).expanduser()
    content = data_file.read_bytes() if data_file.is_file() else json.dumps(rows, sort_keys=True).encode()
    data_sha = hashlib.sha256(content).hexdigest()
    # a folder made with other data or settings is refused, a finished one reported (like `anchored run`)
    settings = _train_settings(targs, args, base_model, data_sha, reference)
    if self_generated:  # the rule decides the rows trained on
        settings["score"] = [targs.score, targs.answer_column, targs.answer_regex]
    if int(os.environ.get("RANK", "0")) == 0:  # one command at a time in a folder (a launch's main process takes it)
        try:
            ctx.call_on_close(lock_output_folder(output_dir).release)  # held until this command ends, however it ends
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--output_dir") from None
    if _already_trained(output_dir, settings):
        typer.echo(f"already trained with the same data and settings: {output_dir / 'final'} (delete it to train again)")
        return
    # the reference is plain SFT with the same training flags and LoRA option, for --reference_epochs
    ref_args = None
    if needs_ref and reference is None:
        _, ref_args = parse_config_args(
            _drop_flag(_drop_flag(_drop_flag(argv, "--output_dir"), "--method"), "--num_train_epochs"),
            (TrainArguments, AnchoredSFTConfig),
            prog="anchored train",
            description=description,
            defaults=TRAIN_DEFAULTS,
            overrides={
                "output_dir": ref_dir,
                "method": "sft",
                "num_train_epochs": targs.reference_epochs,
                "reference_model": None,
            },
        )
    # a reference trained by an earlier invocation with the same data, base model and settings is reused
    marker = Path(ref_dir) / ".anchored_reference.json"
    stamp = {
        "data_sha256": data_sha,
        "base_model": base_model,
        "base_model_sha256": settings["base_model_sha256"],
        "peft": repr(targs.peft_config()),
        "training_arguments": _settings_of(ref_args) if ref_args is not None else None,
    }
    reuse = needs_ref and reference is None and marker.is_file() and json.loads(marker.read_text()) == stamp
    train_ref = needs_ref and reference is None and not reuse
    stages = (
        [f"reference SFT ({targs.reference_epochs:g} epochs)"]
        if train_ref
        else [f"reference {ref_dir}" + (" (reused)" if reuse else "")]
        if needs_ref
        else []
    ) + [f"{args.method} training"]
    if int(os.environ.get("RANK", "0")) == 0:  # under a launcher: said and written once, by the main process
        typer.echo(f"model: {path}; {len(rows)} training examples; stages: {' -> '.join(stages)}; output: {output_dir}")
        write_json_atomic(output_dir / TRAIN_SETTINGS, settings)
    try:
        if train_ref:
            m, tok = models.load_model_and_tokenizer(path)
            trainer_mod.train_reference(
                m, dataset, ref_dir, processing_class=tok, args=ref_args, peft_config=targs.peft_config(), resume=True
            )
            write_json_atomic(marker, stamp)  # written last: a killed save is never reused
            _remove_checkpoints(ref_dir, keep=targs.keep_checkpoints)
        m, tok = models.load_model_and_tokenizer(path)
        if self_generated:  # rejection sampling from the base model, recorded (a rerun reads the record)
            from anchored_learning.experiment.data import self_generated_training_rows

            record = output_dir / "self_generated.jsonl"
            if int(os.environ.get("RANK", "0")) == 0:
                _, report = self_generated_training_rows(record, rows, score, m, tok, args, log=typer.echo)
                typer.echo(
                    f"{report['accepted']} of {report['n']} rows train on an accepted sample of the base model "
                    f"({report['accepted_share']:.1%}); the others on the dataset response ({record})"
                )
            if under_launcher():
                import torch.distributed as dist

                _ = args.device  # the process group, set up as the trainer sets it up
                dist.barrier()
            from anchored_learning.sampling import read_record

            dataset = Dataset.from_list(read_record(record)[1])
        try:
            trainer = trainer_mod.AnchoredSFTTrainer(
                m, args=args, train_dataset=dataset, processing_class=tok, peft_config=targs.peft_config()
            )
        except ValueError as e:  # e.g. a reference model with another vocabulary
            raise typer.BadParameter(str(e)) from None
        ckpt = any(Path(args.output_dir).glob("checkpoint-*"))
        trainer.train(resume_from_checkpoint=True if ckpt else None)
    except FloatingPointError as e:
        _diverged(e, f". With other settings, `anchored train` needs a new --output_dir (or delete {output_dir})")
    if trainer.accelerator.is_main_process:  # under torchrun / accelerate launch: one writer
        models.save_pretrained_atomically(
            trainer.model, tok, output_dir / "final", {"train_log.json": json.dumps(trainer.state.log_history, default=str)}
        )
        typer.echo(f"saved {output_dir / 'final'}")
    trainer.accelerator.wait_for_everyone()  # every rank is past its last checkpoint before they are removed
    if trainer.accelerator.is_main_process:
        _remove_checkpoints(args.output_dir, keep=targs.keep_checkpoints)


def _remove_checkpoints(folder: str | Path, keep: bool) -> None:
    """Remove the ``checkpoint-*`` folders (weights, optimizer state) of a stage whose model is final,
    unless ``keep`` (``--keep_checkpoints``)."""
    import shutil

    if keep or int(os.environ.get("RANK", "0")) != 0:
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


def _settings_of(args) -> dict:
    """The training arguments that decide a model (JSON-normalised; no output paths or logging)."""
    fields = {k: v for k, v in args.to_dict().items() if k not in _NOT_SETTINGS and not k.startswith(("hub_", "push_to_hub"))}
    return json.loads(json.dumps(fields, default=str))


def _train_settings(targs, args, base_model: str, data_sha: str, reference: str | None) -> dict:
    """Everything that decides the model `anchored train` writes (JSON-normalised): the models by
    path and by content (:func:`~anchored_learning.models.model_fingerprint`)."""
    from anchored_learning.models import model_fingerprint

    fields = _settings_of(args)
    settings = {
        "data_sha256": data_sha,
        "base_model": base_model,
        "base_model_sha256": model_fingerprint(base_model),
        "reference_model": reference if reference is not None else f"trained here ({targs.reference_epochs:g} epochs)",
        "reference_model_sha256": model_fingerprint(reference) if reference is not None else None,
        "peft": repr(targs.peft_config()),
        "training_arguments": fields,
    }
    return json.loads(json.dumps(settings, default=str))


#: settings entries added after train_settings.json existed (a folder without them is not refused for that)
_FINGERPRINTS = ("base_model_sha256", "reference_model_sha256")


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
    old = json.loads(saved.read_text())
    flat = lambda d: {  # noqa: E731
        **{k: v for k, v in d.items() if k != "training_arguments"},
        **{k: v for k, v in d.get("training_arguments", {}).items() if k not in _NOT_SETTINGS},
    }
    a, b = flat(old), flat(settings)
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


def _drop_flag(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag`` and its value."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
        elif a == flag:
            skip = True
        elif not a.startswith(flag + "="):
            out.append(a)
    return out
