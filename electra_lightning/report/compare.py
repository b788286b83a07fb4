"""Compare runs offline: a table of the hyperparameters that differ between the runs, then the key
fixed ones, and final/best metrics; a PNG of curves. Each run is labelled by its name and the
steps it trained.

    python -m electra_lightning compare runs/small-lr5e-4 runs/small-lr1e-3 --output runs.png

Reads run directories (``runs/NAME``: its W&B run, every resumed part of it joined, or its
``metrics.csv``), W&B run directories (offline or synced, through ``wandb leet inspect --json``)
and CSVLogger directories (``metrics.csv`` + ``hparams.yaml``), so it works without the W&B server.
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

from electra_lightning.common.runs import read_wandb_id

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
    "val/gen_context_gain": max,
    "val/disc_context_gain": max,
}
# The panels of a run's figure: (title, metrics, reference line, y limits). Training curves solid,
# validation dashed; one colour per run.
PANELS = (
    ("total loss (1·MLM + 50·RTD)", ("train/loss", "val/loss"), None, None),
    ("generator MLM loss", ("train/gen_loss", "val/gen_loss"), None, None),
    ("discriminator RTD loss", ("train/disc_loss", "val/disc_loss"), None, None),
    ("masked-token accuracy (gen_acc)", ("train/gen_acc", "val/gen_acc"), None, (0, None)),
    ("replaced-token ranking (val/disc_auc)", ("val/disc_auc",), ("chance 0.5", 0.5), (0.4, 1)),
    (
        "replaced tokens found (disc recall, F1)",
        ("train/disc_recall", "val/disc_recall", "val/disc_f1"),
        None,
        (0, 1),
    ),
    (
        "nats above word frequencies / base rate",
        ("val/gen_context_gain", "val/disc_context_gain"),
        ("frequencies only 0", 0.0),
        None,
    ),
)


@dataclass
class Run:
    name: str
    path: str
    config: dict = field(default_factory=dict)  # flat "a.b.c" keys
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # metric → (step, v)
    steps: int | None = None  # the global step of its last checkpoint (a run directory's)


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
        with open(hparams, encoding="utf-8", errors="replace") as f:
            try:
                run.config = flatten(yaml.load(f, Loader=_TolerantLoader) or {})
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f"{hparams}:{mark.line + 1}" if mark else hparams
                raise ValueError(f"{where}: not valid YAML; fix or remove the file") from None
    metrics = os.path.join(path, "metrics.csv")
    with open(metrics, encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        for row in reader:
            try:
                columns = len(reader.fieldnames or ())
                if None in row:
                    raise ValueError(f"{columns + len(row[None])} fields for {columns} columns")
                step = int(float(row.get("step") or 0))
                for key, value in row.items():
                    if key not in ("step", "epoch") and value not in (
                        None,
                        "",
                    ):  # None: a short row
                        _add(run.history, key, step, float(value))
            except ValueError as err:
                raise ValueError(
                    f"{metrics}:{reader.line_num}: not a metrics row ({err}); fix or remove the line"
                ) from None
    return run


def join_parts(parts: list[Run]) -> Run:
    """One run from the W&B parts of a resumed run (same id, in the order they ran): the config
    of the last, each metric's history with a later part's points replacing the earlier ones from
    its first step on (steps a killed run logged and its resume repeated)."""
    run = parts[0]
    for later in parts[1:]:
        run.config.update(later.config)
        for key, points in later.history.items():
            first = min(s for s, _ in points)
            run.history[key] = [p for p in run.history.get(key, []) if p[0] < first] + points
        run.path = later.path
    return run


def wandb_parts(run_dir: str) -> list[str]:
    """The W&B directories of a named run (``runs/NAME/wandb/*run-*-ID``, ID from
    ``runs/NAME/wandb-run-id``), oldest first."""
    run_id = read_wandb_id(run_dir)
    if not run_id:
        return []
    found = glob.glob(os.path.join(glob.escape(run_dir), "wandb", f"*run-*-{run_id}"))
    return sorted(p for p in found if os.path.isdir(p))


def read_run(path: str) -> Run:
    if not os.path.isdir(path):
        raise ValueError(f"{path}: not a run directory")
    if glob.glob(os.path.join(path, "*.wandb")):
        run = read_wandb_run(path)
    elif parts := wandb_parts(path):
        run = join_parts([read_wandb_run(p) for p in parts])
    elif os.path.isfile(os.path.join(path, "metrics.csv")):
        run = read_csv_run(path)
    else:
        raise ValueError(
            f"{path}: neither a run directory (runs/NAME), a W&B run directory (run-*.wandb) nor "
            "a CSVLogger directory (metrics.csv)"
        )
    if isinstance(run.config.get("run_name"), str) and run.config["run_name"]:
        run.name = run.config["run_name"]
    run.steps = _checkpoint_step(path)
    return run


def _checkpoint_step(run_dir: str) -> int | None:
    """The step of a run directory's ``checkpoints/last.ckpt`` (None without one)."""
    path = os.path.join(run_dir, "checkpoints", "last.ckpt")
    if not os.path.isfile(path):
        return None
    from electra_lightning.common.checkpoint import checkpoint_step  # torch: only for a checkpoint

    return checkpoint_step(path)


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


# what names and places a run rather than how it trains: never a difference between runs
RUN_IDENTITY = ("run_name", "ckpt_path", "config")
RUN_IDENTITY_FIELDS = ("save_dir", "dirpath", "dir", "name", "version", "id")


def _is_identity(key: str) -> bool:
    if key in RUN_IDENTITY or key.startswith("_"):
        return True
    return key.startswith(("trainer.logger.", "trainer.callbacks.")) and (
        key.rsplit(".", 1)[-1] in RUN_IDENTITY_FIELDS
    )


def _cell(value: object, width: int = 60) -> str:
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and "class_path" in v for v in value)
    ):  # a list of classes (trainer.callbacks): their names
        value = ",".join(str(v["class_path"]).rsplit(".", 1)[-1] for v in value)
    text = _fmt(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def differing_params(runs: list[Run]) -> list[str]:
    """Every config key whose value is not the same in all ``runs`` (none for one run)."""
    if len(runs) < 2:
        return []
    keys = sorted({k for r in runs for k in r.config if not _is_identity(k)})
    return [k for k in keys if len({_fmt(r.config.get(k)) for r in runs}) > 1]


def table(runs: list[Run]) -> str:
    """A plain-text table: one column per run; the hyperparameters that differ between the runs
    first, then the key ones they share."""
    rows: list[tuple[str, list[str]]] = [("run", [r.name for r in runs])]
    differ = differing_params(runs)
    if differ:
        rows.append(("differs:", ["" for _ in runs]))
        rows += [(f"  {key}", [_cell(r.config.get(key)) for r in runs]) for key in differ]
    same = []
    for key in KEY_PARAMS:
        values = [config_value(r.config, key) for r in runs]
        if any(v is not None for v in values) and key not in differ:
            same.append((f"  {key}" if differ else key, [_fmt(v) for v in values]))
    if differ and same:
        rows.append(("same:", ["" for _ in runs]))
    rows += same
    rows.append(("steps trained", [_fmt(steps_trained(r)) for r in runs]))
    for key in FINAL:
        rows.append(
            (
                f"final {key}",
                [_fmt(r.history[key][-1][1]) if key in r.history else "-" for r in runs],
            )
        )
    for key in sorted({k for r in runs for k in r.history if k.startswith("probe/")}):
        rows.append(
            (
                f"final {key}",
                [_fmt(sorted(r.history[key])[-1][1]) if key in r.history else "-" for r in runs],
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


def steps_trained(run: Run) -> int | None:
    """Optimizer steps the run trained: its checkpoint's step where known, else from the last
    metric logged of any kind (Lightning logs training and validation rows at the 0-based index
    of their step, so + 1; a probe at the step count)."""
    if run.steps is not None:
        return run.steps
    steps = [
        s if key.startswith("probe/") else s + 1 for key, h in run.history.items() for s, _ in h
    ]
    return max(steps) if steps else None


def plot(runs: list[Run], output: str) -> str:
    """Write :func:`figure` of ``runs`` to ``output`` (PNG, 1500 px wide); return the path."""
    fig = figure(runs)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=DPI)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return output


DPI = 100


def figure(runs: list[Run]):
    """A grid of the runs' curves (3 panels a row, 15 inches wide): losses, masked-token
    accuracy, the discriminator's ranking AUC against chance, its recall/F1 of replaced tokens,
    and each downstream probe (``probe/*``) where logged; titled with the runs and their steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    probes = sorted({k for r in runs for k in r.history if k.startswith("probe/")})
    panels = [*PANELS, *((f"downstream {k}", (k,), None, None) for k in probes)]
    rows = -(-len(panels) // 3)
    row_height = 3.6 if rows <= 2 else 3.0  # three rows still fit a 1,000-pixel-high screen
    fig, axes = plt.subplots(rows, 3, figsize=(15, row_height * rows + 0.8), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, keys, reference, limits) in zip(axes.flat, panels, strict=False):
        # training solid; validation dashed (a second validation metric dotted)
        val_styles = iter(("--", ":"))
        styles = {k: "-" if k.startswith("train/") else next(val_styles, "-.") for k in keys}
        drawn = set()
        for i, run in enumerate(runs):
            for key in keys:
                points = run.history.get(key)
                if not points:
                    continue
                steps, values = zip(*sorted(points), strict=True)
                ax.plot(
                    [s + 1 for s in steps],
                    values,
                    color=colours[i % len(colours)],
                    linestyle=styles[key],
                    marker="." if len(steps) < 30 else None,
                )
                drawn.add(key)
        handles = [Line2D([], [], color="black", linestyle=styles[k]) for k in keys if k in drawn]
        labels = [k for k in keys if k in drawn]
        if reference:
            ax.axhline(reference[1], color="grey", linestyle=":")
            handles.append(Line2D([], [], color="grey", linestyle=":"))
            labels.append(reference[0])
        if limits:  # a fixed scale, widened where the data goes below it
            lowest = min((min(line.get_ydata()) for line in ax.get_lines()), default=None)
            bottom = limits[0]
            if bottom is not None and lowest is not None and lowest < bottom:
                bottom = math.floor(lowest * 20) / 20
            ax.set_ylim(bottom, limits[1])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if handles:
            ax.legend(handles, labels, fontsize=7)
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    names = [_label(r) for r in runs]
    fig.suptitle(" vs ".join(names) if len(runs) < 4 else f"{len(runs)} runs", fontsize=12)
    if len(runs) > 1:  # which colour is which run
        fig.legend(
            [Line2D([], [], color=colours[i % len(colours)]) for i in range(len(runs))],
            names,
            loc="lower center",
            ncol=min(len(runs), 4),
            fontsize=9,
        )
    fig.tight_layout(rect=(0, 0.05 if len(runs) > 1 else 0, 1, 0.96))
    return fig


def _label(run: Run) -> str:
    steps = steps_trained(run)
    return f"{run.name} ({steps:,} steps)" if steps is not None else f"{run.name} (steps unknown)"


def compare(runs: list[str], output: str = "compare.png") -> None:
    """Print a table of the runs' hyperparameters and final/best metrics; plot their curves.

    Args:
        runs: Run directories (runs/NAME), W&B run directories (e.g. runs/NAME/wandb/offline-run-*)
            or CSVLogger directories.
        output: Where to write the PNG of loss and discriminator-accuracy curves.
    """
    seen: dict[str, str] = {}
    for path in runs:
        real = os.path.realpath(path)
        if real in seen:
            print(f"warning: {path} is the same run as {seen[real]}: compared with itself")
        seen.setdefault(real, path)
    loaded = [read_run(path) for path in runs]
    print(table(loaded))
    print(f"\ncurves: {plot(loaded, output)}")


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m electra_lightning compare", description=__doc__
    )
    parser.add_argument("runs", nargs="+", help="run dirs (runs/NAME), W&B run dirs or CSV dirs")
    parser.add_argument("--output", default="compare.png", help="PNG of the curves")
    args = parser.parse_args(argv)
    compare(args.runs, args.output)
