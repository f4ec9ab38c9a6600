"""One experiment, from a recipe to a Pareto plot, in five parts:

* :mod:`~anchored_learning.experiment.experiment_config`: ``ExperimentConfig`` and the YAML recipes (presets);
* :mod:`~anchored_learning.experiment.plan`: which models are trained, with which arguments
  (sweeps, de-duplication), all validated before any work;
* :mod:`~anchored_learning.experiment.stages`: the skip-if-done stages (evaluate the base model,
  train the reference, train and evaluate every variant) and ``run_seeds``;
* :mod:`~anchored_learning.experiment.report`: gain / degradation rows, table and plot;
* :mod:`~anchored_learning.experiment.compare`: the same report for models trained elsewhere
  (``anchored compare``).
"""

from anchored_learning.experiment.experiment_config import CompareConfig, EvaluationConfig, ExperimentConfig, load_recipe, presets
from anchored_learning.experiment.stages import Experiment, check_seeds, run_seeds
from anchored_learning.experiment.task_data import load_training_rows, make_task
from anchored_learning.experiment.variants import Variant, parse_sweep

__all__ = [
    "CompareConfig",
    "EvaluationConfig",
    "Experiment",
    "ExperimentConfig",
    "check_seeds",
    "load_recipe",
    "load_training_rows",
    "make_task",
    "parse_sweep",
    "presets",
    "run_seeds",
    "Variant",
]
