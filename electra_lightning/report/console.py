"""What a run prints: Lightning's own lines, ours and real warnings about the user's data — a
progress bar in steps with tokens/s and the ETA to ``max_steps``, a model summary with the
analytic FLOPs, and none of our dependencies' adverts or deprecation notices."""

from __future__ import annotations

import logging
import warnings

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, TQDMProgressBar

# Short names in the 80-column bar; the logs keep the full names.
SHORT_NAMES = {
    "train/loss": "loss",
    "train/tokens_per_sec": "tok/s",
    "val/loss": "val",
    "val/acc": "val_acc",
}
# Library lines that say nothing about the user's run (matched exactly, never all messages).
NOISE_LOG_PREFIXES = (
    "💡 Tip: For seamless cloud logging",  # Lightning's LitLogger advert
    "`weights_only` was not set, defaulting to `False`",  # we always load with weights_only=True
    "Trainer already configured with model summary callbacks",  # ours, on purpose
)
BAR_FORMAT = "{desc}{n_fmt}/{total_fmt} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(NOISE_LOG_PREFIXES)


def quiet_dependencies() -> None:
    """Filter the known noise of the pinned dependency versions, by message and module."""
    warnings.filterwarnings(
        "ignore",
        message=r".*isinstance\(treespec, LeafSpec\)` is deprecated",
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
    # ModelCheckpoint warns of a non-empty dirpath: a run's own run.lock is there from its start,
    # and a fresh fit into a directory that holds checkpoints is refused before it (one line)
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # likewise the CSV logger's, for the run directory that holds checkpoints/ and config.yaml (a
    # resumed run's metrics.csv is continued, see lightning_cli.continue_csv_log)
    warnings.filterwarnings(
        "ignore", message=r"Experiment logs directory .* exists and is not empty"
    )
    noise = _DropNoise()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.addFilter(noise)
        for handler in logger.handlers:
            handler.addFilter(noise)


class StepProgressBar(TQDMProgressBar):
    """``step k/max_steps`` with loss, tokens/s and the ETA to ``max_steps``.

    Pretraining streams endlessly, so Lightning's per-epoch bar reads ``Epoch 0/-2`` with no total;
    here the bar counts optimizer steps over the whole run (a resumed run starts at its step).
    """

    def on_train_epoch_start(self, trainer: L.Trainer, *_) -> None:
        if trainer.max_steps and trainer.max_steps > 0:
            bar = self.train_progress_bar
            bar.reset(total=trainer.max_steps)
            bar.initial = 0
            bar.n = trainer.global_step
            bar.set_description("step")
            bar.bar_format = BAR_FORMAT  # ETA to max_steps; no it/s (tok/s says more)
        else:
            super().on_train_epoch_start(trainer, *_)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not (trainer.max_steps and trainer.max_steps > 0):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        bar = self.train_progress_bar
        step = trainer.global_step
        # TQDMProgressBar's refresh-rate rule, from its public settings
        if self.is_enabled and (step % self.refresh_rate == 0 or step == trainer.max_steps):
            bar.n = step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # redraws the bar once

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not (trainer.max_steps and trainer.max_steps > 0):
            super().on_train_epoch_end(trainer, pl_module)

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        short = {}
        for name, value in metrics.items():
            stage, _, rest = name.rpartition("/")
            key = SHORT_NAMES.get(name, f"val_{rest}" if stage == "val" else rest)
            try:
                number = float(value)
            except (TypeError, ValueError):
                short[key] = value
                continue
            short[key] = f"{number:,.0f}" if key == "tok/s" else f"{number:.3g}"
        return short


class ElectraModelSummary(ModelSummary):
    """The parameter counts that matter (generator, discriminator, shared) and the analytic
    training FLOPs per token, instead of Lightning's per-layer FLOPs column (which reads 0 for a
    model whose step needs masked positions and sampling)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        if hasattr(pl_module, "num_parameters"):
            counts = pl_module.num_parameters()
        else:
            unique = {id(p): p for p in pl_module.parameters()}.values()
            counts = {"total": sum(p.numel() for p in unique)}
        flops = getattr(pl_module, "flops_per_token", None)
        lines = [f"{type(pl_module).__name__}:"]
        for name, n in counts.items():
            lines.append(f"  {name:<14} {n / 1e6:8.2f} M parameters")
        if {"generator", "discriminator", "total"} <= counts.keys():
            shared = counts["generator"] + counts["discriminator"] - counts["total"]
            lines[-1] += (
                f" (trained; the two share {shared / 1e6:.2f} M of embeddings, counted once)"
                if shared > 0
                else " (trained; no shared embeddings)"
            )
        if flops is not None:
            lines.append(f"  training FLOPs {flops():8.3g} per token (analytic: fwd + bwd matmuls)")
        print("\n".join(lines), flush=True)
