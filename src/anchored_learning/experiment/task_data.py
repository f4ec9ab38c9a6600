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


def training_examples(cfg, task) -> list | None:
    """The target task's :class:`~anchored_learning.tasks.base.Example` objects the training rows
    are made of (the file task's training rows, else the task's generated training set; the first
    ``cfg.n_train``), or None when the rows come from ``cfg.data`` with another target task (no
    task example, so no scoring rule, stands behind them)."""
    if getattr(task, "name", None) == "file":
        return task.examples("train", cfg.n_train)
    if cfg.data or task is None:
        return None
    return task.examples("train", cfg.n_train, seed=cfg.seed)


def load_training_rows(cfg, task) -> list[dict[str, Any]]:
    """Training examples as TRL conversational prompt-completion rows: the file task's training
    rows, else the rows of ``cfg.data`` (with another target task), else the task's generated
    training set; the first ``cfg.n_train`` when it is set.

    Raises:
        ValueError: a malformed data file (names the file, the row and the columns found), or
            more rows asked for than there are.
    """
    from anchored_learning.data import load_conversations

    exs = training_examples(cfg, task)
    if exs is None:
        convs = load_conversations(cfg.data, split="train", prompt_column=cfg.prompt_column, response_column=cfg.response_column)
        return [c.as_row() for c in convs[: cfg.n_train or None]]
    return [{"prompt": _as_turns(e.prompt), "completion": [{"role": "assistant", "content": e.response}]} for e in exs]


def prior_training_rows(cfg) -> list[dict[str, Any]]:
    """The prior skill's training rows (sequential fine-tuning): the first ``prior_n_train`` of
    ``cfg.prior_task``'s generated training set at the run's seed, as TRL prompt-completion rows; []
    without a prior skill.  The task is the registry's, with its default options: the same object
    that scores it as a held-out member.

    Raises:
        ValueError: the task cannot give that many training examples.
    """
    from anchored_learning.tasks.registry import get_task

    if not getattr(cfg, "prior_task", None):
        return []
    exs = get_task(cfg.prior_task).examples("train", int(cfg.prior_n_train), seed=cfg.seed)
    return [{"prompt": _as_turns(e.prompt), "completion": [{"role": "assistant", "content": e.response}]} for e in exs]


def self_generated_training_rows(
    path, rows: list[dict[str, Any]], score, model, tokenizer, args, log=print
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The training rows of ``sft_self_generated``, recorded at ``path`` (resumable).

    Rejection sampling (:func:`anchored_learning.sampling.self_generated_rows`) from ``model`` (the
    base model) with the sampling settings of ``args`` (an ``AnchoredSFTConfig``); a record at
    ``path`` made with the same rows and settings is read instead of sampling again.

    Args:
        path: the record (JSONL: a header with the settings and the report, then one row a line).
        rows: the dataset's training rows (TRL conversational prompt-completion).
        score: ``score(i, response_text) -> float`` in [0, 1], the task's rule for row i.

    Returns:
        ``(rows, report)``: the rows to train on (each with its ``self_generated`` flag) and the
        report (``n``, ``accepted``, ``accepted_share`` and the settings).
    """
    import hashlib
    import json
    from pathlib import Path

    from anchored_learning.sampling import read_record, self_generated_rows, write_record

    path = Path(path)
    settings = {
        "rows_sha256": hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest(),
        "samples_per_prompt": int(args.samples_per_prompt),
        "temperature": float(args.sampling_temperature),
        "max_new_tokens": args.sampling_max_new_tokens,
        "seed": int(args.seed),
    }
    if path.is_file():
        header, recorded = read_record(path)
        if header.get("settings") == settings and len(recorded) == len(rows):
            log(f"[data] reusing the self-generated rows in {path}")
            return recorded, header["report"]
        log(f"[data] {path} was made with other rows or settings: sampling again")
    new, report = self_generated_rows(
        model,
        tokenizer,
        rows,
        score,
        samples_per_prompt=settings["samples_per_prompt"],
        temperature=settings["temperature"],
        max_new_tokens=settings["max_new_tokens"],
        seed=settings["seed"],
        batch_size=int(args.cache_batch_size),
    )
    write_record(path, {"settings": settings, "report": report}, new)
    return new, report


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
