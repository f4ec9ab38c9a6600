"""The stages of one experiment: evaluate base -> train reference (SFT) -> train variants -> evaluate -> report.

Every stage writes its output atomically under ``output_dir`` (models under ``models/<name>``,
evaluations under ``evals/<name>.json``) and is skipped when its output already exists, so a
killed run continues where it stopped when started again with the same command; training stages
also resume from their last epoch checkpoint.

Under a launcher (``torchrun`` / ``accelerate launch``: ``WORLD_SIZE`` > 1) every process trains
together (DDP through the trainer, the anchor cache sharded across ranks), the main process alone
evaluates and writes (models, evaluations, reports), and the other processes wait for it at a
barrier (the process group's timeout is :data:`~anchored_learning.distributed.DDP_TIMEOUT_S`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from anchored_learning.distributed import is_main_process, under_launcher, wait_for_everyone, zero_stage
from anchored_learning.experiment import plan as P
from anchored_learning.experiment.experiment_config import ExperimentConfig
from anchored_learning.experiment.task_data import (
    check_test_items,
    check_test_prompts_fit,
    data_fingerprints,
    load_training_rows,
    make_task,
    prior_training_rows,
    self_generated_training_rows,
    training_examples,
)
from anchored_learning.experiment.variants import Variant
from anchored_learning.io import check_output_path, write_json_atomic
from anchored_learning.on_policy import RECORD_FOLDER

DONE, PRETRAINED = P.DONE, P.PRETRAINED

#: config.json's entry holding the SHA-256 of the data files' contents (compared on resume)
DATA_KEY = "data_sha256"
#: config.json's entry holding the fingerprint of each model the run starts from (compared on resume)
MODEL_KEY = "model_sha256"


class Experiment:
    """Runs the stages of one experiment with skip-if-done semantics (see module docstring)."""

    #: ExperimentConfig fields that may differ when a run folder is resumed (they only add stages)
    RESUMABLE_CHANGES = frozenset({"sweep", "baselines", "wise_weights", "output_dir"})

    def __init__(self, cfg: ExperimentConfig, console_log: Callable[[str], None] = print):
        self.cfg = cfg.resolved()
        self.out = Path(self.cfg.output_dir)
        self.log = console_log
        self.timings: dict[str, float] = {}
        self._check_output_folder()
        self.plan = P.plan(self.cfg, self.out, log=lambda m: self.log(m))  # validates every stage's settings
        self._check_resume()
        self.task = make_task(self.cfg)  # reads and checks data files (a file task's rows and rule)
        check_test_items(self.cfg, self.task)
        check_test_prompts_fit(self.cfg, self.task, self.cfg.model)
        self.rows = load_training_rows(self.cfg, self.task)  # as many rows as n_train asks for
        self.prior_rows = prior_training_rows(self.cfg)  # [] without a prior skill
        self.examples = training_examples(self.cfg, self.task)  # (their task examples: what scores a sample)
        self._check_training_lengths()
        self._check_self_generated()

    def _check_training_lengths(self) -> None:
        """Refuse, before any model load, training rows that keep no response token at the shortest
        ``max_length`` of any stage (TRL would drop them and the trainer refuse to start, after the
        base model's evaluation).

        Raises:
            ValueError: from :func:`~anchored_learning.data.check_response_tokens_fit`.
        """
        from anchored_learning.data import check_response_tokens_fit
        from anchored_learning.models import load_tokenizer

        lengths = [self.cfg.max_length, *(v.overrides["max_length"] for v in self.plan if "max_length" in v.overrides)]
        lengths = [int(n) for n in lengths if n is not None]
        if lengths:
            check_response_tokens_fit(self.rows + self.prior_rows, load_tokenizer(self.cfg.model), min(lengths))

    def _check_self_generated(self) -> None:
        """Refuse, before any work, a self-generated SFT run without a task that scores its samples.

        Raises:
            ValueError: naming the run.
        """
        from anchored_learning.methods import METHODS

        runs = [v.label for v in self.plan if v.method in METHODS and METHODS[v.method].responses == "self_generated"]
        if runs and self.examples is None:
            raise ValueError(
                f"{runs[0]} keeps the base model's samples that the task's scoring rule accepts, but the training rows "
                f"come from --data with the task {self.cfg.task!r}, whose rule needs its own examples: use the file task "
                "(--data with --test_data and --score) or drop the run"
            )

    def _self_generated_dataset(self, name: str, args):
        """``(dataset, report)`` of run ``name`` of ``sft_self_generated``: the base model's samples of
        the training prompts that the task accepts (the dataset response where none is), recorded in
        ``models/<name>/self_generated.jsonl`` by the main process and reused on a resumed run."""
        from datasets import Dataset

        from anchored_learning.sampling import read_record

        path = self.out / "models" / name / "self_generated.jsonl"
        if is_main_process():
            exs = self.examples
            _, report = self_generated_training_rows(
                path, self.rows, lambda i, text: self.task.score(exs[i], text), self.base, self.tok, args, log=self.log
            )
            self.log(
                f"[data] {name}: {report['accepted']} of {report['n']} training rows are the base model's accepted samples "
                f"({report['accepted_share']:.1%}); the others keep the dataset response"
            )
        wait_for_everyone()
        header, rows = read_record(path)
        return Dataset.from_list(rows), header["report"]

    def _check_output_folder(self) -> None:
        """Refuse an output folder that cannot be created (a file, or below a file) and a model
        that cannot be loaded; :meth:`_check_resume` then refuses a folder that holds a run made
        with other settings (its finished stages would be reused and reported under the new ones).

        Raises:
            ValueError: naming the path or model and what to do.
        """
        from anchored_learning.models import check_model_source

        check_output_path(self.out, "folder")
        check_model_source(self.cfg.model)

    def _check_resume(self) -> None:
        """Refuse to resume a folder whose ``config.json`` differs outside :attr:`RESUMABLE_CHANGES`.

        Raises:
            ValueError: naming the differing fields and what to do.
        """
        self._record = config_record(self.cfg, {"model": self.cfg.model})
        check_resume(self.out, self._record, self.RESUMABLE_CHANGES)

    # -- stages

    def _train(self, name: str, args, peft_config=None, dataset=None, record: dict[str, Any] | None = None) -> Path:
        from anchored_learning.models import load_model_and_tokenizer, save_pretrained_atomically, weights_sha256
        from anchored_learning.trainer import AnchoredSFTTrainer

        final = self.out / "models" / name / "final"
        if (final / DONE).exists():
            self.log(f"[skip] {name}: already trained ({final})")
            return final
        recorded = P.training_record(self.out, name)  # of an exported folder whose model was not kept
        main = is_main_process()
        if recorded is None and main:  # evaluations of an earlier model of which nothing else is left
            for label in self._evaluated_with(name):
                if (stale := self.out / "evals" / f"{label}.json").exists():
                    self.log(f"[eval] {label}: {stale} is of a model that has no training record here: evaluating again")
                    stale.unlink()
        model, tok = load_model_and_tokenizer(self.model_path)
        data = self.dataset if dataset is None else dataset
        trainer = AnchoredSFTTrainer(model, args=args, train_dataset=data, processing_class=tok, peft_config=peft_config)
        engine = f", DeepSpeed ZeRO-{zero_stage(args.deepspeed)}" if trainer.is_deepspeed_enabled else ""
        self.log(f"[train] {name} ({args.method}{engine})")
        ckpts = list(Path(args.output_dir).glob("checkpoint-*"))
        t0 = time.perf_counter()
        trainer.train(resume_from_checkpoint=bool(ckpts) or None)
        self.timings[name] = time.perf_counter() - t0
        if main:  # one writer when several processes trained together
            self._save_wall_time()
            # an on-policy run's responses, per outer iteration: kept in models/<name>/on_policy when the
            # trainer's folder (its checkpoints) is deleted
            if (sampled := Path(args.output_dir) / RECORD_FOLDER).is_dir():
                shutil.copytree(sampled, self.out / "models" / name / RECORD_FOLDER, dirs_exist_ok=True)
            save_pretrained_atomically(
                trainer.model,
                tok,
                final,
                {
                    DONE: lambda folder: json.dumps(
                        {
                            "train_time_s": self.timings[name],
                            "log_history": trainer.state.log_history,
                            "anchor_history": trainer.anchor_history,
                            "weights_sha256": weights_sha256(folder),
                            **(record or {}),
                        },
                        default=str,
                    )
                },
            )
        wait_for_everyone()  # every rank is past its last checkpoint before they are deleted
        if main:
            shutil.rmtree(args.output_dir, ignore_errors=True)  # checkpoints are no longer needed
        if recorded is not None:  # trained again as its model was not kept: is it the model that was evaluated?
            self._check_same_as_recorded(name, recorded, final)
        return final

    def _evaluated_with(self, name: str) -> list[str]:
        """The evaluations that model ``name`` decides: its own, and for the reference the WiSE-FT ones."""
        if name == "prior":  # p0: every model of the folder starts from it, and drift is measured from it
            return [p.stem for p in (self.out / "evals").glob("*.json")]
        if name != "reference":
            return [name]
        return ["sft"] + [v.label for v in self.plan if v.method == "wise_ft"]

    def _check_same_as_recorded(self, name: str, recorded: dict[str, Any], final: Path) -> None:
        """Stop unless the model ``name`` just trained again equals the recorded one: the same
        ``weights_sha256``, or for a record without it the same loss at every logged step.

        Raises:
            RuntimeError: it differs (the new model is removed, so a rerun cannot take it for the recorded one).
        """
        new = P.training_record(self.out, name)  # the record just written with the model (final/.complete)
        if recorded.get("weights_sha256") is not None:
            how, same = "bit-identical weights", recorded["weights_sha256"] == new["weights_sha256"]
        else:  # a record from before weights_sha256
            curve = lambda history: [(h["step"], h.get("loss"), h.get("train_loss")) for h in history]  # noqa: E731
            how = "the recorded loss at every logged step and train_loss (the record has no weights_sha256)"
            same = curve(new["log_history"]) == curve(recorded["log_history"])
        if same:
            self.log(f"[train] {name}: trained again as its model was not kept: {how}, as recorded")
            return
        wait_for_everyone()
        if is_main_process():
            shutil.rmtree(final, ignore_errors=True)
        raise RuntimeError(
            f"{name} was trained again in {self.out} because its model was not kept, and it is not the recorded "
            f"model (checked: {how}). The recorded runs were evaluated, or trained, with that one, and the runs still "
            "to train would read another. Continue on the machine kind and precision that trained it, or start a new "
            "output folder (a record of a training that was itself killed and resumed has no weights_sha256 and logs "
            "other losses after the resume, so it cannot be checked: start a new folder)."
        )

    def _finished(self, label: str, method: str) -> bool:
        """True when run ``label`` needs no more work: its evaluation is recorded, and so is the
        training of the model it evaluates (its own; the reference's for ``sft`` and WiSE-FT),
        whether or not that model is still here (a folder exported by ``scripts/export_run.py`` and
        copied back keeps records, not models, and is continued by training only the runs it lacks,
        and the reference when one of them needs it)."""
        trained = "sft" if method == "wise_ft" else label
        return recorded_evaluation(self.cfg, self.out, label) is not None and P.training_record(self.out, trained) is not None

    def _evaluate(self, name: str, model, method: str | None = None) -> dict[str, Any]:
        """Evaluate on the main process (the others wait); the evaluation, or {} on other ranks.
        ``method``: the method of the variant that made the model (recorded as ``meta.method``;
        None for the base and pretrained models).

        The base model's evaluation is first looked up by content key (:mod:`.eval_cache`): when
        another folder evaluated the same model on the same items with the same settings and code,
        its result is copied here instead of evaluated again, and a new one is stored for others."""
        from anchored_learning.experiment import eval_cache

        res = {}
        if is_main_process():
            key = None
            if name == "base" and recorded_evaluation(self.cfg, self.out, name) is None:
                key = eval_cache.base_evaluation_key(self.cfg, self._record[DATA_KEY], self.model_path, self.task)
                if (stored := eval_cache.stored_base_evaluation(key)) is not None:
                    copy = {**stored[1], "meta": {**stored[1]["meta"], "reused_from": str(stored[0])}}
                    write_json_atomic(self.out / "evals" / "base.json", copy)
                    self.log(f"[reuse] eval base: same model, items, settings and code as {stored[0]}")
                    key = None
            res = evaluate_model(self.cfg, self.out, name, model, self.tok, self.base, self.task, self.log, method=method)
            if key is not None:
                eval_cache.store_base_evaluation(key, res)
            self._save_wall_time()
        wait_for_everyone()
        return res

    def _save_wall_time(self) -> float:
        """Record the wall time spent so far over all invocations (``wall_time.json``), so a resumed
        run reports its total, not only the last invocation (a killed stage's partial time is lost)."""
        total = self._wall_before + time.perf_counter() - self._t_start
        write_json_atomic(self.out / "wall_time.json", {"seconds": total})
        return total

    # -- the run

    def prepare(self) -> dict[str, Any]:
        """The stages every run of the folder shares: the base model loaded (after the prior
        skill's stage, when there is one) and evaluated, the reference model p_sft trained when it
        is not finished or some planned run reads it (then loaded as ``self.ref_model``, else
        None) and evaluated.

        Returns:
            ``{"base": evaluation, "sft": evaluation}`` (and ``pretrained`` with a prior skill);
            empty evaluations on the non-main processes of a launch.
        """
        from datasets import Dataset
        from transformers import AutoModelForCausalLM

        from anchored_learning.models import load_model_and_tokenizer, resolve_model_path

        c = self.cfg
        self._t_start = time.perf_counter()
        wt = self.out / "wall_time.json"
        self._wall_before = float(json.loads(wt.read_text())["seconds"]) if wt.exists() else 0.0
        if under_launcher():  # the process group, set up as the trainer sets it up (its timeout covers evaluations)
            _ = P.reference_args(c, self.out).device
        main = is_main_process()
        if not main:
            self.log = lambda m: None
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.out / "config.json", self._record)
        wait_for_everyone()
        torch.manual_seed(c.seed)
        for note in getattr(self.task, "notes", ()):
            self.log(note)
        self.model_path = resolve_model_path(c.model)
        self.dataset = Dataset.from_list(self.rows)
        self.base, self.tok = load_model_and_tokenizer(self.model_path)
        self.base.eval()
        pretrained = None
        if c.prior_task:  # sequential fine-tuning: p0 is the model after the prior skill's SFT
            pretrained = self.base
            self.model_path = self._train("prior", P.prior_args(c, self.out), dataset=Dataset.from_list(self.prior_rows))
            self.base = AutoModelForCausalLM.from_pretrained(self.model_path).eval()
        evals = {"base": self._evaluate("base", self.base)}
        if pretrained is not None:  # the model before the prior skill, its drift measured from p0
            evals[PRETRAINED] = self._evaluate(PRETRAINED, pretrained)
            del pretrained
        todo = [v for v in self.plan if not self._finished(v.label, v.method)]
        self.ref_model = None
        if not self._finished("sft", "sft") or any(v.needs_reference for v in todo):
            ref_dir = self._train("reference", P.reference_args(c, self.out))
            self.ref_model = AutoModelForCausalLM.from_pretrained(ref_dir).eval() if main else None
        evals["sft"] = self._evaluate("sft", self.ref_model, "sft")
        return evals

    def variant_model(self, variant: Variant):
        """The model of a planned run (after :meth:`prepare`): trained (or its finished
        training reused), or for WiSE-FT the base and reference weights interpolated; None on the
        non-main processes of a launch."""
        from transformers import AutoModelForCausalLM

        from anchored_learning.methods import METHODS
        from anchored_learning.trainer import wise_ft

        main = is_main_process()
        name, method, overrides = variant
        if method == "wise_ft":
            ref = self.ref_model
            if ref is None and main:  # the reference was finished and no run of the plan needed it loaded
                ref = self.ref_model = AutoModelForCausalLM.from_pretrained(self.out / "models" / "reference" / "final").eval()
            return wise_ft(self.base, ref, overrides["weight"]).eval() if main else None
        args, peft_config = P.variant_args(self.cfg, self.out, variant)
        dataset, record = None, None
        if (
            method in METHODS
            and METHODS[method].responses == "self_generated"
            and not (self.out / "models" / name / "final" / DONE).exists()
        ):
            dataset, report = self._self_generated_dataset(name, args)
            record = {"self_generated": report}
        final = self._train(name, args, peft_config=peft_config, dataset=dataset, record=record)
        return AutoModelForCausalLM.from_pretrained(final).eval() if main else None

    def run(self) -> dict[str, Any]:
        """Run every stage and write ``results.json``, ``results.md`` and ``pareto.png``.

        Returns:
            the report (``results.json``'s content); ``{}`` on the non-main processes of a launch.
        """
        evals = self.prepare()
        todo = [v for v in self.plan if not self._finished(v.label, v.method)]
        if todo:
            self.log(f"[plan] {len(todo)} of {len(self.plan)} runs to make: {', '.join(v.label for v in todo)}")
        for v in self.plan:
            if v not in todo:
                self.log(f"[skip] {v.label}: trained and evaluated ({self.out / 'evals' / v.label}.json)")
                evals[v.label] = self._evaluate(v.label, None, v.method)
                continue
            self.log(f"[run {todo.index(v) + 1}/{len(todo)}] {v.label}")
            m = self.variant_model(v)
            evals[v.label] = self._evaluate(v.label, m, v.method)
            del m
        self.evals = evals
        if not is_main_process():
            return {}
        shutil.rmtree(self.out / P.SHARED_ANCHOR_CACHE, ignore_errors=True)  # every run that reads it is done
        return self.report()

    def report(self, members: list[str] | None = None) -> dict[str, Any]:
        """Write the report of the evaluations of :meth:`run` (``results.json``, ``results.md``,
        ``pareto.png``) with mean degradations over ``members`` (default: every held-out suite this
        run can average over; :func:`~anchored_learning.evaluation.metrics.degradation_members`)."""
        from anchored_learning.experiment.report import write_report

        wall = self._save_wall_time()
        return write_report(self.cfg, self.out, self.evals, wall, task=self.task, members=members, log=self.log)


def evaluate_model(
    cfg,
    out: Path,
    name: str,
    model,
    tok,
    base,
    task,
    log: Callable[[str], None],
    model_id: str | None = None,
    method: str | None = None,
):
    """Evaluate ``model`` on the config's target (when it has one), held-out suite and drift
    suites, or reuse ``out/evals/<name>.json`` when it exists (and, with ``model_id``, was made
    for that model).

    Args:
        cfg: a resolved :class:`~anchored_learning.experiment.experiment_config.EvaluationConfig`.
        base: the base model p0 of the drift suites.
        task: the target task object (None: no target).
        model_id: what the evaluation is stored under as ``meta.model`` (default ``name``).
        method: the method of the variant that made the model, stored as ``meta.method`` (its
            family on the frontier; a recorded evaluation without it gets it added).

    Returns:
        the :func:`~anchored_learning.evaluation.suites.evaluate` output (also written to
        ``out/evals/<name>.json`` atomically).
    """
    from anchored_learning.evaluation.suites import SUITES, evaluate

    path = out / "evals" / f"{name}.json"
    if (res := recorded_evaluation(cfg, out, name, model_id)) is not None:
        log(f"[skip] eval {name}: {path}")
        if method is not None and res["meta"].get("method") != method:
            res["meta"]["method"] = method
            write_json_atomic(path, res)
        return res
    if path.exists():
        meta = json.loads(path.read_text())["meta"]
        made = meta.get("precision", "float32")
        log(f"[eval] {name}: {path} was made for {meta.get('model')!r} in {made}, evaluating again")
    else:
        log(f"[eval] {name}")
    c = cfg
    targets = [c.task] if c.task is not None else []
    limits = {"heldout_nll": c.nll_limit, "drift": c.drift_limit}
    for t in targets:
        limits.update({t: c.n_test, f"drift:{t}": c.drift_limit})
    is_task = lambda h: getattr(SUITES.get(h), "kind", None) == "generation"  # noqa: E731
    limits.update({h: c.heldout_task_limit if is_task(h) else c.mc_limit for h in c.heldout if h not in limits})
    suites = [*targets, *c.heldout, "drift"] + ([f"drift:{t}" for t in targets] if c.target_drift else [])
    res = evaluate(
        model,
        tok,
        suites,
        limits=limits,
        seed=c.seed,
        base_model=base,
        batch_size=c.eval_batch_size,
        generation_batch_size=c.generation_batch_size,
        progress=True,
        model_name=model_id or name,
        tasks={c.task: task} if task is not None else {},
        precision=c.precision,
    )
    if method is not None:
        res["meta"]["method"] = method
    write_json_atomic(path, res)
    return res


def recorded_evaluation(cfg, out: Path, name: str, model_id: str | None = None) -> dict[str, Any] | None:
    """``out/evals/<name>.json`` when it was made in the config's precision (and, with
    ``model_id``, for that model), else None."""
    from anchored_learning.evaluation.suites import precision_label

    path = out / "evals" / f"{name}.json"
    if not path.exists():
        return None
    res = json.loads(path.read_text())
    made = res["meta"].get("precision", "float32")  # evaluations before mixed precision were float32
    ok = (model_id is None or res["meta"].get("model") == model_id) and made == precision_label(cfg.precision == "bf16")
    return res if ok else None


def config_record(cfg, models: dict[str, str | None]) -> dict[str, Any]:
    """What a run folder's ``config.json`` holds: the config's fields, under :data:`DATA_KEY` the
    SHA-256 of its data files' contents, and under :data:`MODEL_KEY` the fingerprint of each model
    in ``models`` (field name -> model id or folder; :func:`~anchored_learning.models.model_fingerprint`),
    hashed once per run."""
    from anchored_learning.models import model_fingerprint

    fingerprints = {name: model_fingerprint(value) for name, value in models.items()}
    return {**dataclasses.asdict(cfg), DATA_KEY: data_fingerprints(cfg), MODEL_KEY: fingerprints}


def changed_contents(old: dict[str, Any], new: dict[str, Any], paths: dict[str, Any] | None = None) -> str:
    """``"the contents of data ('d.jsonl') changed"`` for the entries of two fingerprint maps (data
    files, models) that differ, naming entries given on one side only; ``paths``: entry -> what it
    points at (shown when a string)."""
    parts = []
    for key in sorted(set(old) | set(new)):
        where = (paths or {}).get(key)
        name = f"{key} ({where})" if isinstance(where, str) else key
        if key not in new:
            parts.append(f"{name} was given before and is not now")
        elif key not in old:
            parts.append(f"{name} is given now and was not before")
        elif old[key] != new[key]:
            parts.append(f"the contents of {name} changed")
    return "; ".join(parts)


def check_resume(out: Path, record: dict[str, Any], resumable: frozenset[str]) -> None:
    """Refuse to reuse a folder whose ``config.json`` differs from ``record`` (a
    :func:`config_record`) outside ``resumable``, or whose data files or models had other contents
    (a field missing from the saved config is not compared).

    Raises:
        ValueError: naming the differing fields (a data file or model by its field) and what to do.
    """
    saved = out / "config.json"
    if not saved.exists():
        return
    old = json.loads(saved.read_text())
    new = json.loads(json.dumps(record, default=str))
    diff = {k: (old[k], v) for k, v in new.items() if k in old and k not in resumable and old[k] != v}
    if diff:
        shown = "; ".join(
            changed_contents(a, b, new) if k in (DATA_KEY, MODEL_KEY) else f"{k}: {a!r} -> {b!r}"
            for k, (a, b) in sorted(diff.items())
        )
        raise ValueError(
            f"{out} holds a run made with other settings ({shown}); its finished stages would be "
            f"reused under the new ones. Choose a new --output_dir, or delete {out} to start over "
            f"(only {', '.join(sorted(resumable - {'output_dir'}))} may change on a resume)"
        )


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
    skipped on a re-run like any other stage.  Returns the report, ``{}`` on the non-main
    processes of a launch.

    Raises:
        ValueError: no seeds, repeated seeds, or an invalid configuration (before any work).
    """
    from anchored_learning.experiment.report import write_seeds_report

    seeds = check_seeds(seeds)
    cfg = cfg.resolved()
    out = Path(cfg.output_dir)
    # every seed's folder is checked before the first one starts
    exps = {
        s: Experiment(dataclasses.replace(cfg, seed=s, output_dir=str(out / f"seed-{s}")), console_log=lambda m: None)
        for s in seeds
    }
    per_seed = {}
    for s, exp in exps.items():
        console_log(f"== seed {s} ==")
        exp.log = console_log
        per_seed[s] = exp.run()
    if not is_main_process():
        return {}
    # every seed's mean degradation over the same suites: a suite left out in one seed is left out in all
    members = [
        k for k in per_seed[seeds[0]]["degradation_members"] if all(k in r["degradation_members"] for r in per_seed.values())
    ]
    for s, exp in exps.items():
        if per_seed[s]["degradation_members"] != members:
            per_seed[s] = exp.report(members)
    return write_seeds_report(cfg, out, seeds, per_seed)
