"""The Lightning side of the command line: ``fit``/``validate``/``test`` for pretraining
(``ElectraPretraining`` + ``ElectraDataModule``) and fine-tuning (``ElectraClassifier`` +
``GlueDataModule``), with the plugins and callbacks every run gets."""

from __future__ import annotations

import difflib
import os
import re
import sys
import warnings

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from electra_lightning.callbacks import (
    DownstreamProbe,
    GracefulStop,
    TokenThroughput,
    last_checkpoint_path,
)
from electra_lightning.checkpoint import SafeCheckpointIO, checkpoint_step
from electra_lightning.compare import flatten
from electra_lightning.config_files import config_files
from electra_lightning.console import ElectraModelSummary, StepProgressBar, quiet_dependencies
from electra_lightning.data import ElectraDataModule
from electra_lightning.errors import NothingToDo
from electra_lightning.finetune import ElectraClassifier
from electra_lightning.glue import GlueDataModule
from electra_lightning.hardware import fit_precision, fit_workers
from electra_lightning.module import ElectraPretraining
from electra_lightning.optim import ADAMW_DEFAULTS

CONFIG_NAME = "config.yaml"


class ConfigToLogger(SaveConfigCallback):
    """Saves the resolved config inside this run's own directories — each logger's run directory
    (CSV/TensorBoard ``version_N``, the W&B run's ``files/``) and the checkpoint directory — so no
    run overwrites another's, and sends it to every logger once, under the CLI names
    (``model.size.hidden_size``), with the model size."""

    def __init__(self, *args, **kwargs):
        kwargs["save_to_log_dir"] = False  # runs/config.yaml would be shared by every W&B run
        super().__init__(*args, **kwargs)

    def save_config(self, trainer, pl_module, stage: str) -> None:
        config = flatten(self.config.as_dict())
        size = getattr(pl_module.hparams, "size", None)
        if isinstance(size, dict):  # the resolved size (fields a preset filled in included)
            config.update({f"model.size.{k}": v for k, v in size.items()})
        if hasattr(pl_module, "num_parameters"):
            config.update({f"model/params_{k}": v for k, v in pl_module.num_parameters().items()})
        directories = []
        for logger in trainer.loggers:
            logger.log_hyperparams(config)
            if type(logger).__name__ == "WandbLogger":
                run_files = logger.experiment.dir
                directories.append(run_files)
                if os.environ.get("WANDB_MODE") == "offline":
                    run_dir = run_files.rsplit("/files", 1)[0]
                    print(
                        f"W&B is offline: the run is in {run_dir}; upload it with "
                        f"`wandb sync {run_dir}`"
                    )
            elif getattr(logger, "log_dir", None):
                directories.append(logger.log_dir)
        self._write(directories)

    def on_train_start(self, trainer, pl_module) -> None:
        # the checkpoint directory gets its copy once ModelCheckpoint has looked at the directory
        if trainer.is_global_zero:
            self._write([c.dirpath for c in trainer.checkpoint_callbacks if c.dirpath])

    def _write(self, directories: list[str]) -> None:
        for directory in dict.fromkeys(directories):
            os.makedirs(directory, exist_ok=True)
            self.parser.save(
                self.config,
                os.path.join(directory, CONFIG_NAME),
                skip_none=False,
                overwrite=True,  # the same run's directory (a resumed run continues it)
                multifile=False,
            )


def use_wandb_offline_without_credentials() -> None:
    """Never prompt or hang: without W&B credentials, log offline (``wandb sync`` uploads later)."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return
    netrc = os.path.expanduser("~/.netrc")
    if os.path.isfile(netrc):
        with open(netrc, encoding="utf-8", errors="replace") as f:
            if "api.wandb.ai" in f.read():
                return
    os.environ["WANDB_MODE"] = "offline"


class OneLineParser(LightningArgumentParser):
    """Options are spelled out (``--trainer.max_step`` is not taken as ``max_steps``), and a
    mistake is one ``error:`` line with the nearest known options and a pointer to ``--help``,
    not the ~90-line usage."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, *rest, **kwargs):
        self.argv = list(sys.argv[1:] if args is None else args)  # the --config files, on error
        return super().parse_args(args, *rest, **kwargs)

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:  # jsonargparse parsing a nested value: it catches this
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        line = None
        if re.search(r"(?:[Kk]ey|option) '[A-Za-z0-9_.]+'", str(message)):
            line = unknown_config_keys_error(config_files(getattr(self, "argv", [])), parser)
        print(line or one_line_error(message, parser), file=sys.stderr)
        sys.exit(2)


def unknown_keys(config: dict, known: set[str], groups: set[str], prefix: str = "") -> list[str]:
    """The dotted keys of a config mapping that name no option: a group (``trainer``,
    ``model.size``) is looked into, an option's value (a class's ``init_args``) is not."""
    found = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if (
            isinstance(value, dict)
            and value
            and (f"--{name}" in groups or f"--{name}" not in known)
        ):
            found += unknown_keys(value, known, groups, f"{name}.")
        elif f"--{name}" not in known:
            found.append(name)
    return found


