"""Does FSDP shard the student on CPU processes?  (Behind the README's "Several GPUs" paragraph.)

Run under a launcher with 2 CPU processes; every rank prints one JSON line:

    python -m torch.distributed.run --standalone --nproc_per_node 2 scripts/fsdp_cpu_probe.py

It builds an ``AnchoredSFTTrainer`` (tiny random Llama, method sft) with
``fsdp=True, fsdp_config={"version": 2, "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]}``,
trains one step and reports ``trainer.is_fsdp_enabled``, accelerate's distributed type, and the
type and shape of a parameter during training (a sharded parameter is a DTensor holding a slice).
"""

from __future__ import annotations

import json
import os
import tempfile


def main() -> None:
    from datasets import Dataset
    from transformers import TrainerCallback

    from anchored_learning.config import AnchoredSFTConfig
    from anchored_learning.testing import tiny_llama
    from anchored_learning.trainer import AnchoredSFTTrainer

    rows = [{"prompt": f"add {i} and {i + 3}", "completion": f" {2 * i + 3}"} for i in range(8)]
    model, tok = tiny_llama(seed=0)
    seen: dict = {}

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            p = next(model.parameters())
            seen.update(param_type=type(p.data).__name__, param_shape=list(p.shape), full_shape=[260, 64])

    args = AnchoredSFTConfig(
        output_dir=tempfile.mkdtemp(),
        method="sft",
        per_device_train_batch_size=2,
        max_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        fsdp=True,
        fsdp_config={"version": 2, "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]},
    )
    tr = AnchoredSFTTrainer(model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[Probe()])
    tr.train()
    print(
        json.dumps(
            {
                "rank": os.environ.get("RANK"),
                "is_fsdp_enabled": tr.is_fsdp_enabled,
                "distributed_type": str(tr.accelerator.distributed_type),
                **seen,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
