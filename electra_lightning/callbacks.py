"""Training callbacks: throughput in tokens/s (logged and shown in the progress bar), and a
``last.ckpt`` that always holds the final step."""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

# dense bf16 peak FLOP/s by device name, for MFU
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
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


class TokenThroughput(L.Callback):
    """Logs ``train/tokens_per_sec``, ``train/samples_per_sec``, ``train/tokens_seen``, the
    achieved ``train/tflops_per_sec`` (model FLOPs, all ranks) and ``train/mfu`` on known GPUs.

    Tokens are the non-padding tokens of every batch on this rank times the world size (ranks
    read equal-size batches). Measured over the last ``log_every_n_steps`` batches; the count is
    kept on the device and read only when logging, so the step has no extra host sync.

    Args:
        window: Batches between two throughput measurements (0: the trainer's log_every_n_steps).
        peak_flops: Peak FLOP/s of one device for MFU (default: detected for known GPUs).
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
        mask = batch.get("attention_mask")
        n = mask.sum() if mask is not None else torch.tensor(batch["input_ids"].numel())
        self._tokens = n if self._tokens is None else self._tokens + n
        self._samples += batch["input_ids"].size(0)
        self._batches += 1
        window = self.window or trainer.log_every_n_steps
        if self._batches < window:
            return
        elapsed = time.perf_counter() - self._t0
        world = trainer.world_size
        tokens = int(self._tokens.item()) * world
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
    Defaults: ``save_last=True``, ``save_top_k=0``, no version counter (always ``last.ckpt``).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("save_top_k", 0)
        kwargs.setdefault("enable_version_counter", False)
        super().__init__(**kwargs)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
