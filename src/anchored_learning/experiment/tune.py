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
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from anchored_learning.experiment import plan as P
from anchored_learning.experiment.config import ExperimentConfig, _help
from anchored_learning.experiment.variants import PLANNED_FIELDS, VARIANTS, Variant, parse_sweep

#: the search's name in its storage
STUDY_NAME = "tune"
#: the Optuna storage file in the output folder
STUDY_FILE = "study.db"
#: the samplers ``--sampler`` names
SAMPLERS = ("tpe", "random", "nsga2", "bruteforce")
#: the rungs of a trial's validation evaluation (folders under ``<output_dir>/validation``)
CHEAP, FULL = "cheap", "full"


@cache
def tune_recipe() -> dict[str, Any]:
    """The bundled defaults of ``anchored tune`` (``anchored_learning/configs/tune.yaml``): the
    methods searched and each one's search space."""
    from importlib import resources

    import yaml

    return yaml.safe_load((resources.files("anchored_learning") / "configs" / "tune.yaml").read_text())


@dataclass
class TuneConfig(ExperimentConfig):
    """``anchored tune``: the experiment's fields (:class:`ExperimentConfig`: task, data, model,
    reference, evaluation limits) plus the search's budget, space, objectives and constraint."""

    methods: list[str] | None = field(
        default=None,
        metadata=_help(f"Methods searched, any of {list(VARIANTS)}; configs/tune.yaml gives each a space."),
    )
    search_space: dict | str | None = field(
        default=None,
        metadata=_help(
            "Search space: a mapping method -> field -> {low, high[, log, step]} | {choices: [...]} | value, as the "
            "search_space section of a --config YAML, or a YAML/JSON file holding it. A method named here replaces "
            "that method's bundled space (configs/tune.yaml); the others keep theirs."
        ),
    )
    n_trials: int = field(default=20, metadata=_help("Trial budget: trials in the study in all, over every resume."))
    timeout_s: float | None = field(
        default=None, metadata=_help("Wall-time budget of this invocation (s): no trial starts after it.")
    )
    objective_member: str | None = field(
        default=None,
        metadata=_help(
            "Maximise this held-out member's retention (e.g. a prior skill, date_iso) instead of minimising the "
            "mean degradation over the held-out suite."
        ),
    )
    max_degradation: float | None = field(
        default=None, metadata=_help("Constraint of the recommended model: degradation (%%) at most this.")
    )
    min_retention: float | None = field(
        default=None,
        metadata=_help("Constraint of the recommended model: retention (%%, 100 - degradation) at least this."),
    )
    n_val: int | None = field(
        default=None,
        metadata=_help("Validation items per suite (default: as many as the suite's test items, where there are)."),
    )
    cheap_fraction: float = field(
        default=0.25,
        metadata=_help("Share of the validation items a trial is first scored on (rung 0); 1: no promotion step."),
    )
    promotion_eta: float = field(
        default=3.0,
        metadata=_help(
            "Successive halving's eta: a trial behind (in non-dominated layers) a 1/eta share of the rung-0 points is pruned."
        ),
    )
    sampler: str = field(
        default="tpe",
        metadata=_help(
            "Optuna sampler: 'tpe' (multi-objective TPE), 'random', 'nsga2', or 'bruteforce' (every combination of "
            "a discrete space, then stops).",
            choices=list(SAMPLERS),
        ),
    )
    n_boot: int = field(default=2000, metadata=_help("Bootstrap resamples of the test split's intervals."))

    #: fields that may change when an output folder is resumed (the budget, the space, the report)
    RESUMABLE = frozenset(
        {
            "n_trials",
            "timeout_s",
            "max_degradation",
            "min_retention",
            "methods",
            "search_space",
            "sampler",
            "promotion_eta",
            "n_boot",
            "output_dir",
            "baselines",
            "wise_weights",
        }
    )

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.methods, str):
            self.methods = [s.strip() for s in self.methods.split(",") if s.strip()]
        elif isinstance(self.methods, (list, tuple)):
            self.methods = [s.strip() for m in self.methods for s in str(m).split(",") if s.strip()]

    def _default_output_dir(self, task: str | None) -> str:
        return f"runs/{task}-tune"

    def resolved(self):
        """:meth:`ExperimentConfig.resolved`, with ``methods`` and ``search_space`` filled from
        configs/tune.yaml (a search space given as a file read, its methods merged over the
        bundled ones).

        Raises:
            ValueError: as ExperimentConfig's, and a bad search space, budget, objective or constraint.
        """
        recipe = tune_recipe()
        space = _read_space(self.search_space)
        filled = dataclasses.replace(
            self,
            methods=list(self.methods or recipe["methods"]),
            search_space={**recipe["search_space"], **space},
        )
        return ExperimentConfig.resolved(filled)

    def _check(self) -> None:
        super()._check()
        if self.sweep:
            raise ValueError("sweep adds fixed variants to a run; anchored tune searches its space: drop --sweep")
        if int(self.n_trials) < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.timeout_s is not None and not float(self.timeout_s) > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_degradation is not None and self.min_retention is not None:
            raise ValueError("max_degradation and min_retention are two ways to say one constraint: give one")
        if self.min_retention is not None and not 0 < float(self.min_retention) <= 100:
            raise ValueError(f"min_retention must be in (0, 100], got {self.min_retention}")
        if not 0 < float(self.cheap_fraction) <= 1:
            raise ValueError(f"cheap_fraction must be in (0, 1], got {self.cheap_fraction}")
        if not float(self.promotion_eta) > 1:
            raise ValueError(f"promotion_eta must be > 1, got {self.promotion_eta}")
        if self.n_val is not None and int(self.n_val) < 1:
            raise ValueError(f"n_val must be >= 1, got {self.n_val}")
        if int(self.n_boot) < 10:
            raise ValueError(f"n_boot must be >= 10, got {self.n_boot}")
        if self.objective_member is not None and self.objective_member not in validation_heldout(self):
            raise ValueError(
                f"objective_member {self.objective_member!r} is not a held-out member; the members: "
                f"{validation_heldout(self)} (add it with --heldout)"
            )
        if not validation_heldout(self):
            raise ValueError("heldout has no member to measure a degradation on (drift is not one): add one")
        check_space(self)


