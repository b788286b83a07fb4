"""The context gains: how far a run's validation losses are below the simplest baselines (word
frequencies for the generator, the base rate for the discriminator). A model that knows only
those scores 0; the gains reach the CSV and W&B logs for ELECTRA and MLM; summary reads them."""

import csv
import math

import lightning as L
import pytest
import torch
from torch import nn

from electra_lightning.data.datamodule import ElectraDataModule
from electra_lightning.model.baselines import (
    binary_entropy,
    count_tokens,
    unigram_log_probs,
)
from electra_lightning.model.electra import ModelSize
from electra_lightning.train.pretraining import ElectraPretraining

SIZE = ModelSize(hidden_size=32, num_layers=1, num_heads=1, intermediate_size=64, embedding_size=32)


def datamodule(corpus_dir, tokenizer_dir, **kw) -> ElectraDataModule:
    return ElectraDataModule(
        train_files=str(corpus_dir / "train.txt"),
        val_files=str(corpus_dir / "val.txt"),
        tokenizer=str(tokenizer_dir),
        max_seq_length=64,
        batch_size=8,
        num_workers=0,
        **kw,
    )


class ConstantDiscriminator(nn.Module):
    """Says "replaced" with the same probability (``sigmoid(logit)``) for every token."""

    def __init__(self, logit: float):
        super().__init__()
        self.logit = logit

    def forward(self, input_ids, **_):
        return type("Out", (), {"logits": torch.full(input_ids.shape, self.logit)})()


def validate(model: ElectraPretraining, dm: ElectraDataModule) -> dict[str, float]:
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    (metrics,) = trainer.validate(model, datamodule=dm, verbose=False)
    return metrics


def test_a_model_that_knows_only_frequencies_gains_nothing(corpus_dir, tokenizer_dir):
    """A generator whose every prediction is the counted unigram distribution scores
    val/gen_context_gain ≈ 0; a discriminator that says the base rate everywhere scores
    val/disc_context_gain ≈ 0; both measured through a real validation pass."""
    dm = datamodule(corpus_dir, tokenizer_dir, baseline_tokens=100_000)
    contract = dm.contract
    assert contract.unigram_ce is not None and 4 < contract.unigram_ce < math.log(2000)
    info = dm.tokenizer_info
    counts, _ = count_tokens(dm.baseline_streams()[0], info.vocab_size, info.special_ids, 100_000)
    log_probs = unigram_log_probs(counts, info.special_ids)

    torch.manual_seed(0)
    model = ElectraPretraining(contract=contract, size=SIZE, dropout=0.0)
    pair = model.electra

    def unigram_logits(generator_input_ids, attention_mask, token_type_ids, masked_positions):
        batch, slots = masked_positions.shape
        return log_probs.clamp(min=-1e4).expand(batch, slots, -1).clone()

    pair.generator_logits = unigram_logits
    pair.discriminator = ConstantDiscriminator(0.0)
    first = validate(model, dm)
    assert abs(first["val/gen_context_gain"]) < 0.02, first
    assert first["val/disc_context_gain"] < -0.1  # p = 0.5 everywhere: worse than the base rate
    rate = first["val/replaced_frac"]
    pair.discriminator = ConstantDiscriminator(math.log(rate / (1 - rate)))
    second = validate(model, dm)
    assert abs(second["val/disc_context_gain"]) < 0.02, second
    assert second["val/replaced_frac"] == pytest.approx(rate)  # same replacements (fixed seed)


def test_a_model_that_reads_the_answer_gains_what_is_left(corpus_dir, tokenizer_dir):
    """The gain can be positive: a generator that puts most of its mass on the right token
    scores well above frequencies (the metric is able to say "reads context")."""
    dm = datamodule(corpus_dir, tokenizer_dir, baseline_tokens=50_000)
    model = ElectraPretraining(contract=dm.contract, size=SIZE, dropout=0.0)
    vocab = dm.tokenizer_info.vocab_size

    def oracle(generator_input_ids, attention_mask, token_type_ids, masked_positions):
        batch, slots = masked_positions.shape
        return torch.zeros(batch, slots, vocab)  # uniform: worse than frequencies

    model.electra.generator_logits = oracle
    metrics = validate(model, dm)
    assert metrics["val/gen_context_gain"] == pytest.approx(
        dm.contract.unigram_ce - math.log(vocab), abs=1e-3
    )


