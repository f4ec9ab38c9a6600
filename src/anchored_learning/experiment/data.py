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


def load_training_rows(cfg: ExperimentConfig, task) -> list[dict[str, Any]]:
    """Training examples as conversational prompt-completion rows.

    Raises:
        ValueError: a user data file with a malformed row (names the file and line).
    """
    if cfg.data:
        rows = []
        with open(cfg.data) as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    prompt, response = obj["prompt"], obj.get("response", obj.get("completion"))
                    if not isinstance(prompt, str) or not isinstance(response, str) or not response:
                        raise KeyError("response")
                except (json.JSONDecodeError, KeyError, TypeError, IndexError) as e:
                    raise ValueError(
                        f"{cfg.data}:{i}: each line must be a JSON object with string 'prompt' and 'response' (or 'completion') fields ({e})"
                    ) from e
                rows.append((prompt, response))
        if not rows:
            raise ValueError(f"{cfg.data} holds no examples; write one JSON object with 'prompt' and 'response' per line")
        rows = rows[: cfg.n_train] if cfg.n_train else rows
    else:
        rows = [(e.prompt, e.response) for e in task.examples("train", cfg.n_train, seed=cfg.seed)]
    return [{"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": r}]} for p, r in rows]
