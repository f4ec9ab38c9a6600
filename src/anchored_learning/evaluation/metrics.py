"""Gain, degradation and paired-bootstrap confidence intervals.

Conventions (the evaluation protocol of arXiv:2605.04468): scores are fractions in [0, 1] (accuracy, task
score), so

* gain (percentage points) = 100 * (after - before)   on the target task;
* degradation (%)          = 100 * (before - after) / before   per held-out benchmark (a relative
  drop; negative = improvement), and the unweighted mean over benchmarks.  For lower-is-better
  metrics (NLL) pass ``higher_is_better=False``: 100 * (after - before) / before.

Confidence intervals are percentile intervals of a paired bootstrap over items: the same resampled
item indices are applied to the before and after per-item scores (items must be in the same
order, as :func:`anchored_learning.evaluation.suites.evaluate` guarantees for equal seed and
limit).  Resampling uses ``numpy.random.default_rng(seed)``.  Per-item weights (token counts for
NLL / drift) turn the statistic into a ratio of weighted sums.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


def gain(before: float, after: float, scale: float = 100.0) -> float:
    """Target-task gain in points: ``scale * (after - before)`` (scores as fractions -> points)."""
    return float(scale * (after - before))


def degradation(before: float, after: float, higher_is_better: bool = True) -> float:
    """Relative drop in %: ``100 * (before - after) / before`` (sign flipped when lower is better).

    Raises:
        ValueError: ``before`` is 0 (relative change undefined) or not finite.
    """
    if not np.isfinite(before) or before == 0:
        raise ValueError(f"degradation undefined for before={before}")
    drop = (before - after) if higher_is_better else (after - before)
    return float(100.0 * drop / abs(before))


def mean_degradation(
    before: Mapping[str, float], after: Mapping[str, float], higher_is_better: Mapping[str, bool] | None = None
) -> dict[str, Any]:
    """Degradation per benchmark (keys present in both) and their unweighted mean.

    Returns:
        ``{"per_benchmark": {name: %}, "mean": %}``.

    Raises:
        ValueError: no common benchmark.
    """
    names = [k for k in before if k in after]
    if not names:
        raise ValueError("no benchmark present in both before and after")
    hib = higher_is_better or {}
    per = {k: degradation(before[k], after[k], hib.get(k, True)) for k in names}
    return {"per_benchmark": per, "mean": float(np.mean(list(per.values())))}


def _heldout_suites(results: Mapping[str, Any], targets: Sequence[str]) -> list[str]:
    """The suites of one evaluation's results that degradation is measured on: scored per item,
    neither a target nor a drift suite (drift has no "before")."""
    return [k for k, r in results.items() if "items" in r and k not in targets and not k.startswith("drift")]


def degradation_members(
    bases: Sequence[Mapping[str, Any]], evals: Sequence[Mapping[str, Any]], targets: Sequence[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """The held-out suites that every mean degradation of a report averages over, the same for
    every row and every seed: one rule for ``run``, ``compare`` and ``frontier``.

    A suite is a member when every base evaluation and every other evaluation scored it, and no
    base evaluation scores 0 on it (a relative drop from 0 is undefined); any other suite that some
    evaluation scored is left out of every mean, with the reason.

    Args:
        bases: the base model's evaluations (one per seed), ``evaluate()`` outputs or their ``results``.
        evals: every other evaluation the report compares with a base (any seed).
        targets: target suites (scored as gain, never members).

    Returns:
        ``(members, left_out)``: member suite names in the first base's order, and
        ``{suite: reason}`` for the others.
    """
    results = [e.get("results", e) for e in [*bases, *evals]]
    seen = list(dict.fromkeys(k for r in results for k in _heldout_suites(r, targets)))
    members, left_out = [], {}
    for k in seen:
        if not all(k in r and "items" in r[k] for r in results):
            left_out[k] = "not scored for every model and seed"
        elif any(not b.get("results", b)[k]["primary"] for b in bases):
            left_out[k] = "the base model scores 0 on it: a relative drop from 0 is undefined"
        else:
            members.append(k)
    return members, left_out


def left_out_note(left_out: Mapping[str, str]) -> str:
    """The warning printed and written with a report whose mean degradation leaves suites out ('' for none)."""
    if not left_out:
        return ""
    return "Left out of every mean degradation: " + "; ".join(f"{k} ({why})" for k, why in left_out.items()) + "."


def _stat(x: np.ndarray, w: np.ndarray | None, idx: np.ndarray) -> np.ndarray:
    """Statistic for each row of bootstrap indices ``idx`` [B, n] -> [B]."""
    if w is None:
        return x[idx].mean(axis=1)
    return (x[idx] * w[idx]).sum(axis=1) / np.maximum(w[idx].sum(axis=1), 1e-300)


def _as_arrays(before, after, weights):
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    if b.shape != a.shape or b.ndim != 1 or b.size == 0:
        raise ValueError(f"paired items must be equal-length non-empty 1-D: {b.shape} vs {a.shape}")
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if w is not None and w.shape != b.shape:
        raise ValueError("weights must match the items")
    return b, a, w


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` resampling indices from ``numpy.random.default_rng(seed)``."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_ci(
    items: Sequence[float], *, weights: Sequence[float] | None = None, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``items`` (weighted when ``weights`` given) and its percentile bootstrap CI.

    Returns:
        ``(estimate, low, high)``.
    """
    x, _, w = _as_arrays(items, items, weights)
    idx = bootstrap_indices(len(x), n_boot, seed)
    est = float(_stat(x, w, np.arange(len(x))[None])[0])
    s = _stat(x, w, idx)
    q = (1 - level) / 2
    return est, float(np.quantile(s, q)), float(np.quantile(s, 1 - q))


