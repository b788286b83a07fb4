"""Runs by name: ``run_name`` gives a run its directory, ``SAVE_DIR/RUN_NAME`` (``SAVE_DIR``: the
logger's ``save_dir``, ``runs`` in the shipped configs), which holds everything the run writes:

    runs/NAME/config.yaml        the config it ran with (what a resume starts from)
    runs/NAME/checkpoints/       last.ckpt, best-*.ckpt (every checkpoint callback without a dirpath)
    runs/NAME/metrics.csv        CSVLogger (continued by a resume, no version_N)
    runs/NAME/events.out.*       TensorBoardLogger
    runs/NAME/wandb/             W&B, under the run's id (runs/NAME/wandb-run-id; a resume continues it)

A resume is ``fit --run_name NAME --ckpt_path last`` (or ``--ckpt_path runs/NAME``): the run's saved
config supplies everything, the flags given override it. This module reads only YAML (the
dispatcher uses it before Lightning is imported); the CLI applies it (``cli.lightning``).
"""

from __future__ import annotations

import os
import secrets
import string
import sys

from electra_lightning.common.config_files import config_files, update_class_paths

DEFAULT_SAVE_DIR = "runs"
SAVED_CONFIG = "config.yaml"
WANDB_ID_FILE = "wandb-run-id"


def run_directory(save_dir: str | None, run_name: str) -> str:
    return os.path.join(save_dir or DEFAULT_SAVE_DIR, run_name)


def check_run_name(run_name: str) -> None:
    """A name is a relative path below the save_dir (``small-lr1e-3``, ``finetune/sst2``)."""
    parts = run_name.replace("\\", "/").split("/")
    if not run_name.strip() or os.path.isabs(run_name) or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"run_name: '{run_name}' is not a run name; use letters, digits, '-', '_' (a '/' for "
            "a sub-directory), e.g. --run_name small-lr1e-3"
        )


def read_wandb_id(run_dir: str) -> str | None:
    path = os.path.join(run_dir, WANDB_ID_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().strip() or None


def write_wandb_id(run_dir: str, run_id: str) -> None:
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, WANDB_ID_FILE), "w", encoding="utf-8") as f:
        f.write(run_id + "\n")


def new_wandb_id() -> str:
    """8 characters of [a-z0-9], as W&B's own ids."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _flag(args: list[str], name: str) -> str | None:
    """The last value of ``--name VALUE`` / ``--name=VALUE`` in ``args``."""
    value = None
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def _from_configs(configs: list[tuple[str, dict]], *keys: str):
    """The value at ``keys`` in the last config file that sets it."""
    found = None
    for _, config in configs:
        node = config
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            found = node
    return found


def _split_configs(args: list[str]) -> tuple[list[str], list[str]]:
    """(the ``--config`` arguments, the other arguments), each in their order."""
    configs, others, i = [], [], 0
    while i < len(args):
        if args[i] == "--config" and i + 1 < len(args):
            configs += args[i : i + 2]
            i += 2
            continue
        (configs if args[i].startswith("--config=") else others).append(args[i])
        i += 1
    return configs, others


def resume_argv(argv: list[str]) -> tuple[list[str], str | None]:
    """``fit|validate|test ... --ckpt_path last`` of a named run whose directory holds its saved
    config: the arguments with that config read after the ``--config`` files and before every
    other flag (so it supplies everything, and the flags given override it), and its path.

    ``--ckpt_path RUN_DIR`` (a directory holding config.yaml) resumes that run from its
    ``last.ckpt``. Otherwise ``argv`` is returned unchanged, with ``None``."""
    if not argv or argv[0] not in ("fit", "validate", "test"):
        return argv, None
    command, rest = argv[0], argv[1:]
    ckpt_path = _flag(rest, "ckpt_path")
    if ckpt_path is None or ckpt_path == "null":
        return argv, None
    is_run_dir = (
        os.path.isdir(ckpt_path)
        and os.path.isfile(os.path.join(ckpt_path, SAVED_CONFIG))
        and not os.path.isfile(os.path.join(ckpt_path, "meta.pt"))  # an FSDP2 checkpoint
    )
    if is_run_dir:
        saved = os.path.join(ckpt_path, SAVED_CONFIG)
        rest = [a if a != f"--ckpt_path={ckpt_path}" else "--ckpt_path=last" for a in rest]
        rest = _replace_value(rest, "--ckpt_path", ckpt_path, "last")
    else:
        configs = config_files(rest)
        name = _flag(rest, "run_name") or _from_configs(configs, "run_name")
        if not isinstance(name, str) or not name:
            return argv, None
        save_dir = _flag(rest, "trainer.logger.init_args.save_dir") or _from_configs(
            configs, "trainer", "logger", "init_args", "save_dir"
        )
        saved = os.path.join(run_directory(save_dir, name), SAVED_CONFIG)
        if not os.path.isfile(saved):
            return argv, None
    update_saved_config(saved)
    config_args, others = _split_configs(rest)
    if saved in config_args or f"--config={saved}" in config_args:  # already (a DDP rank)
        return argv, saved
    if config_args:
        # The same command again: its config files give the callbacks as the first run had them,
        # so its flags (``--trainer.callbacks+=X``, ``--trainer.callbacks.init_args.K=V``, which
        # patches the last one) act on them as they did then; the saved list would put X twice
        # and let ``init_args`` patch X instead.
        import yaml

        with open(saved, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        trainer = data.get("trainer")
        if isinstance(trainer, dict) and trainer.pop("callbacks", None) is not None:
            text = yaml.safe_dump(data, sort_keys=False)
            return [command, *config_args, "--config", text, *others], saved
    return [command, *config_args, "--config", saved, *others], saved


def update_saved_config(path: str) -> None:
    """A run saved by 0.1 names classes by their old flat paths: its config is rewritten in place
    (atomically, in the run's own directory) with their paths now, and says so once."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    updated = update_class_paths(text)
    if updated == text:
        return
    temporary = f"{path}.updating"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(updated)
    os.replace(temporary, path)
    print(f"updated {path}: class paths of electra-lightning 0.1 → 0.2", file=sys.stderr)


def _replace_value(args: list[str], flag: str, old: str, new: str) -> list[str]:
    out = list(args)
    for i, arg in enumerate(out):
        if arg == flag and i + 1 < len(out) and out[i + 1] == old:
            out[i + 1] = new
    return out
