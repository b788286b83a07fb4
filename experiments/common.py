"""What the studies in experiments/ share: one pretraining recipe (``pretrain.yaml``), one tokenizer,
one step budget, one fine-tuning evaluation, and a run cache keyed by configuration.

Every run lives under one root (default ``experiments/runs/``), named by what defines it
(``electra-g0.25-shared``, ``mlm``, ...), so a configuration two studies share — the official
ELECTRA setting is experiment 1's ELECTRA row, experiment 2's 1/4 point and experiment 3's
``shared`` row — is trained and evaluated once. Each stage is skipped when its output exists
(pretraining resumes from ``last.ckpt``, fine-tuning from ``results.jsonl``), so re-running a
study resumes it. Rows run in parallel on ``--workers`` processes with ``cores / workers`` threads
each: small models use two single-threaded processes better than one two-threaded one.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parent
REPO = EXPERIMENTS.parent
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))  # electra_lightning, for the stages run in this process
from probe import PROBE_TASKS, linear_probe  # noqa: E402
from runner import log, merge_history, run_cli, run_glue, save_plan  # noqa: E402

RECIPE = EXPERIMENTS / "pretrain.yaml"
TASKS = ["sst2", "cola", "mrpc", "rte"]
# The downstream evaluation of every study: GLUE dev after fine-tuning on the first 2000 training
# examples for 2 epochs (the full official recipe is ~10x this on 2 cores), median over seeds.
FINETUNE = ["--trainer.max_epochs=2", "--data.limit_train_examples=2000"]
FINETUNE_QUICK = [
    "--trainer.max_epochs=1",
    "--data.limit_train_examples=64",
    "--trainer.limit_val_batches=2",
]


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


class Study:
    def __init__(self, name: str, args: argparse.Namespace):
        if not (SHARED / "nltk_english_text").is_dir() or not (SHARED / "glue").is_dir():
            sys.exit(f"error: needs {SHARED}/nltk_english_text and {SHARED}/glue (../shared/data)")
        self.name = name
        self.args = args
        self.quick = args.quick
        self.root = Path(args.output_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.workers = max(1, args.workers)
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        self.env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.corpus = str(SHARED / "nltk_english_text" / ("inaugural" if self.quick else ""))
        self.tasks = args.tasks[:1] if self.quick else args.tasks  # quick: SST-2 only
        self.seeds = 1 if self.quick else args.seeds
        self.finetune_args = FINETUNE_QUICK if self.quick else FINETUNE
        self.tokenizer = self.root / "tokenizer"
        self.plan = {}
        self.train_limit = 64 if self.quick else 2000  # = --data.limit_train_examples below

    # -- stages -------------------------------------------------------------------------------
    def cli(self, *args: str, log_file: Path | None = None) -> None:
        run_cli(*args, env=self.env, log_file=log_file)

    def setup(self) -> dict:
        """Tokenizer and the shared step plan (ELECTRA steps from --budget_minutes)."""
        if not (self.tokenizer / "tokenizer.json").exists():
            self.cli(
                "tokenizer",
                "--files",
                self.corpus,
                "--output_dir",
                str(self.tokenizer),
                "--vocab_size",
                "2000" if self.quick else "16000",
            )
        plan_file = self.root / "plan.json"
        if plan_file.exists():
            self.plan = json.loads(plan_file.read_text())
            if self.plan["budget_minutes"] != self.args.budget_minutes:
                log(
                    f"note: {plan_file} was planned for {self.plan['budget_minutes']} min; "
                    "keeping it so every study under this root trains the same steps"
                )
        else:
            if self.quick:
                steps, per_step = 6, None
            else:  # time the official setting alone, threads as each worker will have them
                ckpt = self.pretrain("probe", 40, [])
                per_step = self.seconds_per_step(ckpt.parents[1] / "version_0")
                steps = int(self.args.budget_minutes * 60 / per_step) // 10 * 10
            ratio = self.flops_ratio()
            self.plan = {  # multiples of 10 (or 1 in quick mode), so checkpoints land on the end
                "electra_steps": steps,
                "mlm_steps": round(steps * ratio / (1 if self.quick else 10))
                * (1 if self.quick else 10),
                "flops_ratio": ratio,
                "seconds_per_step": per_step,
                "budget_minutes": self.args.budget_minutes,
                "threads_per_worker": self.env["OMP_NUM_THREADS"],
                "quick": self.quick,
            }
            return save_plan(plan_file, self.plan)
        log(f"plan: {self.plan}")
        return self.plan

    def seconds_per_step(self, version_dir: Path) -> float:
        import csv

        with open(version_dir / "metrics.csv") as f:
            rates = [
                float(r["train/tokens_per_sec"])
                for r in csv.DictReader(f)
                if r.get("train/tokens_per_sec")
            ]
        recipe = self.recipe()
        return recipe["data"]["batch_size"] * recipe["data"]["max_seq_length"] / rates[-1]

    @staticmethod
    def recipe() -> dict:
        import yaml

        return yaml.safe_load(RECIPE.read_text())

    def model_args(self, **overrides) -> dict:
        """The recipe's model settings as ``ElectraPretraining``/``build_pretraining_model`` take them."""
        from electra_lightning.model import ModelSize

        model = dict(self.recipe()["model"])
        model.pop("optimizer", None)
        model["size"] = ModelSize(**model["size"])
        model.update(overrides)
        return model

    def flops_ratio(self) -> float:
        """Training FLOPs per token of the ELECTRA step over the MLM step (same encoder)."""
        from electra_lightning.data import load_tokenizer_info
        from electra_lightning.masking import MaskingConfig
        from electra_lightning.model import build_pretraining_model, training_flops_per_token

        vocab = load_tokenizer_info(str(self.tokenizer)).vocab_size
        seq = self.recipe()["data"]["max_seq_length"]
        masked = MaskingConfig().max_predictions(seq)
        args = {**self.model_args(), "vocab_size": vocab, "max_seq_length": seq}
        electra = build_pretraining_model(**args)
        mlm = build_pretraining_model(**{**args, "objective": "mlm"})
        return training_flops_per_token(electra, seq, masked) / training_flops_per_token(
            mlm, seq, masked
        )

    def pretrain(self, name: str, steps: int, overrides: list[str]) -> Path:
        out = self.root / "pretrain"
        ckpt = out / name / "checkpoints" / "last.ckpt"
        # checkpoint on a divisor of the step count, so last.ckpt holds the final step (Lightning
        # saves every_n_train_steps only, not at max_steps)
        every = max(d for d in range(1, min(250, steps) + 1) if steps % d == 0)
        args = [
            "fit",
            "--config",
            str(RECIPE),
            *overrides,
            f"--data.train_files={self.corpus}",
            f"--data.val_files={SHARED / 'wikitext2_raw_test'}",
            f"--data.tokenizer={self.tokenizer}",
            f"--trainer.max_steps={steps}",
            f"--model.warmup_steps={max(1, steps // 10)}",
            f"--trainer.val_check_interval={min(250, steps)}",
            f"--trainer.limit_val_batches={2 if self.quick else 20}",
            f"--trainer.logger.init_args.save_dir={out}",
            f"--trainer.logger.init_args.name={name}",
            f"--trainer.callbacks.init_args.dirpath={ckpt.parent}",
            f"--trainer.callbacks.init_args.every_n_train_steps={every}",
        ]
        if ckpt.exists():
            from electra_lightning.checkpoint import load_checkpoint

            if load_checkpoint(str(ckpt))["global_step"] >= steps:
                return ckpt
            args.append("--ckpt_path=last")
        self.cli(*args, log_file=out / name / "log.txt")
        return ckpt

    def export(self, name: str, ckpt: Path) -> Path:
        """The ``export`` command's work, in this process (no second start-up of the stack)."""
        target = self.root / "pretrain" / name / "export"
        if not (target / "discriminator" / "config.json").exists():
            from electra_lightning.export import export

            export(str(ckpt), str(target))
        return target / "discriminator"

    def random_init(self) -> Path:
        """The no-pretraining row: a freshly initialised encoder of the same size."""
        target = self.root / "random" / "discriminator"
        if (target / "config.json").exists():
            return target
        import torch

        from electra_lightning.checkpoint import read_tokenizer_files, write_tokenizer
        from electra_lightning.contract import DataContract
        from electra_lightning.data import load_tokenizer_info
        from electra_lightning.masking import MaskingConfig
        from electra_lightning.module import ElectraPretraining

        torch.manual_seed(0)
        info = load_tokenizer_info(str(self.tokenizer))
        seq = self.recipe()["data"]["max_seq_length"]
        masked = MaskingConfig().max_predictions(seq)
        contract = DataContract(info.vocab_size, info.pad_id, seq, max_predictions_per_seq=masked)
        module = ElectraPretraining(contract=contract, **self.model_args())
        module.discriminator.save_pretrained(target)
        write_tokenizer(read_tokenizer_files(str(self.tokenizer)), target)
        return target

    def glue_dir(self, row: Row) -> Path:
        return self.root / "glue" / (row.run or "random")

    def finetune(self, row: Row, init: Path) -> None:
        out = self.glue_dir(row)
        run_glue(init, self.tasks, self.seeds, out, self.finetune_args, self.env)

    def run_row(self, row: Row) -> None:
        # studies may run at the same time and share a row: one process works on it, the other
        # waits, then finds every stage done
        lock_file = self.root / "locks" / f"{row.run or 'random'}.lock"
        lock_file.parent.mkdir(exist_ok=True)
        with open(lock_file, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if row.run is None:
                init = self.random_init()
            else:
                steps = self.plan[row.steps_key] * row.steps_factor
                ckpt = self.pretrain(row.run, steps, row.overrides)
                init = self.export(row.run, ckpt)
            if row.finetune:
                self.finetune(row, init)
        log(f"done: {row.label}")

    def select(self, rows: list[Row], quick_labels: list[str]) -> list[Row]:
        """The rows to run: all of them, or in quick mode only those labelled ``quick_labels``."""
        return [r for r in rows if r.label in quick_labels] if self.quick else rows

    def run(self, rows: list[Row]) -> dict[str, list[dict]]:
        """Run every row (in parallel); return each row's fine-tuning results (all seeds)."""
        self.setup()
        if any(row.run is None for row in rows):
            self.random_init()  # before the pool: it imports torch in this process
        with ThreadPoolExecutor(self.workers) as pool:
            for future in [pool.submit(self.run_row, row) for row in rows]:
                future.result()
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
            self.probe(row)  # computed (and cached) here if not yet
            shutil.copy(self.root / "probe" / f"{name}.json", target / f"probe-{name}.json")
            if row.run:
                metrics = self.metrics_dir(row.run) / "metrics.csv"
                shutil.copy(metrics, target / f"pretrain-{name}.csv")

    def results(self, row: Row) -> list[dict]:
        store = self.glue_dir(row) / "results.jsonl"
        return [json.loads(line) for line in store.read_text().splitlines()]

    # -- linear probe -------------------------------------------------------------------------
    def init_dir(self, row: Row) -> Path:
        if row.run is None:
            return self.root / "random" / "discriminator"
        return self.root / "pretrain" / row.run / "export" / "discriminator"

    def probe(self, row: Row) -> dict[str, float]:
        """Linear probe of the frozen encoder, cached in ROOT/probe/NAME.json: logistic regression
        on mean-pooled last-layer features of the same training examples the fine-tuning sees,
        scored on dev with each task's headline metric. Deterministic (no seeds); it measures
        the representation where fine-tuning this briefly may only find the majority class."""
        store = self.root / "probe" / f"{row.run or 'random'}.json"
        tasks = [t for t in PROBE_TASKS if t in self.tasks]
        scores = json.loads(store.read_text()) if store.exists() else {}
        if all(t in scores for t in tasks):
            return scores
        from transformers import AutoModel, AutoTokenizer

        init = self.init_dir(row)
        missing = [t for t in tasks if t not in scores]
        encoder = AutoModel.from_pretrained(init)
        tokenizer = AutoTokenizer.from_pretrained(init)
        dev = 128 if self.quick else 0  # quick: the first 128 dev examples (0: all)
        scores.update(linear_probe(encoder, tokenizer, missing, self.train_limit, dev_limit=dev))
        store.parent.mkdir(exist_ok=True)
        store.write_text(json.dumps(scores) + "\n")
        return scores

    def metrics_dir(self, name: str) -> Path:
        return merge_history(self.root / "pretrain" / name)

    def report_dir(self) -> Path:
        """Where the README goes: the study's folder, or --output_dir for a quick run (so a smoke
        test never overwrites the real report)."""
        return self.root if self.quick else EXPERIMENTS / self.name