def paired_bootstrap(
    before: Sequence[float],
    after: Sequence[float],
    statistic: Callable[[float, float], float],
    *,
    weights: Sequence[float] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Paired bootstrap of ``statistic(mean_before, mean_after)`` over items.

    Args:
        before, after: per-item scores of the same items in the same order.
        statistic: e.g. :func:`gain` or :func:`degradation`.
        weights: optional per-item weights (same for before and after).

    Returns:
        ``(estimate on all items, CI low, CI high)``; resamples where the statistic is undefined
        (ValueError, e.g. a zero baseline) are dropped.

    Raises:
        ValueError: mismatched inputs, or the statistic is undefined on the full sample.
    """
    b, a, w = _as_arrays(before, after, weights)
    full = np.arange(len(b))[None]
    est = float(statistic(float(_stat(b, w, full)[0]), float(_stat(a, w, full)[0])))
    idx = bootstrap_indices(len(b), n_boot, seed)
    mb, ma = _stat(b, w, idx), _stat(a, w, idx)
    vals = []
    for x, y in zip(mb, ma):
        try:
            vals.append(statistic(float(x), float(y)))
        except ValueError:
            continue
    if not vals:
        raise ValueError("statistic undefined on every bootstrap resample")
    q = (1 - level) / 2
    return est, float(np.quantile(vals, q)), float(np.quantile(vals, 1 - q))


def _primary_items(res: Mapping[str, Any]) -> tuple[list[float], list[float] | None]:
    return list(res["items"]), (list(res["weights"]) if res.get("weights") is not None else None)


def compare(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    targets: Sequence[str] = (),
    members: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Gain on target suites and degradation on every other common suite, with paired CIs.

    Args:
        before, after: two outputs of :func:`~anchored_learning.evaluation.suites.evaluate`
            (``{"results": {suite: {...}}}``) or their ``"results"`` mappings, computed with the
            same limit and seed so items align.
        targets: suite names scored as gain; all other suites present in both (except ``drift``,
            which has no "before") are held-out and scored as degradation.
        members: the held-out suites the degradation and its mean are measured on (a report's
            :func:`degradation_members`, the same for every row); default: every common held-out
            suite whose base score is not 0.  The others are listed under ``"left_out"``.

    Returns:
        ``{"gain": {suite: {"points", "ci"}}, "degradation": {suite: {"percent", "ci"}},
        "mean_degradation": {"percent", "ci"}, "left_out": [suite, ...], "n_boot", "seed"}``.  The mean's CI resamples each
        benchmark's items independently (same seed stream) and averages.

    Raises:
        ValueError: a common suite whose items are not aligned (different ``n`` or ``uids``).
    """
    B = before.get("results", before)
    A = after.get("results", after)
    out: dict[str, Any] = {"gain": {}, "degradation": {}, "left_out": [], "n_boot": n_boot, "seed": seed}
    common = [k for k in B if k in A and "items" in B[k] and "items" in A[k] and k != "drift" and not k.startswith("drift")]
    if members is None:
        members = [k for k in common if k not in targets and B[k]["primary"]]
    rng_seed = seed
    boot_deg: list[np.ndarray] = []
    for k in common:
        rb, ra = B[k], A[k]
        if len(rb["items"]) != len(ra["items"]) or rb.get("uids") != ra.get("uids"):
            raise ValueError(f"suite {k!r}: items are not aligned between before and after")
        xb, w = _primary_items(rb)
        xa, _ = _primary_items(ra)
        hib = bool(rb.get("higher_is_better", True))
        if k not in targets and k not in members:  # e.g. a base score of 0: a relative drop is undefined
            out["left_out"].append(k)
            rng_seed += 1
            continue
        if k in targets:
            est, lo, hi = paired_bootstrap(xb, xa, gain, weights=w, n_boot=n_boot, seed=rng_seed, level=level)
            out["gain"][k] = {"before": rb["primary"], "after": ra["primary"], "points": est, "ci": [lo, hi]}
        else:
            stat = lambda x, y, h=hib: degradation(x, y, h)  # noqa: E731
            est, lo, hi = paired_bootstrap(xb, xa, stat, weights=w, n_boot=n_boot, seed=rng_seed, level=level)
            out["degradation"][k] = {"before": rb["primary"], "after": ra["primary"], "percent": est, "ci": [lo, hi]}
            b, a, ww = _as_arrays(xb, xa, w)
            idx = bootstrap_indices(len(b), n_boot, rng_seed)
            mb, ma = _stat(b, ww, idx), _stat(a, ww, idx)
            with np.errstate(divide="ignore", invalid="ignore"):
                d = 100.0 * ((mb - ma) if hib else (ma - mb)) / np.abs(mb)
            boot_deg.append(d)
        rng_seed += 1
    if out["degradation"]:
        q = (1 - level) / 2
        mean_boot = np.mean(np.vstack(boot_deg), axis=0)
        mean_boot = mean_boot[np.isfinite(mean_boot)]
        est = float(np.mean([v["percent"] for v in out["degradation"].values()]))
        ci = (
            [float(np.quantile(mean_boot, q)), float(np.quantile(mean_boot, 1 - q))]
            if mean_boot.size
            else [float("nan"), float("nan")]
        )
        out["mean_degradation"] = {"percent": est, "ci": ci}
    return out
