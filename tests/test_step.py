"""The training step has nothing in its way: no host-device synchronisation on a step that does
not log, the fast AdamW by default, bf16-mixed on CPU, and ``model.compile``."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch

from electra_lightning import ElectraDataModule, ElectraPretraining
from electra_lightning.model.electra import ModelSize

from .helpers import SyncSpy, tiny_batch


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
    from electra_lightning.model.electra import build_pretraining_model
    from electra_lightning.model.optim import ADAMW_DEFAULTS, AdamW, param_groups, skips_on_device

    def train(make_optimizer):
        torch.manual_seed(0)
        pair = build_pretraining_model(200, 16, ModelSize(32, 2, 2, 64, 32, 16))
        optimizer = make_optimizer(param_groups(pair))
        for step in range(5):
            batch = tiny_batch(200, 16, seed=step)
            replacements = batch["masked_ids"].roll(1, dims=0)  # given: no sampling noise
            pair(**batch, sampled_ids=replacements).loss.backward()
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


def _fit_resume_export(tmp_path, corpus_dir, tokenizer_dir, *extra):
    """fit 4 steps, resume to 6 with --ckpt_path last, export; the exported discriminator's
    logits equal the checkpoint's (plain transformers, no compile, fp32)."""
    from transformers import ElectraForPreTraining

    from electra_lightning.common.checkpoint import load_checkpoint
    from electra_lightning.train.loading import module_from_checkpoint

    from .helpers import run_cli, tiny_args

    args = [*tiny_args(corpus_dir, tokenizer_dir, steps=4), *extra]
    run_cli("fit", *args, "--trainer.log_every_n_steps=1", cwd=tmp_path)
    args = [*tiny_args(corpus_dir, tokenizer_dir, steps=6), *extra]
    run_cli("fit", *args, "--trainer.log_every_n_steps=1", "--ckpt_path=last", cwd=tmp_path)
    ckpt = tmp_path / "runs/tiny/checkpoints/last.ckpt"
    checkpoint = load_checkpoint(str(ckpt))
    assert checkpoint["global_step"] == 6
    run_cli("export", "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "hf"), cwd=tmp_path)
    module = module_from_checkpoint(checkpoint).eval()
    hf = ElectraForPreTraining.from_pretrained(tmp_path / "hf" / "discriminator").eval()
    ids = torch.randint(5, 2000, (2, 24))
    with torch.no_grad():
        assert torch.equal(module.discriminator(input_ids=ids).logits, hf(input_ids=ids).logits)
    return list(csv.DictReader(open(tmp_path / "runs/tiny/metrics.csv")))  # resumed: continued


@pytest.mark.slow
def test_compiled_model_trains_resumes_and_exports(tmp_path, corpus_dir, tokenizer_dir):
    """``model.compile: true`` (inductor on CPU): same checkpoint format (names without
    ``_orig_mod``), resume and export as eager."""
    rows = _fit_resume_export(tmp_path, corpus_dir, tokenizer_dir, "--model.compile=true")
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.slow
def test_bf16_mixed_on_cpu_is_close_to_fp32_and_resumes_and_exports(
    tmp_path, corpus_dir, tokenizer_dir
):
    """``--trainer.precision bf16-mixed`` on CPU (every real config's precision): the first
    steps' losses finite and close to fp32's for the same seed, sampling and losses computed in
    fp32, a checkpoint saved, resumed and exported that plain transformers loads."""
    fp32 = tmp_path / "fp32"
    bf16 = tmp_path / "bf16"
    fp32.mkdir()
    bf16.mkdir()
    rows32 = _fit_resume_export(fp32, corpus_dir, tokenizer_dir, "--trainer.precision=32-true")
    rows16 = _fit_resume_export(bf16, corpus_dir, tokenizer_dir, "--trainer.precision=bf16-mixed")
    for key in ("train/loss", "train/gen_loss", "train/disc_loss"):
        a = torch.tensor([float(r[key]) for r in rows32 if r.get(key)])
        b = torch.tensor([float(r[key]) for r in rows16 if r.get(key)])
        assert len(a) == len(b) == 6 and torch.isfinite(b).all()
        # bf16 keeps 8 bits of mantissa: the same run, within ~1% over the first steps
        torch.testing.assert_close(b, a, rtol=0.02, atol=0.02, msg=key)
    assert not torch.equal(a, b)  # it did run in bf16


def test_bf16_autocast_computes_sampling_and_losses_in_fp32():
    """Under CPU bf16 autocast the encoders run in bf16, while the logits the sampling and the
    losses read are promoted to fp32 (ElectraPair.forward)."""
    from electra_lightning.model.electra import build_pretraining_model

    torch.manual_seed(0)
    pair = build_pretraining_model(200, 16, ModelSize(32, 2, 2, 64, 32, 16))
    seen = {}
    pair.discriminator.register_forward_hook(lambda m, i, o: seen.update(disc=o.logits))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pair(**tiny_batch(200, 16))
    assert seen["disc"].dtype == torch.bfloat16  # the encoder ran in bf16
    assert out.gen_logits.dtype == torch.bfloat16
    for loss in (out.loss, out.gen_loss, out.disc_loss):
        assert loss.dtype == torch.float32
    # the sampling reads bf16 logits in fp32: the same draw as from the fp32 copy
    from electra_lightning.model.masking import sample_from_logits

    logits = out.gen_logits.detach()
    draws = [
        sample_from_logits(x, 1.0, torch.Generator().manual_seed(3))
        for x in (logits, logits.float())
    ]
    assert torch.equal(*draws)
