"""Evaluation: generation-scored target tasks, log-likelihood multiple choice, held-out NLL,
distributional drift, gain/degradation metrics with bootstrap CIs, and the ``anchored eval``
command.  The entry point is :func:`anchored_learning.evaluation.suites.evaluate`."""
