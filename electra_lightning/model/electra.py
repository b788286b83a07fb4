"""The pretraining networks and their training step, free of Lightning.

``ElectraPair``: generator + discriminator with shared embeddings; its ``forward`` runs the whole
ELECTRA step (generator MLM at the masked positions, sampling, replaced token detection) so that a
sharding wrapper (FSDP2) can treat it as one root module. ``MaskedLM``: the BERT-style baseline
(``model.objective: mlm``), one encoder trained on the masked positions only. Both return an
``ElectraStepOutput`` and say which Hugging Face models they export.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

from electra_lightning.model.masking import gather_positions, sample_from_logits, scatter_update

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


# Clark et al. 2020, Table 6 / official configure_pretraining.py (Base's generator: 1/3): the one
# place the paper's sizes are written. Configs name them (model.size.preset: small|base|large).
PRESET_FIELDS = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "intermediate_size",
    "embedding_size",
    "max_position_embeddings",
    "generator_size",
    "generator_layers",
)
PRESETS = {
    name: dict(zip(PRESET_FIELDS, values, strict=True))
    for name, values in {
        # hidden, layers, heads, FFN, embeddings, positions, generator width, generator depth
        "small": (256, 12, 4, 1024, 128, 512, 0.25, 1.0),
        "base": (768, 12, 12, 3072, 768, 512, 0.33, 1.0),
        "large": (1024, 24, 16, 4096, 1024, 512, 0.25, 1.0),
    }.items()
}
SizeName = Literal["small", "base", "large"]


@dataclass(frozen=True)
class ModelSize:
    """The size of the discriminator, and of the generator relative to it: the one declaration
    that the networks, ``ElectraPretraining`` (``model.size.*`` in configs), the benchmark and the
    tests read. A field left out (None) comes from ``preset``, one of the paper's sizes in
    ``PRESETS`` (default ``small``): ``model.size.preset: base`` is ELECTRA-Base, and
    ``--model.size.num_layers=2`` on top of it changes only the depth.

    Args:
        hidden_size: Discriminator hidden size (Small 256, Base 768, Large 1024).
        num_layers: Discriminator layers.
        num_heads: Discriminator attention heads (must divide ``hidden_size``).
        intermediate_size: Discriminator feed-forward size.
        embedding_size: Size of the (shared) embedding table (Small 128).
        max_position_embeddings: Position-embedding table size.
        generator_size: Generator hidden size as a fraction of the discriminator's (official 1/4).
        generator_layers: Generator depth as a fraction of the discriminator's (official 1).
        preset: The paper's size the fields left out come from.
    """

    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    intermediate_size: int | None = None
    embedding_size: int | None = None
    max_position_embeddings: int | None = None
    generator_size: float | None = None
    generator_layers: float | None = None
    preset: SizeName = "small"

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(
                f"model.size.preset must be one of {', '.join(PRESETS)}, got {self.preset!r}"
            )

    def resolved(self) -> ModelSize:
        """Every field filled in (from ``preset`` where left out) and checked; what the networks
        are built from. Idempotent."""
        filled = {
            k: v if getattr(self, k) is None else getattr(self, k)
            for k, v in PRESETS[self.preset].items()
        }
        size = replace(self, **filled)
        if size.hidden_size % size.num_heads:
            raise ValueError(
                f"model.size.hidden_size {size.hidden_size} is not divisible by "
                f"model.size.num_heads {size.num_heads}"
            )
        for name in ("generator_size", "generator_layers"):
            value = getattr(size, name)
            if not 0 < value <= 1:
                raise ValueError(f"model.size.{name} must be in (0, 1], got {value}")
        return size

    def of_preset(self, name: str):
        """The preset's value of field ``name`` (what "not changed" means)."""
        return PRESETS[self.preset][name]


OFFICIAL_SIZES = {name: ModelSize(preset=name).resolved() for name in PRESETS}


# The official dropout (BERT's hidden and attention dropout; the official fine-tuning head's too):
# the default of every ``dropout`` (model.dropout in pretraining and fine-tuning), written once.
DROPOUT = 0.1


def discriminator_config(
    vocab_size: int,
    size: ModelSize = ModelSize(),
    pad_token_id: int = 0,
    dropout: float = DROPOUT,
    max_seq_length: int | None = None,
) -> ElectraConfig:
    """An ``ElectraConfig`` for the discriminator (the encoder users fine-tune later)."""
    size = size.resolved()
    if max_seq_length is not None and max_seq_length > size.max_position_embeddings:
        raise ValueError(
            f"data.max_seq_length {max_seq_length} exceeds model.size.max_position_embeddings "
            f"{size.max_position_embeddings}; lower the sequence length or raise the position "
            "embeddings"
        )
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
    gen = ElectraConfig(**{**disc.to_dict(), "attn_implementation": "sdpa"})  # to_dict() drops it
    gen.hidden_size = hidden
    gen.intermediate_size = 4 * hidden
    gen.num_attention_heads = heads
    gen.num_hidden_layers = max(1, int(round(disc.num_hidden_layers * generator_layers)))
    return gen