def _read_space(space: dict | str | None) -> dict[str, Any]:
    """A search space given as a mapping, or a YAML/JSON file holding one (or a recipe with a
    ``search_space`` section).

    Raises:
        ValueError: a missing file, or not a mapping.
    """
    if space is None:
        return {}
    if isinstance(space, str):
        import yaml

        path = Path(space).expanduser()
        if not path.is_file():
            raise ValueError(f"search_space {space!r}: no such file (give a YAML or JSON file, or a search_space section)")
        space = yaml.safe_load(path.read_text()) or {}
        space = space.get("search_space", space) if isinstance(space, dict) else space
    if not isinstance(space, dict) or not all(isinstance(v, dict) or v is None for v in space.values()):
        raise ValueError(f"search_space must map each method to a mapping of field: range, got {space!r}")
    return {m: dict(v or {}) for m, v in space.items()}


def validation_heldout(cfg) -> list[str]:
    """The held-out members a degradation is measured on: the config's, without drift suites."""
    from anchored_learning.evaluation.suites import SUITES, expand_suites

    return [h for h in expand_suites(list(cfg.heldout or ())) if getattr(SUITES.get(h), "kind", "drift") != "drift"]


def _number(v: Any) -> Any:
    """A YAML value that may be a number written as a string (``1e-5``) -> the number."""
    if isinstance(v, str):
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
    return v


def _is_int(spec: Mapping[str, Any]) -> bool:
    lo, hi = spec["low"], spec["high"]
    return all(isinstance(x, int) and not isinstance(x, bool) for x in (lo, hi)) and not isinstance(spec.get("step"), float)


