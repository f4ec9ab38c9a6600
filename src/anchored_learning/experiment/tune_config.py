"""The config of ``anchored tune`` (:class:`TuneConfig`) and its search space: read (the bundled
``configs/tune.yaml`` and the user's), checked before any work, and drawn from (a trial's variant).
The search itself: :mod:`anchored_learning.experiment.tune`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from anchored_learning.experiment import plan as P
from anchored_learning.experiment.experiment_config import ExperimentConfig, _help
from anchored_learning.experiment.variants import PLANNED_FIELDS, VARIANTS, Variant, parse_sweep

#: the samplers ``--sampler`` names
SAMPLERS = ("tpe", "random", "nsga2", "bruteforce")


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
        metadata=_help(
            f"Methods searched, any of {list(VARIANTS)}; configs/tune.yaml gives each a space. The first trials "
            "(TPE's 10 startup trials) take them in turn (not with --sampler bruteforce)."
        ),
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
    ``method.field=value;...`` gives (:func:`~anchored_learning.experiment.plan.parse_sweep`),
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
