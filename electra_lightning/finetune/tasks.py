"""The one table of fine-tuning tasks: where each GLUE task's columns are, its labels, the metrics
it is scored with (GLUE's headline metric first), its submission file name and its epochs — and the
one fine-tuning recipe built from it (:func:`finetune_recipe`). The data module, the
LightningModule's metrics, the ``glue`` runner, ``configs/finetune/TASK.yaml`` (generated:
``python -m electra_lightning.finetune.tasks configs/finetune``) and the experiments all read it from here."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class TaskSpec:
    """Where a task's columns are (by header name, or by index for headerless files)."""

    name: str  # folder under the GLUE root
    text: str | int
    text_pair: str | int | None
    label: str | int | None
    labels: tuple[str, ...] | None  # None: regression
    metrics: tuple[str, ...]  # scored with these; the first is GLUE's headline metric
    header: bool = True
    dev: str = "dev.tsv"
    test_index: str = "index"
    names: tuple[str, ...] | None = None  # readable label names for id2label (default: labels)
    submission: str = ""  # GLUE leaderboard file name (without .tsv); default: name
    epochs: int = 3  # the official recipe: 3 epochs, 10 for the small RTE and STS-B

    @property
    def headline(self) -> str:
        return self.metrics[0]


TASKS = {
    "cola": TaskSpec(
        "CoLA",
        3,
        None,
        1,
        ("0", "1"),
        ("mcc",),
        header=False,
        names=("unacceptable", "acceptable"),
    ),
    "sst2": TaskSpec(
        "SST-2", "sentence", None, "label", ("0", "1"), ("acc",), names=("negative", "positive")
    ),
    "mrpc": TaskSpec(
        "MRPC",
        "#1 String",
        "#2 String",
        "Quality",
        ("0", "1"),
        ("f1", "acc"),
        names=("not_equivalent", "equivalent"),
    ),
    "stsb": TaskSpec(
        "STS-B", "sentence1", "sentence2", "score", None, ("spearman", "pearson"), epochs=10
    ),
    "rte": TaskSpec(
        "RTE",
        "sentence1",
        "sentence2",
        "label",
        ("entailment", "not_entailment"),
        ("acc",),
        epochs=10,
    ),
    "wnli": TaskSpec(
        "WNLI",
        "sentence1",
        "sentence2",
        "label",
        ("0", "1"),
        ("acc",),
        names=("not_entailment", "entailment"),
    ),
    "qnli": TaskSpec(
        "QNLI", "question", "sentence", "label", ("entailment", "not_entailment"), ("acc",)
    ),
    "mnli": TaskSpec(
        "MNLI",
        "sentence1",
        "sentence2",
        "gold_label",
        ("contradiction", "entailment", "neutral"),
        ("acc",),
        dev="dev_matched.tsv",
        submission="MNLI-m",
    ),
    "qqp": TaskSpec(
        "QQP",
        "question1",
        "question2",
        "is_duplicate",
        ("0", "1"),
        ("f1", "acc"),
        test_index="id",
    ),
}
ALIASES = {"sst-2": "sst2", "sts-b": "stsb"}
CUSTOM = "custom"
# how a classifier is judged besides its GLUE headline metric: accuracy, and precision, recall and
# F1 of the positive class (two labels) or macro-averaged over the classes (more than two)
CLASSIFICATION_METRICS = ("acc", "precision", "recall", "f1")
REGRESSION_METRICS = ("spearman", "pearson")


def task_key(task: str) -> str:
    key = task.lower()
    return ALIASES.get(key, key)


def task_spec(task: str) -> TaskSpec:
    key = task_key(task)
    if key not in TASKS:
        raise ValueError(
            f"data.task: unknown task '{task}'; choose one of {', '.join(TASKS)} or '{CUSTOM}' "
            "(with data.train_file/val_file and the column names)"
        )
    return TASKS[key]


def metric_names(task: str, num_labels: int) -> tuple[str, ...]:
    """The metrics a task is scored with, its headline metric first: a GLUE task's own, then (for
    classification) accuracy, precision, recall and F1; a custom task: those four, or Spearman and
    Pearson for regression (``num_labels == 1``)."""
    spec = TASKS.get(task_key(task))
    if num_labels == 1:
        return spec.metrics if spec else REGRESSION_METRICS
    headline = spec.metrics if spec else ("acc",)
    return headline + tuple(m for m in CLASSIFICATION_METRICS if m not in headline)


def submission_name(task: str) -> str:
    spec = task_spec(task)
    return spec.submission or spec.name


def finetune_recipe(task: str, save_dir: str = "runs/finetune", name: str | None = None) -> dict:
    """The official fine-tuning recipe (google-research/electra ``configure_finetuning.py``) for one
    task as a LightningCLI config: what is not already a default of ``ElectraClassifier`` (lr 3e-4,
    layer-wise decay 0.8, no weight decay, 10% warmup) or ``GlueDataModule`` (batch 32, 128 tokens)
    — the task's epochs, gradient clipping, a CSV log and ``last.ckpt`` in the run's directory
    ``save_dir/name`` (``run_name``; ``name`` defaults to the task)."""
    key = task_key(task)
    name = name or key
    return {
        "seed_everything": 1,
        "run_name": name,
        "trainer": {
            "max_epochs": task_spec(key).epochs,
            "gradient_clip_val": 1.0,
            "log_every_n_steps": 20,
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": save_dir},
            },
            # last.ckpt in save_dir/name; its defaults are the class's (none differ here)
            "callbacks": [{"class_path": "electra_lightning.train.callbacks.LastCheckpoint"}],
        },
        "data": {"task": key, "data_dir": "glue_data"},
    }


RECIPE_HEADER = """\
# GENERATED by `python -m electra_lightning.finetune.tasks configs/finetune` from the task table
# (electra_lightning/finetune/tasks.py); edit it there, not here.
# Fine-tune on GLUE {task} with the official recipe (configure_finetuning.py): batch 32, seq 128,
# {epochs} epochs, 10% warmup, layer-wise LR decay, no weight decay (the model's and data's
# defaults). They are ELECTRA-Small's (lr 3e-4, decay 0.8); add
# --config configs/finetune/size/base.yaml or large.yaml for the bigger models. Data: the standard
# GLUE layout glue_data/TASK/{{train,dev,test}}.tsv (--data.data_dir to change it).
#   python -m electra_lightning fit --config configs/finetune/{task}.yaml --model.init_from export/discriminator
"""


def recipe_yaml(task: str) -> str:
    """``configs/finetune/TASK.yaml``: :func:`finetune_recipe` with its header comment."""
    key = task_key(task)
    header = RECIPE_HEADER.format(task=key, epochs=task_spec(key).epochs)
    return header + yaml.safe_dump(finetune_recipe(key), sort_keys=False)


if __name__ == "__main__":  # python -m electra_lightning.finetune.tasks configs/finetune
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "configs/finetune")
    for name in TASKS:
        (target / f"{name}.yaml").write_text(recipe_yaml(name))
    print(f"wrote {len(TASKS)} recipes to {target}/")
