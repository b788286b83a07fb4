"""The Lightning side of the command line: ``fit``/``validate``/``test`` for pretraining
(``ElectraPretraining`` + ``ElectraDataModule``) and fine-tuning (``ElectraClassifier`` +
``GlueDataModule``), with the plugins and callbacks every run gets."""

from __future__ import annotations

import os
import sys
import warnings

from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger

from electra_lightning.cli.messages import (
    OneLineParser,
)
from electra_lightning.cli.run_config import (
    apply_run_name,
    continue_csv_log,
    resume_changes,
    run_dir_of,
)
from electra_lightning.common._compat import (
    subcommand_parser,
    wandb_init_args,
)
from electra_lightning.common.checkpoint import SafeCheckpointIO, check_writable, checkpoint_step
from electra_lightning.common.errors import NothingToDo
from electra_lightning.common.run_lock import hold_checkpoint_dirs
from electra_lightning.common.runs import (
    SAVED_CONFIG,
    write_wandb_id,
)
from electra_lightning.data.datamodule import ElectraDataModule
from electra_lightning.finetune.classifier import ElectraClassifier
from electra_lightning.finetune.glue import GlueDataModule
from electra_lightning.finetune.probe import DownstreamProbe
from electra_lightning.model.optim import ADAMW_DEFAULTS
from electra_lightning.report.compare import flatten
from electra_lightning.report.console import (
    ElectraModelSummary,
    StepProgressBar,
    quiet_dependencies,
)
from electra_lightning.train.callbacks import (
    GracefulStop,
    TokenThroughput,
    last_checkpoint_path,
)
from electra_lightning.train.hardware import fit_precision, fit_workers
from electra_lightning.train.pretraining import ElectraPretraining

CONFIG_NAME = SAVED_CONFIG


class ConfigToLogger(SaveConfigCallback):
    """Saves the resolved config inside this run's own directories — each logger's run directory
    (CSV/TensorBoard ``version_N``, the W&B run's ``files/``) and the checkpoint directory — so no
    run overwrites another's, and sends it to every logger once, under the CLI names
    (``model.size.hidden_size``), with the model size."""

    def __init__(self, *args, **kwargs):
        kwargs["save_to_log_dir"] = False  # runs/config.yaml would be shared by every W&B run
        super().__init__(*args, **kwargs)
        self.run_dir: str | None = None  # a named run's directory (runs/NAME): its config.yaml

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
        # the run directory's config.yaml is what a resume starts from: the training's
        run_dir = [self.run_dir] if self.run_dir and stage == "fit" else []
        self._write([*run_dir, *directories])

    def on_train_start(self, trainer, pl_module) -> None:
        # the checkpoint directory gets its copy once ModelCheckpoint has looked at the directory
        if trainer.is_global_zero:
            self._write([c.dirpath for c in trainer.checkpoint_callbacks if c.dirpath])

    def _write(self, directories: list[str]) -> None:
        for directory in dict.fromkeys(os.path.normpath(d) for d in directories):
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


