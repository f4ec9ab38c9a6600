"""Target tasks (iGSM, MedCalc, IFEval-format) and the held-out stability suite.

Every task is data plus a scoring rule (see :mod:`anchored_learning.tasks.base`).
"""

from anchored_learning.tasks.base import Example, TargetTask

__all__ = ["Example", "TargetTask"]
