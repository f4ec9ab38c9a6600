"""The data of an experiment: its target task and its training rows."""

from __future__ import annotations

import json
from typing import Any

from anchored_learning.experiment.config import ExperimentConfig


def make_task(cfg: ExperimentConfig):
    """The target task object of ``cfg.task`` (from the task registry; iGSM gets the recipe's
    ``igsm_*`` options)."""
    from anchored_learning.tasks.registry import get_task

    options = dict(op_min=cfg.igsm_op_min, op_max=cfg.igsm_op_max, arithmetic=cfg.igsm_arithmetic) if cfg.task == "igsm" else {}
    return get_task(cfg.task, **options)


def _parse_line(path: str, i: int, raw: bytes) -> list[tuple[str, str]]:
    """``[(prompt, response)]`` of line ``i`` of a jsonl data file (``[]`` for a blank line).

    Raises:
        ValueError: naming the file, the line and what is wrong with it.
    """
    where = f"{path}:{i}"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not UTF-8 text ({e}); save the file as UTF-8") from None
    if not line.strip():
        return []
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not a JSON object ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(
            f"{where}: each line must be a JSON object with string 'prompt' and 'response' (or 'completion') fields, got {type(obj).__name__}"
        )
    key = "response" if "response" in obj else "completion"
    for name, value in (("prompt", obj.get("prompt")), (key, obj.get(key))):
        if value is None:
            raise ValueError(
                f"{where}: missing field {name!r} (fields found: {sorted(obj)}); each line needs 'prompt' and 'response' (or 'completion')"
            )
        if not isinstance(value, str):
            raise ValueError(f"{where}: field {name!r} must be a string, got {type(value).__name__} {value!r}")
        if not value.strip():
            raise ValueError(f"{where}: field {name!r} is empty")
    return [(obj["prompt"], obj[key])]


def load_training_rows(cfg: ExperimentConfig, task) -> list[dict[str, Any]]:
    """Training examples as conversational prompt-completion rows.

    Raises:
        ValueError: a user data file with a malformed line (names the file, the line and the field).
    """
    if cfg.data:
        rows = []
        with open(cfg.data, "rb") as f:
            for i, raw in enumerate(f, 1):
                rows.extend(_parse_line(cfg.data, i, raw))
        if not rows:
            raise ValueError(f"{cfg.data} holds no examples; write one JSON object with 'prompt' and 'response' per line")
        rows = rows[: cfg.n_train] if cfg.n_train else rows
    else:
        rows = [(e.prompt, e.response) for e in task.examples("train", cfg.n_train, seed=cfg.seed)]
    return [{"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": r}]} for p, r in rows]
