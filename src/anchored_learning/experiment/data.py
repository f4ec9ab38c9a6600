"""The data of an experiment: its target task and its training rows."""

from __future__ import annotations

from typing import Any


def make_task(cfg):
    """The target task object of a resolved config (from the task registry): iGSM gets the
    recipe's ``igsm_*`` options, MedCalc its ``medcalc_calculators``, the file task the data files and scoring settings; None when the
    config has no target (``anchored compare`` without one).

    Raises:
        ValueError: unreadable or malformed data files, or settings that do not fit them.
    """
    from anchored_learning.tasks.registry import get_task

    if cfg.task is None:
        return None
    if cfg.task == "file":
        return get_task(
            "file",
            data=getattr(cfg, "data", None),
            test_data=cfg.test_data,
            score=cfg.score,
            answer_column=cfg.answer_column,
            prompt_column=cfg.prompt_column,
            response_column=cfg.response_column,
            test_fraction=cfg.test_fraction,
            max_new_tokens=cfg.max_new_tokens,
            answer_regex=cfg.answer_regex,
            score_tolerance=cfg.score_tolerance,
        )
    options: dict[str, Any] = {}
    if cfg.task == "igsm":
        options = dict(op_min=cfg.igsm_op_min, op_max=cfg.igsm_op_max, arithmetic=cfg.igsm_arithmetic)
    elif cfg.task == "medcalc" and getattr(cfg, "medcalc_calculators", None):
        options = dict(calculators=list(cfg.medcalc_calculators))
    return get_task(cfg.task, **options)


def check_test_items(cfg, task) -> None:
    """Refuse an ``n_test`` larger than a file task's test rows (the evaluation would score fewer
    items than asked without a word).

    Raises:
        ValueError: names the test set, its row count and the largest ``n_test`` it allows.
    """
    if task is None or getattr(task, "name", None) != "file" or cfg.n_test is None:
        return
    n = len(task.examples("test"))
    if int(cfg.n_test) > n:
        raise ValueError(
            f"n_test {cfg.n_test} asks for more test items than {task.test_source} has ({n} rows): "
            f"give --n_test {n} or less, or drop it (every row)"
        )


def check_test_prompts_fit(cfg, task, model: str | None) -> None:
    """Refuse, before any model is loaded, target test prompts (the ``n_test`` items the evaluation
    draws) that leave no room for the task's ``max_new_tokens`` in ``model``'s context
    (:func:`~anchored_learning.evaluation.generation.check_prompts_fit`); the training rows are
    checked by :func:`~anchored_learning.data.check_response_tokens_fit`.

    Raises:
        ValueError: from ``check_prompts_fit``, naming the task.
    """
    from transformers import AutoConfig

    from anchored_learning.evaluation.generation import check_prompts_fit
    from anchored_learning.evaluation.suites import task_examples
    from anchored_learning.models import load_tokenizer, resolve_model_path

    if task is None:
        return
    config = AutoConfig.from_pretrained(resolve_model_path(model)).get_text_config()
    prompts = [e.prompt for e in task_examples(task, cfg.n_test, cfg.seed)]
    what = f"test prompts of {getattr(task, 'label', None) or cfg.task}"
    check_prompts_fit(
        load_tokenizer(model), prompts, int(task.max_new_tokens), getattr(config, "max_position_embeddings", None), what
    )


def _as_turns(prompt) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def load_training_rows(cfg, task) -> list[dict[str, Any]]:
    """Training examples as TRL conversational prompt-completion rows: the file task's training
    rows, else the rows of ``cfg.data`` (with another target task), else the task's generated
    training set; the first ``cfg.n_train`` when it is set.

    Raises:
        ValueError: a malformed data file (names the file, the row and the columns found), or
            more rows asked for than there are.
    """
    from anchored_learning.data import load_conversations

    if getattr(task, "name", None) == "file":
        exs = task.examples("train", cfg.n_train)
    elif cfg.data:
        convs = load_conversations(cfg.data, split="train", prompt_column=cfg.prompt_column, response_column=cfg.response_column)
        return [c.as_row() for c in convs[: cfg.n_train or None]]
    else:
        exs = task.examples("train", cfg.n_train, seed=cfg.seed)
    return [{"prompt": _as_turns(e.prompt), "completion": [{"role": "assistant", "content": e.response}]} for e in exs]


def data_fingerprints(cfg) -> dict[str, str | None]:
    """SHA-256 of the contents of the config's data files (``data``, ``test_data``; a folder: every
    file in it, by relative path; a Hub id: None), so that a run folder is not resumed after its data
    changed under the same path."""
    import hashlib
    from pathlib import Path

    out: dict[str, str | None] = {}
    for key in ("data", "test_data"):
        source = getattr(cfg, key, None)
        if source is None:
            continue
        p = Path(str(source).rsplit(":", 1)[0] if not Path(source).exists() else source).expanduser()
        if p.is_file():
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            h = hashlib.sha256()
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                h.update(str(f.relative_to(p)).encode() + b"\0" + f.read_bytes())
            out[key] = h.hexdigest()
        else:
            out[key] = None
    return out
