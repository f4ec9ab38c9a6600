"""Generic argument plumbing of the ``anchored`` commands: dataclasses from argv and a config file.

A command's flags are the fields of its dataclasses (TRL's ``TrlParser``, an ``HfArgumentParser``):
``--help`` lists every field with its help text and default, ``--config FILE`` (YAML or JSON) sets
fields that flags then override, and every error is a :class:`typer.BadParameter` (exit code 2).
This module knows nothing of experiments, methods or tasks: a command passes its dataclass types,
the fields that a bundled recipe fills (``recipe_fields``) and, if it wants, its own conversion of
a dataclass's validation message into a usage error (``usage_error``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import typer

#: typer settings of a command whose arguments are parsed from dataclasses
PASSTHROUGH = {
    "context_settings": {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    "add_help_option": False,
}


class _ParseError(Exception):
    pass


def blame(message: str, fields: Collection[str]) -> typer.BadParameter:
    """A usage error for ``message``, blamed on the flag whose field the message starts with
    (``"anchor_alpha must be in [0, 1]"`` -> ``--anchor_alpha``) when that is one of ``fields``."""
    head = message.split(" ", 1)[0].strip(":'\"")
    is_field = head in fields or head.lstrip("-") in fields
    return typer.BadParameter(message, param_hint=f"--{head.lstrip('-')}" if is_field else None)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """HfArgumentParser's formatter, without "(default: None)" after a field the preset fills."""

    def _get_help_string(self, action):
        return action.help if getattr(action, "preset_filled", False) else super()._get_help_string(action)


def make_parser(
    dataclass_types, prog: str, description: str, recipe_fields: Collection[str] = (), short_flags: dict | None = None
):
    """A ``TrlParser`` over ``dataclass_types`` whose errors raise instead of exiting, with a
    ``--config`` entry in its help, option lines that fit a terminal, and ``short_flags``
    (``{"-o": "--output_dir"}``) as aliases of fields the dataclasses do not give one."""
    from trl import TrlParser

    class Parser(TrlParser):
        def error(self, message):
            raise _ParseError(message)

    # allow_abbrev=False: a truncated flag (--anchor_alph) is an error, not silently read as the full one
    parser = Parser(dataclass_types, prog=prog, description=description, allow_abbrev=False, formatter_class=_HelpFormatter)
    # --config is read before parsing (parse_config_values); declared here so that --help lists it
    parser.add_argument(
        "--config", metavar="FILE", default=argparse.SUPPRESS, help="YAML or JSON file of field: value pairs; flags override it."
    )
    # a field of a config with a `preset` that defaults to None and that a bundled recipe sets takes
    # the recipe's value: the help says so instead of "(default: None)"
    preset_filled = set(recipe_fields) & {
        f.name
        for t in dataclass_types
        if "preset" in {g.name for g in dataclasses.fields(t)}
        for f in dataclasses.fields(t)
        if f.default is None
    }
    parser.description = (parser.description or "").replace("`", "")  # transformers'/TRL's markdown, in a terminal
    for action in parser._actions:
        _tidy_action(action, preset_filled)
    for short, long in (short_flags or {}).items():
        action = parser._option_string_actions[long]
        action.option_strings.append(short)
        parser._option_string_actions[short] = action
    return parser


def _tidy_action(action: argparse.Action, preset_filled: set[str]) -> None:
    """One option of the help: no markdown, the preset's default named, optional booleans as switches,
    short value names (INT, FLOAT, ...) so that option lines fit 80 columns."""
    if action.help:
        action.help = action.help.replace("`", "")
    if action.dest in preset_filled and action.default is None:
        if "default" not in (action.help or "").lower():
            action.help = f"{action.help or ''} (default: the --preset recipe's)".strip()
        action.preset_filled = True
    if not action.option_strings or action.nargs == 0 or action.metavar is not None:
        return
    kind = getattr(action.type, "__name__", "")  # string_to_bool: transformers' or the copy in trl.scripts
    if kind == "string_to_bool" and action.nargs is None:  # a `bool | None` field (None: the preset's)
        action.nargs, action.const = "?", True  # is a switch too: --flag = --flag true
    # a long list of choices goes into the wrapped help, a short {a,b,c} stays
    if action.choices and len(", ".join(map(str, action.choices))) > 40:
        action.help = f"{action.help or ''} Choices: {', '.join(map(str, action.choices))}.".strip()
    elif action.choices:
        return
    action.metavar = {"int": "INT", "float": "FLOAT", "string_to_bool": "BOOL"}.get(kind, "VALUE" if action.choices else "STR")


