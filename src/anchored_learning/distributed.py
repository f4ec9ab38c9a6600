"""Processes started together: launcher detection, DeepSpeed checks and the process group's helpers.

Distributed training itself is accelerate's (``accelerate launch``, torchrun, FSDP, DeepSpeed
ZeRO 2); this module only answers the questions the rest of the package asks about the launch.
"""

from __future__ import annotations

import os

import torch

#: the process group's timeout under a launcher (seconds): the other processes wait at a barrier
#: while the main process evaluates a model, which can take hours on a large model and suite
DDP_TIMEOUT_S = 12 * 3600


def is_rank0() -> bool:
    """True in a single process and in a launch's main process (``RANK`` 0), before any process
    group exists (:func:`is_main_process` asks the initialised group)."""
    return int(os.environ.get("RANK", "0")) == 0


def under_launcher() -> bool:
    """True in a process started by a launcher (torchrun / accelerate launch) with others."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def zero_stage(deepspeed: str | dict | None) -> int | None:
    """The ZeRO stage of a ``TrainingArguments.deepspeed`` value (a dict, a JSON file or a JSON string)."""
    if not deepspeed:
        return None
    if isinstance(deepspeed, str):
        import json
        from pathlib import Path

        text = Path(deepspeed).read_text() if Path(deepspeed).is_file() else deepspeed
        try:
            deepspeed = json.loads(text)
        except json.JSONDecodeError:
            return None  # transformers reports an unreadable config itself
    stage = (deepspeed.get("zero_optimization") or {}).get("stage") if isinstance(deepspeed, dict) else None
    return int(stage) if str(stage).isdigit() else None


def check_deepspeed(deepspeed: str | dict | None) -> None:
    """Refuse a DeepSpeed config that cannot work, before any work is done.

    Raises:
        ValueError: DeepSpeed is not installed, the config file does not exist, it asks for ZeRO stage 3,
            or no launcher started this process (no ``RANK`` / ``LOCAL_RANK`` in the environment).
    """
    if not deepspeed:
        return
    import importlib.util
    from pathlib import Path

    if isinstance(deepspeed, str) and deepspeed.strip().endswith(".json") and not Path(deepspeed).is_file():
        raise ValueError(f"the DeepSpeed config {deepspeed!r} does not exist: give the path of a JSON file")
    if importlib.util.find_spec("deepspeed") is None:
        raise ValueError("--deepspeed needs the deepspeed package: pip install 'anchored-learning[deepspeed]'")
    if zero_stage(deepspeed) == 3:
        raise ValueError(
            "DeepSpeed ZeRO stage 3 is not supported by AnchoredSFTTrainer: it partitions every parameter across "
            "processes, and the reference, snapshot and cached output heads are read whole. Use ZeRO stage 2 "
            "(tested with 2 processes) or plain DDP; a model too large for one device needs a GPU setup we have not tested"
        )
    if not ("RANK" in os.environ or "LOCAL_RANK" in os.environ):
        raise ValueError(
            "DeepSpeed needs a launcher that sets up the processes (without one it looks for MPI): start the command "
            "under torchrun (e.g. torchrun --nproc_per_node 2 -m anchored_learning.cli run ..., or --nproc_per_node 1), "
            "accelerate launch or deepspeed"
        )


def accelerator_available() -> bool:
    """True when torch sees an accelerator device (CUDA, MPS, XPU, ...)."""
    acc = getattr(torch, "accelerator", None)
    return torch.cuda.is_available() or torch.backends.mps.is_available() or bool(acc and acc.is_available())


def is_main_process() -> bool:
    """False only on the non-zero ranks of an initialised process group."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def wait_for_everyone() -> None:
    """A barrier over every process of the group (nothing in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def end_process_group() -> None:
    """Destroy the default process group, if one is initialised (nothing in a single process).

    Call it once, at the end of a launched command: a process that exits with its gloo group still
    alive can abort in the group's C++ destructor ("terminate called without an active exception",
    SIGABRT) after its work is done, and the launcher then reports the whole run as failed.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
