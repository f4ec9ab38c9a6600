"""The frontier study: where each family of runs stands on the gain-vs-degradation plane.

A *family* is every run of one method (all SFT runs over learning rate x epochs, the reference
model included; every Anchored Learning run over alpha, T and K; WiSE-FT over w; ...).  The base
model, at gain 0 and degradation 0, belongs to every family (it is the run with no training).

The question users ask is "does this forget less than my tuned SFT, at the same gain?".  It is
answered here by comparing each run with SFT's *frontier* (its non-dominated runs, joined by
straight lines, as in ``results/*/frontier.png``):

* **degradation at SFT-matched gain** of a run (gain g, degradation d): ``d - D_sft(g)``, where
  ``D_sft(g)`` is the degradation SFT's frontier needs for gain g (linear between its runs; the
  lowest point's degradation below its gain; undefined above SFT's best gain).  Negative: the run
  forgets less than SFT at the same gain.
* **gain at SFT-matched degradation**: ``g - G_sft(d)`` (``G_sft`` linear between frontier runs,
  SFT's best gain beyond its most-degrading frontier run; undefined below its least-degrading
  one).  Positive: the run gains more than SFT at the same degradation.
* **hypervolume** of a family: the area (points x %) of the plane its runs dominate between gain
  0 and a reference degradation (the worst run's degradation plus a tenth of the range), larger
  is better.

* **drift view**: the same statistics with the held-out drift KL(p0 || p) (nats per token, the
  ``drift`` suite) in place of the suite's degradation: how far a run moved in distribution space,
  the quantity Anchored Learning bounds (arXiv:2605.04468, the per-iteration bound), whether or not
  the benchmarks of the suite see it.

Intervals are percentile intervals of a paired bootstrap over seeds and items: each replicate
draws the seeds with replacement and, for each draw, the items of every suite with replacement,
the same item indices for every run of that seed (runs of one seed were evaluated on the same
items), and recomputes every gain, degradation, frontier and statistic.  Gain and degradation
of a run are the means over its seeds of the per-seed values defined in
:mod:`anchored_learning.evaluation.metrics` (arXiv:2605.04468's evaluation protocol).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anchored_learning.evaluation.metrics import _stat  # mean (weighted: ratio of sums) per row of indices
from anchored_learning.io import read_json
from anchored_learning.tables import pareto_frontier

#: the family every other one is compared with
REFERENCE_FAMILY = "sft"
#: the run whose numbers lead the report: the preset's Anchored Learning settings, fixed before any result
HEADLINE = "anchored"


def method_of(evaluation: Mapping[str, Any], where: str = "an evaluation") -> str:
    """The method (family) recorded with an evaluation of a trained run (``meta.method``, written by
    :func:`~anchored_learning.experiment.stages.evaluate_model`).

    Raises:
        ValueError: an evaluation that does not record it (made by ``anchored compare``, not a run).
    """
    method = evaluation.get("meta", {}).get("method")
    if not method:
        raise ValueError(
            f"{where} does not record the method that made it (meta.method): only runs of `anchored run` / "
            "`anchored frontier` are put on a frontier; re-run the command on that folder to record it"
        )
    return method


# ------------------------------------------------------------------------------ frontier geometry


def frontier_curve(points: Sequence[tuple[float, float]], include_origin: bool = True) -> np.ndarray:
    """The non-dominated points of ``(degradation, gain)`` pairs as an array ``[k, 2]`` sorted by
    gain (then degradation) ascending; along it degradation rises with gain.

    A point is dominated when another has degradation <= and gain >= with one strict.  With
    ``include_origin`` the base model (0, 0) is one of the points.  Non-finite points are ignored.
    """
    pts = [(float(d), float(g)) for d, g in points if np.isfinite(d) and np.isfinite(g)]
    pts = sorted(set(pts + ([(0.0, 0.0)] if include_origin else [])))
    # non-dominated points sorted by degradation: their gains rise too
    return np.asarray([pts[i] for i in pareto_frontier(pts)], dtype=np.float64).reshape(-1, 2)


def degradation_at_gain(curve: np.ndarray, gain: float) -> float:
    """``D(g)``: the degradation (%) the frontier ``curve`` (from :func:`frontier_curve`) needs for
    gain ``g`` points: linear between its points, its first point's degradation below its lowest
    gain, NaN above its highest gain (the family never gains that much)."""
    d, g = curve[:, 0], curve[:, 1]
    if not np.isfinite(gain) or gain > g[-1]:
        return float("nan")
    if gain <= g[0]:
        return float(d[0])
    return float(np.interp(gain, g, d))


def gain_at_degradation(curve: np.ndarray, degradation: float) -> float:
    """``G(d)``: the gain (points) the frontier ``curve`` reaches at degradation ``d`` %: linear
    between its points, its best gain beyond its most-degrading point, NaN below its
    least-degrading point (the family never forgets that little)."""
    d, g = curve[:, 0], curve[:, 1]
    if not np.isfinite(degradation) or degradation < d[0]:
        return float("nan")
    if degradation >= d[-1]:
        return float(g[-1])
    return float(np.interp(degradation, d, g))


def hypervolume(points: Sequence[tuple[float, float]], ref_degradation: float) -> float:
    """Area (points x %) of ``{(d, g): some point has degradation <= d <= ref_degradation and
    0 <= g <= its gain}``: the part of the plane a family dominates above gain 0 and left of the
    reference degradation.  The base model (0, 0) adds nothing."""
    curve = frontier_curve([(d, g) for d, g in points if d < ref_degradation and g > 0], include_origin=False)
    area = 0.0
    for i, (d, g) in enumerate(curve):  # gain and degradation both rise along the curve
        right = curve[i + 1, 0] if i + 1 < len(curve) else ref_degradation
        area += (right - d) * g
    return float(area)


# ------------------------------------------------------------------------------ data and bootstrap


def load_frontier_evals(folder: str | Path, seeds: Sequence[int] | None = None) -> dict[int, dict[str, dict[str, Any]]]:
    """``{seed: {label: evaluation}}`` from ``folder/seed-<s>/evals/<label>.json`` (the layout of
    ``anchored run --seeds`` / ``anchored frontier``), or ``folder/evals`` as seed ``config.seed``
    for a single-seed run.

    Raises:
        ValueError: no such folder, no evaluations of the base model, a requested seed missing, or
            an evaluation file that is not valid JSON (named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} does not exist: give the study's folder with -o (--output_dir)")
    dirs = {int(p.name.split("-", 1)[1]): p for p in folder.glob("seed-*") if p.name.split("-", 1)[1].isdigit()}
    if not dirs and (folder / "evals").is_dir():
        seed = read_json(folder / "config.json").get("seed", 0) if (folder / "config.json").exists() else 0
        dirs = {int(seed): folder}
    nothing = f"{folder} holds no evaluation of the base model (evals/base.json): nothing to compare yet"
    if not dirs:
        raise ValueError(nothing)
    out = {}
    for s in sorted(dirs) if seeds is None else seeds:
        if s not in dirs:
            present = sorted(dirs)
            raise ValueError(
                f"{folder} has no seed-{s} folder; seeds present: {present} (report those with --seeds "
                f"{','.join(map(str, present))})"
            )
        evals = {p.stem: read_json(p) for p in sorted((dirs[s] / "evals").glob("*.json"))}
        if "base" in evals:
            out[s] = evals
    if not out:
        raise ValueError(nothing)
    return out


