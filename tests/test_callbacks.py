"""LastCheckpoint: last.ckpt holds the final step even when max_steps is off the interval."""

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from electra_lightning.train.callbacks import LastCheckpoint


def fit(tmp_path, callback, max_steps=7):
    trainer = L.Trainer(
        max_steps=max_steps,
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    trainer.fit(BoringModel())
    return torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"]


def test_last_checkpoint_holds_the_final_step(tmp_path):
    # plain ModelCheckpoint stops at the last multiple of the interval: the reason for the subclass
    plain = ModelCheckpoint(dirpath=tmp_path / "plain", save_last=True, every_n_train_steps=5)
    assert fit(tmp_path / "plain", plain) == 5
    ours = LastCheckpoint(dirpath=tmp_path / "ours", every_n_train_steps=5)
    assert fit(tmp_path / "ours", ours) == 7
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["last.ckpt"]


def test_last_checkpoint_does_not_save_twice_on_the_interval(tmp_path):
    ours = LastCheckpoint(dirpath=tmp_path, every_n_train_steps=5)
    steps = []
    save = ours._save_last_checkpoint

    def counting(trainer, candidates):
        steps.append(trainer.global_step)
        save(trainer, candidates)

    ours._save_last_checkpoint = counting
    assert fit(tmp_path, ours, max_steps=10) == 10
    assert steps == [5, 10]