def check_space(cfg: TuneConfig) -> None:
    """Check the searched methods' spaces before any work: known methods and fields, ranges with
    ``low < high`` (``low > 0`` when log-uniform), and the training arguments at both ends of every
    range (the config's own validation).

    Raises:
        ValueError: naming the method and field.
    """
    from anchored_learning.config import AnchoredSFTConfig

    if not cfg.methods:
        raise ValueError("methods is empty: name at least one method to search")
    bad = [m for m in cfg.methods if m not in VARIANTS]
    if bad:
        raise ValueError(f"methods has unknown entries {bad}; choose from {list(VARIANTS)}")
    names = {f.name for f in dataclasses.fields(AnchoredSFTConfig)}
    for method in cfg.methods:
        space = cfg.search_space.get(method, {})
        if method == "wise_ft" and set(space) - {"weight"}:
            raise ValueError(f"search_space.wise_ft takes one field, 'weight', got {sorted(space)}")
        ends: list[dict[str, Any]] = [{}, {}]
        for fld, spec in space.items():
            where = f"search_space.{method}.{fld}"
            if fld in PLANNED_FIELDS or (method != "wise_ft" and fld not in names):
                raise ValueError(f"{where}: not a field a run may set (the fields of `anchored train --help`)")
            if isinstance(spec, dict) and "choices" in spec:
                if not isinstance(spec["choices"], list) or not spec["choices"]:
                    raise ValueError(f"{where}: choices must be a non-empty list")
                values = [_number(c) for c in spec["choices"]]
            elif isinstance(spec, dict):
                if set(spec) - {"low", "high", "log", "step"} or not {"low", "high"} <= set(spec):
                    raise ValueError(f"{where}: give {{low, high}} (with log or step) or {{choices: [...]}}, got {spec}")
                lo, hi = _number(spec["low"]), _number(spec["high"])
                if not all(isinstance(x, (int, float)) for x in (lo, hi)) or not lo < hi:
                    raise ValueError(f"{where}: low must be a number below high, got {spec}")
                if spec.get("log") and not lo > 0:
                    raise ValueError(f"{where}: a log-uniform range needs low > 0, got {spec}")
                values = [lo, hi]
            else:
                values = [_number(spec)]
            ends[0][fld], ends[1][fld] = values[0], values[-1]
        for values in ends:
            _, m, overrides = variant_of(cfg, method, values)
            if m == "wise_ft":
                if not 0 <= overrides["weight"] <= 1:
                    raise ValueError(f"search_space.wise_ft.weight must be in [0, 1], got {overrides['weight']}")
                continue
            try:
                P.variant_args(cfg, Path("unused"), Variant("check", m, overrides))
            except (TypeError, ValueError) as e:
                raise ValueError(f"search_space.{method}: {e}") from None


def _short(v: Any) -> str:
    """A sweep value as written in a label: floats to 3 significant digits."""
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def variant_of(cfg, method: str, values: Mapping[str, Any]) -> Variant:
    """``(label, method, overrides)`` of a trial: the variant that the sweep entry
    ``method.field=value;...`` gives (:func:`~anchored_learning.experiment.variants.parse_sweep`),
    floats rounded to 3 significant digits (so the same values always name the same run).
    WiSE-FT is labelled as in a run (``wise_ft(w=0.5)``); plain SFT with no field searched is SFT
    at the student's learning rate (the ``sft`` row is the reference model)."""
    if method == "wise_ft":
        w = float(_short(float(values.get("weight", 0.5))))
        return f"wise_ft(w={w:g})", "wise_ft", {"weight": w}
    if method == "sft" and not values:
        values = {"learning_rate": cfg.learning_rate}
    if not values:
        return method, method, {}
    entry = f"{method}." + ";".join(f"{k}={_short(v)}" for k, v in values.items())
    ((label, m, overrides),) = parse_sweep([entry])
    return label, m, overrides


def sweep_entry(label: str, method: str, overrides: Mapping[str, Any]) -> str | None:
    """The ``--sweep`` entry that makes the same run in ``anchored run`` (None: a method with no overrides)."""
    if not overrides:
        return None
    return f"{method}." + ";".join(f"{k}={_short(v)}" for k, v in overrides.items())


