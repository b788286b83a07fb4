"""Streaming pretraining data: read documents, shard them, tokenize, pack, mask at batch time.

The pipeline for one shard (one DDP rank × DataLoader worker):

    files ──read──▶ documents (lists of sentences) ──keep every k-th──▶ tokenize
          ──pack──▶ fixed-length [CLS] A [SEP] B [SEP] examples ──batch──▶ mask ──▶ model

Documents are assigned round-robin to ``ranks × workers`` shards, so every document is read by
exactly one shard. Nothing holds more than a tokenization chunk and one batch in memory; long lines
are read in bounded pieces.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from electra_lightning.callbacks import ignore_stop_signals
from electra_lightning.checkpoint import from_all_ranks, read_tokenizer_files
from electra_lightning.masking import MaskingConfig, mask_tokens
from electra_lightning.sources import (  # noqa: F401 (re-exported: the data pipeline's readers)
    HUB_PREFIX,
    JSONL_SUFFIXES,
    MAX_DOC_CHARS,
    MAX_DOC_SENTENCES,
    MAX_LINE_CHARS,
    PARQUET_SUFFIXES,
    SUFFIXES,
    TEXT_SUFFIXES,
    BadRecord,
    BadRecordError,
    Unit,
    assign_units,
    read_documents,
    read_unit,
    resolve_sources,
    split_units,
)

TOKENIZE_CHUNK_DOCS = 64
DATA_POSITION_KEY = "data_position"  # a train batch's shard position (removed before the model)
DATA_STATE_VERSION = 2  # 2: positions name a unit and a block (seekable); 1: a document index


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
    single_segment_prob: float = 0.1
    seed: int = 0
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


# ---------------------------------------------------------------------------------------------
# The dataset: one shard's stream of masked batches
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenizerInfo:
    """What the pipeline needs to know about the tokenizer (picklable for workers)."""

    path: str
    vocab_size: int
    cls_id: int
    sep_id: int
    pad_id: int
    mask_id: int
    special_ids: tuple[int, ...]


def load_tokenizer_info(path: str) -> TokenizerInfo:
    """Load a tokenizer directory and check it has the special tokens ELECTRA needs."""
    if not os.path.isdir(path):
        raise ValueError(
            f"data.tokenizer: '{path}' is not a directory; train one with "
            "`python -m electra_lightning tokenizer --files ... --output_dir DIR`"
        )
    if not os.path.isfile(os.path.join(path, "tokenizer.json")):
        raise ValueError(
            f"data.tokenizer: '{path}' has no tokenizer.json (a fast tokenizer is required); "
            "save it with save_pretrained() from a fast tokenizer"
        )
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    missing = [
        name
        for name in ("cls_token", "sep_token", "pad_token", "mask_token")
        if getattr(tok, name, None) is None or getattr(tok, f"{name}_id", None) is None
    ]
    if missing:
        raise ValueError(
            f"data.tokenizer: '{path}' defines no {', '.join(missing)} "
            "(ELECTRA needs [CLS], [SEP], [PAD] and [MASK])"
        )
    return TokenizerInfo(
        path=str(path),
        vocab_size=len(tok),
        cls_id=tok.cls_token_id,
        sep_id=tok.sep_token_id,
        pad_id=tok.pad_token_id,
        mask_id=tok.mask_token_id,
        special_ids=tuple(sorted(set(tok.all_special_ids))),
    )


def shard_identity(rank: int = 0, world_size: int = 1) -> tuple[int, int]:
    """(shard index, number of shards) for this process and DataLoader worker."""
    info = get_worker_info()
    workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
    return rank * workers + worker, world_size * workers


def _seed_for(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class PretrainingStream(IterableDataset):
    """Masked batches from one shard of the corpus, endless (train) or one pass (validation).

    Train: epoch after epoch over the corpus; the same example is masked afresh in every epoch.
    Every train batch carries ``batch[DATA_POSITION_KEY]``, its shard's position just after it
    (epoch, document, sentence, the packer's carry-over and RNG); given back as
    ``resume_positions`` the shard continues exactly there. Masks are a pure function of
    (seed, epoch, shard, batch index), so they need no state.
    Validation (``endless=False``): one pass, masked with a fixed seed, identical every time.
    """

    def __init__(
        self,
        sources: list[str],
        tokenizer: TokenizerInfo,
        max_seq_length: int,
        batch_size: int,
        masking: MaskingConfig,
        single_segment_prob: float = 0.1,
        text_field: str = "text",
        seed: int = 0,
        endless: bool = True,
        rank: int = 0,
        world_size: int = 1,
        resume_positions: dict[int, dict] | None = None,
        on_bad_record: str = "error",
        shuffle: bool = False,
        shuffle_block: int = 1024,
    ):
        super().__init__()
        if shuffle_block < 1:
            raise ValueError(f"data.shuffle_block must be >= 1, got {shuffle_block}")
        self.on_bad_record = on_bad_record
        self.shuffle = shuffle
        self.shuffle_block = shuffle_block
        self._units: tuple[int, list[Unit]] | None = None
        self.skipped = 0  # bad records skipped by this shard so far (this run, all epochs)
        self.resume_positions = resume_positions or {}
        # fixed per stream, used by every batch
        self.special_ids = torch.tensor(tokenizer.special_ids)
        self.random_pool = None
        if masking.random_token_prob > 0:
            keep = torch.ones(tokenizer.vocab_size, dtype=torch.bool)
            keep[self.special_ids] = False
            self.random_pool = keep.nonzero().squeeze(-1)
        self.sources = sources
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.masking = masking
        self.single_segment_prob = single_segment_prob
        self.text_field = text_field
        self.seed = seed
        self.endless = endless
        self.rank = rank
        self.world_size = world_size

    # -- stages ----------------------------------------------------------------------------------

    def shard_units(self, shard: int, num_shards: int, epoch: int) -> list[Unit]:
        """The units this shard reads in ``epoch``: a deterministic share of about 1/n of the
        corpus's bytes, dealt from a unit order shuffled per epoch (corpus order without shuffle)."""
        if self._units is None or self._units[0] != num_shards:
            self._units = (num_shards, split_units(self.sources, num_shards))
        seed = _seed_for(self.seed, epoch, 3) if self.shuffle else None
        return assign_units(self._units[1], num_shards, seed)[shard]

    def shard_documents(
        self, shard: int, num_shards: int, epoch: int = 0
    ) -> Iterator[list[str] | BadRecord]:
        """This shard's documents for one epoch, in the order it trains on them."""
        for _, _, _, doc in self._blocks(shard, num_shards, epoch, None):
            yield doc

    def _blocks(
        self, shard: int, num_shards: int, epoch: int, position: dict | None
    ) -> Iterator[tuple[dict, int, int, list[str] | BadRecord]]:
        """(block, index in the block, the index to resume at, document) in training order.

        Documents are read unit by unit in blocks of ``shuffle_block`` and each block is permuted
        by a generator seeded with (seed, epoch, shard, unit, block), so memory is bounded by one
        block and a resume re-reads only its block: it seeks to the block's first document.
        """
        units = self.shard_units(shard, num_shards, epoch)
        first_unit = position["unit"] if position else 0
        for u in range(first_unit, len(units)):
            resuming = position is not None and u == first_unit
            at = tuple(position["block_at"]) if resuming else None
            number = position["block"] if resuming else 0
            start_item = position["item"] if resuming else 0
            reader = read_unit(units[u], self.text_field, self.on_bad_record, at)
            while True:
                items = list(itertools.islice(reader, self.shuffle_block))
                if not items:
                    break
                block = {"unit": u, "block_at": list(items[0][:2]), "block": number}
                order = list(range(len(items)))
                if self.shuffle:
                    random.Random(_seed_for(self.seed, epoch, shard, u, number, 4)).shuffle(order)
                for i in range(start_item, len(order)):
                    yield block, i, start_item, items[order[i]][2]
                start_item = 0
                number += 1

    def tokenized_documents(
        self, shard: int, num_shards: int, epoch: int, position: dict | None
    ) -> Iterator[tuple[dict, int, list[list[int]] | BadRecord]]:
        """This shard's documents from ``position`` on, tokenized in chunks (one Rust call each)."""
        from tokenizers import Tokenizer

        encoder = Tokenizer.from_file(os.path.join(self.tokenizer.path, "tokenizer.json"))
        chunk: list[tuple[dict, int, list[str] | BadRecord]] = []

        def encode(chunk):
            docs = [doc for _, _, doc in chunk if not isinstance(doc, BadRecord)]
            flat = [sentence for doc in docs for sentence in doc]
            encoded = encoder.encode_batch(flat, add_special_tokens=False)
            offset = 0
            for block, index, doc in chunk:
                if isinstance(doc, BadRecord):
                    yield block, index, doc
                    continue
                yield block, index, [enc.ids for enc in encoded[offset : offset + len(doc)]]
                offset += len(doc)

        for block, index, _, doc in self._blocks(shard, num_shards, epoch, position):
            chunk.append((block, index, doc))
            if len(chunk) >= TOKENIZE_CHUNK_DOCS:
                yield from encode(chunk)
                chunk = []
        if chunk:
            yield from encode(chunk)

    def new_packer(self, shard: int) -> ExamplePacker:
        return ExamplePacker(
            self.max_seq_length,
            self.tokenizer.cls_id,
            self.tokenizer.sep_id,
            self.tokenizer.pad_id,
            self.single_segment_prob,
            seed=_seed_for(self.seed, shard, 1),  # same examples every epoch; masks differ
        )

    def examples(
        self, shard: int, num_shards: int, epoch: int = 0, position: dict | None = None
    ) -> Iterator[tuple[Example, dict]]:
        """One pass (epoch) of packed examples, each with the position just after it.

        ``position`` (from an earlier pass) continues mid-pass: the reader seeks to the position's
        block, the packer's carry-over and RNG are restored. The tail is flushed at the end.
        """
        packer = self.new_packer(shard)
        start_sentence = 0
        if position is not None:
            packer.load_state_dict(position["packer"])
            start_sentence = position["sentence"]
            for example in packer.drain():
                yield example, {**position, "packer": packer.state_dict()}
        first = True
        for block, index, sentences in self.tokenized_documents(shard, num_shards, epoch, position):
            begin = start_sentence if first and position is not None else 0
            first = False
            if isinstance(sentences, BadRecord):
                self.skipped += 1
                print(
                    f"warning: skipped bad record {sentences.where}: {sentences.reason} "
                    f"(data.on_bad_record=skip; {self.skipped} skipped by this reader)",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            for i in range(begin, len(sentences)):
                for example in packer.add_sentence(sentences[i], i == len(sentences) - 1):
                    yield (
                        example,
                        {
                            **block,
                            "item": index,
                            "sentence": i + 1,
                            "packer": packer.state_dict(),
                        },
                    )
        end = {"unit": -1, "packer": None}
        for example in packer.flush():
            yield example, end

    def collate(self, examples: list[Example], generator: torch.Generator) -> dict:
        """Stack examples and draw a fresh mask."""
        input_ids = torch.from_numpy(np.stack([e.input_ids for e in examples])).long()
        token_type_ids = torch.from_numpy(np.stack([e.token_type_ids for e in examples])).long()
        lengths = torch.tensor([e.length for e in examples])
        attention_mask = (torch.arange(self.max_seq_length) < lengths[:, None]).long()
        special = torch.isin(input_ids, self.special_ids) | (attention_mask == 0)
        masked = mask_tokens(
            input_ids,
            special,
            self.masking,
            self.tokenizer.mask_id,
            self.tokenizer.vocab_size,
            generator=generator,
            random_token_ids=self.random_pool,
        )
        return {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            **masked,
        }

    def __iter__(self) -> Iterator[dict]:
        shard, num_shards = shard_identity(self.rank, self.world_size)
        resume = self.resume_positions.get(shard)
        if resume is not None and resume["num_shards"] != num_shards:
            raise ValueError(
                f"the checkpoint's data position was saved with {resume['num_shards']} shards "
                f"(devices × num_nodes × data.num_workers), this run has {num_shards}; resume with "
                "the same layout or set data.resume_position=false to restart the stream"
            )
        epoch = resume["epoch"] if resume else 0
        self.skipped = resume.get("skipped", 0) if resume else 0
        while True:
            batch_index = resume["batch"] if resume else 0
            position = resume["within_epoch"] if resume else None
            resume = None
            examples: list[Example] = []
            for example, after in self.examples(shard, num_shards, epoch, position):
                examples.append(example)
                if len(examples) == self.batch_size:
                    batch = self._make_batch(examples, epoch, shard, batch_index)
                    batch_index += 1
                    examples = []
                    if self.endless:
                        done = after["unit"] < 0  # the pass's last examples: next is a new epoch
                        batch[DATA_POSITION_KEY] = {
                            "shard": shard,
                            "num_shards": num_shards,
                            "epoch": epoch + 1 if done else epoch,
                            "batch": 0 if done else batch_index,
                            "within_epoch": None if done else after,
                            "skipped": self.skipped,
                        }
                    yield batch
            if examples and not self.endless:
                yield self._make_batch(examples, epoch, shard, batch_index)
            if not self.endless:
                return
            if batch_index == 0:
                raise ValueError(
                    f"shard {shard}/{num_shards} of the corpus yields less than one batch of "
                    f"{self.batch_size}; use more text, fewer workers/devices or a smaller batch"
                )
            epoch += 1

    def _make_batch(self, examples: list[Example], epoch: int, shard: int, index: int) -> dict:
        generator = torch.Generator().manual_seed(_seed_for(self.seed, epoch, shard, index, 2))
        return self.collate(examples, generator)


# ---------------------------------------------------------------------------------------------
# The LightningDataModule
# ---------------------------------------------------------------------------------------------


class ElectraDataModule(L.LightningDataModule):
    """Streams a text corpus, packs it and masks it dynamically for ELECTRA pretraining.

    Args:
        train_files: Text (.txt, blank line = document break), JSONL or parquet files, directories,
            globs, or ``hub:name[:config][@split]`` for a Hugging Face Hub dataset (online).
        val_files: Held-out text in the same forms; validation is masked with a fixed seed.
        tokenizer: A local Hugging Face fast-tokenizer directory (see ``electra_lightning tokenizer``).
        max_seq_length: Tokens per example, [CLS]/[SEP] included.
        batch_size: Examples per device and step.
        mask_prob: Fraction of non-special tokens the generator predicts (official: 0.15; Large 0.25).
        mask_token_prob: Of the predicted tokens, the fraction replaced by [MASK] (official: 0.85).
        random_token_prob: Of the predicted tokens, the fraction replaced by a random token
            (official: 0; BERT's 80/10/10 is mask_token_prob=0.8, random_token_prob=0.1).
        max_predictions_per_seq: Cap on predicted tokens per example; default
            ``int((mask_prob + 0.005) * max_seq_length)`` as official.
        single_segment_prob: Fraction of examples with one segment instead of A/B (official: 0.1).
        text_field: Column/field holding the text in JSONL, parquet and hub data.
        num_workers: DataLoader worker processes per device (each reads its own shard).
        seed: Seeds packing and masking; the stream is a function of it.
        resume_position: On ``--ckpt_path``, continue the stream where the checkpoint left it
            (every shard's document, carry-over and RNG). False restarts the stream.
        on_bad_record: A record without usable text (broken JSONL line, missing field, parquet
            null): ``error`` stops with ``file:line``; ``skip`` skips it with a warning naming
            ``file:line``, counts it (``train/skipped_records``, kept in checkpoints) and stays
            deterministic, so a resumed run skips the same records.
        max_bad_records: With ``skip``: stop once more than this many records were skipped (all
            ranks together; a record is counted again each epoch).
        shuffle: Shuffle the training stream, deterministically from (seed, epoch): the order of
            the corpus pieces (files, byte ranges, row groups) every epoch, and documents within
            blocks of ``shuffle_block``. False keeps corpus order. Validation is never shuffled.
        shuffle_block: Documents shuffled together (memory is bounded by one block; a resume
            re-reads only the current block).
    """

    def __init__(
        self,
        train_files: str | list[str],
        tokenizer: str,
        val_files: str | list[str] | None = None,
        max_seq_length: int = 128,
        batch_size: int = 128,
        mask_prob: float = 0.15,
        mask_token_prob: float = 0.85,
        random_token_prob: float = 0.0,
        max_predictions_per_seq: int | None = None,
        single_segment_prob: float = 0.1,
        text_field: str = "text",
        num_workers: int = 2,
        seed: int = 0,
        resume_position: bool = True,
        on_bad_record: Literal["error", "skip"] = "error",
        max_bad_records: int = 100,
        shuffle: bool = True,
        shuffle_block: int = 1024,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)  # the CLI logs the whole config once
        self.positions: dict[int, dict] = {}  # shard → position after its last trained batch
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if max_seq_length < 8:
            raise ValueError(f"data.max_seq_length must be >= 8, got {max_seq_length}")
        if not 0 <= single_segment_prob <= 1:
            raise ValueError(
                f"data.single_segment_prob must be in [0, 1], got {single_segment_prob}"
            )
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
        if shuffle_block < 1:
            raise ValueError(f"data.shuffle_block must be >= 1, got {shuffle_block}")
        if max_bad_records < 0:
            raise ValueError(f"data.max_bad_records must be >= 0, got {max_bad_records}")
        self.masking = MaskingConfig(
            mask_prob, mask_token_prob, random_token_prob, max_predictions_per_seq
        )
        self.tokenizer_info = load_tokenizer_info(tokenizer)
        self.train_sources = resolve_sources(train_files, "data.train_files")
        self.val_sources = resolve_sources(val_files, "data.val_files") if val_files else []

    def setup(self, stage: str) -> None:
        """Leave the run's own output out of its input (see :func:`exclude_outputs`)."""
        if self.trainer is not None:
            outputs = output_directories(self.trainer)
            self.train_sources = exclude_outputs(self.train_sources, outputs, "data.train_files")
            self.val_sources = exclude_outputs(self.val_sources, outputs, "data.val_files")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer_info.vocab_size

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer_info.pad_id

    def tokenizer_files(self) -> dict[str, str]:
        """The tokenizer's files, to store in checkpoints (for export)."""
        return read_tokenizer_files(self.tokenizer_info.path)

    # -- data position: saved in checkpoints, restored on resume --------------------------------

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Record the position of the batch about to be trained on (train batches only)."""
        position = batch.pop(DATA_POSITION_KEY, None)
        if position is not None:
            self.positions[position["shard"]] = position
        return batch

    def skipped_records(self) -> int:
        """Bad records skipped so far by this rank's shards (``data.on_bad_record: skip``)."""
        return sum(position.get("skipped", 0) for position in self.positions.values())

    def check_skipped_records(self, total: int) -> None:
        """Stop once more than ``max_bad_records`` were skipped (``total``: all ranks)."""
        if total > self.hparams.max_bad_records:
            raise ValueError(
                f"{total} bad records skipped, more than data.max_bad_records="
                f"{self.hparams.max_bad_records}; fix the corpus (the warnings name each "
                "file:line) or raise data.max_bad_records"
            )

    def _fingerprint(self) -> dict:
        hp = self.hparams
        return {
            "sources": list(self.train_sources),
            "sizes": [
                os.path.getsize(s) if os.path.isfile(s) else None for s in self.train_sources
            ],
            "shuffle": hp.shuffle,
            "shuffle_block": hp.shuffle_block,
            "max_seq_length": hp.max_seq_length,
            "batch_size": hp.batch_size,
            "single_segment_prob": hp.single_segment_prob,
            "seed": hp.seed,
            "vocab_size": self.vocab_size,
        }

    def state_dict(self) -> dict:
        positions = {k: v for part in from_all_ranks(self.positions) for k, v in part.items()}
        return {
            "version": DATA_STATE_VERSION,
            "fingerprint": self._fingerprint(),
            "positions": positions,
        }

    def load_state_dict(self, state: dict) -> None:
        if not self.hparams.resume_position:
            return
        version = state.get("version")
        if version != DATA_STATE_VERSION:
            raise ValueError(
                f"the checkpoint's data position has format version {version}, this code reads "
                f"{DATA_STATE_VERSION}; set data.resume_position=false to restart the stream"
            )
        saved, now = state["fingerprint"], self._fingerprint()
        changed = [k for k in now if saved.get(k) != now[k]]
        if changed:
            raise ValueError(
                f"the data settings differ from the checkpoint's ({', '.join(changed)}), so its "
                "stream position does not apply; restore them or set data.resume_position=false"
            )
        positions = {int(k): v for k, v in state["positions"].items()}
        saved_shards = {p["num_shards"] for p in positions.values()}
        trainer = self.trainer
        if saved_shards and trainer is not None:
            shards = trainer.world_size * max(1, self.hparams.num_workers)
            if saved_shards != {shards}:  # checked on every rank, before any collective
                raise ValueError(
                    f"the checkpoint's data position was saved with {saved_shards.pop()} shards "
                    f"(devices × num_nodes × data.num_workers), this run has {shards}; resume "
                    "with the same layout or set data.resume_position=false to restart the stream"
                )
        self.positions = positions

    def _stream(self, sources: list[str], endless: bool) -> PretrainingStream:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        hp = self.hparams
        return PretrainingStream(
            sources,
            self.tokenizer_info,
            hp.max_seq_length,
            hp.batch_size,
            self.masking,
            hp.single_segment_prob,
            hp.text_field,
            seed=hp.seed,
            endless=endless,
            rank=rank,
            world_size=world,
            resume_positions=self.positions if endless else None,
            on_bad_record=hp.on_bad_record,
            shuffle=hp.shuffle and endless,  # validation: always the same order
            shuffle_block=hp.shuffle_block,
        )

    def _loader(self, dataset: PretrainingStream) -> DataLoader:
        workers = self.hparams.num_workers
        if workers:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=workers,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
            prefetch_factor=4 if workers else None,
            # its own generator: creating workers must not draw from the global RNG, or a
            # resumed run's dropout/sampling would diverge from an uninterrupted one
            generator=torch.Generator().manual_seed(self.hparams.seed),
            worker_init_fn=ignore_stop_signals if workers else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._stream(self.train_sources, endless=True))

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_sources:
            return []
        return self._loader(self._stream(self.val_sources, endless=False))


def output_directories(trainer: L.Trainer) -> list[str]:
    """Where this run writes: checkpoint directories and each logger's run folders (CSV and
    TensorBoard ``save_dir/name``, W&B ``save_dir/wandb``)."""
    directories = [getattr(c, "dirpath", None) for c in trainer.checkpoint_callbacks]
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            directories.append(os.path.join(logger.save_dir or ".", "wandb"))
        elif getattr(logger, "root_dir", None):
            directories.append(logger.root_dir)
    return [os.path.abspath(d) for d in directories if d]


def exclude_outputs(sources: list[str], outputs: list[str], field_name: str) -> list[str]:
    """``sources`` without files inside the run's output directories: a corpus directory or glob
    that holds the run's logs (W&B's ``requirements.txt`` and ``*.json``) or checkpoints must not
    read them back as text on the next run. A warning names what was left out."""

    def under(path: str, directory: str) -> bool:
        path = os.path.abspath(path)
        return path == directory or path.startswith(directory + os.sep)

    hit = {s: [d for d in outputs if under(s, d)] for s in sources if not s.startswith(HUB_PREFIX)}
    kept = [s for s in sources if not hit.get(s)]
    left_out = len(sources) - len(kept)
    if left_out:
        where = sorted({d for dirs in hit.values() for d in dirs})
        print(
            f"warning: {field_name}: left out {left_out} file(s) inside this run's output "
            f"directories ({', '.join(where)}); keep outputs outside the corpus",
            file=sys.stderr,
        )
        if not kept:
            raise ValueError(
                f"{field_name}: every file is inside this run's output directories "
                f"({', '.join(outputs)}); point it at your corpus"
            )
    return kept
