"""The stream of one shard (DDP rank × DataLoader worker): read its units, shuffle in blocks,
tokenize, pack, mask at batch time; every train batch carries the position just after it."""

from __future__ import annotations

import dataclasses
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from electra_lightning.common.errors import ShardError
from electra_lightning.data.packing import Example, ExamplePacker
from electra_lightning.data.sources import BadRecord, read_unit
from electra_lightning.data.units import Unit, assign_units, split_units
from electra_lightning.model.masking import MaskingConfig, mask_tokens

TOKENIZE_CHUNK_DOCS = 64
TOKENIZE_CHUNK_CHARS = 1 << 20  # ... or fewer documents, when they hold this much text
SHUFFLE_BLOCK_CHARS = 1 << 25  # a shuffle block ends here too (bounded memory for long documents)
DATA_POSITION_KEY = "data_position"  # a train batch's shard position (removed before the model)
BAD_RECORDS_NAMED = 3  # per file: the first are named with their reason, the rest counted
NOTICES_KEY = "data_notices"  # data warnings from a worker (printed once, removed before the model)

# ---------------------------------------------------------------------------------------------
# The dataset: one shard's stream of masked batches
# ---------------------------------------------------------------------------------------------


def attention_mask_of(batch: dict) -> torch.Tensor:
    """A pretraining batch's attention mask; a batch without padding carries none (all ones)."""
    mask = batch.get("attention_mask")
    return torch.ones_like(batch["input_ids"]) if mask is None else mask


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

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # noqa: BLE001 — any library error: the file is what is wrong
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise ValueError(
            f"data.tokenizer: cannot load '{os.path.join(path, 'tokenizer.json')}' "
            f"({type(err).__name__}: {first}); train a new one with `python -m "
            "electra_lightning tokenizer` or save it with save_pretrained()"
        ) from None
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


def shard_identity(rank: int = 0, world_size: int = 1, rotation: int = 0) -> tuple[int, int]:
    """(shard index, number of shards) for this process and DataLoader worker.

    The DataLoader takes batches from its workers in turn, starting with worker 0; ``rotation``
    shifts which shard worker 0 serves, so that a run resumed after ``k`` batches starts with the
    shard whose turn it was (shard ``k mod workers`` of this rank), as the uninterrupted run did.
    """
    info = get_worker_info()
    workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
    return rank * workers + (worker + rotation) % workers, world_size * workers


@dataclass(frozen=True)
class StreamConfig:
    """The ``data.*`` settings a stream reads, declared, defaulted and validated once: the
    defaults here are the only ones (``ElectraDataModule``'s signature reads them, as it reads
    the masking defaults from ``MaskingConfig``, and builds this from its arguments; see its
    docstring for each)."""

    max_seq_length: int = 128
    batch_size: int = 128
    single_segment_prob: float = 0.1
    text_field: str = "text"
    seed: int = 0
    on_bad_record: Literal["error", "skip"] = "error"
    shuffle: bool = True
    shuffle_block: int = 1024
    max_bad_records: int = 100

    def __post_init__(self):
        if self.max_bad_records < 0:
            raise ValueError(f"data.max_bad_records must be >= 0, got {self.max_bad_records}")
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.max_seq_length < 8:
            raise ValueError(f"data.max_seq_length must be >= 8, got {self.max_seq_length}")
        if not 0 <= self.single_segment_prob <= 1:
            raise ValueError(
                f"data.single_segment_prob must be in [0, 1], got {self.single_segment_prob}"
            )
        if self.shuffle_block < 1:
            raise ValueError(f"data.shuffle_block must be >= 1, got {self.shuffle_block}")
        if self.on_bad_record not in ("error", "skip"):
            raise ValueError(
                f"data.on_bad_record must be 'error' or 'skip', got {self.on_bad_record!r}"
            )


