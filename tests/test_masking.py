import pytest
import torch

from electra_lightning.model.masking import (
    MaskingConfig,
    gather_positions,
    mask_tokens,
    sample_from_logits,
    scatter_update,
)

MASK_ID, VOCAB = 4, 100
SPECIALS = [0, 1, 2, 3, 4]


def make_batch(batch=64, seq=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, seq), generator=g)
    lengths = torch.randint(seq // 2, seq + 1, (batch,), generator=g)
    ids[:, 0] = 2  # [CLS]
    ids[torch.arange(batch), lengths - 1] = 3  # [SEP]
    pad = torch.arange(seq) >= lengths[:, None]
    ids[pad] = 0
    special = torch.isin(ids, torch.tensor(SPECIALS))
    return ids, special


def test_rate_and_never_special():
    cfg = MaskingConfig(mask_prob=0.15)
    selected = candidates = 0
    for seed in range(20):
        ids, special = make_batch(seed=seed)
        out = mask_tokens(ids, special, cfg, MASK_ID, VOCAB, torch.Generator().manual_seed(seed))
        pos, w = out["masked_positions"], out["masked_weights"]
        assert not special.gather(1, pos)[w].any(), "special/pad token selected"
        # positions are distinct within a sequence
        for b in range(ids.size(0)):
            chosen = pos[b][w[b]]
            assert chosen.unique().numel() == chosen.numel()
        assert (w.sum(1) <= cfg.max_predictions(ids.size(1))).all()
        selected += int(w.sum())
        candidates += int((~special).sum())
    assert abs(selected / candidates - 0.15) < 0.01


def test_official_cap():
    cfg = MaskingConfig(mask_prob=0.15)
    assert cfg.max_predictions(128) == 19  # int((0.15 + 0.005) * 128), official
    assert MaskingConfig(mask_prob=0.25).max_predictions(512) == 130


@pytest.mark.parametrize("mask_p,random_p", [(0.85, 0.0), (0.8, 0.1)])
def test_replacement_split(mask_p, random_p):
    cfg = MaskingConfig(0.15, mask_p, random_p)
    masked = randomised = kept = 0
    for seed in range(30):
        ids, special = make_batch(seed=seed)
        out = mask_tokens(ids, special, cfg, MASK_ID, VOCAB, torch.Generator().manual_seed(seed))
        pos, w = out["masked_positions"], out["masked_weights"]
        new = out["generator_input_ids"].gather(1, pos)[w]
        orig = out["masked_ids"][w]
        assert torch.equal(orig, ids.gather(1, pos)[w])
        masked += int((new == MASK_ID).sum())
        kept += int((new == orig).sum())
        randomised += int(((new != MASK_ID) & (new != orig)).sum())
        # outside the chosen positions nothing changes
        untouched = torch.ones_like(ids, dtype=torch.bool).scatter(1, pos, ~w)
        assert torch.equal(out["generator_input_ids"][untouched], ids[untouched])
    total = masked + kept + randomised
    assert abs(masked / total - mask_p) < 0.02
    # a random token can equal the original (1/95), so "kept" absorbs a little of "random"
    assert abs(randomised / total - random_p) < 0.02
    assert abs(kept / total - (1 - mask_p - random_p)) < 0.02


def test_seeded_reproducible_and_fresh():
    cfg = MaskingConfig()
    ids, special = make_batch()
    a = mask_tokens(ids, special, cfg, MASK_ID, VOCAB, torch.Generator().manual_seed(1))
    b = mask_tokens(ids, special, cfg, MASK_ID, VOCAB, torch.Generator().manual_seed(1))
    c = mask_tokens(ids, special, cfg, MASK_ID, VOCAB, torch.Generator().manual_seed(2))
    for key in a:
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["masked_positions"], c["masked_positions"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mask_prob": 0.0},
        {"mask_prob": 1.5},
        {"mask_prob": -0.1},
        {"mask_token_prob": 0.9, "random_token_prob": 0.2},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError, match="mask"):
        MaskingConfig(**kwargs)


def test_sampling_matches_softmax_and_has_no_grad():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]], requires_grad=True).expand(20000, 4)
    samples = sample_from_logits(logits, generator=torch.Generator().manual_seed(0))
    assert not samples.requires_grad
    freq = torch.bincount(samples.flatten(), minlength=4).float() / samples.numel()
    expected = torch.softmax(logits[0].detach(), -1)
    assert torch.allclose(freq, expected, atol=0.01), (freq, expected)
    hot = sample_from_logits(logits, temperature=0.05, generator=torch.Generator().manual_seed(0))
    assert (hot == 0).float().mean() > 0.99


