"""``python -m electra_lightning``: LightningCLI for fit/validate plus tokenizer and export."""

from __future__ import annotations

import os
import sys

from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from electra_lightning.callbacks import GracefulStop, TokenThroughput, TrainingStopped
from electra_lightning.checkpoint import SafeCheckpointIO
from electra_lightning.compare import flatten
from electra_lightning.data import ElectraDataModule
from electra_lightning.module import ADAMW_DEFAULTS, ElectraPretraining

USAGE = """usage: python -m electra_lightning COMMAND [options]

commands:
  fit | validate | test             LightningCLI (--config configs/X.yaml; --help for options)
  tokenizer                        train a WordPiece tokenizer on local text files
  export                           write a checkpoint as Hugging Face generator/discriminator dirs
  predict fill-mask|detect|classify  use exported models (fill [MASK]; RTD view; labels)
  compare RUN_DIR...               table + PNG of W&B (offline) or CSV runs
  glue --init_from DIR --tasks ...  fine-tune GLUE tasks over several seeds; table + test files
  (fit/validate with --config configs/finetune/TASK.yaml fine-tune the encoder)
"""


class ConfigToLogger(SaveConfigCallback):
    """Writes config.yaml and sends the full resolved config to every logger (W&B run config,
    CSV/TensorBoard hparams), with the model size, so runs compare by hyperparameter."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        config = flatten(self.config.as_dict())
        if hasattr(pl_module, "num_parameters"):
            config.update({f"model/params_{k}": v for k, v in pl_module.num_parameters().items()})
        for logger in trainer.loggers:
            logger.log_hyperparams(config)
            if type(logger).__name__ == "WandbLogger" and os.environ.get("WANDB_MODE") == "offline":
                run_dir = logger.experiment.dir.rsplit("/files", 1)[0]
                print(
                    f"W&B is offline: the run is in {run_dir}; upload it with `wandb sync {run_dir}`"
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


class ElectraCLI(LightningCLI):
    """LightningCLI with the sequence length, vocabulary and pad id set once and linked."""

    def add_arguments_to_parser(self, parser):
        parser.link_arguments("data.max_seq_length", "model.max_seq_length")
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="instantiate")
        parser.link_arguments("data.pad_token_id", "model.pad_token_id", apply_on="instantiate")
        parser.set_defaults(
            {
                "model.optimizer": {
                    "class_path": "torch.optim.AdamW",
                    "init_args": {**ADAMW_DEFAULTS, "betas": list(ADAMW_DEFAULTS["betas"])},
                }
            }
        )
        parser.add_lightning_class_args(TokenThroughput, "throughput")

    def _parse_ckpt_path(self):
        """Keep the config's model settings on ``--ckpt_path`` (LightningCLI would silently replace
        them with the checkpoint's). ``ElectraPretraining.on_load_checkpoint`` refuses a checkpoint
        whose architecture or tokenizer differs, and the checkpoint is loaded once, safely, by
        ``SafeCheckpointIO``."""


class FinetuneCLI(LightningCLI):
    """LightningCLI for ``ElectraClassifier`` + ``GlueDataModule``: the tokenizer comes from
    ``model.init_from``; the label set and task from the data."""

    def add_arguments_to_parser(self, parser):
        parser.link_arguments("model.init_from", "data.tokenizer")
        parser.link_arguments("data.task", "model.task")
        parser.link_arguments("data.num_labels", "model.num_labels", apply_on="instantiate")
        parser.link_arguments("data.label_names", "model.id2label", apply_on="instantiate")

    def _parse_ckpt_path(self):
        """The config decides the model (see ElectraCLI)."""


def is_finetune(args: list[str]) -> bool:
    """Fine-tuning when ``model.init_from`` or ``data.task`` is given on the command line or in a
    ``--config`` file (configs/finetune/*.yaml)."""
    import yaml

    if any(a.startswith(("--model.init_from", "--data.task")) for a in args):
        return True
    for i, arg in enumerate(args):
        path = args[i + 1] if arg == "--config" and i + 1 < len(args) else None
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                config = yaml.safe_load(f) or {}
            if "init_from" in (config.get("model") or {}) or "task" in (config.get("data") or {}):
                return True
    return False


def run_finetune_cli(args: list[str] | None, run: bool = True) -> FinetuneCLI:
    import warnings

    from electra_lightning.finetune import ElectraClassifier
    from electra_lightning.glue import GlueDataModule

    # the glue command passes args from Python while sys.argv holds its own options
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
    return FinetuneCLI(
        ElectraClassifier,
        GlueDataModule,
        args=args,
        run=run,
        save_config_callback=ConfigToLogger,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"plugins": [SafeCheckpointIO()], "callbacks": [GracefulStop()]},
    )


def run_lightning_cli(args: list[str] | None) -> None:
    use_wandb_offline_without_credentials()
    ElectraCLI(
        ElectraPretraining,
        ElectraDataModule,
        args=args,
        save_config_callback=ConfigToLogger,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "max_steps": 1000,
            "plugins": [SafeCheckpointIO()],
            "callbacks": [GracefulStop()],
        },
    )


def main(argv: list[str] | None = None) -> int:
    from_shell = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "tokenizer":
            from electra_lightning.tokenizer import main as tokenizer_main

            tokenizer_main(rest)
        elif command == "export":
            from electra_lightning.export import main as export_main

            export_main(rest)
        elif command == "compare":
            from electra_lightning.compare import main as compare_main

            compare_main(rest)
        elif command == "predict":
            from electra_lightning.predict import main as predict_main

            predict_main(rest)
        elif command == "glue":
            from electra_lightning.glue_runner import main as glue_main

            glue_main(rest)
        elif is_finetune(argv):
            run_finetune_cli(None if from_shell else argv)
        else:
            run_lightning_cli(None if from_shell else argv)
    except TrainingStopped as stop:
        # a cluster's SIGTERM/SIGUSR1 or Ctrl-C: a normal event, the state is saved
        if _is_rank_zero():
            print(str(stop), file=sys.stderr)
        return stop.exit_code
    except (ValueError, FileNotFoundError) as err:
        # User errors: one line naming the field or file, no traceback. An error raised in a
        # DataLoader worker arrives wrapped with the worker's traceback: keep its last line.
        message = str(err).strip()
        if "Original Traceback" in message:
            message = message.splitlines()[-1].split(": ", 1)[-1]
        if _is_rank_zero():  # every rank meets the same bad input; say it once
            print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


def _is_rank_zero() -> bool:
    """The process the user started on this node (Lightning starts the other ranks with
    ``LOCAL_RANK`` set); their copy of the same error is not printed again."""
    return os.environ.get("LOCAL_RANK", "0") == "0"