class BatchMasker:
    """Draws a batch's mask where the batch is built (as HF's ``DataCollatorForLanguageModeling``):
    ``masking`` validated by ``MaskingConfig``, the tokenizer's special and random-token ids fixed
    once; calling it is :func:`~electra_lightning.model.masking.mask_tokens`."""

    def __init__(self, masking: MaskingConfig, tokenizer: TokenizerInfo):
        self.masking = masking
        self.mask_id, self.vocab_size = tokenizer.mask_id, tokenizer.vocab_size
        self.special_ids = torch.tensor(tokenizer.special_ids)
        self.continuation = None  # whole-word masking: True for a word's non-first pieces
        if masking.whole_word:
            self.continuation = wordpiece_continuations(tokenizer)
        self.random_pool = None
        if masking.random_token_prob > 0:
            keep = torch.ones(tokenizer.vocab_size, dtype=torch.bool)
            keep[self.special_ids] = False
            self.random_pool = keep.nonzero().squeeze(-1)

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generator: torch.Generator
    ) -> dict:
        special = torch.isin(input_ids, self.special_ids) | (attention_mask == 0)
        word_starts = None if self.continuation is None else ~self.continuation[input_ids]
        return mask_tokens(
            input_ids,
            special,
            self.masking,
            self.mask_id,
            self.vocab_size,
            generator=generator,
            random_token_ids=self.random_pool,
            word_starts=word_starts,
        )


def wordpiece_continuations(tokenizer: TokenizerInfo) -> torch.Tensor:
    """``[vocab]`` bool: True for WordPiece pieces that continue a word (``##…``); a one-line
    error for a tokenizer that is not WordPiece (its words are marked otherwise)."""
    import json

    with open(os.path.join(tokenizer.path, "tokenizer.json"), encoding="utf-8") as f:
        model = json.load(f).get("model") or {}
    if model.get("type") != "WordPiece":
        raise ValueError(
            f"data.whole_word_masking needs a WordPiece tokenizer ('##' marks a word's pieces); "
            f"'{tokenizer.path}' is {model.get('type') or 'of an unknown kind'}"
        )
    prefix = model.get("continuing_subword_prefix") or "##"
    table = torch.zeros(tokenizer.vocab_size, dtype=torch.bool)
    for token, index in model.get("vocab", {}).items():
        if token.startswith(prefix) and index < tokenizer.vocab_size:
            table[index] = True
    return table


def _chars(doc: list[str] | BadRecord) -> int:
    return 0 if isinstance(doc, BadRecord) else sum(len(sentence) for sentence in doc)


