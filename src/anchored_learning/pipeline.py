"""One experiment: evaluate base -> train reference (SFT) -> train methods -> evaluate -> report.

Every stage writes its output atomically under ``output_dir`` (models under ``models/<name>``,
evaluations under ``evals/<name>.json``) and is skipped when its output already exists, so a
killed run continues where it stopped when started again with the same command; training stages
also resume from their last epoch checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

logger = logging.getLogger(__name__)

DONE = ".complete"

PRESETS: dict[str, dict[str, Any]] = {
    # a smoke run of every stage; see README "Results" for its measured wall time
    "quick": dict(n_train=32, n_test=16, igsm_arithmetic="add", igsm_op_min=2, igsm_op_max=3, ref_epochs=2,
                  epochs_per_iteration=1, outer_iterations=2, baseline_epochs=2, mc_limit=24, nll_limit=8,
                  drift_limit=8, batch_size=4, grad_accum=1, learning_rate=3e-4, reference_learning_rate=3e-4,
                  wise_weights=(0.5,), baselines=("wise_ft",), activation_checkpointing=False, target_drift=False,
                  heldout=("sciq_chat", "hellaswag", "arc_easy", "heldout_nll")),
    # the measured default run (results/igsm-default): the reference is SFT at lr 3e-4 (it forgets);
    # the anchored student, and the plain-SFT baseline at the same lr, train at 1e-4 (see the
    # learning-rate investigation in results/igsm-lr-investigation/README.md); calibrated in results/igsm-calibration
    "default": dict(n_train=96, n_test=64, igsm_arithmetic="add", igsm_op_min=2, igsm_op_max=3, ref_epochs=3,
                    epochs_per_iteration=1, outer_iterations=3, baseline_epochs=3, mc_limit=100, nll_limit=40,
                    drift_limit=40, batch_size=8, grad_accum=1, learning_rate=1e-4, reference_learning_rate=3e-4,
                    wise_weights=(0.5,), baselines=("sft", "wise_ft"), activation_checkpointing=False,
                    target_drift=False, heldout=("sciq_chat", "hellaswag", "arc_easy", "piqa", "heldout_nll")),
    # the paper's defaults (arXiv:2605.04468 reference implementation); for a GPU
    "paper": dict(n_train=5000, n_test=500, igsm_arithmetic="mod23", igsm_op_min=2, igsm_op_max=4, ref_epochs=3,
                  epochs_per_iteration=5, outer_iterations=5, baseline_epochs=3, mc_limit=1000, nll_limit=500,
                  drift_limit=500, batch_size=16, grad_accum=1, learning_rate=1e-5, reference_learning_rate=1e-5,
                  wise_weights=(0.25, 0.5, 0.75), activation_checkpointing=True),
}

HELDOUT = ("sciq_chat", "hellaswag", "arc_easy", "piqa", "mmlu", "heldout_nll")


@dataclass
class ExperimentConfig:
    """Everything one ``anchored run`` does.  Preset values fill the fields left at None."""

    preset: str = "default"
    task: str = "igsm"
    model: str | None = None  # None = the bundled SmolLM2-135M-Instruct
    data: str | None = None  # jsonl with prompt/response (or completion) fields: replaces generated training data
    output_dir: str = "runs/default"
    seed: int = 0
    n_train: int | None = None
    n_test: int | None = None
    igsm_op_min: int | None = None  # preset default
    igsm_op_max: int | None = None
    #: "add" (an easier iGSM for small models, the CPU presets' default) or "mod23" (the paper's)
    igsm_arithmetic: str | None = None
    #: recompute activations in the backward pass (saves memory, costs ~30% time); preset default
    activation_checkpointing: bool | None = None
    ref_epochs: int | None = None
    reference_learning_rate: float | None = None
    learning_rate: float | None = None
    anchor_alpha: float = 0.5
    anchor_interpolation: str = "logit"
    outer_iterations: int | None = None
    epochs_per_iteration: int | None = None
    anchor_source: str = "cache"
    #: preset default: ("sft_kl", "wise_ft"); default preset: ("sft", "wise_ft"); quick: ("wise_ft",).
    #: "sft" is plain SFT at the student's ``learning_rate`` (labelled ``sft(learning_rate=...)``);
    #: the row labelled "sft" is always the reference model.
    baselines: tuple[str, ...] | None = None
    baseline_epochs: int | None = None
    kl_coef: float = 0.1
    wise_weights: tuple[float, ...] | None = None
    batch_size: int | None = None
    grad_accum: int | None = None
    max_length: int = 512
    eval_batch_size: int = 8
    #: prompts per ``generate`` call in the generation suites (target task, sciq_chat)
    generation_batch_size: int = 32
    #: also measure drift KL(p0 || p) on the target task's test prompts (``drift:<task>``); the CPU
    #: presets skip it to save time (about 40 s per model on 40 iGSM items)
    target_drift: bool | None = None
    heldout: tuple[str, ...] | None = None  # preset default: HELDOUT
    mc_limit: int | None = None
    nll_limit: int | None = None
    drift_limit: int | None = None
    #: extra variants, each "method.field=v1,v2" (e.g. "anchored.anchor_alpha=0.25,0.75",
    #: "sft.learning_rate=3e-5,3e-4", "wise_ft.weight=0.25,0.75"); every value is one more point
    sweep: tuple[str, ...] = ()

    def resolved(self) -> "ExperimentConfig":
        """A copy with preset values filled in.

        Raises:
            ValueError: unknown preset, task or baseline; a negative seed; an evaluation batch size
                below 1.
        """
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.task not in ("igsm", "medcalc", "ifeval"):
            raise ValueError(f"unknown task {self.task!r}; choose igsm, medcalc or ifeval")
        if self.igsm_arithmetic not in (None, "add", "mod23"):
            raise ValueError(f"unknown igsm_arithmetic {self.igsm_arithmetic!r}; choose 'add' or 'mod23'")
        bad = [b for b in (self.baselines or ()) if b not in ("sft", "sft_kl", "dft", "asft", "psft", "distill", "anchored_per_step", "wise_ft", "lora")]
        if bad:
            raise ValueError(f"unknown baseline(s) {bad}")
        parse_sweep(self.sweep)  # fail before any work
        if int(self.seed) < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if int(self.eval_batch_size) < 1 or int(self.generation_batch_size) < 1:
            raise ValueError(f"eval_batch_size and generation_batch_size must be >= 1, got {self.eval_batch_size} and {self.generation_batch_size}")
        vals = dataclasses.asdict(self)
        for k, v in {"baselines": ("sft_kl", "wise_ft"), "heldout": HELDOUT, "target_drift": True, **PRESETS[self.preset]}.items():
            if vals.get(k) is None:
                vals[k] = v
        return ExperimentConfig(**vals)


def _short(x: float) -> str:
    """``1e-4`` -> ``"1e-4"``, ``3e-4`` -> ``"3e-4"``, ``0.25`` -> ``"0.25"`` (labels of runs)."""
    e = f"{x:.0e}"
    if float(e) == x and abs(x) < 1e-2:
        mant, exp = e.split("e")
        return f"{mant}e{int(exp)}"
    return f"{x:g}"


def save_model_atomically(model, tokenizer, final: Path, files: dict[str, str]) -> None:
    """Save ``model`` (LoRA adapters merged) and ``tokenizer`` to ``final`` plus text ``files``
    (name -> content), through ``final.tmp`` and a rename: a killed save leaves ``final.tmp``,
    never a half-written ``final``."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    for name, text in files.items():
        (tmp / name).write_text(text)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def _atomic_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_task(cfg: ExperimentConfig):
    """The target task object of ``cfg.task``."""
    if cfg.task == "igsm":
        from anchored_learning.tasks.igsm import IGSMTask

        return IGSMTask(op_min=cfg.igsm_op_min, op_max=cfg.igsm_op_max, arithmetic=cfg.igsm_arithmetic)
    if cfg.task == "medcalc":
        from anchored_learning.tasks.medcalc import MedCalcTask

        return MedCalcTask()
    from anchored_learning.tasks.ifeval import IFEvalTask

    return IFEvalTask()


