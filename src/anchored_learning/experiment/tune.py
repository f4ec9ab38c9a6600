"""``anchored tune``: a budgeted, forgetting-aware multi-objective search for a fine-tuning recipe.

Each trial is one variant (a method and field overrides, as a ``--sweep`` entry gives them) of one
run folder (``<output_dir>/run``, an :class:`~anchored_learning.experiment.stages.Experiment`
folder): the base model's evaluation and the reference model p_sft are made once there and read
by every trial, and a trial whose label an earlier trial already trained reuses its model.  The
search is Optuna's (multi-objective TPE by default) with its RDB storage, a sqlite file
``<output_dir>/study.db``: a killed search continues from it (a trial killed mid-way is tried
again with the same values, its training resuming from its last epoch checkpoint).

Objectives (both on the validation split): the target gain (points, maximised) and the mean
relative degradation (%) over the held-out suite (minimised), or with ``objective_member`` the
retention (%, 100 minus the relative drop) of that one held-out member (maximised), e.g. a prior
skill.

Honest statistics: trials are selected on a **validation split** and the selection is reported
on the **test split**.  The test split is the run folder's own evaluation (the items ``anchored
run`` and ``anchored frontier`` score for this seed).  The validation split is, for every suite,
the first items of the same seeded order that are *not* test items (``evaluate(exclude=...)``:
the test items' uids are excluded, so the two are disjoint by construction, and checked).  The
base model and the reference are scored on both.

Cheap trials first: a trial is first scored on the first ``cheap_fraction`` of its validation items
(rung 0).  It is promoted to the whole validation split unless its rung-0 point lies in a
non-dominated layer behind at least a ``1/promotion_eta`` share of the rung-0 points so far
(successive halving over non-dominated sorting; the front is always promoted); otherwise it is
recorded as pruned.  Only promoted trials enter the Pareto set.

The report: the Pareto set on validation (with the reference model p_sft as one more point), SFT's
own validation frontier and the recommended model (the highest validation gain among the points
meeting the constraint ``max_degradation`` or ``min_retention``) are evaluated on the test split,
with the paired bootstrap intervals and the degradation at SFT-matched gain of ``anchored
frontier`` (:mod:`~anchored_learning.experiment.frontier`); the recommendation says whether its
test interval meets the constraint with confidence.

This module runs the search; the config and its search space are in
:mod:`~anchored_learning.experiment.tune_config`, the Optuna study in
:mod:`~anchored_learning.experiment.tune_study`, the selection and the report in
:mod:`~anchored_learning.experiment.tune_report`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from anchored_learning.experiment.experiment_config import ExperimentConfig
from anchored_learning.experiment.tune_config import TuneConfig, suggest, sweep_entry, validation_heldout
from anchored_learning.experiment.tune_report import select, tune_report
from anchored_learning.experiment.tune_study import (
    counted_trials,
    enqueue_method_rotation,
    open_study,
    requeue_killed,
    storage_url,
)
from anchored_learning.experiment.variants import Variant

#: the rungs of a trial's validation evaluation (folders under ``<output_dir>/validation``)
CHEAP, FULL = "cheap", "full"


def experiment_config(cfg: TuneConfig) -> ExperimentConfig:
    """The run folder's config: the search's experiment fields, in ``<output_dir>/run``, no fixed variants."""
    names = {f.name for f in dataclasses.fields(ExperimentConfig)}
    vals = {k: v for k, v in dataclasses.asdict(cfg).items() if k in names}
    vals.update(output_dir=str(Path(cfg.output_dir) / "run"), sweep=[], baselines=[], wise_weights=[])
    return ExperimentConfig(**vals)


# ------------------------------------------------------------------------------ trials


class TrialRunner:
    """Trains and evaluates the search's models: the run folder ``<output_dir>/run`` (its
    evaluations are the test split) and the validation evaluations under
    ``<output_dir>/validation/{cheap,full}/evals``.  Every output is skipped when it exists."""

    def __init__(self, cfg: TuneConfig, log: Callable[[str], None] = print):
        from anchored_learning.experiment.stages import Experiment

        self.cfg, self.log = cfg, log
        self.out = Path(cfg.output_dir)
        self.exp = Experiment(experiment_config(cfg), console_log=log)  # validates; loads and checks the data
        self.exp.plan = []  # the trials are added one by one
        self.target, self.heldout = cfg.task, validation_heldout(cfg)

    def prepare(self) -> dict[str, dict[str, Any]]:
        """The base model and the reference on the test split (the run folder's shared stages),
        then on both validation rungs.  Writes ``validation/split.json`` (items per suite of each
        split) after checking that no validation item is a test item.

        Returns:
            ``{rung: {"base": evaluation, "sft": evaluation}}`` for the validation rungs.

        Raises:
            ValueError: a suite without validation items (its test items take every item), or a
                validation item that is a test item.
        """
        test = self.exp.prepare()
        self.exclude = {s: list(test["base"]["results"][s]["uids"]) for s in [self.target, *self.heldout]}
        ran = test["base"]["meta"]["limits"]
        full = {}
        for s in [self.target, *self.heldout]:
            n = self.cfg.n_val if self.cfg.n_val is not None else ran.get(s)
            if n is None:
                raise ValueError(
                    f"the test split of {s!r} takes every item it has ({len(self.exclude[s])}), so none is left for "
                    "validation: give the test split fewer items (--n_test, --mc_limit, --nll_limit, "
                    "--heldout_task_limit) or --n_val"
                )
            full[s] = int(n)
        self.limits = {FULL: full, CHEAP: {s: max(1, math.ceil(self.cfg.cheap_fraction * n)) for s, n in full.items()}}
        ref = self.exp.ref_model
        if ref is None:
            from transformers import AutoModelForCausalLM

            ref = AutoModelForCausalLM.from_pretrained(self.exp.out / "models" / "reference" / "final").eval()
        out = {r: {"base": self._evaluate(r, "base", self.exp.base), "sft": self._evaluate(r, "sft", ref)} for r in self.rungs}
        split = {}
        for rung, h in ((r, h) for r in self.rungs for h in self.heldout):
            if out[rung]["base"]["results"][h]["primary"] == 0:
                raise ValueError(
                    f"the base model scores 0 on {h!r}'s {rung} validation items "
                    f"({self.limits[rung][h]}), so its relative degradation is undefined: give more items "
                    "(--n_val, --cheap_fraction) or drop that member"
                )
        for s in [self.target, *self.heldout]:
            val = out[FULL]["base"]["results"][s]["uids"]
            if not val:
                raise ValueError(f"no validation items are left for {s!r} after its {len(self.exclude[s])} test items")
            if set(val) & set(self.exclude[s]):  # cannot happen with evaluate(exclude=...): checked all the same
                raise ValueError(f"{s!r}: validation items {sorted(set(val) & set(self.exclude[s]))[:5]} are test items")
            split[s] = {"test": len(self.exclude[s]), "validation": len(val), "validation_cheap": self.limits[CHEAP][s]}
        from anchored_learning.io import write_json_atomic

        write_json_atomic(self.out / "validation" / "split.json", {"seed": self.cfg.seed, "items": split})
        self.split, self.val = split, out
        return out

    @property
    def rungs(self) -> list[str]:
        return [CHEAP, FULL] if self.cfg.cheap_fraction < 1 else [FULL]

    def _evaluate(self, rung: str, name: str, model) -> dict[str, Any]:
        from anchored_learning.evaluation.suites import evaluate
        from anchored_learning.experiment.stages import recorded_evaluation
        from anchored_learning.io import write_json_atomic

        folder = self.out / "validation" / rung
        if (res := recorded_evaluation(self.cfg, folder, name)) is not None:
            return res
        if model is None:  # a recorded trial whose evaluation was deleted: its model is in the run folder
            raise RuntimeError(f"no model to evaluate for {name}")
        self.log(f"[eval] {name} on the validation split ({rung})")
        c = self.cfg
        res = evaluate(
            model,
            self.exp.tok,
            [self.target, *self.heldout],
            limits=self.limits[rung],
            seed=c.seed,
            batch_size=c.eval_batch_size,
            generation_batch_size=c.generation_batch_size,
            model_name=name,
            tasks={c.task: self.exp.task},
            precision=c.precision,
            exclude=self.exclude,
        )
        write_json_atomic(folder / "evals" / f"{name}.json", res)
        return res

    def validate(self, label: str, method: str, overrides: dict[str, Any], rung: str) -> dict[str, Any]:
        """Trial ``label``'s evaluation on the validation rung (training its model first unless
        the run folder has it)."""
        from anchored_learning.experiment.stages import recorded_evaluation

        if (res := recorded_evaluation(self.cfg, self.out / "validation" / rung, label)) is not None:
            self.log(f"[skip] {label}: evaluated on the validation split ({rung})")
            return res
        model = self.exp.variant_model(Variant(label, method, overrides))
        res = self._evaluate(rung, label, model)
        del model
        return res

    def test(self, variants: list[Variant]) -> dict[str, dict[str, Any]]:
        """The test split's evaluations of ``base``, ``sft`` and ``variants`` (the run folder's
        stages: finished models are not trained again; ``run/results.md`` reports them)."""
        self.exp.plan = list(variants)
        self.exp.run()
        from anchored_learning.io import read_json

        return {lab: read_json(self.exp.out / "evals" / f"{lab}.json") for lab in ["base", "sft", *(v.label for v in variants)]}


# ------------------------------------------------------------------------------ the search


def objective_values(cfg: TuneConfig, base: Mapping[str, Any], run: Mapping[str, Any]) -> tuple[float, float]:
    """``(gain in points, degradation in %)`` of one evaluation against the base model's on the same
    items: the frontier's full-sample estimates (:func:`~anchored_learning.experiment.frontier.bootstrap_points`);
    the degradation is over ``objective_member`` alone when one is named (retention = 100 - it)."""
    from anchored_learning.experiment.frontier import bootstrap_points

    suites = [cfg.objective_member] if cfg.objective_member else validation_heldout(cfg)
    gain, deg = bootstrap_points({0: {"base": base, "run": run}}, ["run"], cfg.task, suites, n_boot=0)
    return float(gain[0, 0]), float(deg[0, 0])


def nondominated_layers(points: list[tuple[float, float]]) -> list[int]:
    """The non-dominated sorting layer of every ``(degradation, gain)`` point (0: the Pareto front,
    1: the front once layer 0 is removed, ...)."""
    from anchored_learning.tables import pareto_frontier

    layer, left, k = [0] * len(points), list(range(len(points))), 0
    while left:
        front = [left[i] for i in pareto_frontier([points[j] for j in left])]
        for j in front:
            layer[j] = k
        left = [j for j in left if j not in front]
        k += 1
    return layer


def promoted(points: list[tuple[float, float]], eta: float) -> bool:
    """Whether the last of the rung-0 ``points`` goes on to the whole validation split: fewer than
    ``ceil(len(points) / eta)`` points lie in non-dominated layers before its own."""
    layers = nondominated_layers(points)
    ahead = sum(1 for k in layers if k < layers[-1])
    return ahead < math.ceil(len(points) / eta)


def run_search(cfg: TuneConfig, runner: TrialRunner, log: Callable[[str], None] = print) -> Any:
    """Prepare the shared stages, then run trials until the study holds ``n_trials`` counted trials,
    ``timeout_s`` has passed, or a brute-force sampler has tried every point.  Returns the study."""
    import optuna
    from optuna.trial import TrialState

    out = Path(cfg.output_dir)
    val = runner.prepare()
    probe = open_study(cfg, out, 0)
    requeue_killed(probe, log)
    n_done = len(counted_trials(probe.get_trials(deepcopy=False)))
    study = open_study(cfg, out, n_done)
    enqueue_method_rotation(study, cfg)
    todo = int(cfg.n_trials) - n_done
    if n_done:
        log(f"[tune] {n_done} trials in {storage_url(out)}; {max(0, todo)} more to run")
    if todo <= 0:
        return study

    def objective(trial) -> tuple[float, float]:
        label, method, overrides = suggest(trial, cfg)
        trial.set_user_attr("label", label)
        trial.set_user_attr("method", method)
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("sweep_entry", sweep_entry(label, method, overrides))
        log(f"[trial {trial.number}] {label}")
        try:
            if CHEAP in runner.rungs:
                g, d = objective_values(cfg, val[CHEAP]["base"], runner.validate(label, method, overrides, CHEAP))
                trial.set_user_attr("cheap", [g, d])
                points = [
                    tuple(reversed(t.user_attrs["cheap"]))
                    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                    if "cheap" in t.user_attrs
                ]
                if not promoted([*points, (d, g)], float(cfg.promotion_eta)):
                    log(f"[trial {trial.number}] {label}: pruned on {CHEAP} validation (gain {g:+.1f}, degradation {d:.1f}%)")
                    raise optuna.TrialPruned()
            g, d = objective_values(cfg, val[FULL]["base"], runner.validate(label, method, overrides, FULL))
        except FloatingPointError as e:  # a diverged training: the trial fails, the search goes on
            trial.set_user_attr("error", f"training diverged: {e}")
            raise
        log(f"[trial {trial.number}] {label}: validation gain {g:+.1f} points, degradation {d:.1f}%")
        return (g, 100.0 - d) if cfg.objective_member else (g, d)

    study.optimize(objective, n_trials=todo, timeout=cfg.timeout_s, catch=(FloatingPointError,), gc_after_trial=True)
    return study


def validation_points(cfg: TuneConfig, study, sft_val: Mapping[str, Any], base_val: Mapping[str, Any]) -> dict[str, dict]:
    """``{label: {"gain", "degradation", "method", "overrides", "trials"}}`` of every promoted
    trial on the whole validation split (one entry per label), and the reference model ``sft``."""
    from optuna.trial import TrialState

    points: dict[str, dict] = {}
    g, d = objective_values(cfg, base_val, sft_val)
    points["sft"] = {"gain": g, "degradation": d, "method": "sft", "overrides": {}, "trials": []}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        lab = t.user_attrs["label"]
        g, second = t.values
        d = 100.0 - second if cfg.objective_member else second
        p = points.setdefault(
            lab,
            {"gain": g, "degradation": d, "method": t.user_attrs["method"], "overrides": t.user_attrs["overrides"], "trials": []},
        )
        p["trials"].append(t.number)
    return points


def tune(cfg: TuneConfig, console_log: Callable[[str], None] = print, runner_cls: type = TrialRunner) -> dict[str, Any]:
    """Search recipes for ``cfg`` within its budget and report the selection (module docstring).

    Writes into ``cfg.output_dir``: ``config.json``, ``study.db`` (the Optuna study), ``run/`` (the
    run folder: models and the test split's evaluations), ``validation/`` (the validation split's),
    ``tune.json``, ``tune.md`` and ``frontier.png``.  Run again (with a larger ``n_trials``) to
    continue: finished trials are kept, models and evaluations are not made again.

    Returns:
        ``tune.json``'s content.

    Raises:
        ValueError: an invalid config, a folder holding a search with other settings (before any
            work), or a split without validation items.
    """
    from anchored_learning.distributed import under_launcher
    from anchored_learning.experiment.stages import check_resume, config_record
    from anchored_learning.io import check_output_path, write_json_atomic

    if under_launcher():
        raise ValueError("anchored tune runs its trials in one process: start it without torchrun / accelerate launch")
    t0 = time.perf_counter()
    cfg = cfg.resolved()
    out = Path(cfg.output_dir)
    check_output_path(out, "folder")
    record = config_record(cfg, {"model": cfg.model})
    check_resume(out, record, cfg.RESUMABLE)
    runner = runner_cls(cfg, console_log)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", record)
    study = run_search(cfg, runner, console_log)
    points = validation_points(cfg, study, runner.val[FULL]["sft"], runner.val[FULL]["base"])
    selection = select(cfg, points)
    pareto, sft_front, rec = selection
    chosen = [lab for lab in dict.fromkeys([*sft_front, *pareto, *([rec] if rec else [])]) if lab != "sft"]
    test_evals = runner.test([Variant(lab, points[lab]["method"], points[lab]["overrides"]) for lab in chosen])
    return tune_report(cfg, study, points, selection, test_evals, runner.split, console_log, time.perf_counter() - t0)