def _per_item(res: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(res["items"], dtype=np.float64)
    w = None if res.get("weights") is None else np.asarray(res["weights"], dtype=np.float64)
    return x, w


def bootstrap_points(
    evals: Mapping[int, Mapping[str, Mapping[str, Any]]],
    labels: Sequence[str],
    target: str,
    heldout: Sequence[str],
    n_boot: int = 2000,
    seed: int = 0,
    relative: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Gain and mean degradation of every run, on the full sample and on paired bootstrap
    replicates over seeds and items (module docstring).

    Args:
        evals: ``{seed: {label: evaluate() output}}`` with ``"base"`` and every label in every seed.
        labels: the runs, in output order.
        target: the target suite (gain, points).
        heldout: the held-out suites (degradation, % relative to the base, averaged).
        relative: False: the degradation is the mean change in the suites' own units, not relative
            to the base (for ``drift``, whose base value KL(p0 || p0) is 0: the run's drift KL in
            nats per token).

    Returns:
        ``(gain, degradation)``, each ``[len(labels), n_boot + 1]``; column 0 is the full-sample
        estimate (the mean over seeds of each seed's value), columns 1.. the replicates.

    Raises:
        ValueError: a run or suite missing in some seed, items not aligned with the base's, or a
            held-out base score of 0 (relative degradation undefined).
    """
    seeds = sorted(evals)
    S, M, rng = len(seeds), len(labels), np.random.default_rng(seed)
    seed_draws = np.vstack([np.arange(S)[None], rng.integers(0, S, size=(n_boot, S))])  # [B+1, S]
    gain = np.zeros((M, n_boot + 1))
    deg = np.zeros((M, n_boot + 1))
    for j in range(S):  # the j-th seed drawn in each replicate
        for si, s in enumerate(seeds):
            rows = np.nonzero(seed_draws[:, j] == si)[0]  # replicates whose j-th draw is seed s
            if rows.size == 0:
                continue
            base = evals[s]["base"]["results"]
            for k, suite in enumerate([target, *heldout]):
                if suite not in base:
                    raise ValueError(f"seed {s}: the base model has no {suite!r} evaluation")
                xb, w = _per_item(base[suite])
                n = xb.size
                idx = rng.integers(0, n, size=(rows.size, n))
                idx[rows == 0] = np.arange(n)  # replicate 0 is the full sample
                mb = _stat(xb, w, idx)
                hib = bool(base[suite].get("higher_is_better", True))
                if k > 0 and relative and np.any(mb == 0):
                    raise ValueError(f"seed {s}: the base model scores 0 on {suite!r}; relative degradation is undefined")
                for m, label in enumerate(labels):
                    res = evals[s].get(label, {}).get("results", {}).get(suite)
                    if res is None:
                        raise ValueError(f"seed {s}: {label!r} has no {suite!r} evaluation")
                    if res.get("uids") != base[suite].get("uids") or len(res["items"]) != n:
                        raise ValueError(f"seed {s}: {label!r}'s {suite!r} items are not the base model's")
                    ma = _stat(_per_item(res)[0], w, idx)
                    if k == 0:
                        gain[m, rows] += 100.0 * (ma - mb) / S
                    else:
                        drop = (mb - ma) if hib else (ma - mb)
                        scale = 100.0 / np.abs(mb) if relative else 1.0
                        deg[m, rows] += scale * drop / (S * len(heldout))
    return gain, deg


def _ci(values: np.ndarray, level: float = 0.95) -> list[float] | None:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    q = (1 - level) / 2
    return [float(np.quantile(v, q)), float(np.quantile(v, 1 - q))]


def _estimate(values: np.ndarray) -> dict[str, Any]:
    """``{"value", "ci", "defined"}`` from a row ``[B+1]`` (column 0 the full sample)."""
    reps = values[1:]
    return {
        "value": None if not np.isfinite(values[0]) else float(values[0]),
        "ci": _ci(reps),
        "defined": float(np.isfinite(reps).mean()) if reps.size else 0.0,
    }


def frontier_statistics(labels: Sequence[str], gain, deg, families: Mapping[str, str], reference_family=REFERENCE_FAMILY):
    """Every statistic of the module docstring from :func:`bootstrap_points`' arrays (``gain``,
    ``deg``: ``np.ndarray`` ``[len(labels), R]``); ``families``: each label's family, the method of
    the variant that made it (:func:`method_of`), ``reference_family`` the one compared with.

    Returns:
        ``{"points": [{label, family, gain, degradation, on_family_frontier, on_frontier,
        degradation_at_matched_gain, gain_at_matched_degradation, vs_highest_gain_reference}],
        "families": {family:
        {labels, frontier, hypervolume, hypervolume_minus_reference}}, "ref_degradation",
        "reference_family"}``; every estimate is ``{"value", "ci", "defined"}`` (``defined``: the
        share of replicates where it exists).

    Raises:
        ValueError: no run of the reference family.
    """
    fam = [families[lab] for lab in labels]
    ref_rows = [m for m, f in enumerate(fam) if f == reference_family]
    if not ref_rows:
        raise ValueError(f"no run of the {reference_family!r} family to compare with")
    R = gain.shape[1]
    full = gain[:, 0], deg[:, 0]
    ref_deg = max(0.0, float(full[1].max()))
    ref_deg += 0.1 * (ref_deg - min(0.0, float(full[1].min()))) or 1.0
    families = sorted(set(fam), key=lambda f: (f != reference_family, fam.index(f)))
    matched_d = np.full((len(labels), R), np.nan)
    matched_g = np.full((len(labels), R), np.nan)
    hv = {f: np.zeros(R) for f in families}
    for r in range(R):
        ref_curve = frontier_curve([(deg[m, r], gain[m, r]) for m in ref_rows])
        for m in range(len(labels)):
            if fam[m] != reference_family:
                matched_d[m, r] = deg[m, r] - degradation_at_gain(ref_curve, gain[m, r])
                matched_g[m, r] = gain[m, r] - gain_at_degradation(ref_curve, deg[m, r])
        for f in families:
            hv[f][r] = hypervolume([(deg[m, r], gain[m, r]) for m in range(len(labels)) if fam[m] == f], ref_deg)
    overall = frontier_curve(list(zip(full[1], full[0])))
    members = {f: [m for m in range(len(labels)) if fam[m] == f] for f in families}
    curves = {f: frontier_curve([(full[1][m], full[0][m]) for m in members[f]]) for f in families}

    def on(curve: np.ndarray, m: int) -> bool:
        """Whether run ``m``'s full-sample point lies on ``curve``."""
        return bool(any(np.allclose(p, (full[1][m], full[0][m])) for p in curve))

    best = max(ref_rows, key=lambda m: full[0][m])  # SFT's highest-gain run, chosen on the full sample
    points = []
    for m, label in enumerate(labels):
        points.append(
            {
                "label": label,
                "family": fam[m],
                "gain": _estimate(gain[m]),
                "degradation": _estimate(deg[m]),
                "on_family_frontier": on(curves[fam[m]], m),
                "on_frontier": on(overall, m),
                "degradation_at_matched_gain": None if fam[m] == reference_family else _estimate(matched_d[m]),
                "gain_at_matched_degradation": None if fam[m] == reference_family else _estimate(matched_g[m]),
                "vs_highest_gain_reference": None
                if fam[m] == reference_family
                else {
                    "label": labels[best],
                    "gain_difference": _estimate(gain[m] - gain[best]),
                    "degradation_difference": _estimate(deg[m] - deg[best]),
                },
            }
        )
    fams = {}
    for f in families:
        fams[f] = {
            "labels": [labels[m] for m in members[f]],
            "curve": curves[f].tolist(),  # [[degradation, gain], ...] from the base model at (0, 0), gain rising
            "frontier": [labels[m] for m in members[f] if on(curves[f], m)],
            "hypervolume": _estimate(hv[f]),
            "hypervolume_minus_reference": None if f == reference_family else _estimate(hv[f] - hv[reference_family]),
        }
    return {"points": points, "families": fams, "ref_degradation": ref_deg, "reference_family": reference_family}
