"""Where anchor logits come from: live frozen models, or an exact cache of final hidden states.

A causal LM computes ``logits = head(h)`` where ``h`` is the backbone's last hidden state (after
the final norm) and ``head`` the output embedding.  The training data is fixed, so for a frozen
model (the reference p_sft, or the snapshot p_t during one outer iteration) ``h`` at every
response position can be computed once and stored; anchor logits are then rebuilt chunk by
chunk from the stored ``h`` and a frozen copy of the head (:class:`ProjectedLogits`).  Only the
student then has to be in memory during the inner epochs, and the per-step cost of an anchor is
one head projection instead of one full forward pass.

Models whose logits are not a plain ``head(h)`` (logit soft-capping, logit scaling) are detected
by :func:`check_plain_head` and must use ``anchor_source="live"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from anchored_learning.io import replace_folder, write_json_atomic
from anchored_learning.objectives import IGNORE_INDEX, shift_labels

MANIFEST = "manifest.json"


# ----------------------------------------------------------------------------------------------
# backbone / head access


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The underlying ``transformers`` model of a PEFT or DDP wrapper (the module itself otherwise)."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):  # DDP / DeepSpeed
        model = model.module
    if hasattr(model, "get_base_model"):  # PEFT
        model = model.get_base_model()
    return model


def backbone_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(backbone, head)`` of a Hugging Face causal LM (PEFT/DDP wrappers are unwrapped).

    Raises:
        ValueError: the model exposes no backbone (``base_model_prefix``) or no output embeddings.
    """
    m = unwrap(model)
    backbone = getattr(m, getattr(m, "base_model_prefix", "model"), None)
    head = m.get_output_embeddings() if hasattr(m, "get_output_embeddings") else None
    if backbone is None or head is None or backbone is m:
        raise ValueError(f"{type(m).__name__} has no separate backbone/output head; use a *ForCausalLM model")
    return backbone, head


def response_hidden_states(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor
) -> torch.Tensor:
    """Final hidden states at response positions.

    Args:
        model: a causal LM (or PEFT/DDP wrapper).
        input_ids, attention_mask: ``[B, T]``.
        labels: ``[B, T]`` unshifted Hugging Face labels, ``-100`` off the response.

    Returns:
        ``[N, H]``: rows for every position ``t`` whose next token ``labels[:, t + 1]`` is a
        response token, in row-major (example, position) order.  Gradients flow if enabled.
    """
    backbone, _ = backbone_and_head(model)
    out = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    mask = shift_labels(labels) != IGNORE_INDEX
    return out.last_hidden_state[mask]


@dataclass
class ProjectedLogits:
    """Logit rows rebuilt on demand from hidden states and a frozen output head.

    ``self[idx]`` returns ``F.linear(hidden[idx], weight, bias)`` as float32 ``[len(idx), V]``:
    exactly the model's logits for those positions when its head is a plain linear map.

    Attributes:
        hidden: ``[N, H]`` hidden states (any float dtype; a memory-mapped cache slice works).
        weight: ``[V, H]`` frozen copy of the output head.
        bias: ``[V]`` or None.
    """

    hidden: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None = None

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.hidden.shape[0], self.weight.shape[0]))

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        h = self.hidden[index].to(device=self.weight.device, dtype=self.weight.dtype)
        return F.linear(h, self.weight, self.bias).float()


