"""``anchored compare``: how much did a fine-tuned model forget?  A forgetting report for models
trained by any library.

The base model and every fine-tuned model (a Hugging Face folder or id, or a LoRA adapter folder
applied to the base) are scored on the same items of the stability suite (and of the target task
when one is given); the report is that of ``anchored run``: gain and mean degradation with paired
bootstrap intervals, drift KL, the table, and the Pareto plot.  Evaluations are stored under
``evals/`` and reused when the same model is compared again in the same folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anchored_learning.experiment.experiment_config import CompareConfig
from anchored_learning.experiment.report import write_report
from anchored_learning.experiment.stages import check_resume, config_record, evaluate_model
from anchored_learning.experiment.task_data import check_test_items, check_test_prompts_fit, make_task
from anchored_learning.io import check_output_path, write_json_atomic


def is_adapter_folder(path: str) -> bool:
    """Whether ``path`` is a PEFT adapter folder (``adapter_config.json``, no ``config.json``)."""
    p = Path(path).expanduser()
    return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def model_labels(paths: list[str]) -> list[str]:
    """Short unique labels for the report: the folder name (its parent's name for a ``final``
    folder, as ``anchored run`` and ``anchored train`` write them), numbered when repeated.

    Raises:
        ValueError: the same model given twice, or one labelled ``base``.
    """
    resolved = [str(Path(p).expanduser().resolve()) if Path(p).expanduser().exists() else p for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"a model is given twice in --model {paths}")
    raw = []
    for p in paths:
        parts = Path(p.rstrip("/")).parts
        name = parts[-1] if parts else p
        if name in ("final", "trainer") and len(parts) > 1:
            name = parts[-2]
        raw.append(name)
    labels = []
    for i, name in enumerate(raw):
        labels.append(name if raw.count(name) == 1 else f"{name}#{raw[: i + 1].count(name)}")
    if "base" in labels:
        raise ValueError("a model folder named 'base' would be confused with the base model's row; rename the folder")
    return labels


def check_model(path: str, base: str | None) -> None:
    """Fail before any work when ``path`` cannot be loaded as a fine-tuned model of ``base``: a
    model folder or id that does not share the base's vocabulary and tokenizer
    (:func:`~anchored_learning.models.check_same_vocabulary`), or a LoRA adapter trained on another
    base (:func:`check_adapter_base`).

    Raises:
        ValueError: naming the model, the difference and what to pass.
    """
    from anchored_learning.models import check_model_source, check_same_vocabulary

    if is_adapter_folder(path):
        check_adapter_base(path, base)
        return
    check_model_source(path)
    check_same_vocabulary(path, base)


def check_adapter_base(path: str, base: str | None) -> None:
    """Refuse a LoRA adapter whose ``adapter_config.json`` names another base model than ``base``
    (the same name, the same folder, or a folder with the same content pass; an adapter that names
    no base is not checked).

    Raises:
        ValueError: naming the adapter's base, ``base``, and what to do.
    """
    import json

    from anchored_learning.models import BUNDLED_MODEL, model_fingerprint, resolve_model_path

    config = json.loads((Path(path).expanduser() / "adapter_config.json").read_text())
    recorded = config.get("base_model_name_or_path")
    if not recorded:
        return
    given = resolve_model_path(base)
    same_path = Path(recorded).expanduser().exists() and Path(recorded).expanduser().resolve() == Path(given).resolve()
    if recorded in (base, given) or same_path:
        return
    fingerprint = model_fingerprint(recorded)
    if fingerprint is not None and fingerprint == model_fingerprint(given):
        return
    raise ValueError(
        f"{path} is a LoRA adapter of {recorded!r} (its adapter_config.json's base_model_name_or_path), not of the base "
        f"{base or BUNDLED_MODEL!r}: pass --base {recorded} (if {base or BUNDLED_MODEL!r} is a copy of that model, set "
        "base_model_name_or_path to it in adapter_config.json)"
    )


def load_finetuned(path: str, base_path: str, vocab: int):
    """Load a fine-tuned model for evaluation: a model folder or id as is, a LoRA adapter folder
    applied to (a fresh copy of) the base model and merged.

    Args:
        vocab: the base model's output vocabulary (rows of its output embedding).

    Raises:
        ValueError: the model's vocabulary differs from the base's (the items would be tokenized
            differently and drift KL would be undefined), or an adapter's weights do not fit the base.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if is_adapter_folder(path):
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        try:
            model = PeftModel.from_pretrained(base, str(Path(path).expanduser())).merge_and_unload()
        except RuntimeError as e:  # torch's ~200-line "size mismatch for ..." list
            first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e).splitlines()[0])
            raise ValueError(
                f"the LoRA adapter {path} does not fit the base {base_path} ({first}): pass the base it was trained on with --base"
            ) from None
    else:
        from anchored_learning.models import resolve_model_path

        model = AutoModelForCausalLM.from_pretrained(resolve_model_path(path), dtype=torch.float32)
    n = model.get_output_embeddings().weight.shape[0]
    if n != vocab:
        raise ValueError(
            f"{path} has a vocabulary of {n} tokens, the base model {vocab}: compare needs models that share the base's "
            "tokenizer; pass the base it was fine-tuned from with --base"
        )
    return model.eval()


