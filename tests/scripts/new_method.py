"""A method added by one registry entry, and nothing else: registered before the package's other
modules are imported (as an entry in methods.py would be), then driven through the trainer's
command line and an experiment's plan.  Prints one JSON line of what it saw.

Usage: python new_method.py <tiny model folder> <data.jsonl> <output folder>
"""

import json
import sys

from anchored_learning import methods
from anchored_learning import objectives as O

CALLS = []


def _halved_sft(student, y, anchors, args, **common):
    CALLS.append(int(y.numel()))
    return 0.5 * O.sft_loss(student, y, **common)


methods.METHODS["halved_sft"] = methods.Method("halved_sft", _halved_sft, description="0.5 x SFT (a test's method)")

from typer.testing import CliRunner  # noqa: E402

from anchored_learning.cli import _register, app  # noqa: E402
from anchored_learning.experiment import ExperimentConfig, parse_sweep  # noqa: E402
from anchored_learning.experiment import plan as P  # noqa: E402

_register()
model, data, out = sys.argv[1:4]
help_text = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).output
res = CliRunner().invoke(
    app, ["train", "--method", "halved_sft", "-m", model, "--data", data, "--output_dir", out, "--max_steps", "2",
          "--per_device_train_batch_size", "2"],
)  # fmt: skip
cfg = ExperimentConfig(preset="quick", model=model, baselines=["halved_sft"], sweep=["halved_sft.learning_rate=3e-4"])
cfg = cfg.resolved()
planned = P.plan(cfg, P.Path(out) / "exp", log=lambda m: None)
args = {v.label: P.variant_args(cfg, P.Path(out) / "exp", v)[0] for v in planned}
print(
    json.dumps(
        {
            "in_help": "halved_sft" in help_text,
            "exit_code": res.exit_code,
            "output": res.output[-2000:],
            "loss_calls": len(CALLS),
            "planned": [[v.label, v.method] for v in planned],
            "methods_of_args": {k: a.method for k, a in args.items()},
            "epochs_of_args": {k: a.num_train_epochs for k, a in args.items()},
            "sweep": [list(v[:2]) for v in parse_sweep(["halved_sft.learning_rate=1e-4"])],
        }
    )
)