def check_fresh_or_resume(trainer, ckpt_path: str | None) -> int | None:
    """No run is lost by accident, and a resume with nothing to do says so.

    A fresh ``fit`` (no ``--ckpt_path``) into a checkpoint directory that already holds another
    run's checkpoints is refused: it would replace that run's ``last.ckpt`` and mix its
    ``best-*.ckpt`` with the new run's. A resume already at ``trainer.max_steps`` stops before any
    logger or directory is created. Returns the step a resume starts from (None: fresh, or not
    known).
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
                    f"{directory} already holds another run's checkpoints ({shown}); give this "
                    f"run its own --run_name, resume that one with --ckpt_path last, or start "
                    f"fresh after moving or deleting {directory}"
                )
        return None
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
    return step


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it is inside it (as the user wrote it)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def warn_unused_probe_options(probe) -> None:
    """``--probe.*`` options without ``probe.tasks`` (configs/callbacks/probe.yaml) do nothing:
    one line says so."""
    import inspect

    if probe is None:
        return
    values = probe.as_dict() if hasattr(probe, "as_dict") else dict(probe)
    if values.get("tasks"):
        return
    defaults = inspect.signature(DownstreamProbe).parameters
    changed = sorted(
        f"probe.{name}"
        for name, value in values.items()
        if name in defaults and name != "tokenizer" and value != defaults[name].default
    )  # probe.tokenizer is linked from data.tokenizer, not set by the user
    if changed:
        print(
            f"warning: {', '.join(changed)} {'is' if len(changed) == 1 else 'are'} set but "
            "probe.tasks is empty, so no probe runs; add --config configs/callbacks/probe.yaml "
            "(or --probe.tasks [sst2])",
            file=sys.stderr,
        )


def check_log_dirs(trainer) -> None:
    """Every directory a logger will write, checked before anything starts (one line, not a
    logger's traceback at its first write)."""
    for logger in trainer.loggers:
        directory = getattr(logger, "save_dir", None) or getattr(logger, "root_dir", None)
        if directory:
            check_writable(directory, f"trainer.logger ({type(logger).__name__}) save_dir")


def check_checkpoint_dirs(trainer) -> None:
    """Every checkpoint directory, checked on every rank before training (one line, not a
    traceback at the first checkpoint)."""
    for callback in trainer.checkpoint_callbacks:
        check_writable(getattr(callback, "dirpath", None), "ModelCheckpoint.dirpath")


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
    init = wandb_init_args(logger)
    if init is not None and init.get("anonymous") is None:
        init.pop("anonymous", None)


class _ElectraLightningCLI(LightningCLI):
    """Adds to every trainer what users should not have to configure, instantiated here rather
    than parsed (so jsonargparse never tries to serialise them into the saved config): atomic,
    ``weights_only`` checkpoint IO, the graceful stop on SIGTERM/SIGUSR1/SIGINT, a progress bar in
    steps and a model summary with the analytic FLOPs (each only where the trainer shows one)."""

    # LightningCLI's private methods, overridden (listed in _compat.LIGHTNING_CLI_OVERRIDES)

    def _instantiate_trainer(self, config, callbacks):  # the one hook that adds plugins and
        # callbacks as objects without jsonargparse serialising them into the config
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

    def _run_subcommand(self, subcommand: str) -> None:  # the one method around
        # before_fit, fit and after_fit. One writer per run: rank 0 holds the checkpoint
        # directories from before anything is written until the command ends, however it ends
        if subcommand != "fit":
            return super()._run_subcommand(subcommand)
        with hold_checkpoint_dirs(self.trainer):
            super()._run_subcommand(subcommand)

    run_dir: str | None = None
    wandb_id: str | None = None

    @staticmethod
    def add_run_name(parser) -> None:
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help=(
                "Names the run and its directory SAVE_DIR/RUN_NAME (the logger's save_dir, e.g. "
                "runs/small-lr1e-3): logs, checkpoints, config.yaml. Resume: the same name plus "
                "--ckpt_path last (or --ckpt_path runs/NAME)."
            ),
        )

    def _run_config(self):
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        """Settings that fit this machine (bf16 where the CPU has it, workers within its cores);
        a resume from a named run's saved config says so, and what the flags changed."""
        config = self._run_config()
        fit_to_machine(config)
        run_dir = run_dir_of(config)
        saved = os.path.join(run_dir, CONFIG_NAME) if run_dir else None
        if config.get("ckpt_path") is None or not saved or not os.path.isfile(saved):
            return
        if os.environ.get("LOCAL_RANK", "0") != "0":  # said once, by the first process
            return
        parser = subcommand_parser(self, self.subcommand)
        changes = resume_changes(parser, config, saved)
        verb = "resuming" if self.subcommand in (None, "fit") else self.subcommand
        changed = f"; changed: {', '.join(changes)}" if changes else "; nothing changed"
        print(f"{verb} run '{config.run_name}' with its saved config {_shown(saved)}{changed}")

    def instantiate_classes(self) -> None:
        """The run name decides the paths; the saved config keeps them as given (a ``dirpath``
        left to the name stays null), so it can start a run under another name."""
        as_given = self._run_config().clone()
        self.run_dir, self.wandb_id = apply_run_name(self._run_config(), self.subcommand or "fit")
        super().instantiate_classes()
        for callback in self.trainer.callbacks:
            if isinstance(callback, ConfigToLogger):
                callback.config, callback.run_dir = as_given, self.run_dir

    def _start_run(self, ckpt_path: str | None, step: int | None) -> None:
        """A named run keeps its W&B id in its directory; a resumed one continues its CSV log."""
        if self.run_dir is None or not self.trainer.is_global_zero:
            return
        if self.wandb_id:
            write_wandb_id(self.run_dir, self.wandb_id)
        if ckpt_path is not None and step is not None:
            for logger in self.trainer.loggers:
                if isinstance(logger, CSVLogger):
                    continue_csv_log(logger, step)

    def before_validate(self) -> None:
        check_log_dirs(self.trainer)

    def before_test(self) -> None:
        check_log_dirs(self.trainer)


