"""The contract between the data and the model: what ``ElectraPretraining`` must know about the
data, published by ``ElectraDataModule.contract`` as one frozen value and linked into the model
once by the CLI (``model.contract``). The model never looks at the data module itself, so a field
renamed on one side fails at start-up instead of silently changing behaviour."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class DataContract:
    """Args:
    vocab_size: The tokenizer's vocabulary size (the embedding table's rows).
    pad_token_id: The tokenizer's [PAD] id.
    max_seq_length: Tokens per example ([CLS]/[SEP] included): ``data.max_seq_length``.
    max_predictions_per_seq: Masked positions per example the generator predicts (the masking's
        cap; the FLOPs count uses it).
    tokenizer_sha256: Digest of the tokenizer's ``tokenizer.json``: a resumed checkpoint must have
        been trained with the same tokenizer.
    unigram_ce: The word-frequency baseline (nats): cross-entropy of the validation text's masked
        tokens under the training stream's unigram distribution (``data.baseline_tokens``);
        ``val/gen_context_gain`` is measured from it. None: not measured (no validation data).
    """

    vocab_size: int
    pad_token_id: int
    max_seq_length: int
    max_predictions_per_seq: int
    tokenizer_sha256: str = ""
    unigram_ce: float | None = None

    def __post_init__(self):
        for name in ("vocab_size", "max_seq_length", "max_predictions_per_seq"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"model.contract.{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def of(cls, value: DataContract | dict) -> DataContract:
        """The contract itself, or rebuilt from a checkpoint's plain dict (unknown keys refused)."""
        if isinstance(value, cls):
            return value
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"model.contract: unknown field(s) {', '.join(unknown)}")
        return cls(**value)

    def as_dict(self) -> dict:
        return asdict(self)
