"""The ELECTRA networks: generator + discriminator with shared embeddings, and one training step.

Free of Lightning. ``ElectraPair.forward`` runs the whole ELECTRA step (generator MLM at the
masked positions, sampling, replaced token detection) so that a sharding wrapper (FSDP2) can
treat it as one root module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

from electra_lightning.masking import gather_positions, sample_from_logits, scatter_update

EmbeddingSharing = Literal["shared", "none", "gdes"]
Objective = Literal["electra", "mlm"]


class GDESEmbedding(nn.Module):
    """Gradient-disentangled embedding sharing (DeBERTa-v3): the discriminator's token embeddings
    are ``stop_gradient(generator table) + delta`` with ``delta`` starting at zero, so the RTD loss
    trains only ``delta`` and the generator's table learns from the MLM loss alone."""

    def __init__(self, source: nn.Embedding):
        super().__init__()
        self._source = (
            source,
        )  # a reference, not a submodule: its parameters stay the generator's
        self.delta = nn.Parameter(torch.zeros_like(source.weight))
        self.padding_idx = source.padding_idx

    @property
    def weight(self) -> torch.Tensor:
        return self._source[0].weight.detach() + self.delta

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.weight, self.padding_idx)

    def folded(self) -> nn.Embedding:
        """A plain ``nn.Embedding`` holding generator table + delta (for export)."""
        table = nn.Embedding(*self.delta.shape, padding_idx=self.padding_idx)
        with torch.no_grad():
            table.weight.copy_(self.weight)
        return table


@dataclass(frozen=True)
class ModelSize:
    """The size of the discriminator, and of the generator relative to it: the one declaration
    that the networks, ``ElectraPretraining`` (``model.size.*`` in configs), the benchmark and the
    tests read. ``OFFICIAL_SIZES`` holds the paper's three.

    Args:
        hidden_size: Discriminator hidden size (Small 256, Base 768, Large 1024).
        num_layers: Discriminator layers.
        num_heads: Discriminator attention heads (must divide ``hidden_size``).
        intermediate_size: Discriminator feed-forward size.
        embedding_size: Size of the (shared) embedding table (Small 128).
        max_position_embeddings: Position-embedding table size.
        generator_size: Generator hidden size as a fraction of the discriminator's (official 1/4).
        generator_layers: Generator depth as a fraction of the discriminator's (official 1).
    """

    hidden_size: int = 256
    num_layers: int = 12
    num_heads: int = 4
    intermediate_size: int = 1024
    embedding_size: int = 128
    max_position_embeddings: int = 512
    generator_size: float = 0.25
    generator_layers: float = 1.0

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"model.size.hidden_size {self.hidden_size} is not divisible by "
                f"model.size.num_heads {self.num_heads}"
            )
        for name in ("generator_size", "generator_layers"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"model.size.{name} must be in (0, 1], got {value}")


# Clark et al. 2020, Table 6 / official configure_pretraining.py (Base's generator: 1/3)
OFFICIAL_SIZES = {
    "small": ModelSize(256, 12, 4, 1024, 128, 512, 0.25),
    "base": ModelSize(768, 12, 12, 3072, 768, 512, 0.33),
    "large": ModelSize(1024, 24, 16, 4096, 1024, 512, 0.25),
}


def discriminator_config(
    vocab_size: int, size: ModelSize = ModelSize(), pad_token_id: int = 0, dropout: float = 0.1
) -> ElectraConfig:
    """An ``ElectraConfig`` for the discriminator (the encoder users fine-tune later)."""
    return ElectraConfig(
        vocab_size=vocab_size,
        embedding_size=size.embedding_size,
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads,
        intermediate_size=size.intermediate_size,
        max_position_embeddings=size.max_position_embeddings,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=pad_token_id,
        attn_implementation="sdpa",
    )