def test_no_baseline_without_validation_data_or_when_turned_off(corpus_dir, tokenizer_dir):
    assert datamodule(corpus_dir, tokenizer_dir, baseline_tokens=0).contract.unigram_ce is None
    dm = ElectraDataModule(
        train_files=str(corpus_dir / "train.txt"), tokenizer=str(tokenizer_dir), num_workers=0
    )
    assert dm.contract.unigram_ce is None
    with pytest.raises(ValueError, match="data.baseline_tokens must be >= 0"):
        datamodule(corpus_dir, tokenizer_dir, baseline_tokens=-1)


def test_the_unigram_model_is_smoothed_over_non_special_tokens():
    counts = torch.tensor([5, 0, 3, 1])  # id 0 special
    log_probs = unigram_log_probs(counts, [0], alpha=0.5)
    assert log_probs[0] == -math.inf
    assert torch.exp(log_probs[1:]).sum() == pytest.approx(1.0)
    assert log_probs[2] > log_probs[3] > log_probs[1] > -math.inf  # unseen: small, not zero
    assert binary_entropy(0.5).item() == pytest.approx(math.log(2))


@pytest.mark.parametrize(
    ("name", "gain", "words"),
    [
        ("generator", 0.8, "predicts masked words 0.8 nats better than word frequencies alone"),
        ("discriminator", -0.01, "0.01 nats worse than the base rate alone"),
        ("generator", 0.0002, "no better than word frequencies alone"),
    ],
)
def test_gains_in_words(name, gain, words):
    from electra_lightning.report.summary import context_gain_words

    assert words in context_gain_words(name, gain)


def test_summary_states_the_gains(tmp_path):
    from .helpers import summary_of

    rows = (
        "step,val/gen_acc,val/disc_recall,val/replaced_frac,val/disc_auc,"
        "val/gen_context_gain,val/disc_context_gain\n"
        "99,0.05,0.0,0.14,0.55,0.31,-0.002\n199,0.08,0.0,0.13,0.62,0.82,0.012\n"
    )
    text = " ".join(summary_of(tmp_path, rows).split())
    assert "the generator predicts masked words 0.82 nats better than word frequencies" in text
    assert "the discriminator tells replaced from original tokens 0.012 nats better" in text


@pytest.mark.slow
def test_the_gains_are_logged_for_electra_and_mlm_to_csv_and_wandb(
    tmp_path, corpus_dir, tokenizer_dir
):
    """A tiny ELECTRA run with the W&B logger (offline) and a tiny MLM run with the CSV logger:
    val/gen_context_gain (both) and val/disc_context_gain (ELECTRA) at every validation."""
    from electra_lightning.report.compare import read_wandb_run, table

    from .helpers import REPO, run_cli, tiny_args

    electra = tmp_path / "electra"
    electra.mkdir()
    run_cli(
        "fit",
        *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=4)),
        "--config",
        str(REPO / "configs/logger/wandb.yaml"),
        "--trainer.val_check_interval=2",
        cwd=electra,
        env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    wandb_run = read_wandb_run(str(next((electra / "runs/tiny/wandb").glob("offline-run-*"))))
    for key in ("val/gen_context_gain", "val/disc_context_gain"):
        assert [s for s, _ in sorted(wandb_run.history[key])] == [1, 3], key
    mlm = tmp_path / "mlm"
    mlm.mkdir()
    run_cli(
        "fit",
        *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=4)),
        "--trainer.val_check_interval=2",
        "--model.objective=mlm",
        cwd=mlm,
    )
    rows = list(csv.DictReader(open(next(mlm.rglob("metrics.csv")))))
    gains = [float(r["val/gen_context_gain"]) for r in rows if r.get("val/gen_context_gain")]
    assert len(gains) == 2 and all(math.isfinite(g) for g in gains)
    assert not any(r.get("val/disc_context_gain") for r in rows)  # MLM: no discriminator
    assert "best val/gen_context_gain" in table([wandb_run])
