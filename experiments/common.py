"""The one study framework of experiments/: a :class:`Study` owns what every study shares — one
pretraining recipe (``pretrain.yaml``, read once: sequence length, batch, model), one tokenizer,
the pretraining stage (resumable, with its checkpoints), the randomly initialised encoder, the
FLOPs ratio of ELECTRA to MLM, the seconds a step takes, the linear probe and fine-tuning through
the ``glue`` command, all cached under one root. A study is a subclass that plans its runs and
reports them: :class:`RowStudy` (a table of rows fine-tuned on GLUE; experiments 2 and 3) here,
``CurveStudy`` (score over pretraining FLOPs; experiment 1) in ``electra_vs_mlm/run.py``.

Every run lives under one root (default ``experiments/runs/``), named by what defines it
(``electra-g0.25-shared``, ``mlm``, ...), so a configuration two studies share — the official
ELECTRA setting is experiment 2's 1/4 point and experiment 3's ``shared`` row — is trained and
evaluated once. Each stage is skipped when its output exists (pretraining resumes from
``last.ckpt``, fine-tuning from ``results.jsonl``), so re-running a study resumes it. Runs go in
parallel on ``workers`` processes with ``cores / workers`` threads each: small models use two
single-threaded processes better than one two-threaded one.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import shutil
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from experiments.probe import PROBE_TASKS, SHARED, linear_probe
from experiments.runner import log, merge_history, run_cli, run_glue, save_plan

EXPERIMENTS = Path(__file__).resolve().parent
RECIPE = EXPERIMENTS / "pretrain.yaml"
VAL = SHARED / "wikitext2_raw_test"
TASKS = ["sst2", "cola", "mrpc", "rte"]
# The downstream evaluation of the row studies: GLUE dev after fine-tuning on the first 2000
# training examples for 2 epochs (the full official recipe is ~10x this on 2 cores), median over seeds.
FINETUNE = ["--trainer.max_epochs=2", "--data.limit_train_examples=2000"]
FINETUNE_QUICK = [
    "--trainer.max_epochs=1",
    "--data.limit_train_examples=64",
    "--trainer.limit_val_batches=2",
]


class Study:
    """What every study shares (see the module docstring). Subclasses set ``corpus`` (files or
    folders), ``probe_tasks`` and, where they differ from the recipe, ``size`` (``model.size``
    fields over the recipe's), ``batch_size`` and ``extra_args`` (CLI settings of every run)."""

    def __init__(self, name: str, args: argparse.Namespace, corpus: list[str], workers: int):
        if not all(Path(c).exists() for c in corpus) or not (SHARED / "glue").is_dir():
            sys.exit(f"error: needs {', '.join(corpus)} and {SHARED}/glue (../shared/data)")
        import yaml

        self.name = name
        self.args = args
        self.quick = args.quick
        self.corpus = corpus
        self.root = Path(args.output_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.workers = max(1, workers)
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        self.env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.recipe = yaml.safe_load(RECIPE.read_text())
        self.seq = self.recipe["data"]["max_seq_length"]
        self.batch_size = self.recipe["data"]["batch_size"]
        self.size: dict = {}  # model.size fields over the recipe's
        self.extra_args: list[str] = []
        self.tokenizer = self.root / "tokenizer"
        self.probe_tasks = PROBE_TASKS
        self.probe_limit = 64 if self.quick else 2000  # training examples of the probe
        self.plan: dict = {}

    # -- the recipe -----------------------------------------------------------------------------
    def sizes(self) -> dict:
        """The ``model.size`` fields every run trains with."""
        return {**self.recipe["model"]["size"], **self.size}

    def batch_tokens(self) -> int:
        return self.batch_size * self.seq

    def pair(self, objective: str = "electra"):
        """A freshly initialised model of the recipe (with this study's size) for ``objective``."""
        from electra_lightning.data.datamodule import load_tokenizer_info
        from electra_lightning.model.electra import ModelSize, build_pretraining_model

        model = self.recipe["model"]
        return build_pretraining_model(
            load_tokenizer_info(str(self.tokenizer)).vocab_size,
            self.seq,
            ModelSize(**self.sizes()),
            embedding_sharing=model["embedding_sharing"],
            objective=objective,
        )

    def flops_per_token(self, objective: str) -> float:
        from electra_lightning.model.electra import training_flops_per_token
        from electra_lightning.model.masking import MaskingConfig

        masked = MaskingConfig().max_predictions(self.seq)
        return training_flops_per_token(self.pair(objective), self.seq, masked)

    def flops_ratio(self) -> float:
        """Training FLOPs of an ELECTRA step over an MLM step (same encoder and batch)."""
        return self.flops_per_token("electra") / self.flops_per_token("mlm")

    def seconds_per_step(self, run_dir: Path) -> float:
        """Median seconds per step of a run's logged throughput (the first rate, which includes
        the start-up, left out)."""
        with open(merge_history(run_dir) / "metrics.csv") as f:
            rates = [
                float(r["train/tokens_per_sec"])
                for r in csv.DictReader(f)
                if r.get("train/tokens_per_sec")
            ]
        return self.batch_tokens() / statistics.median(rates[1:] or rates)

    def setup(self) -> dict:
        """The tokenizer, then the study's plan: kept from ROOT/plan.json when it is there (a
        re-run trains what was planned), else made by :meth:`make_plan` and saved."""
        self.train_tokenizer()
        plan_file = self.root / "plan.json"
        if plan_file.exists():
            self.plan = json.loads(plan_file.read_text())
            log(f"plan (kept from {plan_file}): {self.plan}")
            return self.plan
        self.plan = save_plan(plan_file, self.make_plan())
        return self.plan

    def make_plan(self) -> dict:
        raise NotImplementedError

    def equal_flops_plan(self, points: int, quick_steps: int, timing_steps: int, **timing) -> dict:
        """ELECTRA's steps — ``quick_steps`` in quick mode, else ``--steps``, else
        ``--budget_minutes`` over the seconds per step of a timed ELECTRA run of ``timing_steps``
        (``timing``: its ``pretrain`` options) — cut into ``points`` evaluation points, and the MLM
        steps of equal training FLOPs at each point (its interval is ELECTRA's times the FLOPs
        ratio: the generator's share)."""
        per_step = None
        if self.quick:
            steps = quick_steps
        elif getattr(self.args, "steps", None):
            steps = self.args.steps
        else:  # time ELECTRA alone, threads as each run will have them
            log_every = f"--trainer.log_every_n_steps={max(1, timing_steps // 6)}"
            run = self.pretrain("timing", [log_every], timing_steps, timing_steps, **timing)
            per_step = self.seconds_per_step(run)
            steps = int(self.args.budget_minutes * 60 / per_step)
        every = max(1, steps // points)
        ratio = self.flops_ratio()
        mlm_every = round(every * ratio)
        return {
            "electra_steps": every * points,
            "electra_every": every,
            "mlm_steps": mlm_every * points,
            "mlm_every": mlm_every,
            "points": points,
            "flops_ratio": ratio,
            "flops_per_electra_step": self.flops_per_token("electra") * self.batch_tokens(),
            "seconds_per_step": per_step,
            "device": self.args.device,
            "threads_per_run": self.env["OMP_NUM_THREADS"],
            "quick": self.quick,
        }

    # -- stages ---------------------------------------------------------------------------------
    def train_tokenizer(self) -> None:
        if not (self.tokenizer / "tokenizer.json").exists():
            vocab = "2000" if self.quick else "16000"
            run_cli(
                "tokenizer",
                "--files",
                json.dumps(self.corpus),
                "--output_dir",
                str(self.tokenizer),
                "--vocab_size",
                vocab,
                env=self.env,
            )

    def pretrain(
        self,
        name: str,
        overrides: list[str],
        steps: int,
        every: int,
        *,
        group: str = "pretrain",
        val_every: int | None = None,
        val_batches: int | None = None,
        keep_points: bool = False,
    ) -> Path:
        """Train (or resume) run ``ROOT/group/name`` for ``steps`` steps and return its folder;
        checkpoint every ``every`` steps (``last.ckpt``; with ``keep_points`` also
        ``point-step=N.ckpt`` each time), validate every ``val_every`` steps (default twice per
        checkpoint) on ``val_batches`` fixed batches of WikiText-2 test (default 20)."""
        run_dir = self.root / group / name
        ckpt_dir = run_dir / "checkpoints"
        last = ckpt_dir / "last.ckpt"
        args = [
            "fit",
            "--config",
            str(RECIPE),
            *self.extra_args,
            f"--data.train_files={json.dumps(self.corpus)}",
            f"--data.val_files={VAL}",
            f"--data.tokenizer={self.tokenizer}",
            f"--trainer.max_steps={steps}",
            f"--model.warmup_steps={max(1, steps // 10)}",
            f"--trainer.val_check_interval={val_every or max(1, every // 2)}",
            f"--trainer.limit_val_batches={val_batches or (2 if self.quick else 20)}",
            f"--trainer.logger.init_args.save_dir={run_dir.parent}",
            f"--trainer.logger.init_args.name={name}",
            f"--trainer.callbacks.init_args.dirpath={ckpt_dir}",
            f"--trainer.callbacks.init_args.every_n_train_steps={every}",
            *(
                [
                    "--trainer.callbacks.init_args.save_top_k=-1",
                    "--trainer.callbacks.init_args.filename=point-{step}",
                ]
                if keep_points
                else []
            ),
            *overrides,  # last: they win
        ]
        if last.exists():
            from electra_lightning.common.checkpoint import load_checkpoint

            if load_checkpoint(str(last))["global_step"] >= steps:
                return run_dir
            args.append("--ckpt_path=last")
        run_cli(*args, env=self.env, log_file=run_dir / "log.txt")
        return run_dir

    def export(self, run_dir: Path) -> Path:
        """The ``export`` command's work, in this process (no second start-up of the stack); the
        exported encoder's directory."""
        target = run_dir / "export"
        if not any((target / d / "config.json").exists() for d in ("discriminator", "mlm")):
            from electra_lightning.hf.export import export

            export(str(run_dir / "checkpoints" / "last.ckpt"), str(target))
        # the encoder to fine-tune: an ELECTRA run's discriminator, an MLM run's masked LM
        return target / ("mlm" if (target / "mlm" / "config.json").exists() else "discriminator")

    def random_init(self) -> Path:
        """The no-pretraining encoder: a freshly initialised discriminator (seed 0) of the same
        size, as a model directory with the tokenizer."""
        target = self.root / "random" / "discriminator"
        if (target / "config.json").exists():
            return target
        import torch

        from electra_lightning.common.checkpoint import read_tokenizer_files, write_tokenizer

        torch.manual_seed(0)
        self.pair().discriminator.save_pretrained(target)
        write_tokenizer(read_tokenizer_files(str(self.tokenizer)), target)
        return target

    def probe(self, store: Path, source: Path, device: str = "cpu") -> dict[str, float]:
        """Linear-probe scores of the frozen encoder in ``source`` (a pretraining checkpoint or a
        model directory) on ``probe_tasks``, cached in ``store``: logistic regression on
        mean-pooled last-layer features of the first ``probe_limit`` training examples, scored
        on dev with each task's headline metric. Deterministic (no seeds)."""
        scores = json.loads(store.read_text()) if store.exists() else {}
        missing = [t for t in self.probe_tasks if t not in scores]
        if not missing:
            return scores
        from transformers import AutoModel, AutoTokenizer

        if source.suffix == ".ckpt":
            from electra_lightning.common.checkpoint import load_checkpoint
            from electra_lightning.train.loading import encoder_from_checkpoint

            encoder = encoder_from_checkpoint(load_checkpoint(str(source)))
        else:
            encoder = AutoModel.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer)
        dev = 128 if self.quick else 0  # quick: the first 128 dev examples (0: all)
        scores.update(
            linear_probe(encoder, tokenizer, missing, self.probe_limit, device, dev, self.seq)
        )
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(scores) + "\n")
        return scores

    def parallel(self, jobs: dict, function) -> dict:
        """``{key: function(*args)}`` for ``{key: args}``, on ``workers`` threads (each stage
        runs the CLI as a subprocess, so threads are enough)."""
        with ThreadPoolExecutor(self.workers) as pool:
            futures = {key: pool.submit(function, *args) for key, args in jobs.items()}
            return {key: future.result() for key, future in futures.items()}


@dataclass
class Row:
    """One line of a study's table: a pretraining configuration (or none) then its fine-tuning."""

    label: str
    run: str | None  # run name under ROOT/pretrain; None: randomly initialised encoder
    overrides: list[str] = field(default_factory=list)  # --model.* / --data.* for pretraining
    steps_key: str = "electra_steps"  # which step count of the plan it trains for
    steps_factor: int = 1  # a multiple of that budget (a longer run)
    finetune: bool = True  # False: a pretraining-only row (in the pretraining table, not GLUE's)


def parser(doc: str, default_budget: float) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument(
        "--budget_minutes",
        type=float,
        default=default_budget,
        help="wall-clock minutes of one ELECTRA pretraining run (converted once to steps, "
        "stored in ROOT/plan.json and shared by every study under ROOT)",
    )
    p.add_argument("--quick", action="store_true", help="seconds-scale smoke test (CI)")
    p.add_argument(
        "--output_dir",
        default=str(EXPERIMENTS / "runs"),
        help="run root shared by the studies",
    )
    p.add_argument("--tasks", nargs="+", default=TASKS)
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per task")
    p.add_argument("--workers", type=int, default=2, help="rows trained in parallel")
    return p


class RowStudy(Study):
    """A table of rows (experiments 2 and 3): each row a pretraining configuration (or none),
    all trained for one step budget, then fine-tuned on GLUE and probed."""

    def __init__(self, name: str, args: argparse.Namespace):
        corpus = SHARED / "nltk_english_text" / ("inaugural" if args.quick else "")
        super().__init__(name, args, [str(corpus)], args.workers)
        self.tasks = args.tasks[:1] if self.quick else args.tasks  # quick: SST-2 only
        self.probe_tasks = [t for t in PROBE_TASKS if t in self.tasks]
        self.seeds = 1 if self.quick else args.seeds
        self.finetune_args = FINETUNE_QUICK if self.quick else FINETUNE
        self.train_limit = 64 if self.quick else 2000  # = --data.limit_train_examples above

    def setup(self) -> dict:
        """Tokenizer and the shared step plan (ELECTRA steps from --budget_minutes)."""
        self.train_tokenizer()
        plan_file = self.root / "plan.json"
        if plan_file.exists():
            self.plan = json.loads(plan_file.read_text())
            if self.plan["budget_minutes"] != self.args.budget_minutes:
                log(
                    f"note: {plan_file} was planned for {self.plan['budget_minutes']} min; "
                    "keeping it so every study under this root trains the same steps"
                )
            log(f"plan: {self.plan}")
            return self.plan
        if self.quick:
            steps, per_step = 6, None
        else:  # time the official setting alone, threads as each worker will have them
            per_step = self.seconds_per_step(self.pretrain("probe", [], 40, 40))
            steps = int(self.args.budget_minutes * 60 / per_step) // 10 * 10
        ratio = self.flops_ratio()
        round_to = 1 if self.quick else 10  # checkpoints land on the end
        self.plan = {
            "electra_steps": steps,
            "mlm_steps": round(steps * ratio / round_to) * round_to,
            "flops_ratio": ratio,
            "seconds_per_step": per_step,
            "budget_minutes": self.args.budget_minutes,
            "threads_per_worker": self.env["OMP_NUM_THREADS"],
            "quick": self.quick,
        }
        return save_plan(plan_file, self.plan)

    def pretrain_row(self, row: Row) -> Path:
        steps = self.plan[row.steps_key] * row.steps_factor
        # checkpoint on a divisor of the step count, so last.ckpt holds the final step (Lightning
        # saves every_n_train_steps only, not at max_steps)
        every = max(d for d in range(1, min(250, steps) + 1) if steps % d == 0)
        return self.pretrain(row.run, row.overrides, steps, every, val_every=min(250, steps))

    def glue_dir(self, row: Row) -> Path:
        return self.root / "glue" / (row.run or "random")

    def run_row(self, row: Row) -> None:
        # studies may run at the same time and share a row: one process works on it, the other
        # waits, then finds every stage done
        lock_file = self.root / "locks" / f"{row.run or 'random'}.lock"
        lock_file.parent.mkdir(exist_ok=True)
        with open(lock_file, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            init = self.random_init() if row.run is None else self.export(self.pretrain_row(row))
            if row.finetune:
                run_glue(
                    init, self.tasks, self.seeds, self.glue_dir(row), self.finetune_args, self.env
                )
        log(f"done: {row.label}")

    def select(self, rows: list[Row], quick_labels: list[str]) -> list[Row]:
        """The rows to run: all of them, or in quick mode only those labelled ``quick_labels``."""
        return [r for r in rows if r.label in quick_labels] if self.quick else rows

    def run(self, rows: list[Row]) -> dict[str, list[dict]]:
        """Run every row (in parallel); return each row's fine-tuning results (all seeds)."""
        self.setup()
        if any(row.run is None for row in rows):
            self.random_init()  # before the pool: it imports torch in this process
        self.parallel({row.label: (row,) for row in rows}, self.run_row)
        self.keep_source_data(rows)
        return {row.label: self.results(row) for row in rows if row.finetune}

    def keep_source_data(self, rows: list[Row]) -> None:
        """Copy what the tables and plots are made of beside the README (runs/ is not committed):
        every seed's scores, each pretraining run's logged metrics, and the plan."""
        target = self.report_dir() / "results"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.root / "plan.json", target / "plan.json")
        for row in rows:
            name = row.run or "random"
            if row.finetune:
                shutil.copy(self.glue_dir(row) / "results.jsonl", target / f"glue-{name}.jsonl")
            self.probe_row(row)  # computed (and cached) here if not yet
            shutil.copy(self.root / "probe" / f"{name}.json", target / f"probe-{name}.json")
            if row.run:
                metrics = self.metrics_dir(row.run) / "metrics.csv"
                shutil.copy(metrics, target / f"pretrain-{name}.csv")

    def results(self, row: Row) -> list[dict]:
        store = self.glue_dir(row) / "results.jsonl"
        return [json.loads(line) for line in store.read_text().splitlines()]

    def probe_row(self, row: Row) -> dict[str, float]:
        """The row's encoder (its export, or the random one) probed, cached in ROOT/probe/."""
        name = row.run or "random"
        source = (
            self.random_init() if row.run is None else self.export(self.root / "pretrain" / name)
        )
        return self.probe(self.root / "probe" / f"{name}.json", source)

    def metrics_dir(self, name: str) -> Path:
        return merge_history(self.root / "pretrain" / name)

    def report_dir(self) -> Path:
        """Where the README goes: the study's folder, or --output_dir for a quick run (so a smoke
        test never overwrites the real one)."""
        return self.root if self.quick else EXPERIMENTS / self.name