def test_sampling_bf16_logits_are_sampled_in_fp32():
    """Under bf16 autocast the generator's logits arrive in bf16, whose spacing near 100 is 0.5:
    Gumbel noise added in bf16 would round most sums onto ties and skew the samples far from the
    softmax. Sampled in fp32, the frequencies match softmax([100, 100.5]) = [0.378, 0.622]."""
    logits = torch.tensor([[100.0, 100.5]]).bfloat16().expand(50000, 2)
    samples = sample_from_logits(logits, generator=torch.Generator().manual_seed(0))
    assert samples.dtype == torch.long and samples.shape == (50000,)
    expected = torch.softmax(torch.tensor([100.0, 100.5]), -1)[1].item()
    assert abs(samples.float().mean().item() - expected) < 0.01


def test_scatter_and_gather():
    seq = torch.arange(10).view(1, 10)
    pos = torch.tensor([[3, 0, 0]])
    w = torch.tensor([[True, False, False]])
    out = scatter_update(seq, torch.tensor([[99, 77, 77]]), pos, w)
    assert out.tolist() == [[0, 1, 2, 99, 4, 5, 6, 7, 8, 9]]
    # an unused slot pointing at a used position does not disturb it
    out = scatter_update(
        seq, torch.tensor([[99, 77]]), torch.tensor([[3, 3]]), torch.tensor([[True, False]])
    )
    assert out[0, 3] == 99
    hidden = torch.arange(20.0).view(1, 10, 2)
    assert gather_positions(hidden, torch.tensor([[3, 1]])).tolist() == [[[6.0, 7.0], [2.0, 3.0]]]


