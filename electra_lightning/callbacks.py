"""Training callbacks: throughput in tokens/s, logged and shown in the progress bar."""

from __future__ import annotations

import time

import lightning as L
import torch


class TokenThroughput(L.Callback):
    """Logs ``train/tokens_per_sec``, ``train/samples_per_sec`` and ``train/tokens_seen``.

    Tokens are the non-padding tokens of every batch on this rank times the world size (ranks
    read equal-size batches). Measured over the last ``log_every_n_steps`` batches; the count is
    kept on the device and read only when logging, so the step has no extra host sync.

    Args:
        window: Batches between two throughput measurements (0: the trainer's log_every_n_steps).
    """

    def __init__(self, window: int = 0):
        self.window = window
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
        pl_module.log("train/tokens_per_sec", metrics["train/tokens_per_sec"], prog_bar=True)
        for name in ("train/samples_per_sec", "train/tokens_seen"):
            pl_module.log(name, metrics[name])
        self._tokens, self._samples, self._batches = None, 0, 0
        self._t0 = time.perf_counter()

    def state_dict(self):
        return {"tokens_seen": self.tokens_seen}

    def load_state_dict(self, state_dict):
        self.tokens_seen = state_dict.get("tokens_seen", 0)