def _take_block(reader: Iterator, max_items: int) -> list:
    """The next shuffle block of ``reader``'s items: ``max_items``, or fewer once they hold
    ``SHUFFLE_BLOCK_CHARS`` characters (the same items whatever the block is read for, so a
    resume rebuilds it exactly)."""
    items, chars = [], 0
    for item in reader:
        items.append(item)
        chars += _chars(item[2])
        if len(items) >= max_items or chars >= SHUFFLE_BLOCK_CHARS:
            break
    return items


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
        config: StreamConfig,
        masker: BatchMasker,
        *,
        endless: bool = True,
        rank: int = 0,
        world_size: int = 1,
        resume_positions: dict[int, dict] | None = None,
        rotation: int = 0,
        forward_notices: bool = False,
    ):
        super().__init__()
        # data warnings ride on the next batch (NOTICES_KEY) to the main process, which prints
        # each once per run, instead of once per worker and pass
        self.notices: list[tuple[str, str]] | None = [] if forward_notices else None
        self.sources, self.tokenizer, self.config, self.masker = sources, tokenizer, config, masker
        self.endless, self.rank, self.world_size = endless, rank, world_size
        self.resume_positions = resume_positions or {}
        self.rotation = rotation
        self._units: tuple[int, list[Unit]] | None = None
        self.skipped = 0  # bad records skipped by this shard so far (this run, all epochs)
        self.good_records = 0  # records read and trained on by this shard (this run)
        self._last_bad: BadRecord | None = None  # the latest skipped record, for messages
        self._bad_per_file: dict[str, int] = {}

    @classmethod
    def build(
        cls,
        sources: list[str],
        tokenizer: TokenizerInfo,
        masking: MaskingConfig | None = None,
        **settings,
    ) -> PretrainingStream:
        """A stream from keywords: ``StreamConfig``'s fields and the stream's own (``endless``,
        ``rank``, …) — for benchmarks and tests; ``ElectraDataModule`` builds its config once."""
        names = {f.name for f in dataclasses.fields(StreamConfig)}
        config = StreamConfig(**{k: v for k, v in settings.items() if k in names})
        masker = BatchMasker(masking or MaskingConfig(), tokenizer)
        own = {k: v for k, v in settings.items() if k not in names}
        return cls(sources, tokenizer, config, masker, **own)

    # -- stages ----------------------------------------------------------------------------------

    def shard_units(self, shard: int, num_shards: int, epoch: int) -> list[Unit]:
        """The units this shard reads in ``epoch``: a deterministic share of about 1/n of the
        corpus's bytes, dealt from a unit order shuffled per epoch (corpus order without shuffle)."""
        if self._units is None or self._units[0] != num_shards:
            self._units = (num_shards, split_units(self.sources, num_shards))
        seed = _seed_for(self.config.seed, epoch, 3) if self.config.shuffle else None
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

        Documents are read unit by unit in blocks of ``shuffle_block`` (or fewer, once a block
        holds ``SHUFFLE_BLOCK_CHARS`` of text) and each block is permuted by a generator seeded
        with (seed, epoch, shard, unit, block), so memory is bounded by one block and a resume
        re-reads only its block: it seeks to the block's first document.
        """
        units = self.shard_units(shard, num_shards, epoch)
        first_unit = position["unit"] if position else 0
        for u in range(first_unit, len(units)):
            resuming = position is not None and u == first_unit
            at = tuple(position["block_at"]) if resuming else None
            number = position["block"] if resuming else 0
            start_item = position["item"] if resuming else 0
            reader = read_unit(
                units[u], self.config.text_field, self.config.on_bad_record, at, self.notices
            )
            while True:
                items = _take_block(reader, self.config.shuffle_block)
                if not items:
                    break
                block = {"unit": u, "block_at": list(items[0][:2]), "block": number}
                order = list(range(len(items)))
                if self.config.shuffle:
                    seed = _seed_for(self.config.seed, epoch, shard, u, number, 4)
                    random.Random(seed).shuffle(order)
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

        chars = 0
        for block, index, _, doc in self._blocks(shard, num_shards, epoch, position):
            chunk.append((block, index, doc))
            chars += _chars(doc)
            if len(chunk) >= TOKENIZE_CHUNK_DOCS or chars >= TOKENIZE_CHUNK_CHARS:
                yield from encode(chunk)
                chunk, chars = [], 0
        if chunk:
            yield from encode(chunk)

    def new_packer(self, shard: int) -> ExamplePacker:
        return ExamplePacker(
            self.config.max_seq_length,
            self.tokenizer.cls_id,
            self.tokenizer.sep_id,
            self.tokenizer.pad_id,
            self.config.single_segment_prob,
            seed=_seed_for(self.config.seed, shard, 1),  # same examples every epoch; masks differ
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
                self._skip(sentences)
                continue
            self.good_records += 1
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
        attention_mask = (torch.arange(self.config.max_seq_length) < lengths[:, None]).long()
        masked = self.masker(input_ids, attention_mask, generator)
        batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, **masked}
        # Packed examples fill the sequence; only the stream's last batch may have padding. No
        # mask where there is none: the attention then checks nothing on the device (the model
        # and metrics read a missing mask as all ones).
        if bool((lengths < self.config.max_seq_length).any()):
            batch["attention_mask"] = attention_mask
        return batch

    def __iter__(self) -> Iterator[dict]:
        shard, num_shards = shard_identity(self.rank, self.world_size, self.rotation)
        resume = self.resume_positions.get(shard)
        if resume is not None and resume["num_shards"] != num_shards:
            raise ValueError(
                f"the checkpoint's data position was saved with {resume['num_shards']} shards "
                f"(devices × num_nodes × data.num_workers), this run has {num_shards}; resume with "
                "the same layout or set data.resume_position=false to restart the stream"
            )
        if not self.endless:
            yield from self._dealt_batches(shard, num_shards)
            return
        epoch = resume["epoch"] if resume else 0
        self.skipped = resume.get("skipped", 0) if resume else 0
        while True:
            batch_index = resume["batch"] if resume else 0
            position = resume["within_epoch"] if resume else None
            resume = None
            examples: list[Example] = []
            for example, after in self.examples(shard, num_shards, epoch, position):
                examples.append(example)
                if len(examples) == self.config.batch_size:
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
                    yield self._with_notices(batch)
            if batch_index == 0 and self._last_bad is not None and not self.good_records:
                bad = self._last_bad
                raise ValueError(
                    f"every record shard {shard}/{num_shards} read is bad ({self.skipped}; e.g. "
                    f"{bad.where}: {bad.reason}); check data.text_field "
                    f"('{self.config.text_field}') and the files"
                )
            if batch_index == 0:
                raise ShardError(
                    f"shard {shard}/{num_shards} (ranks × data.num_workers) of the corpus yields "
                    f"less than one batch of {self.config.batch_size} in epoch {epoch}: documents "
                    "are dealt to shards whole, and a .txt file without blank lines is one "
                    "document; separate documents with blank lines, or use more text, fewer "
                    "workers/devices or a smaller batch"
                )
            epoch += 1

    def _whole_pass(self) -> Iterator[dict]:
        """Validation: the whole stream's batches in order, the last one possibly short, each
        masked by (seed, batch index) alone, so the same batch whatever the shard layout."""
        examples: list[Example] = []
        index = 0
        for example, _ in self.examples(0, 1):
            examples.append(example)
            if len(examples) == self.config.batch_size:
                yield self._make_batch(examples, 0, 0, index)
                index += 1
                examples = []
        if examples:
            yield self._make_batch(examples, 0, 0, index)

    def _dealt_batches(self, shard: int, num_shards: int) -> Iterator[dict]:
        """Validation, dealt by batches, not documents: batch ``i`` of the whole stream goes to
        shard ``i mod n``, and every shard yields ``ceil(T / n)`` batches (``T`` in all), the
        missing ones taken again from the stream's start, as ``DistributedSampler`` pads. So
        every rank runs as many validation batches as the others whatever the documents' layout
        (one long document included): with DDP every forward is a collective (the buffers are
        broadcast), and a rank with fewer batches left the others waiting for the timeout.
        Each shard reads the stream up to its own batches (validation is finite and bounded by
        ``trainer.limit_val_batches``)."""
        total = 0
        for i, batch in enumerate(self._whole_pass()):
            total = i + 1
            if i % num_shards == shard:
                yield self._with_notices(batch)
        if not total:
            return
        taken = len(range(shard, total, num_shards))
        padding = [(shard + j * num_shards) % total for j in range(taken, -(-total // num_shards))]
        if padding:  # fewer than the others: the first batches again (at most one)
            for i, batch in enumerate(self._whole_pass()):
                if i in padding:
                    yield self._with_notices(batch)
                if i >= max(padding):
                    break

    def _skip(self, bad: BadRecord) -> None:
        """Count a skipped record; name the first few of each file, then only counts (10, 100,
        1000, …), and stop as soon as this reader alone skipped more than ``max_bad_records``."""
        self.skipped += 1
        self._last_bad = bad
        source = bad.where.rsplit(":", 1)[0]
        seen = self._bad_per_file[source] = self._bad_per_file.get(source, 0) + 1
        limit = self.config.max_bad_records
        if self.skipped > limit:
            every = " (every record read so far is bad)" if not self.good_records else ""
            raise ValueError(
                f"{self.skipped} bad records skipped, more than data.max_bad_records={limit}"
                f"{every}; the last: {bad.where}: {bad.reason}. Check data.text_field "
                f"('{self.config.text_field}') and the files, or raise data.max_bad_records"
            )
        if seen <= BAD_RECORDS_NAMED:
            print(
                f"warning: skipped bad record {bad.where}: {bad.reason} (data.on_bad_record=skip"
                f"{'; more from this file are counted, not named' if seen == BAD_RECORDS_NAMED else ''})",
                file=sys.stderr,
                flush=True,
            )
        elif seen >= 10 and str(seen).rstrip("0") == "1":  # 10, 100, 1000, ...
            print(f"warning: {source}: {seen} bad records skipped so far", file=sys.stderr)

    def _with_notices(self, batch: dict) -> dict:
        if self.notices:
            batch[NOTICES_KEY] = list(self.notices)
            self.notices.clear()
        return batch

    def _make_batch(self, examples: list[Example], epoch: int, shard: int, index: int) -> dict:
        seed = _seed_for(self.config.seed, epoch, shard, index, 2)
        generator = torch.Generator().manual_seed(seed)
        return self.collate(examples, generator)
