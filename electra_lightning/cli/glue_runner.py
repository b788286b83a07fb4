"""``python -m electra_lightning glue``: fine-tune GLUE tasks over several seeds and report dev
scores the way the paper does (median over seeds), plus test-set predictions in submission format.

    python -m electra_lightning glue --init_from export/discriminator --data_dir glue_data \\
        --tasks cola sst2 mrpc stsb rte --seeds 5 --output_dir runs/glue

Each (task, seed) run uses the recipe ``tasks.finetune_recipe`` — the one
``configs/finetune/TASK.yaml`` is generated from, so it is the same as
``fit --config configs/finetune/TASK.yaml`` (any ``--trainer.*``, ``--model.*`` or ``--data.*``
option overrides it, e.g. ``--trainer.max_epochs=1``). Results are written as they come
(``results.jsonl``) and runs already there are not repeated, so the command resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
from pathlib import Path

from electra_lightning.finetune.tasks import (
    finetune_recipe,
    metric_names,
    submission_name,
    task_spec,
)


def run_one(task: str, seed: int, args, overrides: list[str]) -> dict:
    """Fine-tune one task with one seed; return its dev metrics (and write test predictions)."""
    # here, not at the top: `glue --help` must not import Lightning (not a cycle: lightning_cli
    # does not import this module)
    from electra_lightning.cli.lightning import run_finetune_cli

    out = Path(args.output_dir) / task / f"seed{seed}"
    recipe = finetune_recipe(task, save_dir=str(out.parent), name=out.name)
    cli_args = [
        f"--config={json.dumps(recipe)}",
        f"--model.init_from={args.init_from}",
        f"--data.data_dir={args.data_dir}",
        f"--seed_everything={seed}",  # after the recipe's seed
        "--trainer.enable_progress_bar=false",
        *(["--config", args.size_config] if args.size_config else []),
        *overrides,
    ]
    cli = run_finetune_cli(cli_args, run=False)
    cli.trainer.fit(cli.model, cli.datamodule)
    metrics = cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0]
    result = {k.removeprefix("val/"): float(v) for k, v in metrics.items() if k != "val/loss"}
    if (
        args.predict_test
        and cli.datamodule.files.get("test")
        and os.path.isfile(cli.datamodule.files["test"])
    ):
        write_submission(task, cli, out / f"{submission_name(task)}.tsv")
    return result


def write_submission(task: str, cli, path: Path) -> None:
    """GLUE submission format: ``index<TAB>prediction`` with label names (scores for STS-B)."""
    outputs = cli.trainer.predict(cli.model, cli.datamodule)
    examples = cli.datamodule.examples("test")
    names = list(cli.datamodule.spec.labels or ())  # the raw labels GLUE's server expects
    rows = []
    for batch in outputs:
        for value in batch:
            rows.append(f"{float(value):.3f}" if value.ndim == 0 else names[int(value.argmax())])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["index", "prediction"])
        for i, (example, prediction) in enumerate(zip(examples, rows, strict=True)):
            writer.writerow([example.index if example.index is not None else i, prediction])


def summarize(results: list[dict], tasks: list[str]) -> str:
    """Per task and metric: median, mean ± std over seeds; GLUE average of headline medians."""
    lines = ["| task | metric | seeds | median | mean ± std | all |", "|---|---|---|---|---|---|"]
    headline = []
    for task in tasks:
        runs = [r for r in results if r["task"] == task]
        if not runs:
            continue
        num_labels = 1 if task_spec(task).labels is None else 2
        for i, metric in enumerate(metric_names(task, num_labels)):
            values = [100 * r["metrics"][metric] for r in runs if metric in r["metrics"]]
            if not values:
                continue
            median = statistics.median(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            if i == 0:
                headline.append(median)
            lines.append(
                f"| {task} | {metric} | {len(values)} | {median:.1f} | {statistics.mean(values):.1f} ± {std:.1f} | "
                + ", ".join(f"{v:.1f}" for v in values)
                + " |"
            )
    if headline:
        lines.append(
            f"\nGLUE average (median of each task's headline metric, {len(headline)} tasks): "
            f"{statistics.mean(headline):.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m electra_lightning glue", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--init_from", required=True, help="exported discriminator dir or pretraining checkpoint"
    )
    parser.add_argument(
        "--data_dir", default="glue_data", help="GLUE root: DIR/TASK/{train,dev,test}.tsv"
    )
    parser.add_argument("--tasks", nargs="+", default=["cola", "sst2", "mrpc", "stsb", "rte"])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N per task")
    parser.add_argument("--output_dir", default="runs/glue")
    parser.add_argument("--size_config", default=None, help="e.g. configs/finetune/size/base.yaml")
    parser.add_argument("--no_predict_test", dest="predict_test", action="store_false")
    args, overrides = parser.parse_known_args(argv)
    unknown = [
        a
        for a in overrides
        if a.startswith("--") and not a.startswith(("--trainer.", "--model.", "--data."))
    ]
    if unknown:
        parser.error(
            f"unknown option {unknown[0]} (overrides start with --trainer., --model., --data.)"
        )
    tasks = []
    for task in args.tasks:
        task_spec(task)  # clear error for an unknown name
        tasks.append(task.lower().replace("-", ""))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.jsonl"
    results = (
        [json.loads(line) for line in store.read_text().splitlines()] if store.exists() else []
    )
    done = {(r["task"], r["seed"]) for r in results}
    for task in tasks:
        for seed in range(1, args.seeds + 1):
            if (task, seed) in done:
                continue
            metrics = run_one(task, seed, args, overrides)
            record = {"task": task, "seed": seed, "metrics": metrics}
            results.append(record)
            with open(store, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(
                f"{task} seed {seed}: "
                + ", ".join(f"{k} {100 * v:.1f}" for k, v in metrics.items())
            )
    report = summarize(results, tasks)
    (out / "results.md").write_text(report + "\n")
    print("\n" + report + f"\n\nwritten: {store}, {out / 'results.md'}")
