"""Compare runs offline: a table of key hyperparameters and final/best metrics, and a PNG of curves.

    python -m electra_lightning compare runs/wandb/offline-run-* runs/tiny/version_0 --output runs.png

Reads W&B run directories (offline or synced, through ``wandb leet inspect --json``) and CSVLogger
directories (``metrics.csv`` + ``hparams.yaml``), so it works without the W&B server.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import yaml

KEY_PARAMS = (
    "model.size.hidden_size",
    "model.size.num_layers",
    "model.size.generator_size",
    "model.disc_weight",
    "model.optimizer.init_args.lr",
    "data.max_seq_length",
    "data.batch_size",
    "data.mask_prob",
    "trainer.max_steps",
    "model/params_total",
)
FINAL = ("train/gen_loss", "train/disc_loss", "train/tokens_per_sec")
BEST = {
    "val/loss": min,
    "val/gen_acc": max,
    "val/disc_acc": max,
    "val/disc_f1": max,
    "val/disc_auc": max,
}
CURVES = ("train/gen_loss", "train/disc_loss", "train/disc_acc", "val/disc_acc", "val/disc_auc")


@dataclass
class Run:
    name: str
    path: str
    config: dict = field(default_factory=dict)  # flat "a.b.c" keys
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # metric → (step, v)


def flatten(tree: object, prefix: str = "") -> dict:
    """``{"model": {"size": {"hidden_size": 256}}}`` → ``{"model.size.hidden_size": 256}`` (lists
    kept whole)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _add(history: dict, key: str, step: int, value: object) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        history.setdefault(key, []).append((step, float(value)))


def read_wandb_run(path: str) -> Run:
    """A W&B run directory (``run-*.wandb`` inside), read with wandb's own reader."""
    exe = shutil.which("wandb") or os.path.join(os.path.dirname(sys.executable), "wandb")
    proc = subprocess.run(
        [exe, "leet", "inspect", "--json", path], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise ValueError(f"{path}: wandb could not read this run ({proc.stderr.strip()[:200]})")
    run = Run(name=os.path.basename(path.rstrip("/")), path=path)
    for line in proc.stdout.splitlines():
        record = json.loads(line)
        kind = record.get("type")
        if kind == "run":
            body = record["run"]
            run.name = body.get("display_name") or run.name
            run.config.update(flatten(body.get("config", {}).get("update", {})))
        elif kind == "config":
            run.config.update(flatten(record["config"].get("update", {})))
        elif kind == "history":
            item = record["history"]["item"]
            step = int(
                item.get("trainer/global_step", record["history"].get("step", {}).get("num", 0))
            )
            for key, value in item.items():
                if not key.startswith("_") and key != "trainer/global_step":
                    _add(run.history, key, step, value)
    run.config = {k: v for k, v in run.config.items() if not k.startswith("_wandb")}
    return run


class _TolerantLoader(yaml.SafeLoader):
    """SafeLoader that reads python/tuple & co. (Lightning writes them) as plain lists/values."""


def _construct_any(loader, suffix, node):
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)


_TolerantLoader.add_multi_constructor("tag:yaml.org,2002:python/", _construct_any)


def read_csv_run(path: str) -> Run:
    """A CSVLogger version directory: ``metrics.csv`` and ``hparams.yaml``."""
    run = Run(name=os.path.relpath(path), path=path)
    hparams = os.path.join(path, "hparams.yaml")
    if os.path.isfile(hparams):
        with open(hparams, encoding="utf-8") as f:
            run.config = flatten(yaml.load(f, Loader=_TolerantLoader) or {})
    with open(os.path.join(path, "metrics.csv"), encoding="utf-8") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in (None, ""):
                    _add(run.history, key, step, float(value))
    return run


def read_run(path: str) -> Run:
    if not os.path.isdir(path):
        raise ValueError(f"{path}: not a run directory")
    if glob.glob(os.path.join(path, "*.wandb")):
        return read_wandb_run(path)
    if os.path.isfile(os.path.join(path, "metrics.csv")):
        return read_csv_run(path)
    raise ValueError(
        f"{path}: neither a W&B run directory (run-*.wandb) nor a CSVLogger directory (metrics.csv)"
    )


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def config_value(config: dict, key: str):
    """``config[key]``, also for runs logged before ``model.size`` (``model.hidden_size``) and for
    ``hparams.yaml`` files, which hold the module's arguments without the ``model.`` prefix."""
    for candidate in (key, key.replace("model.size.", "model."), key.split(".")[-1]):
        if candidate in config:
            return config[candidate]
    return None


def table(runs: list[Run]) -> str:
    """A plain-text table: one column per run."""
    rows: list[tuple[str, list[str]]] = [("run", [r.name for r in runs])]
    for key in KEY_PARAMS:
        values = [config_value(r.config, key) for r in runs]
        if any(v is not None for v in values):
            rows.append((key, [_fmt(v) for v in values]))
    rows.append(
        (
            "steps",
            [_fmt(max((s for h in r.history.values() for s, _ in h), default=None)) for r in runs],
        )
    )
    for key in FINAL:
        rows.append(
            (
                f"final {key}",
                [_fmt(r.history[key][-1][1]) if key in r.history else "-" for r in runs],
            )
        )
    for key, pick in BEST.items():
        cells = []
        for r in runs:
            values = [v for _, v in r.history.get(key, [])]
            cells.append(_fmt(pick(values)) if values else "-")
        rows.append((f"{'best' if pick is max else 'lowest'} {key}", cells))
    width = max(len(label) for label, _ in rows)
    col = [max(len(row[1][i]) for row in rows) for i in range(len(runs))]
    lines = []
    for label, cells in rows:
        lines.append(
            f"{label:<{width}}  " + "  ".join(f"{c:>{col[i]}}" for i, c in enumerate(cells))
        )
        if label == "run":
            lines.append("-" * len(lines[-1]))
    return "\n".join(lines)


def plot(runs: list[Run], output: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.4))
    for ax, key in zip(axes, CURVES, strict=True):
        for run in runs:
            points = run.history.get(key)
            if points:
                steps, values = zip(*sorted(points), strict=True)
                ax.plot(steps, values, label=run.name, marker="." if len(steps) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def compare(runs: list[str], output: str = "compare.png") -> None:
    """Print a table of the runs' hyperparameters and final/best metrics; plot their curves.

    Args:
        runs: W&B run directories (e.g. runs/wandb/offline-run-*) or CSVLogger version directories.
        output: Where to write the PNG of loss and discriminator-accuracy curves.
    """
    loaded = [read_run(path) for path in runs]
    print(table(loaded))
    print(f"\ncurves: {plot(loaded, output)}")


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m electra_lightning compare", description=__doc__
    )
    parser.add_argument("runs", nargs="+", help="W&B run dirs or CSVLogger version dirs")
    parser.add_argument("--output", default="compare.png", help="PNG of the curves")
    args = parser.parse_args(argv)
    compare(args.runs, args.output)
