"""``ExperimentConfig``: everything one ``anchored run`` does, and the YAML recipes (presets) that fill it.

A recipe is a YAML file of ``ExperimentConfig`` fields.  The bundled ones live in
``anchored_learning/configs/<task>/<preset>.yaml`` (``quick``, ``default``, ``paper``); copy one,
edit it and pass it with ``anchored run --config my.yaml``.  Every field is also a flag
(``anchored run --help``); flags override the recipe, and fields left unset (None) take the
values of the bundled recipe named by ``preset``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from anchored_learning.experiment.plan import VARIANTS, parse_sweep
from anchored_learning.tasks.registry import TARGETS as TASKS

#: the held-out members used when a recipe names none
HELDOUT = ("sciq_chat", "hellaswag", "arc_easy", "piqa", "mmlu", "heldout_nll")


#: ExperimentConfig fields renamed to AnchoredSFTConfig's names (old name -> new name)
RENAMED_FIELDS = {
    "epochs_per_iteration": "inner_epochs",
    "batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "ref_epochs": "reference_epochs",
}


def recipe_path(preset: str, task: str = "igsm"):
    """The bundled recipe file of ``preset`` (``configs/<task>/<preset>.yaml`` in the package; the
    iGSM recipes stand in for tasks that have none yet)."""
    root = resources.files("anchored_learning") / "configs"
    path = root / task / f"{preset}.yaml"
    return path if path.is_file() else root / "igsm" / f"{preset}.yaml"


def presets() -> list[str]:
    """Names of the bundled recipes."""
    return sorted(
        p.name[: -len(".yaml")]
        for p in (resources.files("anchored_learning") / "configs" / "igsm").iterdir()
        if p.name.endswith(".yaml")
    )


@cache
def load_recipe(preset: str, task: str = "igsm") -> dict[str, Any]:
    """The fields of a bundled recipe as a dict.

    Raises:
        ValueError: an unknown preset (names the known ones).
    """
    import yaml

    path = recipe_path(preset, task)
    if not path.is_file():
        raise ValueError(f"unknown preset {preset!r}; choose one of {presets()} or pass your own recipe with --config")
    return yaml.safe_load(path.read_text())


def _help(text: str, **extra) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class ExperimentConfig:
    """Everything one ``anchored run`` does.  Fields left at None take the values of the recipe
    named by ``preset``; the names are those of :class:`~anchored_learning.config.AnchoredSFTConfig`
    wherever the concept is the same."""

    preset: str = field(
        default="default",
        metadata=_help(
            "Bundled recipe (configs/igsm/<preset>.yaml) that fills every field left unset: 'quick' (a smoke run of "
            "every stage), 'default' (the measured trade-off run), 'paper' (the paper's defaults, for a GPU).",
            aliases=["-p"],
        ),
    )
    task: str = field(default="igsm", metadata=_help("Target task.", choices=list(TASKS), aliases=["-t"]))
    model: str | None = field(
        default=None,
        metadata=_help("Base model: HF model id or folder (default: the bundled SmolLM2-135M-Instruct).", aliases=["-m"]),
    )
    data: str | None = field(
        default=None,
        metadata=_help(
            "Your training data: jsonl with 'prompt' and 'response' (or 'completion') fields; replaces the generated "
            "training set."
        ),
    )
    output_dir: str | None = field(
        default=None, metadata=_help("Output folder (default: runs/<task>-<preset>). Re-running resumes.", aliases=["-o"])
    )
    seed: int = field(default=0, metadata=_help("Seed of the data, the evaluation subsets and training."))
    n_train: int | None = field(default=None, metadata=_help("Training examples."))
    n_test: int | None = field(default=None, metadata=_help("Target test items."))
    igsm_op_min: int | None = field(default=None, metadata=_help("iGSM: fewest operations per problem."))
    igsm_op_max: int | None = field(default=None, metadata=_help("iGSM: most operations per problem."))
    igsm_arithmetic: str | None = field(
        default=None,
        metadata=_help(
            "iGSM: 'add' (an easier variant for small models, the CPU recipes') or 'mod23' (the paper's).",
            choices=["add", "mod23"],
        ),
    )
    activation_checkpointing: bool | None = field(
        default=None, metadata=_help("Recompute activations in the backward pass (saves memory, costs ~30%% time).")
    )
    reference_epochs: int | None = field(default=None, metadata=_help("Epochs of the reference SFT (p_sft)."))
    reference_learning_rate: float | None = field(default=None, metadata=_help("Learning rate of the reference SFT."))
    learning_rate: float | None = field(
        default=None, metadata=_help("Learning rate of the anchored student and of every baseline.")
    )
    anchor_alpha: float = field(default=0.5, metadata=_help("alpha in [0, 1]: weight of p_sft in the anchor."))
    anchor_interpolation: str = field(
        default="logit",
        metadata=_help("'logit' (geometric) or 'probability' (arithmetic) anchor.", choices=["logit", "probability"]),
    )
    outer_iterations: int | None = field(default=None, metadata=_help("T: outer iterations (snapshot refreshes)."))
    inner_epochs: int | None = field(default=None, metadata=_help("K: epochs per outer iteration."))
    anchor_source: str = field(
        default="cache", metadata=_help("'cache' (exact, one model in memory) or 'live'.", choices=["cache", "live"])
    )
    baselines: list[str] | None = field(
        default=None,
        metadata=_help(
            f"Variants after the reference and the anchored student, any of {list(VARIANTS)} (space- or "
            "comma-separated). 'sft' is plain SFT at the student's learning rate, labelled sft(learning_rate=...); the "
            "row labelled 'sft' is always the reference model."
        ),
    )
    baseline_epochs: int | None = field(default=None, metadata=_help("Epochs of every trained baseline."))
    kl_coef: float = field(default=0.1, metadata=_help("lambda of the KL-to-base term of sft_kl and asft."))
    wise_weights: list[float] | None = field(default=None, metadata=_help("WiSE-FT weights w (0 = base, 1 = reference)."))
    per_device_train_batch_size: int | None = field(default=None, metadata=_help("Training batch size."))
    gradient_accumulation_steps: int | None = field(default=None, metadata=_help("Gradient accumulation steps."))
    max_length: int = field(default=512, metadata=_help("Longest training sequence in tokens."))
    eval_batch_size: int = field(default=8, metadata=_help("Sequences per forward pass in evaluation."))
    generation_batch_size: int = field(
        default=32, metadata=_help("Prompts per generate call in the generation suites (target task, sciq_chat).")
    )
    target_drift: bool | None = field(
        default=None, metadata=_help("Also measure drift KL(p0 || p) on the target task's test prompts (drift:<task>).")
    )
    heldout: list[str] | None = field(default=None, metadata=_help(f"Held-out suite members (default {list(HELDOUT)})."))
    mc_limit: int | None = field(default=None, metadata=_help("Items per held-out multiple-choice benchmark."))
    nll_limit: int | None = field(default=None, metadata=_help("Passages of the held-out NLL."))
    drift_limit: int | None = field(default=None, metadata=_help("Prompt/response pairs of the drift suites."))
    sweep: list[str] = field(
        default_factory=list,
        metadata=_help(
            "Extra variants, each 'method.field=v1,v2' (e.g. anchored.anchor_alpha=0.25,0.75, sft.learning_rate=3e-5,3e-4, "
            "wise_ft.weight=0.25,0.75): every value is one more point on the frontier.",
            aliases=["--grid", "-g"],
        ),
    )

    def __post_init__(self):
        # a comma-separated string (old flag style, YAML scalars) or a tuple is a list
        for name in ("baselines", "heldout", "wise_weights", "sweep"):
            v = getattr(self, name)
            if isinstance(v, str):
                v = [s.strip() for s in v.split(",") if s.strip()] if name != "sweep" else [v]
            elif isinstance(v, (list, tuple)) and name in ("baselines", "heldout"):
                v = [s.strip() for item in v for s in str(item).split(",") if s.strip()]
            if isinstance(v, tuple):
                v = list(v)
            setattr(self, name, v)

    def resolved(self) -> ExperimentConfig:
        """A copy with the preset recipe's values in every field left at None, and ``output_dir``
        defaulting to ``runs/<task>-<preset>``, checked as a whole before any work.

        Raises:
            ValueError: unknown preset, task, baseline or held-out suite; a bad sweep entry; a
                negative seed; a size, limit or batch size below 1; WiSE-FT weights outside [0, 1];
                igsm_op_min above igsm_op_max.
        """
        recipe = load_recipe(self.preset, self.task)
        vals = dataclasses.asdict(self)
        for k, v in {"baselines": ["sft_kl", "wise_ft"], "heldout": list(HELDOUT), "target_drift": True, **recipe}.items():
            if k in vals and vals.get(k) is None:
                vals[k] = v
        if vals["output_dir"] is None:
            vals["output_dir"] = f"runs/{self.task}-{self.preset}"
        out = ExperimentConfig(**vals)
        out._check()
        return out

    def _check(self) -> None:
        from anchored_learning.evaluation.suites import expand_suites

        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.igsm_arithmetic not in (None, "add", "mod23"):
            raise ValueError(f"unknown igsm_arithmetic {self.igsm_arithmetic!r}; choose 'add' or 'mod23'")
        bad = [b for b in (self.baselines or ()) if b not in VARIANTS]
        if bad:
            raise ValueError(f"unknown baseline(s) {bad}; choose from {list(VARIANTS)}")
        parse_sweep(self.sweep)
        if int(self.seed) < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        try:
            expand_suites(list(self.heldout or ()))
        except KeyError as e:
            raise ValueError(f"heldout: {e.args[0]}") from None
        if any(not 0.0 <= float(w) <= 1.0 for w in (self.wise_weights or ())):
            raise ValueError(f"wise_weights must be in [0, 1], got {self.wise_weights}")
        for name in (
            "n_train",
            "n_test",
            "mc_limit",
            "nll_limit",
            "drift_limit",
            "max_length",
            "eval_batch_size",
            "generation_batch_size",
        ):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        lo, hi = self.igsm_op_min, self.igsm_op_max
        if lo is not None and hi is not None and int(lo) > int(hi):
            raise ValueError(f"igsm_op_min ({lo}) must be <= igsm_op_max ({hi})")