class ElectraCLI(_ElectraLightningCLI):
    """LightningCLI with the data's contract (vocabulary, pad id, sequence length, masked
    predictions, tokenizer digest) linked into the model once."""

    def add_arguments_to_parser(self, parser):
        self.add_run_name(parser)
        # the model/data contract: one frozen value, set by the data, linked once
        parser.link_arguments("data.contract", "model.contract", apply_on="instantiate")
        parser.set_defaults(
            {
                "model.optimizer": {
                    "class_path": "electra_lightning.model.optim.AdamW",
                    "init_args": {**ADAMW_DEFAULTS, "betas": list(ADAMW_DEFAULTS["betas"])},
                }
            }
        )
        parser.add_lightning_class_args(TokenThroughput, "throughput")
        # off until probe.tasks names a task: --config configs/callbacks/probe.yaml
        parser.add_lightning_class_args(DownstreamProbe, "probe")
        parser.link_arguments("data.tokenizer", "probe.tokenizer")  # the probe reads no data module

    def before_fit(self) -> None:
        warn_unused_probe_options(self.config[self.subcommand].get("probe"))
        check_log_dirs(self.trainer)
        check_checkpoint_dirs(self.trainer)
        # pretraining only: a fine-tuning config's last.ckpt is by design the latest run's
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        self._start_run(ckpt_path, check_fresh_or_resume(self.trainer, ckpt_path))

    def _parse_ckpt_path(self):
        """Keep the config's model settings on ``--ckpt_path`` (LightningCLI would silently replace
        them with the checkpoint's). ``ElectraPretraining.on_load_checkpoint`` refuses a checkpoint
        whose architecture or tokenizer differs, and the checkpoint is loaded once, safely, by
        ``SafeCheckpointIO``."""


class FinetuneCLI(_ElectraLightningCLI):
    """LightningCLI for ``ElectraClassifier`` + ``GlueDataModule``: the tokenizer comes from
    ``model.init_from``; the label set and task from the data."""

    def add_arguments_to_parser(self, parser):
        self.add_run_name(parser)
        parser.link_arguments("model.init_from", "data.tokenizer")
        parser.link_arguments("data.task", "model.task")
        parser.link_arguments("data.num_labels", "model.num_labels", apply_on="instantiate")
        parser.link_arguments("data.label_names", "model.id2label", apply_on="instantiate")

    def _parse_ckpt_path(self):
        """The config decides the model (see ElectraCLI)."""

    def before_fit(self) -> None:
        check_log_dirs(self.trainer)
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        path = last_checkpoint_path(self.trainer) if ckpt_path == "last" else ckpt_path
        self._start_run(ckpt_path, checkpoint_step(path) if path else None)


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
