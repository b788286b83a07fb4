"""Training callbacks: throughput in tokens/s (logged and shown in the progress bar), a
``last.ckpt`` that always holds the final step, and a graceful stop on SIGTERM/SIGUSR1/SIGINT."""

from __future__ import annotations

import os
import signal
import time
from typing import Literal

import lightning as L
import torch
from lightning.fabric.utilities.throughput import get_available_flops
from lightning.pytorch.callbacks import ModelCheckpoint

from electra_lightning.common._compat import save_last_checkpoint_now
from electra_lightning.common.errors import STOP, TrainingStopped

# dense bf16 peak FLOP/s by device name, for MFU. Ours first: Lightning's get_available_flops does
# not recognise "NVIDIA H200" and lists the H200's sparse peak (2x the dense one); it is the
# fallback for the devices not listed here.
PEAK_BF16_FLOPS = {
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
}


def detect_peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    if peak is None:
        peak = get_available_flops(torch.device("cuda"), torch.bfloat16)
    return peak


class TokenThroughput(L.Callback):
    """Logs ``train/tokens_per_sec``, ``train/samples_per_sec``, ``train/tokens_seen``, the
    achieved ``train/tflops_per_sec`` (model FLOPs, all ranks) and ``train/mfu`` on known GPUs.

    Tokens are the non-padding tokens of every batch on this rank times the world size (ranks
    read equal-size batches). Measured over the last ``log_every_n_steps`` batches; the count is
    kept on the device and read only when logging, so the step has no extra host sync.

    Args:
        window: Batches between two throughput measurements (0: the trainer's log_every_n_steps).
        peak_flops: Peak FLOP/s of one device for MFU (default: detected for known GPUs).

    Ours rather than Lightning's ``ThroughputMonitor``: that one counts padded tokens and
    synchronises the GPU after every batch; this counts real tokens and reads them when it logs.
    """

    def __init__(self, window: int = 0, peak_flops: float | None = None):
        self.window = window
        self.peak_flops = peak_flops
        self._flops_per_token = None
        self._tokens = None
        self._samples = 0
        self._batches = 0
        self._t0 = None
        self.tokens_seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        mask = batch.get("attention_mask")  # absent: no padding
        n = mask.sum() if mask is not None else batch["input_ids"].numel()
        self._tokens = n if self._tokens is None else self._tokens + n
        self._samples += batch["input_ids"].size(0)
        self._batches += 1
        window = self.window or trainer.log_every_n_steps
        if self._batches < window:
            return
        elapsed = time.perf_counter() - self._t0
        world = trainer.world_size
        tokens = int(self._tokens) * world  # the host reads the count: a logging step
        self.tokens_seen += tokens
        metrics = {
            "train/tokens_per_sec": tokens / elapsed,
            "train/samples_per_sec": self._samples * world / elapsed,
            "train/tokens_seen": float(self.tokens_seen),
        }
        if self._flops_per_token is None and hasattr(pl_module, "flops_per_token"):
            self._flops_per_token = pl_module.flops_per_token()
        if self._flops_per_token:
            achieved = self._flops_per_token * metrics["train/tokens_per_sec"]
            metrics["train/tflops_per_sec"] = achieved / 1e12
            peak = self.peak_flops or detect_peak_flops()
            if peak:
                metrics["train/mfu"] = achieved / (peak * world)
        pl_module.log("train/tokens_per_sec", metrics["train/tokens_per_sec"], prog_bar=True)
        for name, value in metrics.items():
            if name != "train/tokens_per_sec":
                pl_module.log(name, value)
        self._tokens, self._samples, self._batches = None, 0, 0
        self._t0 = time.perf_counter()

    def state_dict(self):
        return {"tokens_seen": self.tokens_seen}

    def load_state_dict(self, state_dict):
        self.tokens_seen = state_dict.get("tokens_seen", 0)


class LastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also writes ``last.ckpt`` when fit ends.

    Lightning saves ``every_n_train_steps`` only, so with ``max_steps`` not a multiple of it the
    last steps were missing from ``last.ckpt`` — and from ``export`` and ``--ckpt_path last``.
    Its defaults are the signature's (the one place: the CLI reads them, so configs name only
    what differs, such as ``every_n_train_steps``): ``save_last=True``, ``save_top_k=0``; the
    rest are ``ModelCheckpoint``'s. Never a version counter (always ``last.ckpt``, so a repeated
    run replaces it instead of writing ``last-v1.ckpt``).
    """

    def __init__(
        self, save_last: bool | Literal["link"] | None = True, save_top_k: int = 0, **kwargs
    ):
        # always last.ckpt: a repeated run overwrites it (LightningCLI passes ModelCheckpoint's
        # default True explicitly, so this is not a default)
        kwargs["enable_version_counter"] = False
        super().__init__(save_last=save_last, save_top_k=save_top_k, **kwargs)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last:  # same checks and file naming as Lightning's own interval save
            save_last_checkpoint_now(self, trainer)


def save_rescue_checkpoint(trainer: L.Trainer) -> str:
    """Save ``rescue-step=N.ckpt`` (the weights of the last finite step) next to the other
    checkpoints, for a run that is about to stop on a non-finite loss. (Not Lightning's
    ``OnExceptionCheckpoint``: that one also writes on configuration and data errors, under one
    fixed name, and does not say where it saved.)"""
    callback = trainer.checkpoint_callback
    directory = getattr(callback, "dirpath", None) or trainer.default_root_dir
    path = os.path.join(directory, f"rescue-step={trainer.global_step}.ckpt")
    trainer.save_checkpoint(path)  # the optimizer has not stepped on the bad loss
    return path


class GracefulStop(L.Callback):
    """Save ``last.ckpt`` at the current step and stop when the job is told to stop.

    SIGTERM, SIGUSR1 and SIGINT are handled from the start of the command (``errors.STOP``): a
    signal only records itself. Before training (model and data set-up, a checkpoint restore, the
    sanity check) the run stops when fit or training starts, with nothing new to save (a resumed
    run's restored checkpoint is its state). During training, at the end of the current step
    every rank agrees to stop (with several ranks a boolean all-reduce every log_every_n_steps
    steps, so other steps wait for nothing), the checkpoint is written
    through the normal atomic path (model, optimizer, loop counters, RNG states, data position),
    and :class:`TrainingStopped` ends the run with exit code ``128 + signal``. A second SIGINT
    stops at once (130). Lightning's SIGTERM handling (exit 0, nothing saved) is kept out of
    training: ours replaces it at ``on_train_start``.
    """

    def __init__(self):
        STOP.install()  # a trainer built outside the CLI (tests, notebooks) is covered too
        self._step_seen = 0

    @property
    def received(self) -> int | None:
        return STOP.received

    def _stop_before_training(self, trainer: L.Trainer) -> None:
        if STOP.received is not None:
            raise TrainingStopped(STOP.received, None, trainer.global_step)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_before_training(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after Lightning registered its handlers (Trainer._run), so ours take their place
        STOP.install()
        self._step_seen = trainer.global_step
        self._stop_before_training(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # stop only where an optimizer step just ended: inside a gradient accumulation the
        # remaining micro-batches run first, so the saved state resumes exactly
        stepped, self._step_seen = trainer.global_step != self._step_seen, trainer.global_step
        if not stepped:
            return
        stop = STOP.received is not None
        if trainer.world_size > 1:
            # ranks agree by a collective the host waits for: only every log_every_n_steps steps
            # (a signal is acted on within that many steps), so other steps have no host sync
            if trainer.global_step % max(1, trainer.log_every_n_steps):
                return
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        signum = STOP.received if STOP.received is not None else int(signal.SIGTERM)
        path = last_checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        raise TrainingStopped(signum, path, trainer.global_step)


def last_checkpoint_path(trainer: L.Trainer) -> str:
    """Where ``--ckpt_path last`` looks: ``last.ckpt`` in the directory of the checkpoint callback
    that keeps one (else the first checkpoint callback, else ``default_root_dir/checkpoints``)."""
    callbacks = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    keeper = next((c for c in callbacks if c.save_last), callbacks[0] if callbacks else None)
    directory = getattr(keeper, "dirpath", None) or os.path.join(
        trainer.default_root_dir, "checkpoints"
    )
    return os.path.join(directory, ModelCheckpoint.CHECKPOINT_NAME_LAST + ".ckpt")
