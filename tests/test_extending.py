"""Adding a method is one registry entry: a new ``METHODS`` entry reaches the trainer (its loss is
what trains), the command line (``anchored train --method``) and an experiment's grid (baselines,
sweeps, training arguments) with no other edit (docs/extending.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from anchored_learning.testing import save_tiny_llama

SCRIPT = Path(__file__).parent / "scripts" / "new_method.py"


def test_a_new_registry_entry_reaches_the_trainer_the_cli_and_the_frontier_grid(tmp_path):
    save_tiny_llama(tmp_path / "tiny", seed=0)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{i}+1?", "response": str(i + 1)}) + "\n" for i in range(4)))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "tiny"), str(data), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["in_help"]  # listed among --method's choices
    assert seen["exit_code"] == 0, seen["output"]
    assert seen["loss_calls"] == 2  # its loss trained the model: one call per step (--max_steps 2)
    assert (tmp_path / "out" / "final" / "config.json").is_file()
    assert seen["planned"][1:] == [["halved_sft", "halved_sft"], ["halved_sft(learning_rate=3e-4)", "halved_sft"]]
    assert seen["methods_of_args"]["halved_sft"] == "halved_sft"
    assert seen["epochs_of_args"]["halved_sft"] == 2  # the quick recipe's baseline_epochs (Method.epochs "baseline")
    assert seen["sweep"] == [["halved_sft(learning_rate=1e-4)", "halved_sft"]]
