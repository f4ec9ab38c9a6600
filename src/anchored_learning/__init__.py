"""anchored-learning: fine-tune causal LMs without catastrophic forgetting.

Implements Anchored Learning (Sun, Wang, Wang, Wu, "Stabilizing LLM Supervised Fine-Tuning via
Explicit Distributional Control", arXiv:2605.04468) and the baselines it is compared against,
plus the evaluation of gain on a target task and degradation of held-out capabilities.
"""

__version__ = "0.1.0"

_LAZY = {
    "AnchoredSFTConfig": "anchored_learning.config",
    "AnchoredSFTTrainer": "anchored_learning.trainer",
    "train_reference": "anchored_learning.trainer",
    "wise_ft": "anchored_learning.trainer",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    """Import the heavy training classes on first use (``import anchored_learning`` stays light)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'anchored_learning' has no attribute {name!r}")