def suggest(trial, cfg: TuneConfig) -> Variant:
    """Draw a trial's method and its fields' values (Optuna parameters ``method`` and
    ``<method>.<field>``: each method's fields exist only in its trials)."""
    method = trial.suggest_categorical("method", list(cfg.methods))
    values: dict[str, Any] = {}
    for fld, spec in cfg.search_space.get(method, {}).items():
        name = f"{method}.{fld}"
        if isinstance(spec, dict) and "choices" in spec:
            values[fld] = _number(trial.suggest_categorical(name, [_number(c) for c in spec["choices"]]))
        elif isinstance(spec, dict):
            lo, hi, log, step = _number(spec["low"]), _number(spec["high"]), bool(spec.get("log")), spec.get("step")
            if _is_int({"low": lo, "high": hi, "step": step}):
                values[fld] = trial.suggest_int(name, lo, hi, log=log, step=int(step or 1))
            else:
                values[fld] = trial.suggest_float(name, float(lo), float(hi), log=log, step=step)
        else:
            values[fld] = _number(spec)
    return variant_of(cfg, method, values)


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
    from anchored_learning.report import pareto_frontier

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


def meets(cfg: TuneConfig, degradation: float) -> bool:
    """Whether a (validation) degradation meets the config's constraint (True without one)."""
    if cfg.max_degradation is not None:
        return degradation <= float(cfg.max_degradation)
    if cfg.min_retention is not None:
        return 100.0 - degradation >= float(cfg.min_retention)
    return True


def _sampler(cfg: TuneConfig, seed: int):
    import optuna

    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if cfg.sampler == "bruteforce":
        return optuna.samplers.BruteForceSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=min(10, int(cfg.n_trials)))


def _study(cfg: TuneConfig, out: Path, n_done: int):
    """The study in ``out/study.db`` (created, or loaded to continue), its sampler seeded by the
    config's seed and the trials already made (a resumed search draws new points)."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    directions = ["maximize", "maximize" if cfg.objective_member else "minimize"]
    return optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage_url(out),
        directions=directions,
        sampler=_sampler(cfg, int(cfg.seed) + n_done),
        load_if_exists=True,
    )


def storage_url(out: str | Path) -> str:
    """The Optuna storage URL of a search's output folder (``optuna-dashboard <url>`` browses it)."""
    return f"sqlite:///{(Path(out) / STUDY_FILE).resolve()}"


def _counted(trials) -> list:
    """The trials that spent the budget: finished (complete or pruned) or failed by their own error
    (a diverged training); not those failed because their process was killed (tried again)."""
    from optuna.trial import TrialState

    return [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and "error" in t.user_attrs)
    ]


