"""The training rows of the on-policy methods (``anchored_on_policy``, ``distill_on_policy``).

The training set is fixed at ``prompts x samples_per_prompt`` rows (row ``r`` holds prompt
``r // samples_per_prompt``), so the dataloader, the epochs and the steps stay as the Trainer
planned them.  At each outer iteration's refresh the rows' responses are replaced: each row gets a
response sampled from the snapshot p_t (the student at the iteration boundary), except a share
``dataset_response_share`` of rows, drawn anew each iteration, that keep the dataset response
(1 - GKD's lmbda).  The samples are token ids exactly as sampled (no re-tokenisation), cut after
the first stop token and kept within ``max_length``; anchors are then cached on them exactly as on
dataset responses.

Every iteration's rows are recorded in ``<record_dir>/iteration-<t>.jsonl`` (a header line with
the settings, the prompts' hash and the sampling model's hash, then one line per row), written
atomically; a resumed run reads its iteration's record instead of sampling again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anchored_learning.objectives import IGNORE_INDEX
from anchored_learning.sampling import parameters_sha256, read_record, sample_responses, tokens_sha256, write_record

logger = logging.getLogger(__name__)

#: the folder, in the trainer's output_dir, of the records ``iteration-<t>.jsonl``
RECORD_FOLDER = "on_policy"
#: header fields that must match for a record to be reused
_SETTINGS = ("prompts_sha256", "n_rows", "samples_per_prompt", "temperature", "dataset_response_share", "max_new_tokens", "seed")


def prompt_length(labels: list[int]) -> int:
    """Tokens before the first response token of a tokenized row (its unshifted ``labels``).

    Raises:
        ValueError: a row with no response token.
    """
    for k, y in enumerate(labels):
        if y != IGNORE_INDEX:
            return k
    raise ValueError("a training row has no response token")


class OnPolicyResponses:
    """Samples, records and re-reads the responses of every outer iteration.

    Args:
        examples: the tokenized training rows ``{"input_ids", "labels"}``, prompts already repeated
            ``samples_per_prompt`` times (row r holds prompt ``r // samples_per_prompt``); their
            responses are the dataset's.
        record_dir: where ``iteration-<t>.jsonl`` files are written.
        samples_per_prompt, temperature, dataset_response_share: as in
            :class:`~anchored_learning.config.AnchoredSFTConfig`.
        max_new_tokens: budget per response (None: the longest dataset response in tokens).
        max_length: the longest training sequence (None: no limit); a row's budget is cut so that
            prompt + response fits.
        stop_ids, pad_id: as in :func:`~anchored_learning.sampling.sample_responses`.
        decode: token ids -> text, for the human-readable ``text`` of each recorded row.
        seed: the run's seed (iteration t samples with ``seed * 1000 + t``).

    Raises:
        ValueError: a row without response tokens.
    """

    def __init__(
        self,
        examples: list[dict[str, Any]],
        record_dir: str | Path,
        *,
        samples_per_prompt: int,
        temperature: float,
        dataset_response_share: float,
        max_new_tokens: int | None,
        max_length: int | None,
        stop_ids: list[int],
        pad_id: int,
        decode: Callable[[list[int]], str],
        seed: int = 0,
        batch_size: int = 8,
        autocast_bf16: bool = False,
    ):
        self.examples = [{"input_ids": list(e["input_ids"]), "labels": list(e["labels"])} for e in examples]
        self.record_dir = Path(record_dir)
        self.samples_per_prompt = int(samples_per_prompt)
        self.temperature = float(temperature)
        self.share = float(dataset_response_share)
        self.decode = decode
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.autocast_bf16 = bool(autocast_bf16)
        self.stop_ids, self.pad_id = list(stop_ids), int(pad_id)
        self.prompts = [e["input_ids"][: prompt_length(e["labels"])] for e in self.examples]
        longest = max(len(e["labels"]) - len(p) for e, p in zip(self.examples, self.prompts))
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens is not None else int(longest)
        room = [None if max_length is None else int(max_length) - len(p) for p in self.prompts]
        self.budgets = [self.max_new_tokens if r is None else max(1, min(self.max_new_tokens, r)) for r in room]
        self.prompts_sha256 = tokens_sha256(self.prompts)

    def path(self, t: int) -> Path:
        """The record of outer iteration ``t``."""
        return self.record_dir / f"iteration-{t:03d}.jsonl"

    def settings(self) -> dict[str, Any]:
        """The header fields a reused record must match."""
        return {
            "prompts_sha256": self.prompts_sha256,
            "n_rows": len(self.examples),
            "samples_per_prompt": self.samples_per_prompt,
            "temperature": self.temperature,
            "dataset_response_share": self.share,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
        }

    def dataset_rows(self, t: int) -> set[int]:
        """The rows that keep the dataset response in iteration ``t`` (a seeded draw of ``round(share * rows)``)."""
        n = len(self.examples)
        k = int(round(self.share * n))
        return {int(i) for i in np.random.default_rng([self.seed, t]).permutation(n)[:k]}

    def rows(
        self, t: int, model: torch.nn.Module, *, at_boundary: bool, main: bool = True, barrier: Callable[[], None] = lambda: None
    ) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """The rows of outer iteration ``t``: read from its record, or sampled from ``model`` (the
        student at the boundary of iteration t, i.e. the snapshot p_t) and recorded first.

        At an iteration boundary a record made with other settings or by another model is sampled
        again (with a warning); inside an iteration (a resumed run) the record is trusted, as the
        snapshot folder is.  Every process must call this; the main process samples and writes.

        Returns:
            ``(rows, info)``: rows ``{"input_ids", "labels"}`` in dataset order, and
            ``{"sampled": 0/1, "sample_s": seconds, "mean_response_tokens": ...}`` for the refresh log.

        Raises:
            RuntimeError: no record and training is not at the iteration boundary (the snapshot
                p_t to sample from is gone).
            ValueError: inside an iteration, a record made with other settings.
        """
        path = self.path(t)
        exists = path.is_file()
        barrier()  # every process decides `exists` before the main process may write
        if not exists and not at_boundary:
            raise RuntimeError(
                f"the on-policy samples of outer iteration {t} are missing from {path} and training is not at an "
                "iteration boundary, so they cannot be drawn from the snapshot again: resume from a checkpoint of "
                "this run's output_dir, whose samples are recorded there"
            )
        info: dict[str, float] = {"sampled": 0.0}
        if main:
            stale = exists and at_boundary and self._stale(path, model)
            if not exists or stale:
                start = time.perf_counter()
                self._sample_and_record(t, model)
                info = {"sampled": 1.0, "sample_s": time.perf_counter() - start}
        barrier()
        header, records = read_record(path)
        diff = [k for k in _SETTINGS if header.get(k) != self.settings()[k]]
        if diff or len(records) != len(self.examples):
            raise ValueError(
                f"the on-policy record {path} was made with other settings or data ({', '.join(diff) or 'row count'}): "
                "use a new output_dir, or delete it to start over"
            )
        rows = []
        for r, rec in enumerate(records):
            if rec["source"] == "dataset":
                rows.append(self.examples[r])
                continue
            prompt, response = self.prompts[r], list(rec["response_ids"])
            rows.append({"input_ids": prompt + response, "labels": [IGNORE_INDEX] * len(prompt) + response})
        info["mean_response_tokens"] = float(np.mean([len(rec["response_ids"]) for rec in records]))
        info["dataset_rows"] = float(sum(rec["source"] == "dataset" for rec in records))
        return rows, info

    def _stale(self, path: Path, model: torch.nn.Module) -> bool:
        header, _ = read_record(path)
        if any(header.get(k) != v for k, v in self.settings().items()) or header.get("model_sha256") != parameters_sha256(model):
            logger.warning("%s was sampled with other settings or from another model: sampling again", path)
            return True
        return False

    def _sample_and_record(self, t: int, model: torch.nn.Module) -> None:
        keep = self.dataset_rows(t)
        todo = [r for r in range(len(self.examples)) if r not in keep]
        sampled = sample_responses(
            model,
            [self.prompts[r] for r in todo],
            stop_ids=self.stop_ids,
            pad_id=self.pad_id,
            max_new_tokens=[self.budgets[r] for r in todo],
            temperature=self.temperature,
            batch_size=self.batch_size,
            seed=self.seed * 1000 + t,
            autocast_bf16=self.autocast_bf16,
        )
        responses = {r: s[0] for r, s in zip(todo, sampled)}
        records = []
        for r, ex in enumerate(self.examples):
            if r in responses:
                ids, source = responses[r], "sample"
            else:
                ids, source = ex["input_ids"][len(self.prompts[r]) :], "dataset"
            records.append(
                {
                    "row": r,
                    "prompt": r // self.samples_per_prompt,
                    "source": source,
                    "response_ids": ids,
                    "text": self.decode(ids),
                }
            )
        header = {"iteration": t, **self.settings(), "model_sha256": parameters_sha256(model)}
        write_record(self.path(t), header, records)
