"""A run's config and its directory: the run name applied to the loggers and checkpoints, what a
resume changed against the saved config, and a CSV log continued across a resume."""

from __future__ import annotations

import csv
import importlib
import os
import warnings

import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from electra_lightning.common.runs import (
    DEFAULT_SAVE_DIR,
    check_run_name,
    new_wandb_id,
    read_wandb_id,
    run_directory,
)
from electra_lightning.report.compare import flatten


def _logger_specs(trainer_config) -> list:
    """The ``class_path``/``init_args`` namespaces of ``trainer.logger`` (one, a list, or none)."""
    loggers = trainer_config.get("logger")
    loggers = loggers if isinstance(loggers, list) else [loggers]
    return [spec for spec in loggers if getattr(spec, "class_path", None)]


def _is_checkpoint_callback(spec) -> bool:
    module, _, name = str(getattr(spec, "class_path", "")).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, ModelCheckpoint)


def _save_dir(config) -> str:
    """Where run directories go: the first logger's ``save_dir`` (``runs`` without one)."""
    save_dirs = [
        spec.init_args.get("save_dir") for spec in _logger_specs(config.trainer) if spec.init_args
    ]
    return next((str(d) for d in save_dirs if d), DEFAULT_SAVE_DIR)


def run_dir_of(config) -> str | None:
    """``SAVE_DIR/RUN_NAME`` of a parsed config, or None for a run without a name."""
    name = config.get("run_name")
    if not name:
        return None
    check_run_name(name)
    return run_directory(_save_dir(config), name)


def apply_run_name(config, subcommand: str) -> tuple[str | None, str | None]:
    """Point a named run's logger and checkpoints into its directory ``SAVE_DIR/RUN_NAME``.

    CSVLogger/TensorBoardLogger: ``save_dir/RUN_NAME`` itself (no ``version_N``; a ``validate``
    or ``test`` writes to ``RUN_NAME/validate``, ``RUN_NAME/test``); WandbLogger: named
    RUN_NAME, its files under ``save_dir/RUN_NAME/wandb``, and on a resumed ``fit`` the run's W&B
    id (``wandb-run-id``) so the W&B run continues; every ``ModelCheckpoint`` without a
    ``dirpath``: ``save_dir/RUN_NAME/checkpoints``. Returns (the run directory, the W&B id)."""
    run_dir = run_dir_of(config)
    if run_dir is None:
        return None, None
    name, root = config.run_name, _save_dir(config)
    wandb_id = None
    for spec in _logger_specs(config.trainer):
        kind, args = spec.class_path.rpartition(".")[2], spec.init_args
        if kind in ("CSVLogger", "TensorBoardLogger"):
            args.save_dir, args.name = root, name
            args.version = "" if subcommand == "fit" else subcommand
        elif kind == "WandbLogger":
            resuming = subcommand == "fit" and config.get("ckpt_path") is not None
            wandb_id = (read_wandb_id(run_dir) if resuming else None) or new_wandb_id()
            args.save_dir, args.name, args.id, args.version = run_dir, name, wandb_id, None
            if "dir" in args:
                args.dir = None
    for spec in config.trainer.get("callbacks") or []:
        if _is_checkpoint_callback(spec) and spec.init_args.get("dirpath") is None:
            spec.init_args.dirpath = os.path.join(run_dir, "checkpoints")
    return run_dir, wandb_id


def resume_changes(parser, config, saved_path: str) -> list[str]:
    """``key old → new`` for each setting of ``config`` that differs from the saved config."""
    with open(saved_path, encoding="utf-8") as f:
        saved = flatten(yaml.safe_load(f) or {})
    now = flatten(yaml.safe_load(parser.dump(config, skip_none=False, skip_check=True)) or {})
    changes = []
    for key in sorted(set(saved) | set(now)):
        if key in ("ckpt_path", "config") or saved.get(key) == now.get(key):
            continue
        old, new = saved.get(key), now.get(key)
        if isinstance(old, (list, dict)) or isinstance(new, (list, dict)):
            changes.append(f"{key} (changed)")
        else:
            changes.append(f"{key} {old} → {new}")
    return changes


def continue_csv_log(logger, step: int) -> None:
    """A resumed run's CSV log continues its ``metrics.csv``: CSVLogger deletes the file it finds
    when it starts, so the rows of the steps before ``step`` (those a stopped or killed run logged
    for steps it repeats are dropped) are written back and the logger appends to them."""
    path = os.path.join(logger.log_dir, "metrics.csv")
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = [row for row in reader if _before(row, step)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists")
        writer = logger.experiment  # deletes metrics.csv
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.DictWriter(f, fieldnames=header)
        out.writeheader()
        out.writerows(rows)
    writer.metrics_keys = header  # the logger's next rows append under this header


def _before(row: dict, step: int) -> bool:
    """Logged before the resumed step: training and validation rows carry the 0-based index of
    their step (``step - 1`` for the checkpoint's last one), probe rows the step count."""
    try:
        logged = int(float(row.get("step") or 0))
    except ValueError:
        return False
    indexed = any(
        k and k.startswith(("train/", "val/")) and v not in (None, "") for k, v in row.items()
    )
    return logged < step or (logged == step and not indexed)
