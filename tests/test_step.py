"""The training step has nothing in its way: no host-device synchronisation on a step that does
not log, the fast AdamW by default, bf16-mixed on CPU, and ``model.compile``."""

from __future__ import annotations

import traceback

import lightning as L
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from electra_lightning import ElectraDataModule, ElectraPretraining
from electra_lightning.model import ModelSize

# The ops through which a tensor's value reaches the host: on CUDA each one waits for the GPU.
SYNC_OPS = {
    torch.ops.aten._local_scalar_dense.default,  # .item(), float(t), int(t), bool(t)
    torch.ops.aten.is_nonzero.default,  # `if t:`
    torch.ops.aten.equal.default,  # torch.equal
    torch.ops.aten._assert_async.default,
    torch.ops.aten._assert_async.msg,
}


class SyncSpy(TorchDispatchMode):
    """Records every op that reads a tensor's value on the host, with where it was called from.

    How device syncs are told from host-only ones on a CPU run: the data is read in a DataLoader
    worker (another process, not spied), so every tensor the spied process touches during the
    step is one the training device would hold — the model's, the optimizer's, the batch after
    the transfer, Lightning's logged values. A value read from any of them is counted; nothing
    is excused. Copies to the CPU (``.cpu()``/``.to("cpu")``) are also a sync on CUDA: they are
    counted when the source is not already a host tensor, which on a CPU run cannot be told, so
    they are listed separately (``copies``) and must be 0 too."""

    def __init__(self):
        super().__init__()
        self.syncs: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SYNC_OPS:
            frames = [
                f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                for f in traceback.extract_stack()[:-1]
                if "torch/utils/_python_dispatch" not in f.filename
            ]
            self.syncs.append(f"{func}: " + " <- ".join(reversed(frames[-6:])))
        return func(*args, **(kwargs or {}))


class SpyOneStep(L.Callback):
    """Spies from the start of batch ``batch`` to the start of the next one: forward, backward,
    clipping, the optimizer and scheduler steps and Lightning's loop in between."""

    def __init__(self, batch: int):
        self.batch = batch
        self.spy = SyncSpy()
        self.active = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.batch:
            self.spy.__enter__()
            self.active = True
        elif self.active:
            self.spy.__exit__(None, None, None)
            self.active = False


def tiny_fit(
    corpus_dir, tokenizer_dir, tmp_path, steps, callbacks=(), precision="32-true", **model
):
    dm = ElectraDataModule(
        train_files=str(corpus_dir / "train.txt"),
        tokenizer=str(tokenizer_dir),
        max_seq_length=64,
        batch_size=4,
        num_workers=1,
    )
    module = ElectraPretraining(
        contract=dm.contract, size=ModelSize(32, 2, 2, 64, 32, 64), warmup_steps=1, **model
    )
    trainer = L.Trainer(
        max_steps=steps,
        logger=L.pytorch.loggers.CSVLogger(tmp_path),
        log_every_n_steps=4,
        gradient_clip_val=1.0,
        precision=precision,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
    )
    trainer.fit(module, dm)
    return trainer, module


@pytest.mark.parametrize("batch", [1, 2])
def test_a_step_that_does_not_log_reads_nothing_back(corpus_dir, tokenizer_dir, tmp_path, batch):
    """Steps 1 and 2 log nothing (every 4 steps: 3, 7); the progress bar is on, as for users."""
    spy = SpyOneStep(batch)
    tiny_fit(corpus_dir, tokenizer_dir, tmp_path, 4, [spy])
    assert spy.spy.syncs == [], "\n".join(spy.spy.syncs)


def test_the_default_adamw_is_fused_and_steps_as_torch_does():
    """optim.AdamW (fused on CPU/CUDA) gives torch's single-tensor AdamW's numbers, and its state
    dict loads into either (the checkpoint format is torch's)."""
    from electra_lightning.model import build_pretraining_model
    from electra_lightning.optim import ADAMW_DEFAULTS, AdamW, param_groups, skips_on_device

    def train(make_optimizer):
        torch.manual_seed(0)
        pair = build_pretraining_model(200, 16, ModelSize(32, 2, 2, 64, 32, 16))
        optimizer = make_optimizer(param_groups(pair))
        gen = torch.Generator().manual_seed(1)
        for _ in range(5):
            ids = torch.randint(5, 200, (4, 16), generator=gen)
            batch = {
                "input_ids": ids,
                "token_type_ids": torch.zeros_like(ids),
                "generator_input_ids": ids,
                "masked_positions": torch.tensor([[1, 2, 3]] * 4),
                "masked_weights": torch.ones(4, 3, dtype=torch.bool),
                "masked_ids": ids[:, 1:4],
                "sampled_ids": ids[:, 4:7],
            }
            pair(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return pair, optimizer

    ours, fused = train(lambda groups: AdamW(groups, **ADAMW_DEFAULTS))
    plain, single = train(lambda groups: torch.optim.AdamW(groups, **ADAMW_DEFAULTS, foreach=False))
    assert skips_on_device(fused) and not skips_on_device(single)
    assert all(g["fused"] for g in fused.param_groups)
    for (name, a), b in zip(ours.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert fused.state_dict()["state"].keys() == single.state_dict()["state"].keys()
    single.load_state_dict(fused.state_dict())  # loads across implementations
    fused.load_state_dict(single.state_dict())
    assert all(g["fused"] for g in fused.param_groups)  # and keeps its own
