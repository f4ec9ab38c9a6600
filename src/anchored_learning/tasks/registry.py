"""The task registry: every generation-scored task by name, in one place.

A task is data plus a scoring rule (:class:`~anchored_learning.tasks.base.TargetTask`).  The
target tasks an experiment can train on are :data:`TARGETS`; the others (``igsm_add``, the CPU
recipes' iGSM as an evaluation suite, ``ifbench``, IFBench's prompts as the out-of-distribution
check of the IFEval target, and the held-out ``sciq_chat``) are evaluation-only names.
The generated skills of :mod:`anchored_learning.tasks.skills` (``date_iso``, ``sort_asc``, ...)
are targets too, and the prior skills of sequential fine-tuning.
``file`` is the user's own task (:class:`~anchored_learning.tasks.files.FileTask`): it is built
from data files, so it is instantiated with options, never bare.
Held-out multiple-choice benchmarks are declared in
:data:`anchored_learning.tasks.benchmarks.BENCHMARKS`; :mod:`anchored_learning.evaluation.suites`
builds its suites from both.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from anchored_learning.tasks.skills import SKILLS, skill_factory

#: task name -> "module:factory" (imported on first use) or a callable returning the task
TASKS: dict[str, str | Callable[..., Any]] = {
    "igsm": "anchored_learning.tasks.igsm:IGSMTask",
    "igsm_add": "anchored_learning.tasks.igsm:igsm_add_task",
    "medcalc": "anchored_learning.tasks.medcalc:MedCalcTask",
    "ifeval": "anchored_learning.tasks.ifeval:IFEvalTask",
    "ifbench": "anchored_learning.tasks.ifeval:ifbench_task",  # evaluation-only: IFBench's 294 prompts
    "sciq_chat": "anchored_learning.tasks.sciq_chat:SciQChatTask",
    "file": "anchored_learning.tasks.files:FileTask",  # yours: needs data files (FileTask(data=..., test_data=...))
    # generated skills with exact scoring (tasks/skills.py): prior skills of sequential fine-tuning
    **{name: skill_factory(name) for name in SKILLS},
}

#: the tasks ``anchored run --task`` trains on (and ``--prior_task`` learns first)
TARGETS = ("igsm", "medcalc", "ifeval", *SKILLS, "file")


def get_task(name: str, **options: Any):
    """Instantiate task ``name`` with ``options`` (e.g. ``op_min=2`` for iGSM).

    Raises:
        KeyError: unknown task (the message lists the known ones).
        ImportError: its module is not available.
    """
    if name not in TASKS:
        raise KeyError(f"unknown target task {name!r}; known: {sorted(TASKS)}")
    factory = TASKS[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(**options)
