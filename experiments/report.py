"""The report of a study: the GLUE table over seeds, the constant-prediction floor, the linear
probe table, the pretraining table and curves, plots, and the README around the hand-written
NOTES.md."""

from __future__ import annotations

import functools
import os
import platform
import statistics
from pathlib import Path

from experiments.common import EXPERIMENTS, Row, RowStudy
from experiments.probe import SHARED, glue_split, headline_metric


class Report:
    """Tables, plots and the README of one :class:`Study`'s results."""

    def __init__(self, study: RowStudy):
        self.study = study

    def probe_table(self, rows: list[Row]) -> str:
        from electra_lightning.finetune.tasks import task_spec

        tasks = self.study.probe_tasks
        head = " | ".join(f"{t} ({task_spec(t).headline})" for t in tasks)
        lines = [f"| row | {head} | average |", "|---" * (len(tasks) + 2) + "|"]
        for row in rows:
            scores = self.study.probe_row(row)
            values = [scores[t] for t in tasks]
            lines.append(
                f"| {row.label} | "
                + " | ".join(f"{v:.1f}" for v in values)
                + f" | {statistics.mean(values):.1f} |"
            )
        return "\n".join(lines)

    def scores(self, results: list[dict]) -> dict[str, list[float]]:
        """Per task: the main metric of every seed, in percent (plus each seed's task average)."""
        from electra_lightning.finetune.tasks import task_spec

        return {
            task: [
                100 * r["metrics"][task_spec(task).headline]
                for r in sorted(results, key=lambda r: r["seed"])
                if r["task"] == task
            ]
            for task in self.study.tasks
        }

    def table(self, all_results: dict[str, list[dict]], first: str = "pretraining") -> str:
        from electra_lightning.finetune.tasks import task_spec

        head = " | ".join(f"{t} ({task_spec(t).headline})" for t in self.study.tasks)
        lines = [f"| {first} | {head} | average |", "|---" * (len(self.study.tasks) + 2) + "|"]
        for label, results in all_results.items():
            medians = [statistics.median(v) for v in self.scores(results).values()]
            lines.append(
                f"| {label} | "
                + " | ".join(f"{m:.1f}" for m in medians)
                + f" | {statistics.mean(medians):.1f} |"
            )
        majority = self.majority()
        values = [majority[t] for t in self.study.tasks]
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
        for task in self.study.tasks:
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
        for task in self.study.tasks:
            train = glue_split(task, "train", self.study.train_limit)
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
        lines = [
            "| row | " + " | ".join(self.study.tasks) + " |",
            "|---" * (len(self.study.tasks) + 1) + "|",
        ]
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
        ahead = sum(statistics.median(sa[t]) > statistics.median(sb[t]) for t in self.study.tasks)
        spread = (
            statistics.mean(max(v) - min(v) for s in (sa, sb) for v in s.values() if len(v) > 1)
            if self.study.seeds > 1
            else 0.0
        )
        return (
            f"{a} vs {b}: {gap:+.1f} points on the average; {a} ahead on {ahead} of "
            f"{len(self.study.tasks)} tasks; mean seed range (max − min) per task {spread:.1f} points."
        )

    def notes(self) -> str:
        """The hand-written reading of the results (NOTES.md beside run.py), kept across runs."""
        path = EXPERIMENTS / self.study.name / "NOTES.md"
        return path.read_text().strip() if path.exists() and not self.study.quick else ""

    def plot_scores(self, all_results: dict[str, list[dict]], output: Path, xlabel: str) -> None:
        """One panel per task and the average: every seed as a dot, the median as a line."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = list(all_results)
        per_row = {label: self.scores(res) for label, res in all_results.items()}
        panels = [*self.study.tasks, "average"]
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

    def curves(self, rows: list[Row], output: Path) -> None:
        runs = [str(self.study.metrics_dir(r.run)) for r in rows if r.run]
        from electra_lightning.report.compare import (
            compare,  # the `compare` command, in this process
        )

        compare(runs, str(output))

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
            with open(self.study.metrics_dir(row.run) / "metrics.csv") as f:
                logged = [r for r in csv.DictReader(f) if r.get("val/gen_loss")]
            last = logged[-1] if logged else {}
            cells = [f"{float(last[k]):.3f}" if last.get(k) else "—" for k in keys]
            lines.append(f"| {row.label} | {last.get('step', '—')} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def write(
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
        out = self.study.report_dir()
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

    def header(self, title: str) -> str:
        command = f"python -m experiments.{self.study.name}.run " + (
            "--quick"
            if self.study.quick
            else f"--budget_minutes {self.study.plan['budget_minutes']:g}"
        )
        cpu = platform.processor() or platform.machine()
        plan = self.study.plan
        corpus = "../shared/data/" + str(Path(self.study.corpus[0]).relative_to(SHARED))
        vocab = "2k" if self.study.quick else "16k"
        return f"""# {title}

- **Command**: `{command}` (resumes when re-run; `--quick` is the CI smoke test)
- **Machine**: {cpu}, {os.cpu_count()} CPU cores, no GPU, torch {_torch_version()} · {self.study.workers}
  rows in parallel, {self.study.env["OMP_NUM_THREADS"]} thread(s) each
- **Budget**: {plan["budget_minutes"]:g} min of ELECTRA pretraining per run =
  {plan["electra_steps"]} steps of {self.study.batch_size} × {self.study.seq} tokens (measured {_fmt_s(plan["seconds_per_step"])}/step)
- **Model**: `experiments/pretrain.yaml` (4 layers, hidden 256, embeddings 128, generator 1/4,
  lr 5e-4) on `{corpus}`, WordPiece {vocab} trained on it
- **Evaluation**: GLUE dev ({", ".join(self.study.tasks)}) after fine-tuning with
  `{" ".join(self.study.finetune_args)}` (the `configs/finetune/TASK.yaml` recipe otherwise); median of
  {self.study.seeds} seeds; every seed is in the seeds table and in `results/` (copied from `runs/`)
{"- **Quick smoke run: the numbers mean nothing.**" if self.study.quick else ""}
"""


def _torch_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("torch")


def _fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"