def model_identity(path: str) -> str:
    """``path@<content fingerprint>`` (:func:`~anchored_learning.models.model_fingerprint`; ``path``
    alone when it has none, e.g. a Hub id not in the local cache): an evaluation stored under this
    identity is reused only while the model's content is unchanged."""
    from anchored_learning.models import model_fingerprint

    fingerprint = model_fingerprint(path)
    return str(path) if fingerprint is None else f"{path}@{fingerprint}"


def compare_models(cfg: CompareConfig, console_log: Callable[[str], None] = print) -> dict[str, Any]:
    """Score ``cfg.base`` and every ``cfg.model`` on the same items and write the report.

    Writes ``config.json``, ``evals/<label>.json`` (one per model, reused when the same model is
    compared again), ``results.json``, ``results.md`` and, with a target task, ``pareto.png``
    into ``cfg.output_dir``.

    Returns:
        the ``results.json`` content (rows as in ``anchored run``; ``label`` is the model's label,
        ``models`` maps labels to what was loaded).

    Raises:
        ValueError: everything that can be checked before any work: the config, the output folder,
            every model, the data files of a file task, a folder holding a comparison made with
            other settings.
    """
    from anchored_learning.models import check_model_source, load_model_and_tokenizer, resolve_model_path

    t0 = time.perf_counter()
    cfg = cfg.resolved()
    out = Path(cfg.output_dir)
    check_output_path(out, "folder")
    try:
        check_model_source(cfg.base)
    except ValueError as e:
        raise ValueError(f"base {e}") from None  # "base model 'x' is not a model folder ..."
    labels = model_labels(list(cfg.model))
    base_path = resolve_model_path(cfg.base)
    for m in cfg.model:
        check_model(m, cfg.base)
    record = config_record(cfg, {"base": cfg.base})
    check_resume(out, record, frozenset({"model", "output_dir"}))
    task = make_task(cfg)
    check_test_items(cfg, task)
    check_test_prompts_fit(cfg, task, cfg.base)
    for note in getattr(task, "notes", ()):
        console_log(note)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", record)
    base, tok = load_model_and_tokenizer(base_path)
    vocab = base.get_output_embeddings().weight.shape[0]
    evals = {
        "base": evaluate_model(cfg, out, "base", base, tok, base, task, console_log, model_id=model_identity(str(base_path)))
    }
    for label, path in zip(labels, cfg.model):
        console_log(f"[load] {label}: {path}")
        model = load_finetuned(path, base_path, vocab)
        evals[label] = evaluate_model(cfg, out, label, model, tok, base, task, console_log, model_id=model_identity(path))
        del model
    models = {"base": str(base_path), **dict(zip(labels, cfg.model))}
    return write_report(cfg, out, evals, time.perf_counter() - t0, task=task, extra={"models": models}, log=console_log)
