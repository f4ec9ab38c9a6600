"""``ExperimentConfig``: everything one ``anchored run`` does, and the YAML recipes (presets) that fill it.

Its evaluation fields (target task, your data files and scoring rule, the held-out suite and its
sizes) are :class:`EvaluationConfig`'s, which ``anchored compare`` (:class:`CompareConfig`)
shares.

A recipe is a YAML file of ``ExperimentConfig`` fields.  The bundled ones live in
``anchored_learning/configs/<task>/<preset>.yaml`` (``quick``, ``default`` for each target task;
``paper`` for iGSM, which stands in where a task has no recipe of that name); copy one,
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

from anchored_learning.experiment.variants import VARIANTS, parse_sweep
from anchored_learning.methods import HYPERPARAMETERS
from anchored_learning.tasks.benchmarks import STABILITY_SUITE
from anchored_learning.tasks.files import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEST_FRACTION
from anchored_learning.tasks.registry import TARGETS as TASKS
from anchored_learning.tasks.rules import RULES

#: the held-out members used when a recipe names none
HELDOUT = STABILITY_SUITE
#: the prior skill's stage when a recipe leaves it unset: plain SFT, one epoch of 384 examples at lr 1e-4
#: (SmolLM2-135M-Instruct's loss on date_iso is near 0.02 after 15 steps of 8; the skills' scores after
#: this stage: results/sequential-skills)
PRIOR_DEFAULTS = {"prior_n_train": 384, "prior_epochs": 1, "prior_learning_rate": 1e-4}


#: the folder of the sequential fine-tuning recipes (``configs/sequential/<preset>.yaml``): each names
#: its target task and the prior skill learned before it
SEQUENTIAL = "sequential"


def recipe_path(preset: str, task: str | None = "igsm"):
    """The bundled recipe file of ``preset``: ``configs/<task>/<preset>.yaml`` in the package, else a
    sequential recipe ``configs/sequential/<preset>.yaml``, else the iGSM recipe of that name (which
    stands in for tasks that have none yet)."""
    root = resources.files("anchored_learning") / "configs"
    for folder in (task, SEQUENTIAL):
        if folder is not None and (path := root / folder / f"{preset}.yaml").is_file():
            return path
    return root / "igsm" / f"{preset}.yaml"


def presets() -> list[str]:
    """Names of the bundled recipes (the targets' and the sequential ones)."""
    root = resources.files("anchored_learning") / "configs"
    return sorted(
        p.name[: -len(".yaml")] for folder in ("igsm", SEQUENTIAL) for p in (root / folder).iterdir() if p.name.endswith(".yaml")
    )


def recipe_task(preset: str) -> str | None:
    """The target task a sequential recipe names (None for the per-task recipes and unknown presets)."""
    path = recipe_path(preset, None)
    return load_recipe(preset, None).get("task") if path.parent.name == SEQUENTIAL else None


@cache
def load_recipe(preset: str, task: str | None = "igsm") -> dict[str, Any]:
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


def _hyperparameter(name: str, recipe: bool = False):
    """The field of a method hyper-parameter declared in :data:`~anchored_learning.methods.HYPERPARAMETERS`
    (the training config's own default, meaning and choices); ``recipe``: None by default, so that the recipe
    named by ``preset`` sets it."""
    h = HYPERPARAMETERS[name]
    extra = {"choices": h["choices"]} if "choices" in h else {}
    return field(default=None if recipe else h["default"], metadata=_help(h["help"], **extra))


@dataclass
class EvaluationConfig:
    """What is evaluated and how: the target task (generated, or yours from files, with its scoring
    rule), the held-out stability suite and their sizes.  ``anchored run`` and ``anchored compare``
    share these fields; fields left at None take the values of the recipe named by ``preset``."""

    preset: str = field(
        default="default",
        metadata=_help(
            "Bundled recipe (configs/<task>/<preset>.yaml; iGSM's where a task has none) that fills every field left "
            "unset: 'quick' (a smoke run of every stage), 'default' (the measured trade-off run), 'paper' (the paper's "
            "defaults, for a GPU); 'sequential-distant', 'sequential-related', 'sequential-conflicting' (sequential "
            "fine-tuning: a prior skill first, then a target; configs/sequential/).",
            aliases=["-p"],
        ),
    )
    task: str | None = field(
        default=None,
        metadata=_help(
            "Target task: a generated one, or 'file' (yours: --test_data scored by --score). Default: 'file' when "
            "--data or --test_data is given, else 'igsm'.",
            choices=list(TASKS),
            aliases=["-t"],
        ),
    )
    test_data: str | None = field(
        default=None,
        metadata=_help(
            "Your test set (task 'file'): jsonl/json/parquet/arrow/CSV, a save_to_disk folder (FOLDER:SPLIT picks a "
            "split) or a Hub id, in prompt/response, prompt/completion or messages form. Without it a share of --data "
            "(test_fraction) is held out."
        ),
    )
    score: str | None = field(
        default=None,
        metadata=_help(
            f"Scoring rule of the file task: one of {list(RULES)} or your own module:function (default normalized_match)."
        ),
    )
    answer_column: str | None = field(
        default=None,
        metadata=_help("Column of the reference answer (default: 'answer' when the test rows have it, else the gold response)."),
    )
    answer_regex: str | None = field(
        default=None, metadata=_help("The regex rule's pattern (the last match; its first group that matched, if it has groups).")
    )
    score_tolerance: float = field(default=1e-6, metadata=_help("The last_number rule's absolute and relative tolerance."))
    prompt_column: str | None = field(
        default=None, metadata=_help("Column of the prompt, or of a whole conversation (default: detected).")
    )
    response_column: str | None = field(default=None, metadata=_help("Column of the response (default: detected)."))
    test_fraction: float = field(
        default=DEFAULT_TEST_FRACTION,
        metadata=_help("Share of --data held out as the test set when no --test_data is given (not in anchored compare)."),
    )
    max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS,
        metadata=_help("Generation budget per test prompt of the file task (tokens); other tasks use their own."),
    )
    output_dir: str | None = field(
        default=None,
        metadata=_help(
            "Output folder (default: runs/<task>-<preset>; for anchored compare: runs/compare). Re-running resumes.",
            aliases=["-o"],
        ),
    )
    seed: int = field(default=0, metadata=_help("Seed of the data, the evaluation subsets and training."))
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
    medcalc_calculators: list[str] | None = field(
        default=None,
        metadata=_help("MedCalc: the calculators to train and test on (keys such as bmi, map; names or ids; default: all 14)."),
    )
    target_drift: bool | None = field(
        default=None, metadata=_help("Also measure drift KL(p0 || p) on the target task's test prompts (drift:<task>).")
    )
    heldout: list[str] | None = field(
        default=None,
        metadata=_help(
            f"Held-out suite members (default {list(HELDOUT)}): benchmarks, and any task (e.g. a prior skill such as "
            "date_iso, or igsm), whose test items are then scored as in a target and reported as a retention."
        ),
    )
    heldout_task_limit: int | None = field(
        default=None, metadata=_help("Test items of each task named among the held-out members (default 100).")
    )
    mc_limit: int | None = field(default=None, metadata=_help("Items per held-out multiple-choice benchmark."))
    nll_limit: int | None = field(default=None, metadata=_help("Passages of the held-out NLL."))
    drift_limit: int | None = field(default=None, metadata=_help("Prompt/response pairs of the drift suites."))
    precision: str = field(
        default="auto",
        metadata=_help(
            "'auto' (bf16 autocast with float32 weights where the hardware computes bf16 natively: a bf16 GPU, or a CPU "
            "with AVX-512 BF16 / AMX; float32 elsewhere), 'bf16' or 'fp32', for training and evaluation.",
            choices=["auto", "bf16", "fp32"],
        ),
    )
    eval_batch_size: int = field(default=8, metadata=_help("Sequences per forward pass in evaluation."))
    generation_batch_size: int = field(
        default=32, metadata=_help("Prompts per generate call in the generation suites (target task, sciq_chat).")
    )

    #: recipe fields a file task does not take (the files fix the items)
    FILE_TASK_IGNORES = ("n_train", "n_test", "igsm_op_min", "igsm_op_max", "igsm_arithmetic", "medcalc_calculators")

    def __post_init__(self):
        # a comma-separated string (old flag style, YAML scalars) or a tuple is a list
        for name in ("baselines", "heldout", "wise_weights", "sweep", "medcalc_calculators"):
            if not hasattr(self, name):
                continue
            v = getattr(self, name)
            if isinstance(v, str):
                v = [s.strip() for s in v.split(",") if s.strip()] if name != "sweep" else [v]
            elif isinstance(v, (list, tuple)) and name in ("baselines", "heldout", "medcalc_calculators"):
                v = [s.strip() for item in v for s in str(item).split(",") if s.strip()]
            if isinstance(v, tuple):
                v = list(v)
            setattr(self, name, v)

    def default_task(self) -> str | None:
        """The task when ``--task`` is not given: ``file`` with a test file, else the sequential
        recipe's target, else ``igsm``."""
        return "file" if self.test_data else (recipe_task(self.preset) or "igsm")

    def _default_output_dir(self, task: str | None) -> str:
        return f"runs/{task}-{self.preset}"

    def resolved(self):
        """A copy with the preset recipe's values in every field left at None (a file task takes no
        item counts or iGSM settings from it), the task defaulting to ``file`` when data files are
        given, and ``output_dir`` defaulting to ``runs/<task>-<preset>``, checked as a whole before
        any work.

        Raises:
            ValueError: unknown preset, task, baseline, held-out suite or scoring rule; a bad sweep
                entry; a negative seed; a size, limit or batch size below 1; WiSE-FT weights outside
                [0, 1]; igsm_op_min above igsm_op_max; an unknown MedCalc calculator, or
                calculators for another task; data files that do not fit the task.
        """
        task = self.task if self.task is not None else self.default_task()
        recipe = dict(load_recipe(self.preset, task or "igsm"))
        recipe.pop("task", None)
        if task == "file":
            for k in self.FILE_TASK_IGNORES:
                recipe.pop(k, None)
        vals = dataclasses.asdict(self)
        vals["task"] = task
        fallback = {
            "baselines": ["sft_kl", "wise_ft"],
            "heldout": list(HELDOUT),
            "target_drift": True,
            "train_sampling_strategy": "random",
            "heldout_task_limit": 100,
        }
        for k, v in {**fallback, **recipe}.items():
            if k in vals and vals.get(k) is None:
                vals[k] = v
        if vals.get("prior_task"):  # sequential fine-tuning: the prior skill's stage and its retention
            for k, v in PRIOR_DEFAULTS.items():
                vals[k] = v if vals[k] is None else vals[k]
            if vals["prior_task"] not in vals["heldout"]:
                vals["heldout"] = [vals["prior_task"], *vals["heldout"]]
        if vals["output_dir"] is None:
            vals["output_dir"] = self._default_output_dir(task)
        if task == "file" and vals["score"] is None:
            vals["score"] = "normalized_match"
        if vals["precision"] == "auto":  # what this machine does, recorded (a resume elsewhere must match)
            from anchored_learning.models import bf16_autocast_available

            vals["precision"] = "bf16" if bf16_autocast_available() else "fp32"
        out = type(self)(**vals)
        out._check()
        return out

    def _check(self) -> None:
        from anchored_learning.evaluation.suites import expand_suites
        from anchored_learning.tasks.rules import RuleOptions, get_rule

        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        for f in dataclasses.fields(self):  # the command line checks these too; the Python API here
            value, choices = getattr(self, f.name), f.metadata.get("choices")
            if choices and value is not None and value not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        if self.task is None and any(getattr(self, k) is not None for k in ("score", "answer_column", "answer_regex")):
            raise ValueError("--score, --answer_column and --answer_regex score your own test set: give it with --test_data")
        if self.task != "file":
            given = [f"--{k}" for k in ("test_data", "score", "answer_column", "answer_regex") if getattr(self, k) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} {'describes' if len(given) == 1 else 'describe'} your own test set (task 'file'), but the task is {self.task!r}; "
                    "drop --task (or pass --task file)"
                )
        else:
            get_rule(self.score, RuleOptions(answer_regex=self.answer_regex, score_tolerance=float(self.score_tolerance)))
        if int(self.seed) < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        try:
            expand_suites(list(self.heldout or ()))
        except KeyError as e:
            raise ValueError(f"heldout has an {e.args[0]}") from None  # "heldout has an unknown suite 'x'; known: ..."
        for name in (
            "n_train",
            "n_test",
            "mc_limit",
            "heldout_task_limit",
            "nll_limit",
            "drift_limit",
            "max_length",
            "eval_batch_size",
            "generation_batch_size",
            "max_new_tokens",
        ):
            v = getattr(self, name, None)
            if v is not None and int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if not 0.0 < float(self.test_fraction) < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.test_data is not None and float(self.test_fraction) != DEFAULT_TEST_FRACTION:
            raise ValueError(
                "test_fraction holds out a share of --data when no --test_data is given; the test set is "
                f"{self.test_data}: drop --test_fraction (or --test_data)"
            )
        lo, hi = self.igsm_op_min, self.igsm_op_max
        if lo is not None and hi is not None and int(lo) > int(hi):
            raise ValueError(f"igsm_op_min ({lo}) must be <= igsm_op_max ({hi})")
        if self.task not in (None, "file") and int(self.max_new_tokens) != DEFAULT_MAX_NEW_TOKENS:
            raise ValueError(
                f"max_new_tokens sets the generation budget of the file task only; the task {self.task!r} "
                "generates with its own budget (recorded per suite in evals/*.json as metrics.max_new_tokens): "
                "drop --max_new_tokens"
            )
        if self.medcalc_calculators:
            if self.task != "medcalc":
                raise ValueError(f"medcalc_calculators chooses MedCalc's calculators, but the task is {self.task!r}")
            from anchored_learning.tasks.medcalc.generators import _resolve_calculators

            _resolve_calculators(self.medcalc_calculators)  # an unknown name fails here, before any model loads


