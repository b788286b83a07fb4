"""Does a discriminator read context, or only how rare a token is? A check of a pretraining
checkpoint on its validation batches.

``val/disc_context_gain`` measures the discriminator against the base rate. A generator that
samples flatter than word frequencies (a high temperature, a tiny generator) replaces tokens with
rare ones more often than the text has them, and then "this token is rare" alone tells replaced
from original, without any context. This check scores that context-free rival on the same
validation batches (the same fixed-seed replacements as ``validation_step``): the best predictor
that sees only the token's training-text frequency (20 frequency bins, each with its own rate,
fitted on these very batches, so the rival is if anything too good), and the AUC of ranking by
rarity alone. A discriminator below the rival's loss uses more than rarity: context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_auroc

from electra_lightning.common.checkpoint import load_checkpoint
from electra_lightning.data.datamodule import ElectraDataModule
from electra_lightning.model.baselines import binary_entropy, count_tokens, unigram_log_probs
from electra_lightning.model.masking import scatter_update
from electra_lightning.train.loading import module_from_checkpoint

BINS = 20


def binned_loss(score: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """Cross-entropy of the predictor that gives each quantile bin of ``score`` its own rate."""
    edges = torch.quantile(score.double(), torch.linspace(0, 1, bins + 1, dtype=torch.float64))
    which = torch.bucketize(score.double(), edges[1:-1])
    total = torch.zeros(bins, dtype=torch.float64).index_add_(
        0, which, torch.ones_like(score, dtype=torch.float64)
    )
    hits = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, labels.double())
    used = total > 0
    return (total[used] * binary_entropy(hits[used] / total[used])).sum() / total.sum()


@torch.no_grad()
def rarity_check(
    checkpoint: str,
    train_files: str,
    val_files: str,
    tokenizer: str,
    max_seq_length: int,
    batch_size: int,
    val_batches: int,
    count_tokens_limit: int = 1_000_000,
) -> dict[str, float]:
    """The discriminator of ``checkpoint`` against the base rate and against rarity, on the first
    ``val_batches`` validation batches."""
    module = module_from_checkpoint(load_checkpoint(checkpoint))
    data = ElectraDataModule(
        train_files=train_files,
        val_files=val_files,
        tokenizer=tokenizer,
        max_seq_length=max_seq_length,
        batch_size=batch_size,
        num_workers=0,
        baseline_tokens=count_tokens_limit,
    )
    info = data.tokenizer_info
    train, val = data.baseline_streams()
    counts, _ = count_tokens(train, info.vocab_size, info.special_ids, count_tokens_limit)
    rarity_of = -unigram_log_probs(counts, info.special_ids)
    rarity, logits, labels = [], [], []
    for index, batch in enumerate(val):
        if index == val_batches:
            break
        generator = torch.Generator().manual_seed(1_000_003 + index)  # as validation_step
        out = module.electra(**batch, sampling_generator=generator)
        shown = scatter_update(
            batch["input_ids"], out.sampled_ids, batch["masked_positions"], batch["masked_weights"]
        )
        keep = batch.get("attention_mask", torch.ones_like(shown)).bool()
        rarity.append(rarity_of[shown][keep].clamp(max=50.0))
        logits.append(out.disc_logits.float()[keep])
        labels.append(out.disc_labels[keep])
    rarity, logits, labels = torch.cat(rarity), torch.cat(logits), torch.cat(labels)
    disc_loss = F.binary_cross_entropy_with_logits(logits, labels.float()).double()
    base_rate = binary_entropy(labels.double().mean())
    rarity_loss = binned_loss(rarity, labels)
    return {
        "tokens": int(labels.numel()),
        "replaced_frac": float(labels.double().mean()),
        "disc_loss": float(disc_loss),
        "base_rate_entropy": float(base_rate),
        "rarity_loss": float(rarity_loss),
        "gain_over_base_rate": float(base_rate - disc_loss),
        "gain_over_rarity": float(rarity_loss - disc_loss),
        "auc": float(binary_auroc(logits.sigmoid(), labels)),
        "auc_rarity": float(binary_auroc(rarity, labels)),
    }
