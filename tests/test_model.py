import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from electra_lightning.data.contract import DataContract
from electra_lightning.data.stream import attention_mask_of
from electra_lightning.model.electra import (
    MaskedLM,
    ModelSize,
    build_pretraining_model,
    discriminator_config,
    generator_config,
)

from .helpers import tiny_batch

VOCAB, SEQ = 300, 32


TINY = ModelSize(64, 2, 2, 128, 16, SEQ, generator_size=0.5)
CONTRACT = DataContract(VOCAB, pad_token_id=0, max_seq_length=SEQ, max_predictions_per_seq=5)


def tiny_pair(**kwargs):
    args = dict(vocab_size=VOCAB, max_seq_length=SEQ, size=TINY)
    if kwargs.get("objective") == "mlm":
        args["size"] = replace(TINY, generator_size=ModelSize.generator_size)  # no generator
    args.update(kwargs)
    torch.manual_seed(0)
    return build_pretraining_model(**args)


@pytest.mark.parametrize(
    "hidden,layers,size,expect_hidden,expect_heads,expect_layers",
    [(256, 12, 0.25, 64, 1, 12), (768, 12, 0.33, 256, 4, 12), (1024, 24, 0.25, 256, 4, 24)],
)
def test_generator_sizing(hidden, layers, size, expect_hidden, expect_heads, expect_layers):
    disc = discriminator_config(30522, ModelSize(hidden, layers, hidden // 64, 4 * hidden, 128))
    gen = generator_config(disc, size)
    assert (gen.hidden_size, gen.num_attention_heads, gen.num_hidden_layers) == (
        expect_hidden,
        expect_heads,
        expect_layers,
    )
    assert gen.intermediate_size == 4 * gen.hidden_size
    assert gen.embedding_size == disc.embedding_size
    assert generator_config(disc, size, generator_layers=0.5).num_hidden_layers == layers // 2


def test_embeddings_shared_and_head_tied():
    pair = tiny_pair()
    gen, disc = pair.generator, pair.discriminator
    assert gen.electra.embeddings is disc.electra.embeddings
    table = disc.electra.embeddings.word_embeddings.weight
    assert gen.generator_lm_head.weight is table
    # each network keeps its own projection from the embedding size
    assert gen.electra.embeddings_project is not disc.electra.embeddings_project
    # the head has its own bias
    assert gen.generator_lm_head.bias is not None
    # one tensor: an update to the table is seen by both networks
    with torch.no_grad():
        table[7].fill_(1.5)
    assert torch.equal(gen.get_output_embeddings().weight[7], torch.full((16,), 1.5))
    names = {n for n, _ in pair.named_parameters()}
    assert not any(n.startswith("generator.electra.embeddings.") for n in names)


def test_untied_options():
    pair = tiny_pair(embedding_sharing="none", tie_generator_head=False)
    gen, disc = pair.generator, pair.discriminator
    assert gen.electra.embeddings is not disc.electra.embeddings
    assert gen.generator_lm_head.weight is not gen.electra.embeddings.word_embeddings.weight
    with pytest.raises(ValueError, match="embedding_sharing"):
        tiny_pair(embedding_sharing="bogus")


def test_sequence_length_above_positions_is_rejected():
    with pytest.raises(ValueError, match="max_position_embeddings"):
        tiny_pair(max_seq_length=SEQ + 1)


def reference_losses(pair, batch, sampled):
    """A straightforward ELECTRA loss: full-sequence MLM logits, python loops, HF forward passes."""
    gen_logits = pair.generator(
        input_ids=batch["generator_input_ids"],
        attention_mask=attention_mask_of(batch),
        token_type_ids=batch["token_type_ids"],
    ).logits
    disc_input = batch["input_ids"].clone()
    ce_terms = []
    for b in range(disc_input.size(0)):
        for n in range(batch["masked_positions"].size(1)):
            if batch["masked_weights"][b, n]:
                p = batch["masked_positions"][b, n]
                ce_terms.append(
                    F.cross_entropy(gen_logits[b, p][None], batch["input_ids"][b, p][None])
                )
                disc_input[b, p] = sampled[b, n]
    mlm = torch.stack(ce_terms).mean()
    labels = (disc_input != batch["input_ids"]).float()
    disc_logits = pair.discriminator(
        input_ids=disc_input,
        attention_mask=attention_mask_of(batch),
        token_type_ids=batch["token_type_ids"],
    ).logits
    real = attention_mask_of(batch).bool()
    rtd = F.binary_cross_entropy_with_logits(disc_logits[real], labels[real])
    return mlm, rtd, labels


def test_loss_equals_reference():
    pair = tiny_pair().eval()
    batch = tiny_batch(VOCAB, SEQ)
    g = torch.Generator().manual_seed(3)
    sampled = torch.randint(5, VOCAB, batch["masked_ids"].shape, generator=g)
    sampled[0, 0] = batch["masked_ids"][0, 0]  # a correct guess counts as original
    with torch.no_grad():
        out = pair(**batch, sampled_ids=sampled)
        mlm, rtd, labels = reference_losses(pair, batch, sampled)
    assert torch.allclose(out.gen_loss, mlm, atol=1e-6, rtol=0)
    assert torch.allclose(out.disc_loss, rtd, atol=1e-6, rtol=0)
    assert torch.allclose(out.loss, 1.0 * mlm + 50.0 * rtd, atol=1e-5, rtol=0)
    assert torch.equal(out.disc_labels.float(), labels)
    p0 = batch["masked_positions"][0, 0]
    assert out.disc_labels[0, p0] == 0


def test_no_rtd_gradient_reaches_the_generator():
    batch = tiny_batch(VOCAB, SEQ)
    sampled = torch.randint(
        5, VOCAB, batch["masked_ids"].shape, generator=torch.Generator().manual_seed(1)
    )
    grads = {}
    for weight in (0.0, 50.0):
        pair = tiny_pair(disc_weight=weight).eval()
        pair(**batch, sampled_ids=sampled).loss.backward()
        grads[weight] = {
            n: p.grad.clone()
            for n, p in pair.generator.named_parameters()
            if not n.startswith(("electra.embeddings.", "generator_lm_head.weight"))
        }
    assert grads[0.0].keys() == grads[50.0].keys() and len(grads[0.0]) > 10
    for name in grads[0.0]:
        assert torch.equal(grads[0.0][name], grads[50.0][name]), name


def test_samples_come_from_the_generator_without_gradient():
    pair = tiny_pair()
    out = pair(**tiny_batch(VOCAB, SEQ))
    assert not out.sampled_ids.requires_grad
    assert out.loss.requires_grad and torch.isfinite(out.loss)
    # generator head only at the masked positions: [B, N, V]
    assert out.gen_logits.shape == (*tiny_batch(VOCAB, SEQ)["masked_positions"].shape, VOCAB)


def test_gdes_embedding_sharing():
    """DeBERTa-v3 GDES: disc table = stop_grad(gen table) + delta (zero at start); RTD trains only
    delta, the generator's table learns from MLM alone; folding gives a plain equivalent table."""
    from electra_lightning.model.electra import GDESEmbedding

    pair = tiny_pair(embedding_sharing="gdes")
    gen_words = pair.generator.electra.embeddings.word_embeddings
    disc_words = pair.discriminator.electra.embeddings.word_embeddings
    assert isinstance(disc_words, GDESEmbedding) and torch.equal(
        disc_words.weight, gen_words.weight
    )
    assert pair.generator.generator_lm_head.weight is gen_words.weight  # head tied to the gen table
    batch = tiny_batch(VOCAB, SEQ)
    sampled = torch.randint(
        5, VOCAB, batch["masked_ids"].shape, generator=torch.Generator().manual_seed(2)
    )
    pair.eval()
    out = pair(**batch, sampled_ids=sampled)
    out.disc_loss.backward()  # RTD only
    assert gen_words.weight.grad is None or not gen_words.weight.grad.any()
    assert disc_words.delta.grad is not None and disc_words.delta.grad.any()
    pair.zero_grad()
    out = pair(**batch, sampled_ids=sampled)
    out.gen_loss.backward()  # MLM only: the generator table learns, delta does not
    assert gen_words.weight.grad.any()
    assert disc_words.delta.grad is None or not disc_words.delta.grad.any()
    with torch.no_grad():
        disc_words.delta.normal_()
        before = pair.discriminator(input_ids=batch["input_ids"]).logits
        pair.fold_embeddings()
        assert isinstance(pair.discriminator.electra.embeddings.word_embeddings, torch.nn.Embedding)
        torch.testing.assert_close(pair.discriminator(input_ids=batch["input_ids"]).logits, before)


def test_mlm_objective_is_its_own_discriminator_sized_model():
    """The BERT-style baseline: one disc-sized ElectraForMaskedLM trained on the masked positions
    only — no generator/discriminator pair, no alias — and ELECTRA-only settings refused."""
    mlm = tiny_pair(objective="mlm").eval()
    assert isinstance(mlm, MaskedLM) and set(mlm.exports()) == {"mlm"}
    assert mlm.mlm.config.hidden_size == 64 and mlm.encoder is mlm.mlm.electra
    assert not hasattr(mlm, "discriminator")
    batch = tiny_batch(VOCAB, SEQ)
    out = mlm(**batch)
    assert out.disc_logits is None and torch.equal(out.loss, out.gen_loss)
    logits = mlm.mlm(
        input_ids=batch["generator_input_ids"],
        attention_mask=attention_mask_of(batch),
        token_type_ids=batch["token_type_ids"],
    ).logits
    w = batch["masked_weights"]
    picked = logits.gather(1, batch["masked_positions"].unsqueeze(-1).expand(-1, -1, VOCAB))[w]
    torch.testing.assert_close(
        out.gen_loss, F.cross_entropy(picked, batch["masked_ids"][w]), atol=1e-6, rtol=0
    )
    for setting, value in (
        ("disc_weight", 10.0),
        ("temperature", 2.0),
        ("embedding_sharing", "gdes"),
    ):
        with pytest.raises(
            ValueError, match=f"model.{setting}=.* does not apply to model.objective=mlm"
        ):
            tiny_pair(objective="mlm", **{setting: value})
    with pytest.raises(ValueError, match="model.size.generator_size does not apply"):
        tiny_pair(objective="mlm", size=TINY)
    with pytest.raises(ValueError, match="model.objective must be"):
        tiny_pair(objective="gan")


def test_checkpoint_hparams_rebuild_the_module_and_pre_contract_ones_are_refused():
    """``module_from_checkpoint`` rebuilds the same module from a checkpoint's hyperparameters
    (the contract and size stored as plain dicts); a checkpoint from before ``model.contract``
    (no format migrations before a first release) is refused in one line."""
    from dataclasses import asdict

    from electra_lightning.train.loading import encoder_from_checkpoint, module_from_checkpoint
    from electra_lightning.train.pretraining import ElectraPretraining

    size = replace(TINY, generator_size=0.25)
    for objective in ("electra", "mlm"):
        torch.manual_seed(0)
        module = ElectraPretraining(contract=CONTRACT, size=size, objective=objective)
        hparams = dict(module.hparams)
        assert hparams["contract"] == asdict(CONTRACT)
        checkpoint = {"hyper_parameters": hparams, "state_dict": module.state_dict()}
        loaded = module_from_checkpoint(checkpoint)
        assert loaded.contract == CONTRACT
        for key, value in module.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
        assert encoder_from_checkpoint(checkpoint).config.hidden_size == 64
        old = {k: v for k, v in hparams.items() if k != "contract"}
        old.update(vocab_size=VOCAB, max_seq_length=SEQ, pad_token_id=0)
        with pytest.raises(ValueError, match="from before the model/data contract"):
            module_from_checkpoint({"hyper_parameters": old, "state_dict": module.state_dict()})


def test_training_flops_per_token():
    from electra_lightning.model.electra import training_flops_per_token

    electra, mlm = tiny_pair(), tiny_pair(objective="mlm")
    h, f, L, e, hg = 64, 128, 2, 16, 32
    encoder = lambda h, f: L * (2 * (4 * h * h + 2 * h * f) + 4 * SEQ * h) + 2 * e * h  # noqa: E731
    head = 5 / SEQ * 2 * (hg * e + e * VOCAB)
    expected = 3 * (encoder(hg, 4 * hg) + head + encoder(h, f) + 2 * (h * h + h))
    assert training_flops_per_token(electra, SEQ, 5) == pytest.approx(expected)
    mlm_head = 5 / SEQ * 2 * (h * e + e * VOCAB)
    assert training_flops_per_token(mlm, SEQ, 5) == pytest.approx(3 * (encoder(h, f) + mlm_head))
    assert training_flops_per_token(mlm, SEQ, 5) < training_flops_per_token(electra, SEQ, 5)


def hand_auc(scores, labels):
    """Probability that a replaced token scores above an original one (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_val_disc_auc_is_the_roc_auc_over_non_padding_tokens():
    """validation_step feeds val/disc_auc the discriminator's scores of every non-padding token:
    checked against a hand-computed AUC, with padding positions that would change it if counted."""
    from types import SimpleNamespace

    from electra_lightning.train.pretraining import ElectraPretraining

    module = ElectraPretraining(
        contract=DataContract(50, 0, 8, 2), size=ModelSize(16, 1, 1, 16, 16, 16)
    )
    logits = torch.tensor(
        [[2.0, -1.0, 0.5, 0.5, -2.0, 3.0, 9.0, 9.0], [-0.5, 1.0, -3.0, 0.0, 1.5, -1.0, -9.0, -9.0]]
    )
    labels = torch.tensor([[1, 0, 1, 0, 0, 1, 0, 0], [0, 1, 0, 1, 0, 0, 1, 1]])
    mask = torch.tensor([[1] * 6 + [0] * 2, [1] * 6 + [0] * 2])  # the last two are padding
    batch = {
        "input_ids": torch.ones(2, 8, dtype=torch.long),
        "attention_mask": mask,
        "masked_ids": torch.zeros(2, 1, dtype=torch.long),
        "masked_weights": torch.ones(2, 1),
    }
    out = SimpleNamespace(
        loss=torch.tensor(1.0),
        gen_loss=torch.tensor(1.0),
        disc_loss=torch.tensor(1.0),
        gen_logits=torch.zeros(2, 1, 50),
        disc_logits=logits,
        disc_labels=labels,
    )

    class Stub(torch.nn.Module):
        def forward(self, **kwargs):
            return out

    module.electra = Stub()
    module.validation_step(batch, 0)
    keep = mask.bool()
    expected = hand_auc(logits[keep].tolist(), labels[keep].tolist())
    assert math.isclose(float(module.val_metrics["disc_auc"].compute()), expected, rel_tol=1e-6)
    assert not math.isclose(
        expected, hand_auc(logits.flatten().tolist(), labels.flatten().tolist())
    )
