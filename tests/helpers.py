"""Test-only callbacks, passed on the command line with --trainer.callbacks+=..."""

import hashlib
import os

import lightning as L
import torch


class RankAudit(L.Callback):
    """Records a hash of every trained example and, at the end, this rank's full weights."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.samples: list[str] = []
        self.val_batches = 0  # validation batches this rank ran (sanity check included)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        for row in batch["input_ids"]:
            self.samples.append(hashlib.sha1(row.cpu().numpy().tobytes()).hexdigest())

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        self.val_batches += 1

    def on_train_end(self, trainer, pl_module):
        state = {}
        for name, tensor in pl_module.state_dict().items():
            if hasattr(tensor, "full_tensor"):  # FSDP2 DTensor shard → the whole tensor
                tensor = tensor.full_tensor()
            state[name] = tensor.detach().cpu().clone()
        os.makedirs(self.out_dir, exist_ok=True)
        torch.save(
            {
                "rank": trainer.global_rank,
                "samples": self.samples,
                "val_batches": self.val_batches,
                "state": state,
            },
            os.path.join(self.out_dir, f"rank{trainer.global_rank}.pt"),
        )


class StepFile(L.Callback):
    """Writes the number of finished optimizer steps to a file after every batch, so a test
    knows where a run is without waiting for a logger to flush."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            f.write(str(trainer.global_step))
        os.replace(tmp, self.path)  # a reader never sees a half-written file


class SendSignal(L.Callback):
    """Sends ``signum`` to this process when step ``at_step`` (or micro-batch ``at_batch``) starts
    (a cluster's SIGTERM, SLURM's SIGUSR1, Ctrl-C)."""

    def __init__(self, signum: int, at_step: int = -1, at_batch: int = -1, rank: int = -1):
        self.signum, self.at_step, self.at_batch, self.rank = signum, at_step, at_batch, rank
        self.sent = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # at_batch: the micro-batch (with gradient accumulation several make one step); rank:
        # only that rank is signalled (-1: every rank)
        if self.rank >= 0 and trainer.global_rank != self.rank:
            return
        due = trainer.global_step == self.at_step or batch_idx == self.at_batch
        if due and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


class SendSignalAt(L.Callback):
    """Sends ``signum`` to this process from the callback hook ``hook`` (``setup``,
    ``on_load_checkpoint``, ``on_sanity_check_start``, ...): a deterministic point in the start-up
    window, instead of a sleep."""

    def __init__(self, signum: int, hook: str):
        self.signum = signum
        setattr(self, hook, self._send)

    def _send(self, *args, **kwargs):
        os.kill(os.getpid(), self.signum)
