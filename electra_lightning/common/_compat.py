"""Every private access into a library, in one place: Lightning, torch, argparse/jsonargparse.

Each is a small function with a line on what it uses and why no public API does the job;
``tests/test_compat.py`` checks each against the installed versions and fails with the name of
what an upgrade removed, and checks that no private access appears outside this module. It imports
nothing heavy: its callers pass the objects in (``--help`` stays free of torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# LightningCLI's private methods that our CLIs override (``cli/lightning.py``): no public hook does
# their job. Each name → what the override does; a test checks LightningCLI still has them.
LIGHTNING_CLI_OVERRIDES = {
    "_instantiate_trainer": "adds plugins and callbacks as objects, kept out of the saved config",
    "_run_subcommand": "holds the run lock around before_fit, fit and after_fit",
    "_parse_ckpt_path": "keeps the config's model settings on --ckpt_path (not the checkpoint's)",
}


def attached_trainer(module) -> Any | None:
    """The trainer a LightningModule is attached to, or None (a module loaded on its own)."""
    # LightningModule._trainer: the public ``module.trainer`` raises when there is none
    return module._trainer


def logs_this_step(trainer) -> bool:
    """Whether Lightning writes this step's logs (every ``log_every_n_steps`` optimizer steps, and
    when stopping)."""
    # Trainer._logger_connector.should_update_logs: the one place Lightning decides it; its count
    # of stepped batches is one behind global_step after a resume, so ours drifted (no logs)
    return trainer._logger_connector.should_update_logs


def save_last_checkpoint_now(callback, trainer) -> None:
    """Write ``callback``'s ``last.ckpt`` now, with Lightning's own checks and file naming."""
    # ModelCheckpoint._should_skip_saving_checkpoint/_save_last_checkpoint/_monitor_candidates:
    # the public API has no "save last now" (only its interval and epoch-end saves)
    if not callback._should_skip_saving_checkpoint(trainer):
        callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))


def load_sharded_checkpoint(path: str) -> dict:
    """A sharded (DCP) checkpoint directory, consolidated in CPU memory."""
    # lightning.fabric.utilities.load._load_distributed_checkpoint: torch's public
    # dcp_to_torch_save first writes a full copy to disk, outside the directories the user named
    from lightning.fabric.utilities.load import _load_distributed_checkpoint

    return _load_distributed_checkpoint(Path(path))


def steps_with_found_inf(optimizer) -> bool:
    """Whether ``optimizer.step`` reads a device-side ``found_inf`` flag (torch's fused
    Adam/AdamW/SGD, as AMP's GradScaler uses them)."""
    # torch.optim.Optimizer._step_supports_amp_scaling: GradScaler's own test, not public
    return getattr(optimizer, "_step_supports_amp_scaling", False)


def skip_step_where(optimizer, found_inf) -> None:
    """The optimizer's next step skips its update on the device where ``found_inf`` (a 0-dim float
    tensor) is non-zero: no host sync."""
    # the undocumented found_inf attribute torch's fused step reads (GradScaler sets it likewise)
    optimizer.found_inf = found_inf


def option_actions(parser) -> dict[str, Any]:
    """An argparse (or jsonargparse) parser's options: ``--name`` → its action."""
    # argparse.ArgumentParser._option_string_actions: argparse has no public option table
    return parser._option_string_actions


def loads_config_group(action) -> bool:
    """Whether a jsonargparse option names a group of settings (``--trainer``, ``--model.size``),
    whose value is a file or mapping of them, rather than one setting."""
    # jsonargparse._actions._ActionConfigLoad, by name (so a move between its modules is no
    # matter): jsonargparse has no public test for a group's option
    return type(action).__name__ == "_ActionConfigLoad"


def subcommand_parser(cli, subcommand: str | None):
    """The parser of a LightningCLI subcommand (``fit``), or the CLI's own parser for None."""
    # LightningCLI._parser: its table of subcommand parsers is private too
    return cli._parser(subcommand) if subcommand else cli.parser


def wandb_init_args(logger) -> dict | None:
    """The arguments a Lightning ``WandbLogger`` passes to ``wandb.init`` when its run starts
    (editable until then); None for another logger."""
    # WandbLogger._wandb_init: the logger has no public view of them
    if type(logger).__name__ != "WandbLogger":
        return None
    init = getattr(logger, "_wandb_init", None)
    return init if isinstance(init, dict) else None