@dataclass
class ExperimentConfig(EvaluationConfig):
    """Everything one ``anchored run`` does: the evaluation (:class:`EvaluationConfig`) plus the
    base model, the training data and every trained model's settings.  Fields left at None take
    the values of the recipe named by ``preset``; the names are those of
    :class:`~anchored_learning.config.AnchoredSFTConfig` wherever the concept is the same."""

    model: str | None = field(
        default=None,
        metadata=_help("Base model: HF model id or folder (default: the bundled SmolLM2-135M-Instruct).", aliases=["-m"]),
    )
    data: str | None = field(
        default=None,
        metadata=_help(
            "Your training data (replaces the generated training set; the target becomes your task 'file' unless "
            "--task is given): jsonl/json/parquet/arrow/CSV, a save_to_disk folder or a Hub id, in prompt/response, "
            "prompt/completion or messages form."
        ),
    )
    n_train: int | None = field(default=None, metadata=_help("Training examples."))
    prior_task: str | None = field(
        default=None,
        metadata=_help(
            "Sequential fine-tuning: a prior skill the model learns first (plain SFT on that task's generated "
            "training set, stage 'prior'), then the model that knows it is the base model p0 of every later stage, "
            "and the prior skill joins the held-out suite (its retention is reported). A generated task, e.g. "
            "date_iso, sort_asc, igsm.",
            choices=[t for t in TASKS if t != "file"],
        ),
    )
    prior_n_train: int | None = field(default=None, metadata=_help("Training examples of the prior skill (default 384)."))
    prior_epochs: int | None = field(default=None, metadata=_help("Epochs of the prior skill's SFT (default 3)."))
    prior_learning_rate: float | None = field(
        default=None, metadata=_help("Learning rate of the prior skill's SFT (default 1e-4).")
    )
    activation_checkpointing: bool | None = field(
        default=None, metadata=_help("Recompute activations in the backward pass (saves memory, costs ~30%% time).")
    )
    reference_epochs: int | None = field(default=None, metadata=_help("Epochs of the reference SFT (p_sft)."))
    reference_learning_rate: float | None = field(default=None, metadata=_help("Learning rate of the reference SFT."))
    learning_rate: float | None = field(
        default=None, metadata=_help("Learning rate of the anchored student and of every baseline.")
    )
    anchor_alpha: float = _hyperparameter("anchor_alpha")
    anchor_interpolation: str = _hyperparameter("anchor_interpolation")
    outer_iterations: int | None = _hyperparameter("outer_iterations", recipe=True)
    inner_epochs: int | None = _hyperparameter("inner_epochs", recipe=True)
    anchor_source: str = _hyperparameter("anchor_source")
    baselines: list[str] | None = field(
        default=None,
        metadata=_help(
            f"Variants after the reference and the anchored student, any of {list(VARIANTS)} (space- or "
            "comma-separated). 'sft' is plain SFT at the student's learning rate, labelled sft(learning_rate=...); the "
            "row labelled 'sft' is always the reference model."
        ),
    )
    baseline_epochs: int | None = field(default=None, metadata=_help("Epochs of every trained baseline."))
    kl_coef: float = _hyperparameter("kl_coef")
    wise_weights: list[float] | None = field(default=None, metadata=_help("WiSE-FT weights w (0 = base, 1 = reference)."))
    per_device_train_batch_size: int | None = field(default=None, metadata=_help("Training batch size."))
    gradient_accumulation_steps: int | None = field(default=None, metadata=_help("Gradient accumulation steps."))
    max_length: int = field(default=512, metadata=_help("Longest training sequence in tokens."))
    train_sampling_strategy: str | None = field(
        default=None,
        metadata=_help(
            "Order of the training examples: 'random' (when the recipe does not say), or 'group_by_length' "
            "(transformers' sampler: random mega-batches, each sorted by length; less padding, "
            "results/benchmarks/padding_waste.json).",
            choices=["random", "group_by_length"],
        ),
    )
    deepspeed: str | None = field(
        default=None,
        metadata=_help(
            "DeepSpeed config (JSON file) for every training stage, as TrainingArguments.deepspeed; start the run "
            "under torchrun or accelerate launch. ZeRO stage 2 is tested, stage 3 is refused."
        ),
    )
    sweep: list[str] = field(
        default_factory=list,
        metadata=_help(
            "Extra variants, each 'method.field=v1,v2' (e.g. anchored.anchor_alpha=0.25,0.75, sft.learning_rate=3e-5,3e-4, "
            "wise_ft.weight=0.25,0.75): every value is one more point on the frontier.",
            aliases=["--grid", "-g"],
        ),
    )

    def default_task(self) -> str:
        return "file" if (self.data or self.test_data) else (recipe_task(self.preset) or "igsm")

    def _check(self) -> None:
        super()._check()
        if self.task == "file" and not self.data:
            raise ValueError("the file task trains on your rows: give --data (and --test_data for the test set)")
        if self.prior_task is None:
            given = [f"--{k}" for k in PRIOR_DEFAULTS if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} set the prior skill's stage: give the skill with --prior_task")
        elif self.prior_task == self.task:
            raise ValueError(f"prior_task {self.prior_task!r} is the target task too: choose another prior skill or target")
        for name in PRIOR_DEFAULTS:
            v = getattr(self, name)
            if v is not None and not float(v) > 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        bad = [b for b in (self.baselines or ()) if b not in VARIANTS]
        if bad:
            raise ValueError(f"baselines has unknown entries {bad}; choose from {list(VARIANTS)}")
        parse_sweep(self.sweep)
        if self.deepspeed:
            from anchored_learning.distributed import check_deepspeed

            check_deepspeed(self.deepspeed)
        if any(not 0.0 <= float(w) <= 1.0 for w in (self.wise_weights or ())):
            raise ValueError(f"wise_weights must be in [0, 1], got {self.wise_weights}")
        # the stages' num_train_epochs come from these: an error names the flag the user gave
        for name in ("outer_iterations", "inner_epochs", "reference_epochs", "baseline_epochs"):
            v = getattr(self, name, None)
            if v is not None and not float(v) > 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        if self.kl_coef is not None and not float(self.kl_coef) >= 0:  # checked even when no run uses it
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")


@dataclass
class CompareConfig(EvaluationConfig):
    """``anchored compare``: score a base model and fine-tuned models on the same items and report
    each model's gain and degradation against the base (:class:`EvaluationConfig` says what is
    evaluated; the target is optional: ``--task`` or ``--test_data``)."""

    base: str | None = field(
        default=None, metadata=_help("The base model (HF id or folder; default: the bundled SmolLM2-135M-Instruct).")
    )
    model: list[str] = field(
        default_factory=list,
        metadata=_help(
            "Fine-tuned models to compare with the base (folders or HF ids; a LoRA adapter folder is applied to --base). "
            "Repeat the flag or give several.",
            aliases=["-m"],
        ),
    )

    def default_task(self) -> str | None:
        return "file" if self.test_data else None

    def _default_output_dir(self, task: str | None) -> str:
        return "runs/compare"

    def _check(self) -> None:
        super()._check()
        if not self.model:
            raise ValueError("give at least one fine-tuned model with --model")
        if float(self.test_fraction) != DEFAULT_TEST_FRACTION:
            raise ValueError("test_fraction holds out a share of training data; anchored compare has none: drop --test_fraction")
        if self.task == "file" and not self.test_data:
            raise ValueError("the file task needs --test_data in anchored compare")
