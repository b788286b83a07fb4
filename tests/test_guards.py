"""Guards and the bad-input catalogue: one clear line, non-zero exit, earlier checkpoints untouched."""

import tracemalloc

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from electra_lightning import ElectraDataModule, ElectraPretraining
from electra_lightning.common.checkpoint import SafeCheckpointIO, load_checkpoint
from electra_lightning.data.datamodule import read_documents
from electra_lightning.model.electra import ModelSize


class PoisonLoss(L.Callback):
    """Makes the RTD weight NaN from a given step on: the loss turns non-finite, weights do not."""

    def __init__(self, at_step):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        pl_module.electra.disc_weight = (
            float("nan") if trainer.global_step >= self.at_step else 50.0
        )


def tiny_run(tmp_path, corpus_dir, tokenizer_dir, steps, callbacks=(), **model):
    dm = ElectraDataModule(
        train_files=str(corpus_dir / "train.txt"),
        tokenizer=str(tokenizer_dir),
        max_seq_length=64,
        batch_size=4,
        num_workers=0,
    )
    module = ElectraPretraining(
        contract=dm.contract,
        size=ModelSize(32, 1, 1, 64, 32, 64),
        warmup_steps=1,
        **model,
    )
    trainer = L.Trainer(
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        plugins=[SafeCheckpointIO()],
        callbacks=[
            ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1),
            *callbacks,
        ],
    )
    return trainer, module, dm


class KeepWeights(L.Callback):
    """A copy of the weights after every optimizer step, by global step."""

    def __init__(self):
        self.weights = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        state = pl_module.state_dict()
        self.weights[trainer.global_step] = {k: v.clone() for k, v in state.items()}


def test_nonfinite_loss_stops_with_a_rescue_checkpoint(tmp_path, corpus_dir, tokenizer_dir):
    """Steps 3, 4, 5 are non-finite: the fused optimizer skips their updates on the device and the
    host finds them at the end (no logging step in 6 steps: the check costs no sync before)."""
    kept = KeepWeights()
    trainer, module, dm = tiny_run(tmp_path, corpus_dir, tokenizer_dir, 6, [PoisonLoss(3), kept])
    with pytest.raises(
        ValueError, match=r"non-finite loss at step 3 and 2 later .*rescue-step=6.ckpt"
    ):
        trainer.fit(module, dm)
    rescue = load_checkpoint(str(tmp_path / "ckpt" / "rescue-step=6.ckpt"))
    assert rescue["global_step"] == 6
    for name, value in rescue["state_dict"].items():  # the weights after step 3: nothing since
        assert torch.isfinite(value).all()
        assert torch.equal(value, kept.weights[3][name]), name
    name = "electra.discriminator.electra.encoder.layer.0.output.dense.weight"
    assert not torch.equal(kept.weights[3][name], kept.weights[2][name])  # step 2 trained


@pytest.mark.parametrize("optimizer", ["fused", "not fused"])
def test_nonfinite_loss_is_found_at_the_next_logging_step(
    tmp_path, corpus_dir, tokenizer_dir, optimizer
):
    """Logging every 2 steps, poisoned from step 3: found at step 3's logging step (fused:
    checked on the host there; not fused: the host checks every step and skips the backward)."""
    from lightning.pytorch.cli import instantiate_class

    factory = None
    if optimizer == "not fused":

        def factory(params):
            return instantiate_class(params, {"class_path": "torch.optim.AdamW"})

    trainer, module, dm = tiny_run(
        tmp_path, corpus_dir, tokenizer_dir, 8, [PoisonLoss(3)], optimizer=factory
    )
    trainer.log_every_n_steps = 2
    with pytest.raises(ValueError, match=r"non-finite loss at step 3 \(") as error:
        trainer.fit(module, dm)
    # fused: found after step 3's (skipped) update; not fused: before its backward
    rescue = "rescue-step=4.ckpt" if optimizer == "fused" else "rescue-step=3.ckpt"
    assert rescue in str(error.value)


def test_nonfinite_loss_skip_mode(tmp_path, corpus_dir, tokenizer_dir):
    class PoisonOnce(L.Callback):  # the third batch only
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            pl_module.electra.disc_weight = float("nan") if batch_idx == 2 else 50.0

    trainer, module, dm = tiny_run(
        tmp_path, corpus_dir, tokenizer_dir, 5, [PoisonOnce()], on_nonfinite="skip"
    )
    trainer.fit(module, dm)
    assert module.nonfinite_skips == 1 and trainer.global_step == 5
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_non_utf8_is_replaced_and_counted(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 ol\xe9\n".encode("latin-1") + b"plain\n")
    with pytest.warns(UserWarning, match="latin1.txt: 2 invalid UTF-8"):
        docs = list(read_documents(str(path)))
    assert docs == [["caf\ufffd ol\ufffd", "plain"]]


@pytest.mark.slow
def test_a_100mb_line_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "one-line.txt"
    chunk = ("lorem ipsum dolor sit amet " * 4000).encode()  # ~108 kB
    with open(path, "wb") as f:
        for _ in range(100 * 2**20 // len(chunk) + 1):
            f.write(chunk)
    assert path.stat().st_size >= 100 * 2**20
    tracemalloc.start()
    pieces = total = 0
    for doc in read_documents(str(path)):
        for sentence in doc:
            pieces += 1
            total += len(sentence)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (
        total >= 100 * 2**20 - pieces
    )  # every character arrived (strip may drop a space per piece)
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB"