def read_config_file(path: Path) -> dict:
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


def parse_config_args(
    argv: list[str], dataclass_types, *, usage_error: Callable[[str], typer.BadParameter] | None = None, **options
) -> tuple:
    """Parse ``argv`` into instances of ``dataclass_types``: ``--config FILE`` (JSON or YAML) sets
    fields, flags override them.  ``--help`` prints every field and exits.

    Args:
        usage_error: a dataclass's validation message -> the usage error to raise (default:
            :func:`blame` over the parsed fields).
        options: ``prog``, ``description``, ``defaults``, ``overrides``, ``recipe_fields`` of
            :func:`parse_config_values`.

    Raises:
        typer.BadParameter: an unknown flag or config key, a bad value (exit code 2).
    """
    return build_dataclasses(dataclass_types, parse_config_values(argv, dataclass_types, **options), usage_error=usage_error)


def parse_config_values(
    argv: list[str],
    dataclass_types,
    *,
    prog: str,
    description: str,
    defaults: dict | None = None,
    overrides: dict | None = None,
    recipe_fields: Collection[str] = (),
    short_flags: dict | None = None,
) -> dict[str, Any]:
    """The field values that ``argv`` and its ``--config`` file give ``dataclass_types`` (every
    field, defaults included), before the dataclasses are made (:func:`build_dataclasses`): one
    parse serves several configs (e.g. a stage and the reference trained before it).

    Args:
        prog, description: the usage line's program name and the help's description.
        defaults: field defaults of this command that differ from the dataclass's (a config overrides them).
        overrides: field values that the config file cannot change (flags still can, unless removed
            from ``argv`` first).
        recipe_fields: the fields a bundled recipe fills (their help names the recipe as the default).
        short_flags: short aliases of long flags (``{"-o": "--output_dir"}``; :func:`make_parser`).

    Raises:
        typer.Exit: ``--help`` was printed.
        typer.BadParameter: an unknown flag or config key, an unparsable value.
    """
    parser = make_parser(dataclass_types, prog, description, recipe_fields, short_flags)
    options = {opt for a in parser._actions for opt in a.option_strings} | {"--config"}
    argv = _negative_values(_collect_list_flags(list(argv), parser, options), options)
    if defaults:
        parser.set_defaults_with_config(**defaults)
    if "--help" in argv or "-h" in argv:
        parser.print_help()
        raise typer.Exit(0)
    argv = _apply_config_file(argv, parser)
    if overrides:
        parser.set_defaults_with_config(**overrides)
    try:
        namespace, unused = parser.parse_known_args(args=argv)
    except _ParseError as e:
        raise typer.BadParameter(str(e)) from None
    if unused:  # what argparse could not place: an unknown flag, or a value without its flag
        raise typer.BadParameter(unknown_flags(unused, options))
    return vars(namespace)


def build_dataclasses(
    dataclass_types, values: dict[str, Any], *, usage_error: Callable[[str], typer.BadParameter] | None = None
) -> tuple:
    """One instance of each of ``dataclass_types`` from the parsed ``values`` (as HfArgumentParser
    makes them: each gets the values of its own init fields).

    Raises:
        typer.BadParameter: a dataclass's own validation (``__post_init__``) refused a value.
    """
    out = []
    for dtype in dataclass_types:
        keys = {f.name for f in dataclasses.fields(dtype) if f.init}
        try:
            out.append(dtype(**{k: copy.deepcopy(v) for k, v in values.items() if k in keys}))
        except (TypeError, ValueError) as e:
            raise (usage_error or (lambda m: blame(m, values)))(str(e)) from None
    return tuple(out)


def _collect_list_flags(argv: list[str], parser, options: set[str]) -> list[str]:
    """A list flag given several times keeps every value (argparse would keep the last occurrence):
    its values are gathered behind one occurrence, at the end (``--flag=value`` read as ``--flag value``)."""
    list_dest = {opt: a.dest for a in parser._actions if a.nargs == "+" for opt in a.option_strings}
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
    return rest + [x for dest, values in lists.items() for x in (f"--{dest}", *values)]