def unknown_config_keys_error(files: list[tuple[str, dict]], parser) -> str | None:
    """One line naming every unknown key of every ``--config`` file (jsonargparse stops at the
    first), each with the nearest known option; None when the files hold none."""
    actions = parser._option_string_actions  # argparse's option table, see one_line_error
    known = {o for o in actions if o.startswith("--")}
    # a group's option loads a file of its settings (jsonargparse's private action class)
    groups = {o for o in known if type(actions[o]).__name__ == "_ActionConfigLoad"}
    parts = []
    for path, config in files:
        keys = []
        for key in unknown_keys(config, known, groups):
            near = difflib.get_close_matches(f"--{key}", known, n=1, cutoff=0.75)
            keys.append(f"'{key}'" + (f" (did you mean {near[0]}?)" if near else ""))
        if keys:
            parts.append(f"{path}: unknown key{'s' if len(keys) > 1 else ''} {', '.join(keys)}")
    if not parts:
        return None
    prog = parser.prog.replace(" [options]", "")
    return f"error: {'; '.join(parts)} (all options: {prog} --help)"


def one_line_error(message: str, parser) -> str:
    """``error: <first line of message>`` + the known options nearest to each unknown one."""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    first = lines[0] if lines else "invalid arguments"
    # argparse's option table (private, stable since Python 2.7): the names to suggest
    known = [o for o in parser._option_string_actions if o.startswith("--")]
    unknown = re.findall(r"(--[A-Za-z0-9_.+-]+)", " ".join(lines[:3]))
    unknown += [
        f"--{key}" for key in re.findall(r"(?:[Kk]ey|option) '([A-Za-z0-9_.]+)'", " ".join(lines))
    ]
    hints = []
    for option in dict.fromkeys(unknown):
        if option in known:
            continue
        hints += difflib.get_close_matches(option.split("=")[0], known, n=1, cutoff=0.75)
    if len(lines) > 1 and not unknown:
        first += f" ({lines[-1][:200]})"
    hint = f"; did you mean {' or '.join(dict.fromkeys(hints))}?" if hints else ""
    prog = parser.prog.replace(" [options]", "")
    return f"error: {first}{hint} (all options: {prog} --help)"


def check_fresh_or_resume(trainer, ckpt_path: str | None) -> None:
    """No run is lost by accident, and a resume with nothing to do says so.

    A fresh ``fit`` (no ``--ckpt_path``) into a checkpoint directory that already holds another
    run's checkpoints is refused: it would replace that run's ``last.ckpt`` and mix its
    ``best-*.ckpt`` with the new run's. A resume already at ``trainer.max_steps`` stops before any
    logger or directory is created.
    """
    if ckpt_path is None:
        for callback in trainer.checkpoint_callbacks:
            directory = getattr(callback, "dirpath", None)
            if not directory or not os.path.isdir(directory):
                continue
            found = sorted(n for n in os.listdir(directory) if n.endswith(".ckpt"))
            if found:
                directory = _shown(directory)
                shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if found[3:] else "")
                raise ValueError(
                    f"{directory} already holds another run's checkpoints ({shown}); resume it "
                    f"with --ckpt_path last, or start fresh after moving or deleting {directory}"
                )
        return
    # a resume writes into its own checkpoint directory: Lightning's "exists and is not empty"
    # warning is expected there
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    path = last_checkpoint_path(trainer) if ckpt_path == "last" else ckpt_path
    step = checkpoint_step(path)
    max_steps = trainer.max_steps
    if step is not None and max_steps is not None and 0 <= max_steps <= step:
        raise NothingToDo(
            f"nothing to do: {_shown(path)} is already at step {step} = trainer.max_steps; raise "
            "--trainer.max_steps to train further"
        )


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it is inside it (as the user wrote it)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def check_log_dirs(trainer) -> None:
    """Every directory a logger will write, checked before anything starts (one line, not a
    logger's traceback at its first write)."""
    from electra_lightning.checkpoint import check_writable

    for logger in trainer.loggers:
        directory = getattr(logger, "save_dir", None) or getattr(logger, "root_dir", None)
        if directory:
            check_writable(directory, f"trainer.logger ({type(logger).__name__}) save_dir")


def fit_to_machine(config) -> list[str]:
    """``trainer.precision`` and ``data.num_workers`` fitted to this machine (``hardware``: bf16
    where the CPU only emulates it, more workers than cores), changed in the parsed config itself,
    so the config the run saves says what it ran with. Returns the one-line notes (printed by the
    first process of each node)."""
    notes = []
    fitted = fit_precision(config.get("trainer.precision"), config.get("trainer.accelerator"))
    if fitted:
        config["trainer.precision"], note = fitted
        notes.append(note)
    workers = config.get("data.num_workers")
    fitted = fit_workers(workers) if isinstance(workers, int) else None
    if fitted:
        config["data.num_workers"], note = fitted
        notes.append(note)
    if os.environ.get("LOCAL_RANK", "0") == "0":
        for note in notes:
            print(note, file=sys.stderr, flush=True)
    return notes


