"""ELECTRA's masking and sampling as small pure tensor functions (no Lightning, no model).

Mirrors ``pretrain/pretrain_helpers.py`` of google-research/electra: choose positions to mask,
gather/scatter at those positions, and sample replacements from the generator's softmax.
Positions are kept as a fixed-size ``[batch, max_predictions]`` index tensor plus a weight
mask, so shapes are static and the generator head only runs where something is predicted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MaskingConfig:
    """How tokens are chosen and corrupted for the generator's input.

    The defaults here are the only ones: ``ElectraDataModule``'s ``data.*`` masking options read
    them (``mask_prob: float = MaskingConfig.mask_prob``; ``whole_word`` is
    ``data.whole_word_masking``), as its stream options read ``StreamConfig``'s."""

    mask_prob: float = 0.15  # fraction of non-special tokens the generator predicts
    mask_token_prob: float = 0.85  # of those: replaced by [MASK] (official ELECTRA: 0.85)
    random_token_prob: float = 0.0  # of those: replaced by a random token (BERT: 0.1)
    max_predictions_per_seq: int | None = None  # cap; None: int((mask_prob + 0.005) * seq_len)
    whole_word: bool = False  # mask every piece of a chosen word together (needs word_starts)

    def __post_init__(self):
        if not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in (0, 1], got {self.mask_prob} (data.mask_prob)")
        for name in ("mask_token_prob", "random_token_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value} (data.{name})")
        if self.mask_token_prob + self.random_token_prob > 1.0 + 1e-9:
            raise ValueError(
                "mask_token_prob + random_token_prob must be <= 1 "
                f"(got {self.mask_token_prob} + {self.random_token_prob}); the rest keeps the original"
            )
        if self.max_predictions_per_seq is not None and self.max_predictions_per_seq < 1:
            raise ValueError("max_predictions_per_seq must be >= 1 (data.max_predictions_per_seq)")

    def max_predictions(self, seq_len: int) -> int:
        """The official cap: ``int((mask_prob + 0.005) * max_seq_length)``, at least 1."""
        if self.max_predictions_per_seq is not None:
            return min(self.max_predictions_per_seq, seq_len)
        return max(1, min(seq_len, int((self.mask_prob + 0.005) * seq_len)))


