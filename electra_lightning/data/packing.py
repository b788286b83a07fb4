"""Packing: tokenized sentences → fixed-length ``[CLS] A [SEP] B [SEP]`` examples."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------
# Packing: sentences → fixed-length [CLS] A [SEP] B [SEP] examples
# ---------------------------------------------------------------------------------------------


@dataclass
class Example:
    input_ids: np.ndarray  # [L] int32, padded with pad id only at the very end of a stream
    token_type_ids: np.ndarray  # [L] int8
    length: int  # real tokens (the rest is padding)


@dataclass
class ExamplePacker:
    """Packs tokenized sentences into examples the way official ``build_pretraining_dataset.py`` does.

    Segment A takes whole sentences up to about half the example (with 50% chance one more that
    overflows it, as official); segment B fills the example to exactly ``max_seq_length``. A
    document boundary ends segment A. With ``single_segment_prob`` (official: 0.1) an example has
    one segment of the whole length, like a classification input.

    Unlike the official builder, tokens that do not fit are carried into the next example instead
    of being dropped, and examples are never short: padding appears only in the example that
    :meth:`flush` returns at the end of the stream.
    """

    max_seq_length: int
    cls_id: int
    sep_id: int
    pad_id: int
    single_segment_prob: float  # no defaults here: the stream passes data.* (StreamConfig's)
    seed: int
    pending: list[tuple[list[int], bool]] = field(default_factory=list)  # (tokens, ends_document)
    pending_tokens: int = 0

    def __post_init__(self):
        if self.max_seq_length < 8:
            raise ValueError(
                f"max_seq_length must be >= 8, got {self.max_seq_length} (data.max_seq_length)"
            )
        self.rng = random.Random(self.seed)
        self._choose_layout()

    def _choose_layout(self) -> None:
        self.single = self.rng.random() < self.single_segment_prob
        self.budget = self.max_seq_length - (2 if self.single else 3)

    def add_sentence(self, tokens: list[int], ends_document: bool) -> Iterator[Example]:
        """Queue one tokenized sentence; yield every example that is now complete."""
        if tokens:
            self.pending.append((list(tokens), ends_document))
            self.pending_tokens += len(tokens)
        elif ends_document and self.pending:
            self.pending[-1] = (self.pending[-1][0], True)
        yield from self.drain()

    def add_document(self, sentences: Iterable[list[int]]) -> Iterator[Example]:
        sentences = list(sentences)
        for i, tokens in enumerate(sentences):
            yield from self.add_sentence(tokens, i == len(sentences) - 1)

    def drain(self) -> Iterator[Example]:
        """Yield full examples while enough tokens are queued."""
        while self.pending_tokens >= self.budget:
            yield self._create_example()

    def state_dict(self) -> dict:
        """Carry-over tokens, layout and RNG: enough to continue the packing exactly."""
        version, internal, gauss = self.rng.getstate()
        return {
            "pending": [[tokens, ends] for tokens, ends in self.pending],
            "single": self.single,
            "rng": [version, list(internal), gauss],
        }

    def load_state_dict(self, state: dict) -> None:
        self.pending = [(list(tokens), bool(ends)) for tokens, ends in state["pending"]]
        self.pending_tokens = sum(len(tokens) for tokens, _ in self.pending)
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.single = bool(state["single"])
        self.budget = self.max_seq_length - (2 if self.single else 3)

    def flush(self) -> Iterator[Example]:
        """End of stream: emit what is left (the only padded examples)."""
        while self.pending_tokens > 0:
            yield self._create_example()

    def _take(self, n: int) -> list[int]:
        """Remove the first ``n`` tokens from ``pending``."""
        out: list[int] = []
        while n > 0 and self.pending:
            tokens, ends_doc = self.pending[0]
            if len(tokens) <= n:
                out.extend(tokens)
                self.pending.pop(0)
                n -= len(tokens)
            else:
                out.extend(tokens[:n])
                self.pending[0] = (tokens[n:], ends_doc)
                n = 0
        self.pending_tokens -= len(out)
        return out

    def _create_example(self) -> Example:
        budget = min(self.budget, self.pending_tokens)
        if self.single:
            first, second = self._take(budget), []
        else:
            target_a = self.budget // 2
            len_a = 0
            for i, (tokens, ends_doc) in enumerate(self.pending):
                if i == 0 or len_a + len(tokens) < target_a:
                    len_a += len(tokens)
                elif len_a < target_a and self.rng.random() < 0.5:
                    len_a += len(tokens)  # official: half the time A takes the overflowing sentence
                    break
                else:
                    break
                if ends_doc or len_a >= target_a:
                    break
            # A leaves at least one token for B when there is more than one token to place.
            len_a = min(len_a, budget - 1) if budget > 1 else budget
            first = self._take(len_a)
            second = self._take(budget - len_a)
        self._choose_layout()
        return self._assemble(first, second)

    def _assemble(self, first: list[int], second: list[int]) -> Example:
        ids = [self.cls_id, *first, self.sep_id]
        types = [0] * len(ids)
        if second:
            ids += [*second, self.sep_id]
            types += [1] * (len(second) + 1)
        length = len(ids)
        pad = self.max_seq_length - length
        input_ids = np.asarray(ids + [self.pad_id] * pad, dtype=np.int32)
        token_type_ids = np.asarray(types + [0] * pad, dtype=np.int8)
        return Example(input_ids, token_type_ids, length)
