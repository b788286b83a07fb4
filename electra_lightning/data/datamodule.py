"""Streaming pretraining data: read documents, shard them, tokenize, pack, mask at batch time.

The pipeline for one shard (one DDP rank × DataLoader worker):

    units ──read──▶ documents (lists of sentences) ──shuffle in blocks──▶ tokenize
          ──pack──▶ fixed-length [CLS] A [SEP] B [SEP] examples ──batch──▶ mask ──▶ model

The stages live in ``sources`` (units and readers), ``packing`` and ``stream`` (one shard's
batches and its resumable position); this module is the ``LightningDataModule`` that connects
them to the trainer and to checkpoints. Every shard reads only its own units, and nothing holds
more than a shuffle block and one batch in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import sys
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader

from electra_lightning.common.checkpoint import from_all_ranks, read_tokenizer_files
from electra_lightning.data.contract import DataContract

# ExamplePacker and read_documents are re-exported: the pipeline's names, importable from here
from electra_lightning.data.packing import ExamplePacker  # noqa: F401
from electra_lightning.data.sources import (  # noqa: F401
    HUB_PREFIX,
    PARQUET_SUFFIXES,
    open_hub,
    read_documents,
    resolve_sources,
    warn_once,
)
from electra_lightning.data.stream import (
    DATA_POSITION_KEY,
    NOTICES_KEY,
    BatchMasker,
    PretrainingStream,
    StreamConfig,
    load_tokenizer_info,
)
from electra_lightning.data.workers import ignore_stop_signals
from electra_lightning.model.baselines import FrequencyBaseline, frequency_baseline
from electra_lightning.model.masking import MaskingConfig

DATA_STATE_VERSION = 2  # 2: positions name a unit and a block (seekable); 1: a document index

# ---------------------------------------------------------------------------------------------
# The LightningDataModule
# ---------------------------------------------------------------------------------------------


class ElectraDataModule(L.LightningDataModule):
    """Streams a text corpus, packs it and masks it dynamically for ELECTRA pretraining.

    This signature is the ``data.*`` options; each default is written once, where it is used: the
    stream's settings default to :class:`~electra_lightning.data.stream.StreamConfig`'s fields
    and the masking ones to :class:`~electra_lightning.model.masking.MaskingConfig`'s (read from
    there: ``batch_size: int = StreamConfig.batch_size``); the rest (workers, resume, baseline)
    are this module's own and defaulted here.

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
        whole_word_masking: Mask all WordPiece pieces of a chosen word together (the same
            fraction and cap; off by default: the official code masks pieces independently).
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
        baseline_tokens: Training tokens (from the start of the shuffled stream, one pass at most)
            counted at start-up for the word-frequency baseline that ``val/gen_context_gain`` is
            measured from (scored on up to ``baseline_tokens // 20`` masked validation tokens).
            0: no baseline, no ``val/gen_context_gain``. See ``electra_lightning.model.baselines``.
    """

    def __init__(
        self,
        train_files: str | list[str],
        tokenizer: str,
        val_files: str | list[str] | None = None,
        max_seq_length: int = StreamConfig.max_seq_length,
        batch_size: int = StreamConfig.batch_size,
        mask_prob: float = MaskingConfig.mask_prob,
        mask_token_prob: float = MaskingConfig.mask_token_prob,
        random_token_prob: float = MaskingConfig.random_token_prob,
        max_predictions_per_seq: int | None = MaskingConfig.max_predictions_per_seq,
        whole_word_masking: bool = MaskingConfig.whole_word,
        single_segment_prob: float = StreamConfig.single_segment_prob,
        text_field: str = StreamConfig.text_field,
        num_workers: int = 2,
        seed: int = StreamConfig.seed,
        resume_position: bool = True,
        on_bad_record: Literal["error", "skip"] = StreamConfig.on_bad_record,
        max_bad_records: int = StreamConfig.max_bad_records,
        shuffle: bool = StreamConfig.shuffle,
        shuffle_block: int = StreamConfig.shuffle_block,
        baseline_tokens: int = 1_000_000,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)  # the CLI logs the whole config once
        self.positions: dict[int, dict] = {}  # shard → position after its last trained batch
        self.batches_trained = 0  # train batches this rank took (all ranks take as many)
        # the stream's settings, validated once; the stream reads them from here
        # (its fields are this module's arguments of the same names, defaulted from them)
        self.stream_config = StreamConfig(
            **{f.name: self.hparams[f.name] for f in dataclasses.fields(StreamConfig)}
        )
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
        if baseline_tokens < 0:
            raise ValueError(f"data.baseline_tokens must be >= 0, got {baseline_tokens}")
        self._baseline: FrequencyBaseline | None = None
        self._baseline_done = False  # computed once, also when there is none
        self.masking = MaskingConfig(
            mask_prob,
            mask_token_prob,
            random_token_prob,
            max_predictions_per_seq,
            whole_word=whole_word_masking,
        )
        self.tokenizer_info = load_tokenizer_info(tokenizer)
        self.train_sources = resolve_sources(train_files, "data.train_files")
        self.val_sources = resolve_sources(val_files, "data.val_files") if val_files else []
        # each hub: source opened once here, before a logger or worker starts: an unreachable
        # one is one line, not a worker's traceback
        for field_name, sources in (
            ("data.train_files", self.train_sources),
            ("data.val_files", self.val_sources),
        ):
            for source in sources:
                if source.startswith(HUB_PREFIX):
                    open_hub(source, field_name)
        import_for_workers(self.train_sources + self.val_sources)

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

    @property
    def contract(self) -> DataContract:
        """What the model must know about this data; the CLI links it into ``model.contract``."""
        seq = self.hparams.max_seq_length
        with open(os.path.join(self.tokenizer_info.path, "tokenizer.json"), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        return DataContract(
            vocab_size=self.tokenizer_info.vocab_size,
            pad_token_id=self.tokenizer_info.pad_id,
            max_seq_length=seq,
            max_predictions_per_seq=self.masking.max_predictions(seq),
            tokenizer_sha256=digest,
            unigram_ce=baseline.unigram_ce if (baseline := self.frequency_baseline()) else None,
        )

    def frequency_baseline(self) -> FrequencyBaseline | None:
        """The word-frequency baseline of this data (computed once, at start-up, in this
        process): unigram counts of the first ``baseline_tokens`` training tokens, scored on the
        validation stream's masked tokens. None without validation data or with
        ``baseline_tokens: 0``."""
        limit = self.hparams.baseline_tokens
        if not self._baseline_done and limit and self.val_sources:
            self._baseline_done = True
            train, val = self.baseline_streams()
            info = self.tokenizer_info
            # a statistic, not training: bad records are passed over quietly here and met (and
            # reported, or refused) by the training stream itself, as without the baseline
            with contextlib.redirect_stderr(io.StringIO()):
                self._baseline = frequency_baseline(
                    train,
                    val,
                    info.vocab_size,
                    info.special_ids,
                    max_train_tokens=limit,
                    max_eval_tokens=max(1, limit // 20),
                )
        return self._baseline

    def baseline_streams(self) -> tuple[PretrainingStream, PretrainingStream]:
        """One pass of the training stream (shuffled as training reads it first) and of the
        validation stream (masked as validation masks it), in this process: what the
        word-frequency baseline counts and scores."""
        info, masker = self.tokenizer_info, BatchMasker(self.masking, self.tokenizer_info)

        def stream(sources: list[str], shuffle: bool) -> PretrainingStream:
            config = dataclasses.replace(
                self.stream_config,
                shuffle=shuffle and self.stream_config.shuffle,
                on_bad_record="skip",
                max_bad_records=sys.maxsize,
            )
            return PretrainingStream(sources, info, config, masker, endless=False)

        return stream(self.train_sources, shuffle=True), stream(self.val_sources, shuffle=False)

    def tokenizer_files(self) -> dict[str, str]:
        """The tokenizer's files, stored in this module's checkpoint state (for export)."""
        return read_tokenizer_files(self.tokenizer_info.path)

    # -- data position: saved in checkpoints, restored on resume --------------------------------

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Record the position of the batch about to be trained on (train batches only) and, with
        ``on_bad_record: skip``, enforce and log the count of skipped records (all ranks)."""
        for key, message in batch.pop(NOTICES_KEY, ()):
            warn_once(key, message)  # this process: once per run, whichever worker read the file
        position = batch.pop(DATA_POSITION_KEY, None)
        if position is not None:
            self.positions[position["shard"]] = position
            self.batches_trained += 1
            if self.hparams.on_bad_record == "skip":
                self._count_skipped_records()
        return batch

    def _count_skipped_records(self) -> None:
        """Every rank takes a train batch here as often as the others, so the sum over ranks is
        one collective per batch (a host sync, in ``skip`` mode only)."""
        trainer = self.trainer
        local = torch.tensor(float(self.skipped_records()))
        total = local
        if trainer is not None and trainer.world_size > 1:
            total = trainer.strategy.reduce(local.to(trainer.strategy.root_device), reduce_op="sum")
        total = round(float(total))
        self.check_skipped_records(total)
        if trainer is not None and trainer.global_step % max(1, trainer.log_every_n_steps) == 0:
            for logger in trainer.loggers:
                logger.log_metrics({"train/skipped_records": total}, step=trainer.global_step)

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
            "batches_trained": self.batches_trained,
            "tokenizer_files": self.tokenizer_files(),  # export writes them beside the model
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
        keys = [k for k in now if saved.get(k) != now[k]]
        if "sources" in keys and "sizes" in keys:  # the files' list says it; sizes follow it
            keys.remove("sizes")
        changed = [describe_change(k, saved, now) for k in keys]
        if changed:
            raise ValueError(
                f"the data settings differ from the checkpoint's ({'; '.join(changed)}), so its "
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
        self.batches_trained = state.get("batches_trained", 0)

    def _stream(self, sources: list[str], endless: bool) -> PretrainingStream:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        if not endless and trainer is not None and _shards_the_model(trainer):
            # every forward of a sharded model is a collective, so every rank must run the same
            # number of validation batches: each reads the whole (finite) validation stream
            rank, world = 0, 1
        config = self.stream_config
        if not endless:  # validation: always the same order
            config = dataclasses.replace(config, shuffle=False)
        return PretrainingStream(
            sources,
            self.tokenizer_info,
            config,
            BatchMasker(self.masking, self.tokenizer_info),
            endless=endless,
            rank=rank,
            world_size=world,
            resume_positions=self.positions if endless else None,
            # the workers' turn continues where the checkpoint left it (see shard_identity)
            rotation=self.batches_trained % max(1, self.hparams.num_workers) if endless else 0,
            forward_notices=True,
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


def import_for_workers(sources: list[str]) -> None:
    """Import, in the process that starts the DataLoader workers, every library the workers will
    use to read ``sources``, so that a forked worker imports nothing itself.

    Why: a worker is a ``fork`` of the training process and inherits the import hooks installed
    there after the logger started. W&B's hook fires on a first import of ``datasets`` and talks
    to W&B's service, which is invalid in a forked process (``ForkedError``, the run dies at its
    first batch). Importing here, before any worker forks, keeps ``fork`` (instant worker
    start-up, no pickling of the stream) and makes it safe; ``tests/test_shipped.py`` checks that
    a worker imports no module at all for every source kind.
    """
    import tokenizers  # noqa: F401  (stream.tokenized_documents)

    hub = any(s.startswith(HUB_PREFIX) for s in sources)
    if hub:
        import datasets  # noqa: F401
    if hub or any(s.endswith(PARQUET_SUFFIXES) for s in sources):
        import pyarrow.parquet  # noqa: F401


def _shards_the_model(trainer: L.Trainer) -> bool:
    from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

    return isinstance(trainer.strategy, (FSDPStrategy, ModelParallelStrategy))


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


def describe_change(key: str, saved: dict, now: dict) -> str:
    """What differs in one field of the data fingerprint, in words a user can act on."""
    if key == "sources":
        added = [f for f in now[key] if f not in set(saved.get(key) or ())]
        removed = [f for f in saved.get(key) or () if f not in set(now[key])]
        parts = [f"{len(added)} added (first: {added[0]})"] if added else []
        parts += [f"{len(removed)} gone (first: {removed[0]})"] if removed else []
        return "data.train_files: " + (", ".join(parts) or "the same files in another order")
    if key == "sizes" and saved.get("sources") == now["sources"]:
        for path, before, after in zip(
            now["sources"], saved.get(key) or (), now[key], strict=False
        ):
            if before != after:
                return f"{path} changed size ({before} → {after} bytes)"
    return f"data.{key}: checkpoint {saved.get(key)!r}, now {now[key]!r}"


def exclude_outputs(sources: list[str], outputs: list[str], field_name: str) -> list[str]:
    """``sources`` without files inside the run's output directories: a corpus directory or glob
    that holds the run's logs (W&B's ``requirements.txt`` and ``*.json``) or checkpoints must not
    read them back as text on the next run. A warning names what was left out."""

    outputs = [os.path.realpath(d) for d in outputs]

    def under(path: str, directory: str) -> bool:  # resolved: a symlink leads nowhere else
        path = os.path.realpath(path)
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
