"""anchored-learning: fine-tune causal LMs without catastrophic forgetting.

Implements Anchored Learning (Sun, Wang, Wang, Wu, "Stabilizing LLM Supervised Fine-Tuning via
Explicit Distributional Control", arXiv:2605.04468) and the baselines it is compared against,
plus the evaluation of gain on a target task and degradation of held-out capabilities.
"""

__version__ = "0.1.0"