def masked_lm_logits(
    model: ElectraForMaskedLM, input_ids, attention_mask, token_type_ids, masked_positions
) -> torch.Tensor:
    """MLM logits ``[B, N, V]`` evaluated only at ``masked_positions``."""
    hidden = model.electra(
        input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
    ).last_hidden_state
    hidden = gather_positions(hidden, masked_positions)
    return model.generator_lm_head(model.generator_predictions(hidden))


def masked_lm_loss(logits: torch.Tensor, masked_ids, masked_weights) -> torch.Tensor:
    """Mean cross-entropy (fp32) over the real masked slots."""
    weights = masked_weights.float()
    token_ce = F.cross_entropy(
        logits.float().flatten(0, 1), masked_ids.flatten(), reduction="none"
    ).view_as(weights)
    return (token_ce * weights).sum() / weights.sum().clamp(min=1.0)


def encoder_flops(cfg: ElectraConfig, seq_len: int) -> float:
    """Forward matmul FLOPs per token of one encoder: per layer Q, K, V, O ``2·4h²``, feed-forward
    ``2·2hf``, attention scores and weighted sum ``2·2·L·h``; plus ``embeddings_project``
    (``2eh``) where the embedding size differs."""
    h, f = cfg.hidden_size, cfg.intermediate_size
    per_layer = 2 * (4 * h * h + 2 * h * f) + 4 * seq_len * h
    project = 2 * cfg.embedding_size * h if cfg.embedding_size != h else 0
    return cfg.num_hidden_layers * per_layer + project


def mlm_head_flops(cfg: ElectraConfig, seq_len: int, predictions_per_seq: int) -> float:
    """Forward FLOPs per token of an MLM head (``2·h·e + 2·e·V``) run on the masked slots only."""
    per_slot = 2 * (cfg.hidden_size * cfg.embedding_size + cfg.embedding_size * cfg.vocab_size)
    return predictions_per_seq / seq_len * per_slot


@dataclass
class ElectraStepOutput:
    """Losses (fp32 scalars) and detached counts for metrics from one ELECTRA step."""

    loss: torch.Tensor
    gen_loss: torch.Tensor
    disc_loss: torch.Tensor
    gen_logits: torch.Tensor  # [B, N, V] at the masked positions
    disc_logits: torch.Tensor | None  # [B, L] (None for MaskedLM)
    disc_labels: torch.Tensor | None  # [B, L] 1 = replaced
    sampled_ids: torch.Tensor | None  # [B, N]