def _continue_killed(study, log: Callable[[str], None]) -> None:
    """Trials left running by a killed search: marked failed and queued again with the same values
    (their training resumes from its last checkpoint).  One search process per folder."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"continues": t.number}, skip_if_exists=False)
        log(f"[tune] trial {t.number} ({t.user_attrs.get('label', '?')}) was killed: queued again with the same values")


def run_search(cfg: TuneConfig, runner: TrialRunner, log: Callable[[str], None] = print) -> Any:
    """Prepare the shared stages, then run trials until the study holds ``n_trials`` counted trials,
    ``timeout_s`` has passed, or a brute-force sampler has tried every point.  Returns the study."""
    import optuna
    from optuna.trial import TrialState

    out = Path(cfg.output_dir)
    val = runner.prepare()
    probe = _study(cfg, out, 0)
    _continue_killed(probe, log)
    n_done = len(_counted(probe.get_trials(deepcopy=False)))
    study = _study(cfg, out, n_done)
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


def select(cfg: TuneConfig, points: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[str], str | None]:
    """``(pareto, sft_frontier, recommended)`` chosen on validation: the non-dominated labels, SFT's
    own non-dominated labels (the reference included), and the label with the highest validation
    gain among those meeting the constraint (the lower degradation on a tie; None when none does)."""
    from anchored_learning.experiment.frontier import family_of
    from anchored_learning.report import pareto_frontier

    def front(labels: list[str]) -> list[str]:
        return [labels[i] for i in pareto_frontier([(points[lab]["degradation"], points[lab]["gain"]) for lab in labels])]

    labels = list(points)
    ok = [lab for lab in labels if meets(cfg, points[lab]["degradation"])]
    rec = max(ok, key=lambda lab: (points[lab]["gain"], -points[lab]["degradation"])) if ok else None
    return front(labels), front([lab for lab in labels if family_of(lab) == "sft"]), rec


# ------------------------------------------------------------------------------ the report


def _constraint_verdict(cfg: TuneConfig, est: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the recommended model's test degradation estimate ``est`` meets the constraint, and
    with confidence (its whole 95% interval)."""
    v, ci = est["value"], est["ci"] or [est["value"]] * 2
    if cfg.max_degradation is not None:
        limit, what = float(cfg.max_degradation), f"degradation <= {float(cfg.max_degradation):g}%"
        point, sure, edge = v <= limit, ci[1] <= limit, f"its interval reaches {ci[1]:.1f}%"
    elif cfg.min_retention is not None:
        limit, what = float(cfg.min_retention), f"retention >= {float(cfg.min_retention):g}%"
        point, sure, edge = 100 - v >= limit, 100 - ci[1] >= limit, f"its retention interval reaches down to {100 - ci[1]:.1f}%"
    else:
        return {"constraint": None, "met": None, "met_with_confidence": None, "text": "no constraint given"}
    if sure:
        text = f"meets {what} with confidence on the test split (95% interval [{ci[0]:.1f}, {ci[1]:.1f}]% degradation)"
    elif point:
        text = f"NOT met with confidence: the test estimate meets {what}, but {edge}"
    else:
        text = f"NOT met on the test split: degradation {v:.1f}% [{ci[0]:.1f}, {ci[1]:.1f}]"
    return {"constraint": what, "met": bool(point), "met_with_confidence": bool(sure), "text": text}