def load_training_rows(cfg: ExperimentConfig, task) -> list[dict[str, Any]]:
    """Training examples as conversational prompt-completion rows.

    Raises:
        ValueError: a user data file with a malformed row (names the file and line).
    """
    if cfg.data:
        rows = []
        with open(cfg.data) as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    prompt, response = obj["prompt"], obj.get("response", obj.get("completion"))
                    if not isinstance(prompt, str) or not isinstance(response, str) or not response:
                        raise KeyError("response")
                except (json.JSONDecodeError, KeyError, TypeError, IndexError) as e:
                    raise ValueError(f"{cfg.data}:{i}: each line must be a JSON object with string 'prompt' and 'response' (or 'completion') fields ({e})") from e
                rows.append((prompt, response))
        if not rows:
            raise ValueError(f"{cfg.data} holds no examples; write one JSON object with 'prompt' and 'response' per line")
        rows = rows[: cfg.n_train] if cfg.n_train else rows
    else:
        rows = [(e.prompt, e.response) for e in task.examples("train", cfg.n_train, seed=cfg.seed)]
    return [{"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": r}]} for p, r in rows]


def parse_sweep(entries: tuple[str, ...] | list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """``["anchored.anchor_alpha=0.25,0.75"]`` -> ``[("anchored(anchor_alpha=0.25)", "anchored", {...}), ...]``.

    Values are parsed as int, then float, then kept as strings.

    Raises:
        ValueError: an entry not of the form ``method.field=v1[,v2...]``, an unknown method or field.
    """
    from anchored_learning.config import METHODS, AnchoredSFTConfig

    fields = {f.name for f in dataclasses.fields(AnchoredSFTConfig)}
    out = []
    for entry in entries:
        try:
            key, values = entry.split("=", 1)
            method, fld = key.split(".", 1)
        except ValueError:
            raise ValueError(f"sweep entry {entry!r} must look like method.field=v1,v2 (e.g. anchored.anchor_alpha=0.25,0.75)") from None
        if method not in (*METHODS, "lora", "wise_ft"):
            raise ValueError(f"sweep entry {entry!r}: unknown method {method!r}")
        if method == "wise_ft" and fld != "weight" or method != "wise_ft" and fld not in fields:
            raise ValueError(f"sweep entry {entry!r}: {fld!r} is not a field of AnchoredSFTConfig (wise_ft takes 'weight')")
        for raw in values.split(","):
            raw = raw.strip()
            val: Any = raw
            for cast in (int, float):
                try:
                    val = cast(raw)
                    break
                except ValueError:
                    pass
            if method == "wise_ft" and not (isinstance(val, (int, float)) and 0.0 <= val <= 1.0):
                raise ValueError(f"sweep entry {entry!r}: wise_ft.weight must be a number in [0, 1], got {raw!r}")
            if raw == "":
                raise ValueError(f"sweep entry {entry!r} has an empty value; write method.field=v1,v2")
            out.append((f"{method}({fld}={raw})", method, {fld: val}))
    return out


class Experiment:
    """Runs the stages of one experiment with skip-if-done semantics (see module docstring)."""

    def __init__(self, cfg: ExperimentConfig, console_log: Callable[[str], None] = print):
        self.cfg = cfg.resolved()
        self.out = Path(self.cfg.output_dir)
        self.log = console_log
        self.timings: dict[str, float] = {}
        self._check_output_folder()
        self.plan = self._plan()  # validates every stage's settings
        self._check_resume()

    #: ExperimentConfig fields that may differ when a run folder is resumed (they only add stages)
    RESUMABLE_CHANGES = frozenset({"sweep", "baselines", "wise_weights", "output_dir"})

    def _check_output_folder(self) -> None:
        """Refuse an output folder that cannot be created (a file, or below a file) and a model
        that cannot be loaded; :meth:`_check_resume` then refuses a folder that holds a run made
        with other settings (its finished stages would be reused and reported under the new ones).

        Raises:
            ValueError: naming the path or model and what to do.
        """
        from anchored_learning.evaluation.commands import check_output_path
        from anchored_learning.models import check_model_source

        check_output_path(self.out, "folder")
        check_model_source(self.cfg.model)

    def _check_resume(self) -> None:
        """Refuse to resume a folder whose ``config.json`` differs outside :attr:`RESUMABLE_CHANGES`.

        Raises:
            ValueError: naming the differing fields and what to do.
        """
        saved = self.out / "config.json"
        if not saved.exists():
            return
        old = json.loads(saved.read_text())
        new = json.loads(json.dumps(dataclasses.asdict(self.cfg), default=str))
        diff = {k: (old[k], v) for k, v in new.items() if k in old and k not in self.RESUMABLE_CHANGES and old[k] != v}
        if diff:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))
            raise ValueError(f"{self.out} holds a run made with other settings ({shown}); its finished stages would be "
                             f"reused under the new ones. Choose a new --output-dir, or delete {self.out} to start over "
                             f"(only {', '.join(sorted(self.RESUMABLE_CHANGES - {'output_dir'}))} may change on a resume)")

    def _reference_args(self) -> Any:
        c = self.cfg
        return self._training_args("reference", method="sft", num_train_epochs=c.ref_epochs,
                                   learning_rate=c.reference_learning_rate)

    @staticmethod
    def _settings_key(args, peft_config) -> str:
        """Everything that determines a trained model, without the folders it is written to."""
        d = {k: v for k, v in args.to_dict().items() if k not in ("output_dir", "logging_dir", "run_name")}
        return json.dumps(d, sort_keys=True, default=str) + repr(peft_config)

    def _plan(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(label, method, overrides)`` of every model after the base and the reference, in run
        order (WiSE-FT points, method ``wise_ft``, last).  Every stage's training arguments are
        built here, so a bad value (alpha 5, an unknown anchor source, a sweep value of the wrong
        type) fails before hours of work.  A variant that would train the same model as an earlier
        one (e.g. ``--baselines sft`` when the student's lr equals the reference's, or a sweep
        point equal to the preset) is dropped with a log line.

        Raises:
            ValueError: naming the stage and the field.
        """
        c = self.cfg
        ref_dir = self.out / "models" / "reference" / "final"
        try:
            seen = {self._settings_key(self._reference_args(), None): "sft"}
        except (TypeError, ValueError) as e:
            raise ValueError(f"reference: {e}") from None
        wise = [(f"wise_ft(w={w:g})", "wise_ft", {"weight": float(w)}) for w in (c.wise_weights if "wise_ft" in c.baselines else ())]
        trained = [("anchored", "anchored", {})] + [(b, b, {}) for b in c.baselines if b != "wise_ft"]
        for name, method, overrides in parse_sweep(c.sweep):
            if method == "wise_ft":
                wise.append((f"wise_ft(w={float(overrides['weight']):g})", method, {"weight": float(overrides["weight"])}))
            else:
                trained.append((name, method, overrides))
        plan, names = [], {"base", "sft"}  # "sft" is the reference model's label
        for name, method, overrides in trained + wise:
            if name == "sft":  # the plain-SFT baseline at the student's learning rate
                name, overrides = f"sft(learning_rate={_short(c.learning_rate)})", {"learning_rate": c.learning_rate}
            if method == "wise_ft":
                key = f"wise_ft {overrides['weight']!r}"
            else:
                try:
                    key = self._settings_key(*self._method_args(name, method, ref_dir, overrides))
                except (TypeError, ValueError) as e:
                    raise ValueError(f"{name}: {e}") from None
            if key in seen or name in names:
                self.log(f"[skip] {name}: the same model as {seen.get(key, name)}")
                continue
            seen[key] = name
            names.add(name)
            plan.append((name, method, overrides))
        return plan

    # -- helpers

    def _training_args(self, name: str, **kw) -> Any:
        from anchored_learning.config import AnchoredSFTConfig

        c = self.cfg
        base = dict(
            output_dir=str(self.out / "models" / name / "trainer"),
            per_device_train_batch_size=c.batch_size,
            gradient_accumulation_steps=c.grad_accum,
            learning_rate=c.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=0.1,  # a float < 1 is a fraction of the total steps
            max_length=c.max_length,
            logging_steps=5,
            save_strategy="epoch",
            save_total_limit=1,
            report_to="none",
            seed=c.seed,
            disable_tqdm=False,
        )
        # transformers 5 renamed gradient_checkpointing (now a deprecated alias) to activation_checkpointing
        names = {f.name for f in dataclasses.fields(AnchoredSFTConfig)}
        base["activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"] = bool(c.activation_checkpointing)
        base.update(kw)
        return AnchoredSFTConfig(**base)

    def _train(self, name: str, args, peft_config=None) -> Path:
        from anchored_learning.models import load_model_and_tokenizer
        from anchored_learning.trainer import AnchoredSFTTrainer

        final = self.out / "models" / name / "final"
        if (final / DONE).exists():
            self.log(f"[skip] {name}: already trained ({final})")
            return final
        self.log(f"[train] {name} ({args.method})")
        model, tok = load_model_and_tokenizer(self.model_path)
        trainer = AnchoredSFTTrainer(model, args=args, train_dataset=self.dataset, processing_class=tok,
                                     peft_config=peft_config)
        ckpts = list(Path(args.output_dir).glob("checkpoint-*"))
        t0 = time.perf_counter()
        trainer.train(resume_from_checkpoint=bool(ckpts) or None)
        self.timings[name] = time.perf_counter() - t0
        self._save_wall_time()
        save_model_atomically(trainer.model, tok, final, {DONE: json.dumps(
            {"train_time_s": self.timings[name], "log_history": trainer.state.log_history,
             "anchor_history": trainer.anchor_history}, default=str)})
        shutil.rmtree(args.output_dir, ignore_errors=True)  # checkpoints are no longer needed
        return final

    def _evaluate(self, name: str, model) -> dict[str, Any]:
        from anchored_learning.evaluation.suites import evaluate

        path = self.out / "evals" / f"{name}.json"
        if path.exists():
            self.log(f"[skip] eval {name}: {path}")
            return json.loads(path.read_text())
        self.log(f"[eval] {name}")
        c = self.cfg
        limits = {c.task: c.n_test, "heldout_nll": c.nll_limit, "drift": c.drift_limit, f"drift:{c.task}": c.drift_limit}
        limits.update({h: c.mc_limit for h in c.heldout if h not in limits})
        suites = [c.task, *c.heldout, "drift"] + ([f"drift:{c.task}"] if c.target_drift else [])
        res = evaluate(model, self.tok, suites, limits=limits, seed=c.seed, base_model=self.base,
                       batch_size=c.eval_batch_size, generation_batch_size=c.generation_batch_size,
                       progress=True, model_name=name)
        _atomic_json(path, res)
        self._save_wall_time()
        return res

    def _save_wall_time(self) -> float:
        """Record the wall time spent so far over all invocations (``wall_time.json``), so a resumed
        run reports its total, not only the last invocation (a killed stage's partial time is lost)."""
        total = self._wall_before + time.perf_counter() - self._t_start
        _atomic_json(self.out / "wall_time.json", {"seconds": total})
        return total

    # -- the run

    def run(self) -> dict[str, Any]:
        """Run every stage and write ``results.json``, ``results.md`` and ``pareto.png``."""
        from datasets import Dataset

        from anchored_learning.evaluation.suites import register_task
        from anchored_learning.models import load_model_and_tokenizer, resolve_model_path
        from anchored_learning.trainer import wise_ft

        c = self.cfg
        self._t_start = time.perf_counter()
        wt = self.out / "wall_time.json"
        self._wall_before = float(json.loads(wt.read_text())["seconds"]) if wt.exists() else 0.0
        self.out.mkdir(parents=True, exist_ok=True)
        _atomic_json(self.out / "config.json", dataclasses.asdict(c))
        torch.manual_seed(c.seed)
        self.model_path = resolve_model_path(c.model)
        task = make_task(c)
        register_task(c.task, lambda: task, default_limit=c.n_test)
        self.dataset = Dataset.from_list(load_training_rows(c, task))
        self.base, self.tok = load_model_and_tokenizer(self.model_path)
        self.base.eval()

        evals = {"base": self._evaluate("base", self.base)}
        ref_dir = self._train("reference", self._reference_args())
        from transformers import AutoModelForCausalLM

        ref_model = AutoModelForCausalLM.from_pretrained(ref_dir).eval()
        evals["sft"] = self._evaluate("sft", ref_model)

        for name, method, overrides in self.plan:
            if method == "wise_ft":
                evals[name] = self._evaluate(name, wise_ft(self.base, ref_model, overrides["weight"]).eval())
                continue
            args, peft_config = self._method_args(name, method, ref_dir, overrides)
            m = AutoModelForCausalLM.from_pretrained(self._train(name, args, peft_config=peft_config)).eval()
            evals[name] = self._evaluate(name, m)
            del m
        return self.report(evals, self._save_wall_time())

    def _method_args(self, name: str, method: str, ref_dir: Path, overrides: dict[str, Any]):
        """Training arguments (and a PEFT config for ``lora``) of one method variant."""
        c = self.cfg
        extra: dict[str, Any] = {"method": method, "num_train_epochs": c.baseline_epochs}
        peft_config = None
        if method in ("anchored", "anchored_per_step"):
            extra.update(anchor_alpha=c.anchor_alpha, anchor_interpolation=c.anchor_interpolation,
                         anchor_source=c.anchor_source, lr_scheduler_type="constant_with_warmup")
            if method == "anchored":
                extra.update(outer_iterations=c.outer_iterations, inner_epochs=c.epochs_per_iteration)
            else:
                extra["num_train_epochs"] = c.outer_iterations * c.epochs_per_iteration
        if method in ("anchored", "anchored_per_step", "distill"):
            extra["reference_model"] = str(ref_dir)
        if method in ("sft_kl", "asft"):
            extra["kl_coef"] = c.kl_coef
        if method == "lora":
            from peft import LoraConfig

            extra.update(method="sft", learning_rate=10 * c.learning_rate)
            peft_config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
        extra.update(overrides)
        return self._training_args(name, **extra), peft_config

    def report(self, evals: dict[str, dict[str, Any]], wall_time: float) -> dict[str, Any]:
        """Compare every model with the base model and write the result files."""
        from anchored_learning.evaluation.metrics import compare
        from anchored_learning.report import markdown_table, plot_pareto

        c = self.cfg
        base = evals["base"]
        rows = []
        for name, ev in evals.items():
            cmp = compare(base, ev, targets=[c.task], seed=c.seed)
            method = name.split("(")[0]
            g = cmp["gain"].get(c.task, {"points": 0.0, "ci": [0.0, 0.0]})
            md = cmp.get("mean_degradation", {"percent": 0.0, "ci": [0.0, 0.0]})
            res = ev["results"]
            done = self.out / "models" / ("reference" if name == "sft" else name) / "final" / DONE
            train_time = json.loads(done.read_text()).get("train_time_s", 0.0) if done.exists() else 0.0
            rows.append({
                "label": name,
                "method": method,
                "target": res[c.task]["primary"],
                "gain": g["points"], "gain_ci": g["ci"],
                "heldout": {h: res[h]["primary"] for h in c.heldout if "primary" in res.get(h, {})},
                "drift_kl": res.get("drift", {}).get("primary"),
                "drift_kl_target": res.get(f"drift:{c.task}", {}).get("primary"),
                "degradation": md["percent"], "degradation_ci": md["ci"],
                "degradation_per_benchmark": {k: v["percent"] for k, v in cmp["degradation"].items()},
                "train_time_s": train_time,
            })
        heldout = [h for h in c.heldout if all(h in r["heldout"] for r in rows)]
        table = markdown_table(rows, heldout)
        extra_cols = "\n".join(f"- {r['label']}: drift KL(p0||p) held-out {r['drift_kl']}"
                               + (f", on target prompts {r['drift_kl_target']}" if r["drift_kl_target"] is not None else "")
                               for r in rows)
        _atomic_text(self.out / "results.md", table + "\n" + extra_cols + "\n")
        plot_pareto([r for r in rows if r["label"] != "base"], self.out / "pareto.png",
                    title=f"{c.task}: gain vs. degradation ({c.preset} preset, seed {c.seed})")
        out = {
            "config": dataclasses.asdict(c),
            "rows": rows,
            "wall_time_s": wall_time,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                        "cuda": torch.cuda.is_available()},
        }
        _atomic_json(self.out / "results.json", out)
        return out


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list of ints.

    Raises:
        ValueError: no seeds, a seed repeated, or a negative seed.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds must be distinct, non-negative and non-empty, got {seeds}")
    return seeds


def run_seeds(cfg: ExperimentConfig, seeds: Sequence[int], console_log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``cfg`` once per seed (in ``<output_dir>/seed-<s>``) and aggregate over seeds.

    Each seed re-draws the training data, the evaluation subsets and the training randomness.
    Writes ``results.json`` (per-seed rows and mean/sd rows), ``results.md`` (mean ± sd table)
    and ``pareto.png`` (means with ±1 sd error bars) in ``output_dir``.  Finished seeds are
    skipped on a re-run like any other stage.

    Raises:
        ValueError: no seeds, repeated seeds, or an invalid configuration (before any work).
    """
    from anchored_learning.report import aggregate_seeds, markdown_table_seeds, plot_pareto

    seeds = check_seeds(seeds)
    cfg = cfg.resolved()
    out = Path(cfg.output_dir)
    # every seed's folder is checked before the first one starts
    exps = {s: Experiment(dataclasses.replace(cfg, seed=s, output_dir=str(out / f"seed-{s}")), console_log=lambda m: None)
            for s in seeds}
    per_seed = {}
    for s, exp in exps.items():
        console_log(f"== seed {s} ==")
        exp.log = console_log
        per_seed[s] = exp.run()
    rows = aggregate_seeds([r["rows"] for r in per_seed.values()])
    heldout = [h for h in cfg.heldout if all(h in r["heldout"] for r in rows)]
    _atomic_text(out / "results.md", markdown_table_seeds(rows, heldout)
                 + f"\nmean ± sd over seeds {seeds}; per-seed tables in seed-*/results.md\n")
    plot_pareto([r for r in rows if r["label"] != "base"], out / "pareto.png",
                title=f"{cfg.task}: gain vs. degradation ({cfg.preset} preset, mean ± sd over {len(seeds)} seeds)")
    res = {
        "config": dataclasses.asdict(cfg), "seeds": seeds, "rows": rows,
        "per_seed": {str(s): r["rows"] for s, r in per_seed.items()},
        "per_seed_wall_time_s": {str(s): r["wall_time_s"] for s, r in per_seed.items()},
        "wall_time_s": sum(r["wall_time_s"] for r in per_seed.values()),  # each seed's total over invocations
        "machine": next(iter(per_seed.values()))["machine"],
    }
    _atomic_json(out / "results.json", res)
    return res