def drop_wandb_anonymous(logger) -> None:
    """Lightning's ``WandbLogger`` passes ``anonymous=None`` to ``wandb.init`` unless anonymous
    logging is asked for, and wandb 0.31 answers any value with "The anonymous setting has no
    effect" on every run: leave the setting out (its private init arguments, read when the run
    starts)."""
    init = getattr(logger, "_wandb_init", None) if type(logger).__name__ == "WandbLogger" else None
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)


class _ElectraLightningCLI(LightningCLI):
    """Adds to every trainer what users should not have to configure, instantiated here rather
    than parsed (so jsonargparse never tries to serialise them into the saved config): atomic,
    ``weights_only`` checkpoint IO, the graceful stop on SIGTERM/SIGUSR1/SIGINT, a progress bar in
    steps and a model summary with the analytic FLOPs (each only where the trainer shows one)."""

    def _instantiate_trainer(self, config, callbacks):  # private: the one hook that adds
        # plugins/callbacks as objects without jsonargparse serialising them into the config
        plugins = config.get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        if not any(hasattr(p, "save_checkpoint") for p in plugins):
            config["plugins"] = [*plugins, SafeCheckpointIO()]
        loggers = config.get("logger")
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            drop_wandb_anonymous(logger)
        extra = [GracefulStop()]
        if config.get("enable_progress_bar") is not False:
            extra.append(StepProgressBar())
        if config.get("enable_model_summary") is not False:
            extra.append(ElectraModelSummary())
        return super()._instantiate_trainer(config, [*callbacks, *extra])

    def before_instantiate_classes(self) -> None:
        fit_to_machine(self.config.get(str(self.subcommand), self.config))

    def before_validate(self) -> None:
        check_log_dirs(self.trainer)

    def before_test(self) -> None:
        check_log_dirs(self.trainer)


class ElectraCLI(_ElectraLightningCLI):
    """LightningCLI with the data's contract (vocabulary, pad id, sequence length, masked
    predictions, tokenizer digest) linked into the model once."""

    def add_arguments_to_parser(self, parser):
        # the model/data contract: one frozen value, set by the data, linked once
        parser.link_arguments("data.contract", "model.contract", apply_on="instantiate")
        parser.set_defaults(
            {
                "model.optimizer": {
                    "class_path": "electra_lightning.optim.AdamW",
                    "init_args": {**ADAMW_DEFAULTS, "betas": list(ADAMW_DEFAULTS["betas"])},
                }
            }
        )
        parser.add_lightning_class_args(TokenThroughput, "throughput")
        # off until probe.tasks names a task: --config configs/callbacks/probe.yaml
        parser.add_lightning_class_args(DownstreamProbe, "probe")

    def before_fit(self) -> None:
        check_log_dirs(self.trainer)
        # pretraining only: a fine-tuning config's last.ckpt is by design the latest run's
        check_fresh_or_resume(self.trainer, self.config[self.subcommand].get("ckpt_path"))

    def _parse_ckpt_path(self):
        """Keep the config's model settings on ``--ckpt_path`` (LightningCLI would silently replace
        them with the checkpoint's). ``ElectraPretraining.on_load_checkpoint`` refuses a checkpoint
        whose architecture or tokenizer differs, and the checkpoint is loaded once, safely, by
        ``SafeCheckpointIO``."""


class FinetuneCLI(_ElectraLightningCLI):
    """LightningCLI for ``ElectraClassifier`` + ``GlueDataModule``: the tokenizer comes from
    ``model.init_from``; the label set and task from the data."""

    def add_arguments_to_parser(self, parser):
        parser.link_arguments("model.init_from", "data.tokenizer")
        parser.link_arguments("data.task", "model.task")
        parser.link_arguments("data.num_labels", "model.num_labels", apply_on="instantiate")
        parser.link_arguments("data.label_names", "model.id2label", apply_on="instantiate")

    def _parse_ckpt_path(self):
        """The config decides the model (see ElectraCLI)."""

    def before_fit(self) -> None:
        check_log_dirs(self.trainer)


def run_finetune_cli(args: list[str] | None, run: bool = True, prog: str | None = None):
    quiet_dependencies()
    # the glue command passes args from Python while sys.argv holds its own options
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
    return FinetuneCLI(
        ElectraClassifier,
        GlueDataModule,
        args=args,
        run=run,
        parser_class=OneLineParser,
        save_config_callback=ConfigToLogger,
        parser_kwargs={"prog": prog} if prog else None,
    )


def run_lightning_cli(args: list[str] | None, prog: str | None = None) -> None:
    quiet_dependencies()
    use_wandb_offline_without_credentials()
    ElectraCLI(
        ElectraPretraining,
        ElectraDataModule,
        args=args,
        parser_class=OneLineParser,
        save_config_callback=ConfigToLogger,
        trainer_defaults={"max_steps": 1000},
        parser_kwargs={"prog": prog} if prog else None,
    )