def _wwm_batch(seed=0, batch=64, seq=128, vocab=1000):
    """Random ids where every third token (roughly) continues the word before it."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, vocab, (batch, seq), generator=g)
    starts = torch.rand(batch, seq, generator=g) > 0.35
    special = torch.zeros(batch, seq, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    starts |= special
    return ids, special, starts


def test_whole_word_masking_masks_every_piece_of_a_chosen_word_and_keeps_the_rate():
    from electra_lightning.model.masking import MaskingConfig, mask_tokens

    ids, special, starts = _wwm_batch()
    config = MaskingConfig(whole_word=True)
    out = mask_tokens(
        ids, special, config, 3, 1000, torch.Generator().manual_seed(1), word_starts=starts
    )
    chosen = torch.zeros_like(ids, dtype=torch.bool).scatter(
        1, out["masked_positions"], out["masked_weights"]
    )
    word = torch.where(starts, torch.arange(128).expand(64, 128), -1).cummax(-1).values
    for b in range(64):
        for w in word[b][chosen[b]].unique():  # every chosen word: all of its pieces chosen
            pieces = (word[b] == w) & ~special[b]
            assert chosen[b][pieces].all(), (b, int(w))
    assert not (chosen & special).any()
    # the rate: 15% of the non-special tokens (round(0.15 · 126) = 19 per sequence), within the
    # part of a word that did not fit
    rate = chosen.sum() / (~special).sum()
    assert 0.135 < float(rate) <= 19 / 126 + 1e-6, float(rate)
    per_seq = chosen.sum(-1)
    assert int(per_seq.max()) <= config.max_predictions(128)


def test_whole_word_masking_is_off_by_default_and_needs_word_starts():
    from electra_lightning.model.masking import MaskingConfig, mask_tokens

    ids, special, starts = _wwm_batch()
    assert MaskingConfig().whole_word is False
    plain = mask_tokens(ids, special, MaskingConfig(), 3, 1000, torch.Generator().manual_seed(1))
    chosen = torch.zeros_like(ids, dtype=torch.bool).scatter(
        1, plain["masked_positions"], plain["masked_weights"]
    )
    word = torch.where(starts, torch.arange(128).expand(64, 128), -1).cummax(-1).values
    split = sum(
        int(((word[b] == w) & ~special[b] & ~chosen[b]).any())
        for b in range(64)
        for w in word[b][chosen[b]].unique()
    )
    assert split > 0  # pieces are drawn independently: some words are masked in part
    with pytest.raises(ValueError, match="whole-word masking needs word_starts"):
        mask_tokens(ids, special, MaskingConfig(whole_word=True), 3, 1000)


def test_whole_word_masking_in_the_stream_masks_wordpieces_together(corpus_dir, tokenizer_info):
    """data.whole_word_masking with the project's WordPiece tokenizer: no word is masked in
    part (a '##' piece is masked exactly when the piece before it is)."""
    from electra_lightning.data.stream import PretrainingStream, wordpiece_continuations
    from electra_lightning.model.masking import MaskingConfig

    continuation = wordpiece_continuations(tokenizer_info)
    assert continuation.any()
    stream = PretrainingStream.build(
        [str(corpus_dir / "train.txt")],
        tokenizer_info,
        MaskingConfig(whole_word=True),
        max_seq_length=64,
        batch_size=16,
        shuffle=False,
        endless=False,
    )
    batch = next(iter(stream))
    ids = batch["input_ids"]
    chosen = torch.zeros_like(ids, dtype=torch.bool).scatter(
        1, batch["masked_positions"], batch["masked_weights"]
    )
    cont = continuation[ids]
    cont[:, 0] = False
    # a continuation piece is chosen exactly when the piece before it is
    assert torch.equal(chosen[:, 1:][cont[:, 1:]], chosen[:, :-1][cont[:, 1:]])
    assert cont.any() and chosen.any()


def test_whole_word_masking_skips_a_word_too_long_for_the_budget_and_keeps_drawing():
    """A corpus of long words (3 in 10 of 6–40 pieces, the rest of 1–3): a word with more pieces than
    the budget has left is skipped and the draw goes on (BERT's rule), so the masked rate is the
    configured one, not nothing in most sequences (the draw used to stop at such a word)."""
    from electra_lightning.model.masking import MaskingConfig, mask_tokens

    g = torch.Generator().manual_seed(0)
    batch, seq = 200, 128
    starts = torch.zeros(batch, seq, dtype=torch.bool)
    for b in range(batch):
        i = 1
        while i < seq - 1:
            starts[b, i] = True
            short = torch.rand(1, generator=g).item() < 0.7
            i += (
                int(torch.randint(1, 4, (1,), generator=g))
                if short
                else int(torch.randint(6, 41, (1,), generator=g))
            )
    special = torch.zeros(batch, seq, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    starts |= special
    ids = torch.randint(10, 1000, (batch, seq), generator=g)
    config = MaskingConfig(whole_word=True)
    out = mask_tokens(
        ids, special, config, 3, 1000, torch.Generator().manual_seed(1), word_starts=starts
    )
    chosen = torch.zeros_like(ids, dtype=torch.bool).scatter(
        1, out["masked_positions"], out["masked_weights"]
    )
    word = torch.where(starts, torch.arange(seq).expand(batch, seq), -1).cummax(-1).values
    for b in range(batch):  # still whole words only
        for w in word[b][chosen[b]].unique():
            assert chosen[b][(word[b] == w) & ~special[b]].all(), (b, int(w))
    per_seq = chosen.sum(-1)
    budget = round(0.15 * (seq - 2))
    assert int(per_seq.max()) <= budget
    assert int((per_seq == 0).sum()) == 0  # every sequence has a short word to mask
    rate = chosen.sum() / (~special).sum()
    assert 0.14 <= float(rate) <= budget / (seq - 2) + 1e-6, float(rate)
