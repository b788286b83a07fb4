"""The simplest baselines a pretraining run is read against (pure torch, no Lightning).

A generator (or MLM) that has learned only word frequencies predicts every masked token from the
unigram distribution; a discriminator that has learned only the base rate says "replaced" with the
same probability everywhere. Their losses are the floors a model must go below to show it reads
context:

- ``unigram_ce``: the cross-entropy, in nats, of masked tokens under the unigram distribution
  counted on (a bounded sample of) the training stream, add-``alpha`` smoothed over the
  non-special vocabulary. ``val/gen_context_gain`` = this − the validation MLM loss.
- :func:`binary_entropy` of the replaced fraction: the loss of the best constant discriminator.
  ``val/disc_context_gain`` = it − the validation RTD loss. The replaced fraction falls as the
  generator improves, so it is measured in the same validation pass as the loss it is read with.

Positive gains mean the model uses more than frequencies. See docs/objective.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

SMOOTHING = 0.5  # add-alpha on every non-special token: a token unseen in the sample is not -inf


@dataclass(frozen=True)
class FrequencyBaseline:
    """Args:
    unigram_ce: Cross-entropy (nats) of the evaluated masked tokens under the counted unigram
        distribution: what a generator that knows only word frequencies scores.
    train_tokens: Training tokens counted (non-special, non-padding).
    eval_tokens: Masked tokens the cross-entropy averages over.
    """

    unigram_ce: float
    train_tokens: int
    eval_tokens: int


def count_tokens(
    batches: Iterable[dict], vocab_size: int, special_ids: Iterable[int], max_tokens: int
) -> tuple[torch.Tensor, int]:
    """Token counts ``[vocab]`` of the original text of pretraining batches (their ``input_ids``,
    padding and special tokens left out), until ``max_tokens`` were counted."""
    special = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
    counts = torch.zeros(vocab_size, dtype=torch.long)
    total = 0
    for batch in batches:
        ids = batch["input_ids"]
        keep = ~torch.isin(ids, special)
        if "attention_mask" in batch:
            keep &= batch["attention_mask"].bool()
        ids = ids[keep][: max_tokens - total]
        counts += torch.bincount(ids, minlength=vocab_size)
        total += ids.numel()
        if total >= max_tokens:
            break
    return counts, total


def unigram_log_probs(
    counts: torch.Tensor, special_ids: Iterable[int], alpha: float = SMOOTHING
) -> torch.Tensor:
    """``[vocab]`` log-probabilities of the add-``alpha`` unigram model over the non-special
    tokens (special tokens are never masked: probability 0, log -inf)."""
    smoothed = counts.double() + alpha
    special = list(set(special_ids))
    smoothed[special] = 0.0
    return (smoothed / smoothed.sum()).log().float()


def masked_cross_entropy(
    batches: Iterable[dict], log_probs: torch.Tensor, max_tokens: int
) -> tuple[float, int]:
    """Mean ``-log p`` of the masked tokens (``masked_ids`` where ``masked_weights``) of
    pretraining batches under ``log_probs``, over at most ``max_tokens`` of them."""
    total, n = 0.0, 0
    for batch in batches:
        ids = batch["masked_ids"][batch["masked_weights"].bool()][: max_tokens - n]
        total += float(-log_probs[ids].double().sum())
        n += ids.numel()
        if n >= max_tokens:
            break
    return (total / n if n else float("nan")), n


def frequency_baseline(
    train_batches: Iterable[dict],
    eval_batches: Iterable[dict],
    vocab_size: int,
    special_ids: Iterable[int],
    max_train_tokens: int,
    max_eval_tokens: int,
) -> FrequencyBaseline | None:
    """The unigram baseline: counted on ``train_batches``, scored on ``eval_batches``' masked
    tokens (validation batches, masked as validation masks them); None without training tokens."""
    special_ids = list(special_ids)
    counts, n_train = count_tokens(train_batches, vocab_size, special_ids, max_train_tokens)
    if n_train == 0:  # nothing readable: no baseline (training reports what is wrong)
        return None
    log_probs = unigram_log_probs(counts, special_ids)
    ce, n_eval = masked_cross_entropy(eval_batches, log_probs, max_eval_tokens)
    return FrequencyBaseline(unigram_ce=ce, train_tokens=n_train, eval_tokens=n_eval)


def context_gains(unigram_ce: float | None, values: dict) -> dict[str, torch.Tensor]:
    """How far validation losses (``values``: ``gen_loss``, ``disc_loss``, ``replaced_frac``) are
    below the simplest baselines, in nats: ``gen_context_gain`` = ``unigram_ce`` - the generator's
    (or MLM's) loss; ``disc_context_gain`` = the entropy of the replaced fraction (the best
    constant prediction's loss) - the discriminator's loss. Positive: more than frequencies."""
    gains = {}
    if unigram_ce is not None and "gen_loss" in values:
        gains["gen_context_gain"] = unigram_ce - values["gen_loss"].double()
    if "disc_loss" in values and "replaced_frac" in values:
        base_rate = binary_entropy(values["replaced_frac"].detach())
        gains["disc_context_gain"] = base_rate - values["disc_loss"].double()
    return {name: gain.float() for name, gain in gains.items()}


def binary_entropy(p: float | torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of a Bernoulli(``p``): the loss of a constant prediction at the base rate."""
    p = torch.as_tensor(p, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    return -(p * p.log() + (1 - p) * (1 - p).log())
