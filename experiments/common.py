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
import functools
import json
import os
import platform
import shutil
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parent
REPO = EXPERIMENTS.parent
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))  # electra_lightning, for the stages run in this process
from probe import PROBE_TASKS, glue_split, headline_metric, linear_probe  # noqa: E402
from runner import log, merge_history, run_cli  # noqa: E402

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
            plan_file.write_text(json.dumps(self.plan, indent=1) + "\n")
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

    def model_sizes(self, **overrides) -> dict:
        model = dict(self.recipe()["model"])
        model.pop("optimizer")
        model.update(overrides)
        return model

    def flops_ratio(self) -> float:
        """Training FLOPs per token of the ELECTRA step over the MLM step (same encoder)."""
        from electra_lightning.data import load_tokenizer_info
        from electra_lightning.model import build_electra_pair, training_flops_per_token

        vocab = load_tokenizer_info(str(self.tokenizer)).vocab_size
        seq = self.recipe()["data"]["max_seq_length"]
        masked = round(0.15 * seq)
        electra = build_electra_pair(vocab, seq, **self.model_sizes())
        mlm = build_electra_pair(vocab, seq, **self.model_sizes(objective="mlm"))
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
        target = self.root / "pretrain" / name / "export"
        if not (target / "discriminator" / "config.json").exists():
            self.cli("export", "--ckpt_path", str(ckpt), "--output_dir", str(target))
        return target / "discriminator"

    def random_init(self) -> Path:
        """The no-pretraining row: a freshly initialised encoder of the same size."""
        target = self.root / "random" / "discriminator"
        if (target / "config.json").exists():
            return target
        import torch

        from electra_lightning.checkpoint import read_tokenizer_files, write_tokenizer
        from electra_lightning.data import load_tokenizer_info
        from electra_lightning.module import ElectraPretraining

        torch.manual_seed(0)
        info = load_tokenizer_info(str(self.tokenizer))
        seq = self.recipe()["data"]["max_seq_length"]
        module = ElectraPretraining(
            vocab_size=info.vocab_size,
            max_seq_length=seq,
            pad_token_id=info.pad_id,
            **self.model_sizes(),
        )
        module.discriminator.save_pretrained(target)
        write_tokenizer(read_tokenizer_files(str(self.tokenizer)), target)
        return target

    def glue_dir(self, row: Row) -> Path:
        return self.root / "glue" / (row.run or "random")

    def finetune(self, row: Row, init: Path) -> None:
        out = self.glue_dir(row)
        self.cli(
            "glue",
            "--init_from",
            str(init),
            "--data_dir",
            str(SHARED / "glue"),
            "--tasks",
            *self.tasks,
            "--seeds",
            str(self.seeds),
            "--output_dir",
            str(out),
            "--no_predict_test",
            "--trainer.callbacks.init_args.save_last=false",  # scores only: no checkpoints
            *self.finetune_args,
            log_file=out / "log.txt",
        )

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
        scores.update(
            linear_probe(encoder, AutoTokenizer.from_pretrained(init), missing, self.train_limit)
        )
        store.parent.mkdir(exist_ok=True)
        store.write_text(json.dumps(scores) + "\n")
        return scores

    def probe_table(self, rows: list[Row]) -> str:
        from electra_lightning.tasks import task_spec

        tasks = [t for t in PROBE_TASKS if t in self.tasks]
        head = " | ".join(f"{t} ({task_spec(t).headline})" for t in tasks)
        lines = [f"| row | {head} | average |", "|---" * (len(tasks) + 2) + "|"]
        for row in rows:
            scores = self.probe(row)
            values = [scores[t] for t in tasks]
            lines.append(
                f"| {row.label} | "
                + " | ".join(f"{v:.1f}" for v in values)
                + f" | {statistics.mean(values):.1f} |"
            )
        return "\n".join(lines)

    # -- report -------------------------------------------------------------------------------
    def scores(self, results: list[dict]) -> dict[str, list[float]]:
        """Per task: the main metric of every seed, in percent (plus each seed's task average)."""
        from electra_lightning.tasks import task_spec

        return {
            task: [
                100 * r["metrics"][task_spec(task).headline]
                for r in sorted(results, key=lambda r: r["seed"])
                if r["task"] == task
            ]
            for task in self.tasks
        }

    def table(self, all_results: dict[str, list[dict]], first: str = "pretraining") -> str:
        from electra_lightning.tasks import task_spec

        head = " | ".join(f"{t} ({task_spec(t).headline})" for t in self.tasks)
        lines = [f"| {first} | {head} | average |", "|---" * (len(self.tasks) + 2) + "|"]
        for label, results in all_results.items():
            medians = [statistics.median(v) for v in self.scores(results).values()]
            lines.append(
                f"| {label} | "
                + " | ".join(f"{m:.1f}" for m in medians)
                + f" | {statistics.mean(medians):.1f} |"
            )
        majority = self.majority()
        values = [majority[t] for t in self.tasks]
        lines.append(
            "| *majority class (reference)* | "
            + " | ".join(f"*{v:.1f}*" for v in values)
            + f" | *{statistics.mean(values):.1f}* |"
        )
        return "\n".join(lines)

    @functools.cached_property
    def constant_scores(self) -> dict[str, dict[int, float]]:
        """Each task's dev score when always answering one label, per label (a classifier that
        learned nothing lands on one of these). Scored with the same torchmetrics functions as the
        fine-tuning, so e.g. CoLA's constant predictor reads MCC 2.6, not the 0 of sklearn."""
        import torch

        scores = {}
        for task in self.tasks:
            target = torch.tensor([e.label for e in glue_split(task, "dev")])
            metric = headline_metric(task)
            scores[task] = {
                label: 100 * float(metric(torch.full_like(target, label), target))
                for label in (0, 1)
            }
        return scores

    def majority(self) -> dict[str, float]:
        """The constant-label score of the most frequent label among the training examples."""
        import collections

        scores = {}
        for task in self.tasks:
            train = glue_split(task, "train", self.train_limit)
            label = collections.Counter(e.label for e in train).most_common(1)[0][0]
            scores[task] = self.constant_scores[task][label]
        return scores

    def at_majority(self, all_results: dict[str, list[dict]]) -> str:
        """A sentence naming the rows whose fine-tuning learned nothing measurable."""
        constant = self.constant_scores
        floor = [
            label
            for label, results in all_results.items()
            if all(
                min(abs(statistics.median(v) - c) for c in constant[t].values()) < 0.5
                for t, v in self.scores(results).items()
            )
        ]
        if not floor:
            return "Every row is off the constant-prediction floor on at least one task."
        return (
            f"At the constant-prediction floor on every task (median within 0.5 of always "
            f"answering one label): {', '.join(floor)} — fine-tuning learned no more than a prior."
        )

    def seeds_table(self, all_results: dict[str, list[dict]]) -> str:
        """Every seed's score, so no reader has to trust the medians."""
        lines = ["| row | " + " | ".join(self.tasks) + " |", "|---" * (len(self.tasks) + 1) + "|"]
        for label, results in all_results.items():
            cells = [
                " / ".join(f"{v:.1f}" for v in values) for values in self.scores(results).values()
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def average(self, results: list[dict]) -> float:
        """The table's average: mean over tasks of the median over seeds."""
        return statistics.mean(statistics.median(v) for v in self.scores(results).values())

    def versus(self, all_results: dict[str, list[dict]], a: str, b: str) -> str:
        """A factual sentence comparing two rows, with the seed spread to judge it against."""
        sa, sb = self.scores(all_results[a]), self.scores(all_results[b])
        gap = self.average(all_results[a]) - self.average(all_results[b])
        ahead = sum(statistics.median(sa[t]) > statistics.median(sb[t]) for t in self.tasks)
        spread = (
            statistics.mean(max(v) - min(v) for s in (sa, sb) for v in s.values() if len(v) > 1)
            if self.seeds > 1
            else 0.0
        )
        return (
            f"{a} vs {b}: {gap:+.1f} points on the average; {a} ahead on {ahead} of "
            f"{len(self.tasks)} tasks; mean seed range (max − min) per task {spread:.1f} points."
        )

    def notes(self) -> str:
        """The hand-written reading of the results (NOTES.md beside run.py), kept across runs."""
        path = EXPERIMENTS / self.name / "NOTES.md"
        return path.read_text().strip() if path.exists() and not self.quick else ""

    def plot_scores(self, all_results: dict[str, list[dict]], output: Path, xlabel: str) -> None:
        """One panel per task and the average: every seed as a dot, the median as a line."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = list(all_results)
        per_row = {label: self.scores(res) for label, res in all_results.items()}
        panels = [*self.tasks, "average"]
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
        for ax, panel in zip(axes, panels, strict=True):
            medians = []
            for i, label in enumerate(labels):
                if panel == "average":
                    values = [statistics.median(v) for v in per_row[label].values()]
                    values = [statistics.mean(values)]
                else:
                    values = per_row[label][panel]
                ax.scatter([i] * len(values), values, s=14, alpha=0.6, color="tab:blue")
                medians.append(statistics.median(values))
            ax.plot(range(len(labels)), medians, color="tab:red", marker="_", markersize=14)
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
            ax.set_title(panel if panel == "average" else f"{panel} (seeds, median)")
            ax.set_xlabel(xlabel, fontsize=8)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(output, dpi=110)
        plt.close(fig)

    def metrics_dir(self, name: str) -> Path:
        return merge_history(self.root / "pretrain" / name)

    def curves(self, rows: list[Row], output: Path) -> None:
        runs = [str(self.metrics_dir(r.run)) for r in rows if r.run]
        self.cli("compare", *runs, "--output", str(output))

    def pretraining_table(self, rows: list[Row]) -> str:
        """The last validation of each pretraining run (fixed-seed replacements, 20 batches)."""
        import csv

        keys = ["val/gen_loss", "val/gen_acc", "val/disc_loss", "val/disc_recall", "val/disc_f1"]
        lines = [
            "| row | logged at step | " + " | ".join(k.removeprefix("val/") for k in keys) + " |",
            "|---" * (len(keys) + 2) + "|",
        ]
        for row in rows:
            if row.run is None:
                continue
            with open(self.metrics_dir(row.run) / "metrics.csv") as f:
                logged = [r for r in csv.DictReader(f) if r.get("val/gen_loss")]
            last = logged[-1] if logged else {}
            cells = [f"{float(last[k]):.3f}" if last.get(k) else "—" for k in keys]
            lines.append(f"| {row.label} | {last.get('step', '—')} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def report(
        self,
        rows: list[Row],
        results: dict[str, list[dict]],
        title: str,
        intro: str,
        findings: list[str],
        first: str,
        xlabel: str,
    ) -> None:
        """Write the study's README: setup, table, comparisons, every seed, plots, notes."""
        out = self.report_dir()
        self.curves(rows, out / "pretraining.png")
        self.plot_scores(results, out / "scores.png", xlabel=xlabel)
        findings_text = "\n".join(f"- {line}" for line in [*findings, self.at_majority(results)])
        readme = f"""{self.header(title)}
{intro.strip()}

## Result (GLUE dev, median over seeds)

{self.table(results, first=first)}

{findings_text}

Every seed (in order 1, 2, ...):

{self.seeds_table(results)}

![scores: every seed and the median](scores.png)

## Linear probe (frozen encoder)

Logistic regression on the mean-pooled last layer of the single-sentence tasks, trained on the
same training examples and scored on GLUE dev with the same metrics; deterministic. It reads the
representation directly, where fine-tuning this briefly can end at the majority class:

{self.probe_table(rows)}

## Pretraining

Last validation of each run (wikitext-2 test, replacements drawn with a fixed seed; `disc_*` is
replaced-token detection, recall/F1 of the "replaced" class):

{self.pretraining_table(rows)}

Curves (`python -m electra_lightning compare` over the logged metrics, `results/pretrain-*.csv`):

![pretraining curves](pretraining.png)

{self.notes()}
"""
        (out / "README.md").write_text(readme)
        print(readme)

    def report_dir(self) -> Path:
        """Where the README goes: the study's folder, or --output_dir for a quick run (so a smoke
        test never overwrites the real report)."""
        return self.root if self.quick else EXPERIMENTS / self.name

    def header(self, title: str) -> str:
        command = f"python experiments/{self.name}/run.py " + (
            "--quick" if self.quick else f"--budget_minutes {self.plan['budget_minutes']:g}"
        )
        cpu = platform.processor() or platform.machine()
        plan = self.plan
        corpus = "../shared/data/" + str(Path(self.corpus).relative_to(SHARED))
        vocab = "2k" if self.quick else "16k"
        return f"""# {title}

- **Command**: `{command}` (resumes when re-run; `--quick` is the CI smoke test)
- **Machine**: {cpu}, {os.cpu_count()} CPU cores, no GPU, torch {_torch_version()} · {self.workers}
  rows in parallel, {self.env["OMP_NUM_THREADS"]} thread(s) each
- **Budget**: {plan["budget_minutes"]:g} min of ELECTRA pretraining per run =
  {plan["electra_steps"]} steps of 16 × 128 tokens (measured {_fmt_s(plan["seconds_per_step"])}/step)
- **Model**: `experiments/pretrain.yaml` (4 layers, hidden 256, embeddings 128, generator 1/4,
  lr 5e-4) on `{corpus}`, WordPiece {vocab} trained on it
- **Evaluation**: GLUE dev ({", ".join(self.tasks)}) after fine-tuning with
  `{" ".join(self.finetune_args)}` (the `configs/finetune/TASK.yaml` recipe otherwise); median of
  {self.seeds} seeds; every seed is in the seeds table and in `results/` (copied from `runs/`)
{"- **Quick smoke run: the numbers mean nothing.**" if self.quick else ""}
"""


def _torch_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("torch")


def _fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"
