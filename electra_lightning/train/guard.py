"""``NonFiniteGuard``: a NaN/inf loss skips its update and is reported, without a host sync on
every step.

With a fused optimizer (the default) a non-finite loss is flagged on the device and its update
skipped there (the optimizer's ``found_inf``, as AMP uses it); the host reads the count only on
logging steps and at the end, and then stops or warns as ``on_nonfinite`` says. Every rank reads
the same all-reduced count, so all ranks decide alike. With any other optimizer the host checks the
loss every step (a sync) and the batch skips its backward.
"""

from __future__ import annotations

from typing import Literal

import torch

from electra_lightning.common._compat import skip_step_where
from electra_lightning.model.electra import ElectraStepOutput
from electra_lightning.model.optim import skips_on_device
from electra_lightning.train.callbacks import save_rescue_checkpoint


class NonFiniteGuard:
    """Finds non-finite losses and acts on them: ``skip`` up to ``max_skips`` batches (a warning
    each), else ``stop`` (save ``rescue-step=N.ckpt`` with the last finite weights and raise).

    The LightningModule calls :meth:`admits` in its training step, :meth:`before_optimizer_step`
    in ``on_before_optimizer_step`` and :meth:`check` on logging steps and at the end of training.
    """

    def __init__(self, on_nonfinite: Literal["stop", "skip"] = "stop", max_skips: int = 10):
        self.on_nonfinite = on_nonfinite
        self.max_skips = max_skips
        self.skips = 0  # non-finite batches so far (the same on every rank)
        self._reported = 0  # of the device's count, those already acted on
        self._count: torch.Tensor | None = None  # non-finite batches, on the device
        self._first: torch.Tensor | None = None  # (step, gen_loss, disc_loss) of the first unread
        self._found_inf: torch.Tensor | None = None  # the coming optimizer step's flag

    def admits(self, out: ElectraStepOutput, step: int, trainer, optimizer) -> bool:
        """Whether the batch goes on to its backward; ``optimizer`` is the torch optimizer. With a
        fused one always (its update is skipped on the device); else only a finite loss."""
        if skips_on_device(optimizer):
            self._note(out, step)
            return True
        if trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(out.loss)), all=True):
            return True
        self._act(1, step, out.gen_loss.item(), out.disc_loss.item(), trainer)
        return False  # skip: no backward, no optimizer step

    @torch.no_grad()
    def _note(self, out: ElectraStepOutput, step: int) -> None:
        bad = ~torch.isfinite(out.loss.detach())
        if self._found_inf is None:
            self._found_inf = torch.zeros((), device=bad.device)
        self._found_inf = torch.maximum(self._found_inf, bad.float())  # over micro-batches
        if self._count is None:
            self._count = torch.zeros((), dtype=torch.long, device=bad.device)
            self._first = torch.full((3,), -1.0, device=bad.device)
        self._count += bad
        this = torch.stack(
            [torch.tensor(float(step), device=bad.device), out.gen_loss, out.disc_loss]
        ).float()
        first_seen = self._first[0] >= 0
        self._first = torch.where(bad & ~first_seen, this, self._first)

    def before_optimizer_step(self, optimizer, trainer) -> None:
        """Hand the flag of this step's micro-batches to the fused optimizer: it skips the update
        where any rank saw a non-finite loss."""
        if self._found_inf is None:
            return
        flag = self._found_inf
        optimizer = getattr(optimizer, "optimizer", optimizer)  # the torch optimizer itself
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            # a collective the device queues; no host sync (Lightning's reduce adds a barrier)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        skip_step_where(optimizer, flag)
        self._found_inf = None

    def check(self, trainer) -> None:
        """Read the device's non-finite count (on logging steps only) and act on new ones."""
        if self._count is None:
            return
        count = self._count.clone()
        first = self._first.clone()
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.all_reduce(count)
            torch.distributed.all_reduce(first, op=torch.distributed.ReduceOp.MAX)
        new = int(count.item()) - self._reported
        if new > 0:
            self._reported += new
            step, gen_loss, disc_loss = first.tolist()
            self._first.fill_(-1.0)
            self._act(new, int(step), gen_loss, disc_loss, trainer)

    @torch.no_grad()
    def _act(self, new: int, step: int, gen_loss: float, disc_loss: float, trainer) -> None:
        """``new`` non-finite batches, the first at ``step``, were skipped: warn or stop."""
        detail = f"gen_loss={gen_loss:.4g}, disc_loss={disc_loss:.4g}"
        where = f"at step {step}" + (f" and {new - 1} later batch(es)" if new > 1 else "")
        self.skips += new
        if self.on_nonfinite == "skip" and self.skips <= self.max_skips:
            print(
                f"warning: non-finite loss {where} ({detail}); skipped "
                f"({self.skips}/{self.max_skips})"
            )
            return
        path = save_rescue_checkpoint(trainer)
        raise ValueError(
            f"non-finite loss {where} ({detail}); their updates were skipped and the finite "
            f"state saved to {path}. Lower the learning rate or check the data, then resume "
            "with --ckpt_path (or set model.on_nonfinite=skip)"
        )