def _apply_config_file(argv: list[str], parser) -> list[str]:
    """``argv`` without ``--config FILE``, whose fields become the parser's defaults.

    Raises:
        typer.BadParameter: no file after --config, an unreadable file, keys that are not fields.
    """
    argv = [x for a in argv for x in (a.split("=", 1) if a.startswith("--config=") else [a])]
    if "--config" not in argv:
        return argv
    k = argv.index("--config")
    if k + 1 >= len(argv):
        raise typer.BadParameter("--config needs a file", param_hint="--config")
    path = Path(argv[k + 1]).expanduser()
    del argv[k : k + 2]
    unknown = parser.set_defaults_with_config(**read_config_file(path))
    if unknown:
        keys = sorted({u[2:] for u in unknown[::2]})
        raise typer.BadParameter(f"{path} sets {keys}, which are not fields of this command (see --help)", param_hint="--config")
    return argv


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


def unknown_flags(given: list[str], options: set[str]) -> str:
    """'unknown flag --anchr_alpha (did you mean --anchor_alpha?)' for the flags of ``given`` that are
    not in ``options``."""
    import difflib

    parts = []
    flags = [a for a in given if a.startswith("-")]
    for flag in dict.fromkeys(a.split("=", 1)[0] for a in flags):
        if flag in options:
            continue
        longs = sorted(o for o in options if o.startswith("--"))
        close = difflib.get_close_matches(flag, longs, n=1, cutoff=0.75)
        if not close and flag.startswith("--"):  # the end of exactly one flag's name: --alpha -> --anchor_alpha
            ends = [o for o in longs if o.endswith("_" + flag[2:])]
            close = ends if len(ends) == 1 else []
        parts.append(flag + (f" (did you mean {close[0]}?)" if close else ""))
    if parts:
        return f"unknown flag{'s' if len(parts) > 1 else ''} {', '.join(parts)}; see --help"
    values = [a for a in given if not a.startswith("-")]  # a value without its flag: `anchored run data.jsonl`
    return (
        f"unexpected argument{'s' if len(values) > 1 else ''} {' '.join(values)}: every setting is a flag "
        "(--name value, e.g. --data FILE); see --help"
    )


def _spellings(flag: str) -> tuple[str, ...]:
    """``--output_dir`` and the hyphenated alias HfArgumentParser accepts for it, ``--output-dir``."""
    return tuple(dict.fromkeys([flag, "--" + flag[2:].replace("_", "-")]))


def peek_flag(argv: list[str], flag: str) -> str | None:
    """The value ``argv`` gives ``flag`` or its hyphenated alias (``--flag v`` or ``--flag=v``),
    else the one its ``--config`` file gives, else None."""
    for i, a in enumerate(argv):
        for f in _spellings(flag):
            if a == f and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(f + "="):
                return a.split("=", 1)[1]
    config = peek_flag(argv, "--config") if flag != "--config" else None
    if config is not None:
        value = read_config_file(Path(config).expanduser()).get(flag[2:])
        return None if value is None else str(value)
    return None


def drop_flag(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag`` (or its hyphenated alias) and its value."""
    out, skip, names = [], False, _spellings(flag)
    for a in argv:
        if skip:
            skip = False
        elif a in names:
            skip = True
        elif not a.startswith(tuple(f + "=" for f in names)):
            out.append(a)
    return out


def exit_diverged(e: FloatingPointError, hint: str = "") -> None:
    """Print a diverged training's message (no traceback) and exit with code 1."""
    from rich.console import Console

    Console(stderr=True).print(f"training diverged: {e}{hint}", style="bold red", markup=False, highlight=False)
    raise typer.Exit(1)


def hold_output_lock(ctx: typer.Context, folder: str | Path) -> None:
    """Hold the lock of the output folder ``folder`` until this command ends, however it ends
    (:func:`anchored_learning.io.lock_output_folder`); under a launcher only the main process
    (``RANK`` 0) takes it.

    Raises:
        typer.BadParameter: another command is writing into the folder (naming it and what to do).
    """
    from anchored_learning.distributed import is_rank0
    from anchored_learning.io import lock_output_folder

    if not is_rank0():
        return

    try:
        ctx.call_on_close(lock_output_folder(folder).release)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--output_dir") from None