def generator_config(
    disc: ElectraConfig, generator_size: float = 0.25, generator_layers: float = 1.0
) -> ElectraConfig:
    """The generator's config, sized like the official ``get_generator_config``.

    hidden = round(generator_size × discriminator hidden), FFN = 4 × hidden,
    heads = max(1, hidden // 64), layers = round(generator_layers × discriminator layers).
    Where the official formula gives a hidden size the heads do not divide (0.33 × 768 = 253),
    hidden is rounded to the nearest multiple of the 64-wide heads (256, the paper's 1/3).
    """
    hidden = int(round(disc.hidden_size * generator_size))
    heads = max(1, hidden // 64)
    if hidden % heads:
        hidden = 64 * max(1, int(round(hidden / 64)))
        heads = hidden // 64
    gen = ElectraConfig(**disc.to_dict())
    gen.hidden_size = hidden
    gen.intermediate_size = 4 * hidden
    gen.num_attention_heads = heads
    gen.num_hidden_layers = max(1, int(round(disc.num_hidden_layers * generator_layers)))
    gen._attn_implementation = "sdpa"
    return gen


@dataclass
class ElectraStepOutput:
    """Losses (fp32 scalars) and detached counts for metrics from one ELECTRA step."""

    loss: torch.Tensor
    gen_loss: torch.Tensor
    disc_loss: torch.Tensor
    gen_logits: torch.Tensor  # [B, N, V] at the masked positions
    disc_logits: torch.Tensor | None  # [B, L] (None for the MLM objective)
    disc_labels: torch.Tensor | None  # [B, L] 1 = replaced
    sampled_ids: torch.Tensor | None  # [B, N]


class ElectraPair(nn.Module):
    """Generator (``ElectraForMaskedLM``) and discriminator (``ElectraForPreTraining``).

    ``embedding_sharing="shared"`` (official): one embedding module (word, position, token type,
    LayerNorm) for both; each keeps its own ``embeddings_project``. ``"none"``: separate
    embeddings. ``"gdes"``: separate modules, but the discriminator's token table is
    ``stop_gradient(generator's) + delta`` (DeBERTa-v3; see ``GDESEmbedding``). The generator's output
    layer is tied to the word embeddings and keeps its own bias unless ``tie_generator_head``
    is False.
    """

    def __init__(
        self,
        disc_config: ElectraConfig,
        gen_config: ElectraConfig,
        embedding_sharing: EmbeddingSharing = "shared",
        tie_generator_head: bool = True,
        gen_weight: float = 1.0,
        disc_weight: float = 50.0,
        temperature: float = 1.0,
        objective: Objective = "electra",
    ):
        super().__init__()
        if objective not in ("electra", "mlm"):
            raise ValueError(
                f"objective must be 'electra' or 'mlm', got {objective!r} (model.objective)"
            )
        if embedding_sharing not in ("shared", "none", "gdes"):
            raise ValueError(
                f"embedding_sharing must be 'shared', 'none' or 'gdes', got {embedding_sharing!r} "
                "(model.embedding_sharing)"
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature} (model.temperature)")
        gen_config.tie_word_embeddings = tie_generator_head
        self.discriminator = ElectraForPreTraining(disc_config)
        self.generator = ElectraForMaskedLM(gen_config)
        self.objective = objective
        if objective == "mlm":
            # BERT-style baseline: the discriminator-sized encoder *is* the MLM model; the
            # discriminator shares it (so export and fine-tuning are unchanged) and its RTD head
            # is frozen and unused.
            self.discriminator.electra = self.generator.electra
            self.discriminator.discriminator_predictions.requires_grad_(False)
        elif embedding_sharing == "shared":
            self.generator.electra.embeddings = self.discriminator.electra.embeddings
        elif embedding_sharing == "gdes":
            words = self.generator.electra.embeddings.word_embeddings
            self.discriminator.electra.embeddings.word_embeddings = GDESEmbedding(words)
        if tie_generator_head:
            # Re-tie: the head must follow the (now shared) word-embedding table.
            self.generator.tie_weights()
        self.embedding_sharing = embedding_sharing
        self.gen_weight = gen_weight
        self.disc_weight = disc_weight
        self.temperature = temperature

    def fold_embeddings(self) -> None:
        """Replace a GDES embedding by a plain table (generator + delta), as export needs."""
        embeddings = self.discriminator.electra.embeddings
        if isinstance(embeddings.word_embeddings, GDESEmbedding):
            embeddings.word_embeddings = embeddings.word_embeddings.folded()

    def generator_logits(
        self, generator_input_ids, attention_mask, token_type_ids, masked_positions
    ):
        """MLM logits ``[B, N, V]`` evaluated only at ``masked_positions``."""
        hidden = self.generator.electra(
            input_ids=generator_input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
        ).last_hidden_state
        hidden = gather_positions(hidden, masked_positions)
        return self.generator.generator_lm_head(self.generator.generator_predictions(hidden))

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        generator_input_ids: torch.Tensor,
        masked_positions: torch.Tensor,
        masked_weights: torch.Tensor,
        masked_ids: torch.Tensor,
        sampled_ids: torch.Tensor | None = None,
        sampling_generator: torch.Generator | None = None,
        **_: object,
    ) -> ElectraStepOutput:
        """One ELECTRA step.

        ``sampling_generator`` draws the replacements (default: the global RNG);
        ``sampled_ids`` overrides them (tests).
        """
        gen_logits = self.generator_logits(
            generator_input_ids, attention_mask, token_type_ids, masked_positions
        )
        weights = masked_weights.float()
        n_masked = weights.sum().clamp(min=1.0)
        token_ce = F.cross_entropy(
            gen_logits.float().flatten(0, 1), masked_ids.flatten(), reduction="none"
        ).view_as(weights)
        gen_loss = (token_ce * weights).sum() / n_masked
        if self.objective == "mlm":
            return ElectraStepOutput(
                loss=self.gen_weight * gen_loss,
                gen_loss=gen_loss,
                disc_loss=torch.zeros((), device=gen_loss.device),
                gen_logits=gen_logits,
                disc_logits=None,
                disc_labels=None,
                sampled_ids=None,
            )

        if sampled_ids is None:
            sampled_ids = sample_from_logits(gen_logits, self.temperature, sampling_generator)
        sampled_ids = sampled_ids.detach()
        disc_input_ids = scatter_update(input_ids, sampled_ids, masked_positions, masked_weights)
        disc_labels = (disc_input_ids != input_ids).long()  # a correct guess counts as original

        disc_logits = self.discriminator(
            input_ids=disc_input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
        ).logits
        token_weights = (
            torch.ones_like(disc_logits, dtype=torch.float32)
            if attention_mask is None
            else attention_mask.float()
        )
        bce = F.binary_cross_entropy_with_logits(
            disc_logits.float(), disc_labels.float(), reduction="none"
        )
        disc_loss = (bce * token_weights).sum() / token_weights.sum().clamp(min=1.0)
        loss = self.gen_weight * gen_loss + self.disc_weight * disc_loss
        return ElectraStepOutput(
            loss=loss,
            gen_loss=gen_loss,
            disc_loss=disc_loss,
            gen_logits=gen_logits,
            disc_logits=disc_logits,
            disc_labels=disc_labels,
            sampled_ids=sampled_ids,
        )