def frozen_head(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A detached copy of the model's output head ``(weight [V, H], bias [V] | None)``."""
    _, head = backbone_and_head(model)
    w = head.weight.detach().clone()
    b = head.bias.detach().clone() if getattr(head, "bias", None) is not None else None
    return w, b


@torch.no_grad()
def check_plain_head(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, atol: float = 1e-4
) -> None:
    """Check that ``logits == head(last_hidden_state)`` for this model.

    Raises:
        ValueError: the model transforms logits after the head (soft-capping, scaling), so the hidden
            state cache would not be exact; use ``anchor_source="live"``.
    """
    m = unwrap(model)
    backbone, head = backbone_and_head(m)
    was_training = m.training
    m.eval()
    try:
        h = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        direct = head(h).float()
        # the class's own forward: bypasses instance-level wrappers (trl's fused head, autocast)
        full = type(m).forward(m, input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits.float()
    finally:
        m.train(was_training)
    err = (direct - full).abs().max().item()
    if err > atol * max(1.0, full.abs().max().item()):
        raise ValueError(
            f"{type(m).__name__} applies a transform after its output head (max |difference| {err:.3g}); "
            "the hidden-state anchor cache would not be exact: set anchor_source='live'"
        )


# ----------------------------------------------------------------------------------------------
# the on-disk cache


def dataset_fingerprint(examples: Iterable[dict[str, Any]]) -> str:
    """SHA-256 over every example's ``input_ids`` and ``labels`` (order-sensitive)."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(np.asarray(ex["input_ids"], dtype=np.int64).tobytes())
        h.update(b"|")
        h.update(np.asarray(ex["labels"], dtype=np.int64).tobytes())
        h.update(b"#")
    return h.hexdigest()


def response_lengths(examples: Iterable[dict[str, Any]]) -> np.ndarray:
    """Number of cached rows per example: positions whose *next* label is not -100."""
    return np.array([int(np.sum(np.asarray(ex["labels"][1:]) != IGNORE_INDEX)) for ex in examples], dtype=np.int64)


class HiddenStateCache:
    """Memory-mapped final hidden states of one frozen model over a fixed training set.

    Layout of the folder (complete only when ``manifest.json`` exists; it is written last and the
    folder is renamed into place, so a crash never leaves a cache that :meth:`open` trusts):
    ``hidden.npy`` ``[R, H]`` rows of all examples back to back, ``offsets.npy`` ``[n + 1]``,
    ``head.pt`` (frozen head weight and bias), ``manifest.json`` (fingerprint, shapes, dtype).
    """

    def __init__(
        self, path: Path, hidden: np.ndarray, offsets: np.ndarray, weight: torch.Tensor, bias: torch.Tensor | None, manifest: dict
    ):
        self.path = path
        self.hidden = hidden
        self.offsets = offsets
        self.weight = weight
        self.bias = bias
        self.manifest = manifest

    # -- reading

    @classmethod
    def open(
        cls, path: str | os.PathLike, fingerprint: str | None = None, device: torch.device | str = "cpu"
    ) -> HiddenStateCache | None:
        """Open a complete cache, or return None if ``path`` holds none.

        Raises:
            ValueError: the cache exists but was built for other training data (fingerprint).
        """
        path = Path(path)
        if not (path / MANIFEST).is_file():
            return None
        manifest = json.loads((path / MANIFEST).read_text())
        if fingerprint is not None and manifest.get("fingerprint") != fingerprint:
            raise ValueError(
                f"the anchor cache at {path} was built for different training data (fingerprint mismatch); "
                "delete it or use a new output_dir"
            )
        hidden = np.load(path / "hidden.npy", mmap_mode="r")
        offsets = np.load(path / "offsets.npy")
        head = torch.load(path / "head.pt", map_location=device, weights_only=True)
        return cls(path, hidden, offsets, head["weight"], head.get("bias"), manifest)

    def rows(self, example_index: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cached hidden states for a batch, in :func:`response_hidden_states` order.

        Args:
            example_index: ``[B]`` indices into the training set the cache was built on.
            labels: ``[B, T]`` the batch's unshifted labels (used to check row counts).

        Returns:
            ``[N, H]`` float tensor on the head's device.

        Raises:
            ValueError: a row count differs from the cache (the data changed since it was built).
        """
        want = (shift_labels(labels) != IGNORE_INDEX).sum(dim=1).tolist()
        parts = []
        for i, n in zip(example_index.tolist(), want):
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            if b - a != n:
                raise ValueError(
                    f"anchor cache {self.path} holds {b - a} response rows for example {i} but the batch has {n}: "
                    "the training data or max_length changed since the cache was built; delete the cache"
                )
            parts.append(torch.from_numpy(np.array(self.hidden[a:b], dtype=np.float32)))
        out = torch.cat(parts) if parts else torch.zeros(0, self.hidden.shape[1])
        return out.to(self.weight.device)

    def logits(self, example_index: torch.Tensor, labels: torch.Tensor) -> ProjectedLogits:
        """:class:`ProjectedLogits` for a batch (rows as in :meth:`rows`)."""
        return ProjectedLogits(self.rows(example_index, labels), self.weight, self.bias)

    # -- building

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        path: str | os.PathLike,
        model: torch.nn.Module,
        examples: list[dict[str, Any]],
        collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
        *,
        fingerprint: str,
        batch_size: int = 8,
        rank: int = 0,
        world_size: int = 1,
        barrier: Callable[[], None] = lambda: None,
        extra_manifest: dict | None = None,
    ) -> HiddenStateCache:
        """Run ``model`` (eval mode, no grad) over ``examples`` and store response hidden states (float32).

        With several processes, each rank computes examples ``rank, rank + world_size, ...`` into
        one shared file; rank 0 finalises.  Every rank must call this with the same arguments.
        Batches are formed longest example first (less padding); each example's rows land at its
        offsets whatever the order.

        Args:
            path: destination folder (replaced atomically).
            model: the frozen model (reference, or the student at a snapshot refresh).
            examples: tokenized examples with ``input_ids`` and unshifted ``labels``.
            collate: the trainer's collator (pads, returns tensors).
            fingerprint: :func:`dataset_fingerprint` of ``examples``.

        Returns:
            the opened cache.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".building")
        lengths = response_lengths(examples)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        m = unwrap(model)
        hidden_size = backbone_and_head(m)[1].weight.shape[1]
        if rank == 0:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            np.lib.format.open_memmap(
                tmp / "hidden.npy", mode="w+", dtype=np.float32, shape=(int(offsets[-1]), hidden_size)
            ).flush()
        barrier()
        store = np.load(tmp / "hidden.npy", mmap_mode="r+")
        device = next(m.parameters()).device
        # longest first, so each batch pads to similar lengths (rows are written by example index)
        mine = sorted(range(rank, len(examples), world_size), key=lambda i: -len(examples[i]["input_ids"]))
        _write_rows(store, offsets, m, examples, collate, [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)])
        store.flush()
        del store
        barrier()
        if rank == 0:
            np.save(tmp / "offsets.npy", offsets)
            w, b = frozen_head(m)
            torch.save({"weight": w.cpu(), "bias": None if b is None else b.cpu()}, tmp / "head.pt")
            manifest = {
                "fingerprint": fingerprint,
                "num_examples": len(examples),
                "num_rows": int(offsets[-1]),
                "hidden_size": int(hidden_size),
                "dtype": "float32",
                **(extra_manifest or {}),
            }
            write_json_atomic(tmp / MANIFEST, manifest)
            replace_folder(tmp, path)
        barrier()
        cache = cls.open(path, fingerprint, device=device)
        assert cache is not None
        return cache


def _write_rows(
    store: np.ndarray,
    offsets: np.ndarray,
    m: torch.nn.Module,
    examples: list[dict[str, Any]],
    collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    batches: list[list[int]],
) -> None:
    """Write the response hidden states of ``m`` (run in eval mode) for every example of ``batches``
    into ``store`` at the example's ``offsets``."""
    device = next(m.parameters()).device
    was_training = m.training
    m.eval()
    try:
        for batch_ids in batches:
            batch = collate([examples[i] for i in batch_ids])
            labels = batch["labels"].to(device)
            attn = batch.get("attention_mask")
            h = response_hidden_states(m, batch["input_ids"].to(device), None if attn is None else attn.to(device), labels)
            h = h.float().cpu().numpy().astype(np.float32, copy=False)
            counts = (shift_labels(labels) != IGNORE_INDEX).sum(dim=1).tolist()
            pos = 0
            for i, n in zip(batch_ids, counts):
                store[offsets[i] : offsets[i + 1]] = h[pos : pos + n]
                pos += n
    finally:
        m.train(was_training)
