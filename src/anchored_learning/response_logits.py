"""The student's forward pass at response positions only.

:func:`patch_response_logits_forward` lets ``model(..., anchored_response_logits=True)`` return the
student's logits ``[N, V]`` at the N positions whose next label is a response token, without the
``[B, T, V]`` logits of the whole batch (the pattern of ``trl``'s fused LM head);
:class:`anchored_learning.trainer.AnchoredSFTTrainer` patches its model with it.
"""

from __future__ import annotations

import copy
import types

import torch

from anchored_learning import objectives as O
from anchored_learning.anchor_cache import backbone_and_head, unwrap

RESPONSE_LOGITS_KWARG = "anchored_response_logits"


def _response_logits_forward(self, *args, **kwargs):
    """``forward`` of a patched model: with ``anchored_response_logits=True``, the student's logits
    ``[N, V]`` at the N positions whose next label is a response token; otherwise the model's own
    forward.  Bound to the model with ``types.MethodType`` and holding no closure, so a
    ``copy.deepcopy`` of the model (an EMA copy, a merged copy) runs its own weights."""
    if not kwargs.pop(RESPONSE_LOGITS_KWARG, False):
        inner = self.__dict__.get("_anchored_inner_forward")
        return inner(*args, **kwargs) if inner is not None else type(self).forward(self, *args, **kwargs)
    labels = kwargs.pop("labels")
    kwargs.pop("use_cache", None)
    kwargs.pop("num_items_in_batch", None)
    backbone, head = backbone_and_head(self)
    hidden = backbone(*args, use_cache=False, **kwargs).last_hidden_state
    rows = hidden[O.shift_labels(labels) != O.IGNORE_INDEX]
    return head(rows)


#: instance attributes the patch adds (dropped from copies)
PATCH_ATTRS = ("forward", "_anchored_inner_forward", "_anchored_patched", "__deepcopy__")


def _deepcopy_unpatched(self, memo):
    """``copy.deepcopy`` of a patched model: the copy runs the class's own ``forward`` on its own
    weights.  Instance-level forward patches (ours, and the closures other libraries install, which
    stay bound to the original model) are left out of the copy."""
    saved = {k: self.__dict__.pop(k) for k in PATCH_ATTRS if k in self.__dict__}
    try:
        return copy.deepcopy(self, memo)
    finally:
        self.__dict__.update(saved)


def patch_response_logits_forward(model: torch.nn.Module) -> None:
    """Let ``model(..., anchored_response_logits=True)`` return student logits at response positions only.

    The logits ``[N, V]`` of the N positions whose next label is a response token are computed
    inside ``forward`` (so DDP/FSDP/DeepSpeed wrappers see a normal forward) without building the
    ``[B, T, V]`` logits of the whole batch.  Same pattern as ``trl``'s fused LM head.  An
    instance-level forward already there (another library's patch) is kept and called.
    """
    target = unwrap(model)
    if getattr(target, "_anchored_patched", False):
        return
    target._anchored_inner_forward = target.__dict__.get("forward")
    target.forward = types.MethodType(_response_logits_forward, target)
    target.__deepcopy__ = types.MethodType(_deepcopy_unpatched, target)
    target._anchored_patched = True