def build_electra_pair(
    vocab_size: int,
    max_seq_length: int,
    size: ModelSize = ModelSize(),
    pad_token_id: int = 0,
    dropout: float = 0.1,
    objective: Objective = "electra",
    **settings,
) -> ElectraPair:
    """Build generator + discriminator from sizes (no downloads); ``settings`` are
    :class:`ElectraPair`'s (embedding sharing, head tying, loss weights, temperature)."""
    if max_seq_length > size.max_position_embeddings:
        raise ValueError(
            f"data.max_seq_length {max_seq_length} exceeds model.size.max_position_embeddings "
            f"{size.max_position_embeddings}; lower the sequence length or raise the position "
            "embeddings"
        )
    disc = discriminator_config(vocab_size, size, pad_token_id, dropout)
    if objective == "mlm":  # the MLM baseline trains a discriminator-sized encoder
        gen = ElectraConfig(**disc.to_dict())
        gen._attn_implementation = "sdpa"
    else:
        gen = generator_config(disc, size.generator_size, size.generator_layers)
    return ElectraPair(disc, gen, objective=objective, **settings)


def training_flops_per_token(pair: ElectraPair, seq_len: int, predictions_per_seq: int) -> float:
    """Matmul FLOPs per token of one training step (forward + backward = 3 × forward).

    Per transformer layer and token: Q, K, V, O projections ``2·4h²``, feed-forward ``2·2hf``,
    attention scores and weighted sum ``2·2·L·h``. Plus ``embeddings_project`` (``2eh``) where the
    embedding size differs, the discriminator head (``2h² + 2h``) on every token, and the
    generator head (``2·h_g·e + 2·e·V``) only on the ``predictions_per_seq`` masked slots.
    Embedding lookups, LayerNorm, softmax and the loss are not counted (as in MFU conventions).
    """

    def encoder(cfg) -> float:
        h, f = cfg.hidden_size, cfg.intermediate_size
        per_layer = 2 * (4 * h * h + 2 * h * f) + 4 * seq_len * h
        project = 2 * cfg.embedding_size * h if cfg.embedding_size != h else 0
        return cfg.num_hidden_layers * per_layer + project

    gen, disc = pair.generator.config, pair.discriminator.config
    masked = predictions_per_seq / seq_len
    gen_head = (
        masked * 2 * (gen.hidden_size * gen.embedding_size + gen.embedding_size * gen.vocab_size)
    )
    if getattr(pair, "objective", "electra") == "mlm":  # one encoder, no discriminator
        return 3.0 * (encoder(gen) + gen_head)
    disc_head = 2 * (disc.hidden_size * disc.hidden_size + disc.hidden_size)
    return 3.0 * (encoder(gen) + gen_head + encoder(disc) + disc_head)