# ELECTRA's objective settings and their official values, declared once: ElectraPair's and
# ElectraPretraining's (``model.*``) defaults, and what MaskedLM refuses when changed.
PAIR_DEFAULTS = {
    "embedding_sharing": "shared",  # one embedding module for both networks
    "tie_generator_head": True,
    "gen_weight": 1.0,  # the generator's MLM loss
    "disc_weight": 50.0,  # the discriminator's RTD loss (λ in the paper)
    "temperature": 1.0,  # of the generator's sampling
}


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
        embedding_sharing: EmbeddingSharing = PAIR_DEFAULTS["embedding_sharing"],
        tie_generator_head: bool = PAIR_DEFAULTS["tie_generator_head"],
        gen_weight: float = PAIR_DEFAULTS["gen_weight"],
        disc_weight: float = PAIR_DEFAULTS["disc_weight"],
        temperature: float = PAIR_DEFAULTS["temperature"],
    ):
        super().__init__()
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
        if embedding_sharing == "shared":
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

    @property
    def encoder(self) -> nn.Module:
        """The encoder users fine-tune: the discriminator's."""
        return self.discriminator.electra

    def encoders(self) -> list[nn.Module]:
        """The transformer encoders (what ``model.compile`` compiles)."""
        return [self.generator.electra, self.discriminator.electra]

    def exports(self) -> dict[str, nn.Module]:
        """The Hugging Face models ``export`` writes, by directory name."""
        return {"discriminator": self.discriminator, "generator": self.generator}

    def flops_per_token(self, seq_len: int, predictions_per_seq: int) -> float:
        """Training matmul FLOPs per token (forward + backward = 3 × forward): both encoders, the
        discriminator head (``2h² + 2h``) on every token, the generator head on the masked
        slots. Embedding lookups, LayerNorm, softmax and the loss are not counted."""
        gen, disc = self.generator.config, self.discriminator.config
        disc_head = 2 * (disc.hidden_size * disc.hidden_size + disc.hidden_size)
        return 3.0 * (
            encoder_flops(gen, seq_len)
            + mlm_head_flops(gen, seq_len, predictions_per_seq)
            + encoder_flops(disc, seq_len)
            + disc_head
        )

    def fold_embeddings(self) -> None:
        """Replace a GDES embedding by a plain table (generator + delta), as export needs."""
        embeddings = self.discriminator.electra.embeddings
        if isinstance(embeddings.word_embeddings, GDESEmbedding):
            embeddings.word_embeddings = embeddings.word_embeddings.folded()

    def generator_logits(
        self, generator_input_ids, attention_mask, token_type_ids, masked_positions
    ):
        """The generator's MLM logits ``[B, N, V]`` at ``masked_positions``."""
        return masked_lm_logits(
            self.generator, generator_input_ids, attention_mask, token_type_ids, masked_positions
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        generator_input_ids: torch.Tensor,
        masked_positions: torch.Tensor,
        masked_weights: torch.Tensor,
        masked_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,  # None: no padding
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
        gen_loss = masked_lm_loss(gen_logits, masked_ids, masked_weights)
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


class MaskedLM(nn.Module):
    """The BERT-style baseline (``model.objective: mlm``): one ``ElectraForMaskedLM`` the size of
    ELECTRA's discriminator, trained to predict the masked tokens (use it with
    ``data.mask_token_prob: 0.8``, ``data.random_token_prob: 0.1``). Same data, optimizer and
    logging as ELECTRA, so the two differ only in the objective. ``export`` writes ``DIR/mlm``,
    which fine-tuning takes as ``--model.init_from`` like a discriminator."""

    def __init__(self, config: ElectraConfig):
        super().__init__()
        self.mlm = ElectraForMaskedLM(config)

    @property
    def encoder(self) -> nn.Module:
        return self.mlm.electra

    def encoders(self) -> list[nn.Module]:
        return [self.mlm.electra]

    def exports(self) -> dict[str, nn.Module]:
        return {"mlm": self.mlm}

    def flops_per_token(self, seq_len: int, predictions_per_seq: int) -> float:
        """Training matmul FLOPs per token: the encoder and the MLM head on the masked slots."""
        cfg = self.mlm.config
        return 3.0 * (
            encoder_flops(cfg, seq_len) + mlm_head_flops(cfg, seq_len, predictions_per_seq)
        )

    def fold_embeddings(self) -> None:
        """Nothing to fold (one embedding table)."""

    def forward(self, **batch: torch.Tensor) -> ElectraStepOutput:
        """One MLM step on a pretraining batch (the keys ``ElectraPair.forward`` takes; this
        reads the generator's input, the masked positions, their ids and weights)."""
        logits = masked_lm_logits(
            self.mlm,
            batch["generator_input_ids"],
            batch.get("attention_mask"),
            batch["token_type_ids"],
            batch["masked_positions"],
        )
        loss = masked_lm_loss(logits, batch["masked_ids"], batch["masked_weights"])
        return ElectraStepOutput(
            loss=loss,
            gen_loss=loss,
            disc_loss=torch.zeros((), device=loss.device),
            gen_logits=logits,
            disc_logits=None,
            disc_labels=None,
            sampled_ids=None,
        )


def build_pretraining_model(
    vocab_size: int,
    max_seq_length: int,
    size: ModelSize = ModelSize(),
    pad_token_id: int = 0,
    dropout: float = DROPOUT,
    objective: Objective = "electra",
    **settings,
) -> ElectraPair | MaskedLM:
    """Build the model of ``objective`` from sizes (no downloads): ``ElectraPair`` (``settings``
    are its embedding sharing, head tying, loss weights and temperature) or ``MaskedLM``, which
    refuses the ELECTRA-only ones (they would be silently ignored): all but
    ``tie_generator_head`` (its own head's tying), and a generator size."""
    size = size.resolved()
    disc = discriminator_config(vocab_size, size, pad_token_id, dropout, max_seq_length)
    if objective == "electra":
        return ElectraPair(
            disc, generator_config(disc, size.generator_size, size.generator_layers), **settings
        )
    if objective != "mlm":
        raise ValueError(f"model.objective must be 'electra' or 'mlm', got {objective!r}")
    for key, value in settings.items():
        if key != "tie_generator_head" and value != PAIR_DEFAULTS.get(key, value):
            raise ValueError(
                f"model.{key}={value!r} does not apply to model.objective=mlm (one MLM encoder, "
                "no generator/discriminator pair); remove it"
            )
    for key in ("generator_size", "generator_layers"):
        if getattr(size, key) != size.of_preset(key):
            raise ValueError(
                f"model.size.{key} does not apply to model.objective=mlm (no generator); remove it"
            )
    disc.tie_word_embeddings = settings.get("tie_generator_head", True)
    return MaskedLM(disc)


def training_flops_per_token(
    model: ElectraPair | MaskedLM, seq_len: int, predictions_per_seq: int
) -> float:
    """Training matmul FLOPs per token of one step of ``model`` (see its ``flops_per_token``)."""
    return model.flops_per_token(seq_len, predictions_per_seq)
