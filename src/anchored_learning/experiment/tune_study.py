"""The Optuna study of ``anchored tune``: its storage (a sqlite file in the output folder), its
sampler, and the trials that count against the budget (a trial killed with its process is run again)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from anchored_learning.experiment.tune_config import TuneConfig

#: the search's name in its storage
STUDY_NAME = "tune"


#: the Optuna storage file in the output folder
STUDY_FILE = "study.db"
#: trials drawn at random before TPE models the objectives; the methods take them in turn
STARTUP_TRIALS = 10


def _sampler(cfg: TuneConfig, seed: int):
    import optuna

    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if cfg.sampler == "bruteforce":
        return optuna.samplers.BruteForceSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, n_startup_trials=min(STARTUP_TRIALS, int(cfg.n_trials))
    )


def enqueue_method_rotation(study, cfg: TuneConfig) -> None:
    """Queue the search's first trials (up to TPE's startup trials) with their method fixed in turn,
    ``methods[i % len(methods)]`` for trial ``i``, their other values drawn by the sampler.  A
    categorical draw over a few trials can leave a method with one trial or none (seen in
    results/sequential-conflicting-tune: one SFT trial in 12, six WiSE-FT), and then the report's
    comparison with tuned SFT is with the reference alone.  Trials already in the storage (a
    resumed search) keep their places.  Not for the brute-force sampler, which enumerates every point."""
    if cfg.sampler == "bruteforce":
        return
    methods = list(cfg.methods)
    for i in range(len(study.get_trials(deepcopy=False)), min(STARTUP_TRIALS, int(cfg.n_trials))):
        study.enqueue_trial({"method": methods[i % len(methods)]})


def open_study(cfg: TuneConfig, out: Path, n_done: int):
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


def counted_trials(trials) -> list:
    """The trials that spent the budget: finished (complete or pruned) or failed by their own error
    (a diverged training); not those failed because their process was killed (tried again)."""
    from optuna.trial import TrialState

    return [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and "error" in t.user_attrs)
    ]


def requeue_killed(study, log: Callable[[str], None]) -> None:
    """Trials left running by a killed search: marked failed and queued again with the same values
    (their training resumes from its last checkpoint).  One search process per folder."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"continues": t.number}, skip_if_exists=False)
        log(f"[tune] trial {t.number} ({t.user_attrs.get('label', '?')}) was killed: queued again with the same values")
