"""The ``anchored`` command line (typer).

Sub-commands live next to the code they drive and are registered here: ``train``
(anchored_learning.train_command), ``run``, ``sweep``, ``frontier``, ``compare`` and ``tune``
(anchored_learning.experiment.run_commands), ``eval`` (anchored_learning.evaluation.eval_command).
Their flags are parsed by anchored_learning.arguments.
"""

from __future__ import annotations

import logging
import sys

import typer

app = typer.Typer(
    name="anchored",
    help="Fine-tune causal LMs with Anchored Learning and measure gain vs. degradation.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    # click's plain help: wraps to the terminal width (rich's option table truncated names at 80 columns)
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"anchored-learning {version('anchored-learning')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Fine-tune causal LMs with Anchored Learning and measure gain vs. degradation."""


def _register() -> None:
    from anchored_learning.arguments import PASSTHROUGH
    from anchored_learning.evaluation.eval_command import eval_command
    from anchored_learning.experiment.run_commands import (
        compare_command,
        frontier_command,
        run_command,
        sweep_command,
        tune_command,
    )
    from anchored_learning.train_command import train_command

    app.command("run", **PASSTHROUGH)(run_command)
    app.command("train", **PASSTHROUGH)(train_command)
    app.command("sweep", **PASSTHROUGH)(sweep_command)
    app.command("eval")(eval_command)
    app.command("compare", **PASSTHROUGH)(compare_command)
    app.command("frontier", **PASSTHROUGH)(frontier_command)
    app.command("tune", **PASSTHROUGH)(tune_command)


class _DropDeepSpeedCpuNotice(logging.Filter):
    """Drops DeepSpeed's "Setting accelerator to CPU" warning, printed to stdout whenever DeepSpeed is
    imported (transformers/accelerate do so when it is installed) on a machine without a GPU; every
    other DeepSpeed message passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Setting accelerator to CPU")


def _exit_if_disk_full(e: OSError) -> None:
    """Report a full disk (:data:`~anchored_learning.io.DISK_FULL`) without a traceback and exit with
    code 1; any other error returns (to be raised)."""
    from anchored_learning.io import DISK_FULL

    if e.errno not in DISK_FULL:
        return
    where = f" while writing {e.filename}" if e.filename else ""
    typer.echo(
        f"Error: the disk is full ({e.strerror}){where}. Nothing was half-written: every result and model is "
        "written under a temporary name, renamed into place when complete (the interrupted one was removed), and a "
        "training checkpoint whose save did not finish is skipped on resume. Free some space and run the same "
        "command again: the finished stages and complete checkpoints are kept.",
        err=True,
    )
    raise SystemExit(1)


def main() -> None:
    """Entry point of the ``anchored`` console script."""
    logging.getLogger("DeepSpeed").addFilter(_DropDeepSpeedCpuNotice())
    _register()
    try:
        app()
    except OSError as e:
        _exit_if_disk_full(e)
        raise
    finally:  # under torchrun / accelerate launch: leave the process group before the interpreter exits
        if "torch.distributed" in sys.modules:  # (a command that never loaded torch has no group)
            from anchored_learning.distributed import end_process_group

            end_process_group()


if __name__ == "__main__":
    main()