def mask_tokens(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    config: MaskingConfig,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
    random_token_ids: torch.Tensor | None = None,
    word_starts: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Choose positions to predict and build the generator's corrupted input.

    Args:
        input_ids: ``[B, L]`` original token ids.
        special_tokens_mask: ``[B, L]`` bool, True for [CLS]/[SEP]/[PAD]/... (never selected).
        random_token_ids: 1-D ids that random replacement draws from (default: the whole vocab).
        word_starts: ``[B, L]`` bool, True where a token begins a word (WordPiece: not ``##``);
            with ``config.whole_word`` the pieces of a word are chosen together.

    Returns a dict with
        ``masked_positions`` ``[B, N]`` long (0 where unused), ``masked_weights`` ``[B, N]`` bool,
        ``masked_ids`` ``[B, N]`` original ids there, ``generator_input_ids`` ``[B, L]``.

    Per sequence ``round(mask_prob * candidates)`` positions (at least 1, at most ``N``) are drawn
    uniformly without replacement among candidates. Of them ``mask_token_prob`` become [MASK],
    ``random_token_prob`` a random token and the rest keep the original token. With
    ``config.whole_word`` whole words are drawn instead, in random order, each while its pieces
    fit in what is left of that count, skipping a word too long for it (the official code masks pieces independently; its author expected
    whole words to help a bit, google-research/electra#57); each piece is then corrupted alone.
    """
    batch, seq_len = input_ids.shape
    device = input_ids.device
    n_max = config.max_predictions(seq_len)
    candidates = ~special_tokens_mask
    num_candidates = candidates.sum(-1)
    num_to_predict = torch.round(num_candidates.float() * config.mask_prob).long()
    num_to_predict = torch.minimum(num_to_predict.clamp(min=1), num_candidates).clamp(max=n_max)

    # Uniform scores; non-candidates sort last. topk of random scores = sampling w/o replacement.
    scores = torch.rand(batch, seq_len, generator=generator, device=device)
    if config.whole_word:
        if word_starts is None:
            raise ValueError("whole-word masking needs word_starts (data.whole_word_masking)")
        scores = _whole_word_scores(scores, candidates, word_starts, num_to_predict)
    scores = scores.masked_fill(~candidates, -1.0)
    top_scores, positions = scores.topk(n_max, dim=-1)
    rank = torch.arange(n_max, device=device).expand(batch, n_max)
    weights = (rank < num_to_predict.unsqueeze(-1)) & (top_scores >= 0)
    positions = positions.masked_fill(~weights, 0)
    masked_ids = input_ids.gather(1, positions).masked_fill(~weights, 0)

    # Corrupt the chosen positions: [MASK] / random token / keep.
    choice = torch.rand(batch, n_max, generator=generator, device=device)
    use_mask = weights & (choice < config.mask_token_prob)
    use_random = (
        weights
        & (choice >= config.mask_token_prob)
        & (choice < config.mask_token_prob + config.random_token_prob)
    )
    replacement = torch.where(use_mask, torch.full_like(masked_ids, mask_token_id), masked_ids)
    if config.random_token_prob > 0:
        pool = random_token_ids if random_token_ids is not None else torch.arange(vocab_size)
        pool = pool.to(device)
        pick = torch.randint(len(pool), (batch, n_max), generator=generator, device=device)
        replacement = torch.where(use_random, pool[pick], replacement)
    generator_input_ids = scatter_update(input_ids, replacement, positions, weights)
    return {
        "masked_positions": positions,
        "masked_weights": weights,
        "masked_ids": masked_ids,
        "generator_input_ids": generator_input_ids,
    }


def _whole_word_scores(
    scores: torch.Tensor,
    candidates: torch.Tensor,
    word_starts: torch.Tensor,
    num_to_predict: torch.Tensor,
) -> torch.Tensor:
    """Scores under which the top ``num_to_predict`` tokens are whole words: every piece gets
    its word's random score; words are taken in score order, each while all its pieces fit in
    what is left of the budget — a word too long for it is skipped and the draw goes on (as
    BERT's ``create_masked_lm_predictions``); the chosen pieces score 1 + their word's score, the
    rest below 0, so ``topk`` picks exactly them."""
    batch, seq_len = scores.shape
    position = torch.arange(seq_len, device=scores.device).expand(batch, seq_len)
    # each token's word: the position of the last word start at or before it
    start = torch.where(word_starts | ~candidates, position, torch.full_like(position, -1))
    word = start.cummax(-1).values.clamp(min=0)
    word_score = scores.gather(1, word).masked_fill(~candidates, -1.0)
    # tokens in word order (highest word score first; a word's pieces stay together)
    order = torch.sort(word_score, dim=-1, descending=True, stable=True).indices
    pieces = torch.zeros_like(position).scatter_add(1, word, candidates.long()).gather(1, word)
    budget = num_to_predict.unsqueeze(-1)
    # The greedy draw in rounds: among the words still in the draw, those whose count at their
    # last piece is within the budget are a prefix of the order and are taken; every other word
    # longer than what the prefix leaves is skipped (the budget only shrinks, so the greedy draw
    # would skip it too). Each round skips at least one word; it ends when all that is left fits.
    in_draw = candidates
    while True:
        taken = in_draw.gather(1, order).long().cumsum(-1)  # pieces taken up to each token
        word_end = torch.zeros_like(position).scatter_reduce(
            1, word.gather(1, order), taken, reduce="amax", include_self=False
        )
        fits = in_draw & (word_end.gather(1, word) <= budget)
        left = budget - fits.sum(-1, keepdim=True)
        skipped = in_draw & ~fits & (pieces > left)
        if not bool(skipped.any()):
            break
        in_draw = in_draw & ~skipped
    return torch.where(fits, 1.0 + word_score, torch.full_like(word_score, -0.5))


def gather_positions(sequence: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``sequence[b, positions[b, n]]`` for ``[B, L, ...]`` → ``[B, N, ...]``."""
    if sequence.dim() == 2:
        return sequence.gather(1, positions)
    index = positions.unsqueeze(-1).expand(*positions.shape, sequence.size(-1))
    return sequence.gather(1, index)


def scatter_update(
    sequence: torch.Tensor, updates: torch.Tensor, positions: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """A copy of ``sequence [B, L]`` with ``updates [B, N]`` written at ``positions`` where ``weights``.

    Used slots hold distinct positions; unused slots add nothing, so the result is deterministic
    even when an unused slot shares a position with a used one.
    """
    hit = torch.zeros_like(sequence).scatter_add(1, positions, weights.long())
    values = torch.zeros_like(sequence).scatter_add(1, positions, updates * weights)
    return torch.where(hit > 0, values, sequence)


def sample_from_logits(
    logits: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gumbel-max sample of ``softmax(logits / temperature)`` in fp32 with no gradient."""
    with torch.no_grad():
        logits = logits.detach().float() / temperature
        uniform = torch.rand(logits.shape, generator=generator, device=logits.device)
        gumbel = -torch.log((-torch.log(uniform.clamp_min(1e-9))).clamp_min(1e-9))
        return (logits + gumbel).argmax(-1)