def tune_report(cfg: TuneConfig, study, points, selection, test_evals, split, log=print) -> dict[str, Any]:
    """Write ``tune.json``, ``tune.md`` and ``frontier.png`` into the output folder: every trial, the
    validation Pareto set, and the selected models' test-split frontier statistics (paired
    bootstrap intervals, degradation at SFT-matched gain) with the recommendation's verdict."""
    from anchored_learning.experiment.frontier import bootstrap_points, family_of, frontier_statistics
    from anchored_learning.experiment.frontier_report import _fmt
    from anchored_learning.io import write_json_atomic, write_text_atomic
    from anchored_learning.report import plot_frontier

    out = Path(cfg.output_dir)
    pareto, sft_front, rec = selection
    labels = list(dict.fromkeys(["sft", *sft_front, *pareto, *([rec] if rec else [])]))
    order = list(dict.fromkeys(["sft", *(family_of(lab) for lab in labels)]))
    labels.sort(key=lambda lab: (order.index(family_of(lab)), lab))
    evals = {int(cfg.seed): test_evals}
    heldout = validation_heldout(cfg)
    gain, deg = bootstrap_points(evals, labels, cfg.task, heldout, n_boot=int(cfg.n_boot), seed=0)
    stats = frontier_statistics(labels, gain, deg)
    member = None
    if cfg.objective_member:
        mg, md = bootstrap_points(evals, labels, cfg.task, [cfg.objective_member], n_boot=int(cfg.n_boot), seed=0)
        member = frontier_statistics(labels, mg, md)
    objective_stats = member or stats
    recommended = None
    if rec is not None:
        p = next(q for q in objective_stats["points"] if q["label"] == rec)
        recommended = {
            "label": rec,
            "sweep_entry": sweep_entry(rec, points[rec]["method"], points[rec]["overrides"]),
            "model": str(out / "run" / "models" / ("reference" if rec == "sft" else rec) / "final")
            if points[rec]["method"] != "wise_ft"
            else None,
            "validation": {"gain": points[rec]["gain"], "degradation": points[rec]["degradation"]},
            "test": {"gain": p["gain"], "degradation": p["degradation"]},
            **_constraint_verdict(cfg, p["degradation"]),
        }
    from optuna.trial import TrialState

    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "label": t.user_attrs.get("label"),
            "sweep_entry": t.user_attrs.get("sweep_entry"),
            "params": t.params,
            "values": t.values,
            "cheap": t.user_attrs.get("cheap"),
            "error": t.user_attrs.get("error"),
        }
        for t in study.get_trials(deepcopy=False)
    ]
    counted = _counted(study.get_trials(deepcopy=False))
    objective = f"retention of {cfg.objective_member} (%)" if cfg.objective_member else "mean degradation (%)"
    result = {
        "task": cfg.task,
        "seed": cfg.seed,
        "objectives": ["target gain (points)", objective],
        "heldout": heldout,
        "objective_member": cfg.objective_member,
        "storage": storage_url(out),
        "dashboard": f"optuna-dashboard {storage_url(out)}",
        "n_trials": len(counted),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in counted),
        "budget": {"n_trials": cfg.n_trials, "timeout_s": cfg.timeout_s},
        "split": split,
        "validation": {lab: {k: points[lab][k] for k in ("gain", "degradation", "trials")} for lab in points},
        "pareto": pareto,
        "sft_frontier": sft_front,
        "recommended": recommended,
        "test": {"labels": labels, **stats},
        "test_objective_member": member,
        "trials": trials,
    }
    write_json_atomic(out / "tune.json", result)
    lines = [
        f"# anchored tune: {cfg.task}, seed {cfg.seed}",
        "",
        f"{len(counted)} trials ({result['n_pruned']} pruned on the cheap validation rung); objectives: target gain "
        f"(max) and {objective} ({'max' if cfg.objective_member else 'min'}) on the validation split. Selected on "
        "validation, reported on the test split (disjoint items: validation/split.json). Browse the study: "
        f"`{result['dashboard']}`.",
        "",
    ]
    if recommended:
        t = recommended["test"]
        lines += [
            f"**Recommended: {rec}** ({recommended['model'] or 'WiSE-FT of the base and the reference: `anchored run --sweep ' + str(recommended['sweep_entry']) + '`'}): "
            f"test gain {_fmt(t['gain'])} points, degradation {_fmt(t['degradation'])}%: {recommended['text']}.",
            "",
        ]
    elif cfg.max_degradation is not None or cfg.min_retention is not None:
        lines += ["**No trial met the constraint on the validation split**: no recommendation.", ""]
    lines += [
        "| run | validation gain | validation degr. | test gain (pts) | test degradation (%) | vs SFT at matched gain |",
        "|---|---|---|---|---|---|",
    ]
    for p in objective_stats["points"]:
        v = points[p["label"]]
        lines.append(
            f"| {p['label']}{' *' if p['label'] in pareto else ''}{' (recommended)' if p['label'] == rec else ''} | "
            f"{v['gain']:+.1f} | {v['degradation']:.1f} | {_fmt(p['gain'])} | {_fmt(p['degradation'])} | "
            f"{_fmt(p['degradation_at_matched_gain'])} |"
        )
    lines += [
        "",
        "`*`: on the validation Pareto set. Test intervals: 95%, paired bootstrap over items "
        f"({cfg.n_boot} resamples), as in `anchored frontier`. 'vs SFT at matched gain': degradation minus SFT's "
        "test frontier's (the reference and the SFT trials on SFT's validation frontier) at the same gain.",
    ]
    write_text_atomic(out / "tune.md", "\n".join(lines) + "\n")
    plot_frontier(objective_stats, out / "frontier.png", title=f"{cfg.task}: anchored tune's selection on the test split")
    return result


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
    result = tune_report(cfg, study, points, selection, test_evals, runner.split, console_log)
    result["wall_time_s"] = time.perf_counter() - t0
    return result
