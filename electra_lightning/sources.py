"""Where the text comes from: files, directories, globs or Hub datasets, read as documents.

A document is a list of sentences (one per line of a text file; a blank line ends a document;
one JSONL record or parquet row each). Nothing is read whole: long lines arrive in pieces and
long documents in chunks. A record without usable text raises a one-line error naming
``file:line``, or with ``on_bad_record="skip"`` arrives as a :class:`BadRecord` in its place.
"""

from __future__ import annotations

import glob
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TEXT_SUFFIXES = (".txt", ".text", ".raw")
JSONL_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
HUB_PREFIX = "hub:"
MAX_LINE_CHARS = 1 << 20  # a longer line is read (and tokenized) in pieces of this size
MAX_DOC_SENTENCES = 256  # a longer document is cut, so one huge file still spreads over shards
MAX_DOC_CHARS = 4 * MAX_LINE_CHARS  # ... and so is a document this large (bounded memory)


# ---------------------------------------------------------------------------------------------
# Sources: where the text comes from
# ---------------------------------------------------------------------------------------------


def resolve_sources(spec: str | list[str], field_name: str) -> list[str]:
    """Expand files, directories and globs into a sorted list of files (or hub specs).

    Raises a one-line ``ValueError`` naming ``field_name`` for a path that does not exist, a
    directory or glob with no matching files, an empty file or a binary file.
    """
    entries = [spec] if isinstance(spec, str) else list(spec)
    if not entries:
        raise ValueError(f"{field_name} is empty: give at least one file, directory or glob")
    sources: list[str] = []
    for entry in entries:
        entry = os.path.expanduser(str(entry))
        if entry.startswith(HUB_PREFIX):
            sources.append(entry)
            continue
        if any(ch in entry for ch in "*?["):
            matches = sorted(p for p in glob.glob(entry, recursive=True) if _is_corpus_file(p))
            if not matches:
                raise ValueError(
                    f"{field_name}: glob '{entry}' matches no {'/'.join(SUFFIXES)} files"
                )
            sources.extend(matches)
        elif os.path.isdir(entry):
            matches = sorted(
                str(p) for p in Path(entry).rglob("*") if p.is_file() and _is_corpus_file(str(p))
            )
            if not matches:
                raise ValueError(
                    f"{field_name}: directory '{entry}' has no {'/'.join(SUFFIXES)} files"
                )
            sources.extend(matches)
        elif os.path.isfile(entry):
            if not entry.endswith(SUFFIXES):
                raise ValueError(
                    f"{field_name}: '{entry}' is not a {'/'.join(SUFFIXES)} file; "
                    "rename it or convert it"
                )
            sources.append(entry)
        else:
            raise ValueError(
                f"{field_name}: '{entry}' does not exist (give a file, directory, glob or "
                f"'{HUB_PREFIX}name[:config][@split]')"
            )
    for path in sources:
        if not path.startswith(HUB_PREFIX):
            _check_file(path, field_name)
    return sources


def _is_corpus_file(path: str) -> bool:
    return os.path.isfile(path) and path.endswith(SUFFIXES)


def _check_file(path: str, field_name: str) -> None:
    if os.path.getsize(path) == 0:
        raise ValueError(f"{field_name}: corpus file '{path}' is empty; remove it or add text")
    if path.endswith(PARQUET_SUFFIXES):
        return
    with open(path, "rb") as f:
        head = f.read(8192)
    if b"\x00" in head:
        raise ValueError(
            f"{field_name}: '{path}' looks binary (NUL bytes), not UTF-8 text; remove it"
        )


def _read_text_documents(path: str) -> Iterator[list[str]]:
    """Documents of a text file: a blank line ends a document; each line is a sentence.

    Lines longer than ``MAX_LINE_CHARS`` arrive as several pieces (bounded memory). Bytes that are
    not UTF-8 are decoded as U+FFFD and counted; a warning names the file and the count.
    """
    doc: list[str] = []
    doc_chars = replaced = 0
    with open(path, encoding="utf-8", errors="replace", newline=None) as f:
        while True:
            line = f.readline(MAX_LINE_CHARS)
            if not line:
                break
            if "\ufffd" in line:
                replaced += line.count("\ufffd")
            line = line.strip()
            if line:
                doc.append(line)
                doc_chars += len(line)
                if len(doc) >= MAX_DOC_SENTENCES or doc_chars >= MAX_DOC_CHARS:
                    yield doc
                    doc, doc_chars = [], 0
            elif doc:
                yield doc
                doc, doc_chars = [], 0
    if doc:
        yield doc
    if replaced:
        warnings.warn(
            f"{path}: {replaced} invalid UTF-8 byte sequences were replaced by U+FFFD",
            stacklevel=2,
        )


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be read, in ``data.on_bad_record: skip`` mode: it takes a
    document's place in the stream (so shards and resume positions are unchanged) and is counted
    instead of trained on."""

    where: str  # file:line or file:row N
    reason: str


class BadRecordError(ValueError):
    """A record that cannot be read (``data.on_bad_record: error``)."""


def _bad(where: str, reason: str, on_bad_record: str) -> BadRecord:
    if on_bad_record != "skip":
        raise BadRecordError(
            f"{where}: {reason}; fix or remove it, or set data.on_bad_record=skip to skip such "
            "records"
        )
    return BadRecord(where, reason)


def _split_record(text: object, where: str, text_field: str, on_bad_record: str):
    """Sentences of one record's text, or a :class:`BadRecord` when it has none."""
    if not isinstance(text, str):
        return _bad(
            where,
            f"field '{text_field}' is missing or not a string (set data.text_field to the "
            "column that holds the text)",
            on_bad_record,
        )
    return [line.strip() for line in text.splitlines() if line.strip()]


def _chunk_sentences(sentences: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(sentences), MAX_DOC_SENTENCES):
        yield sentences[start : start + MAX_DOC_SENTENCES]


def _records(items: Iterator, where, text_field: str, on_bad_record: str):
    """Documents of a stream of (position, record) items; bad records as :class:`BadRecord`."""
    for position, record in items:
        if isinstance(record, BadRecord):
            yield record
            continue
        text = record.get(text_field) if isinstance(record, dict) else record
        sentences = _split_record(text, where(position), text_field, on_bad_record)
        if isinstance(sentences, BadRecord):
            yield sentences
        else:
            yield from _chunk_sentences(sentences)


def _read_jsonl_documents(
    path: str, text_field: str, on_bad_record: str = "error"
) -> Iterator[list[str] | BadRecord]:
    def records():
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    where = f"{path}:{lineno}"
                    yield lineno, _bad(where, f"broken JSON line ({err.msg})", on_bad_record)
                    continue
                if not isinstance(record, dict):
                    record = _bad(f"{path}:{lineno}", "not a JSON object", on_bad_record)
                yield lineno, record

    return _records(records(), lambda lineno: f"{path}:{lineno}", text_field, on_bad_record)


def _read_parquet_documents(
    path: str, text_field: str, on_bad_record: str = "error"
) -> Iterator[list[str] | BadRecord]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if text_field not in parquet.schema_arrow.names:
        raise ValueError(
            f"{path}: parquet file has no column '{text_field}' (columns: "
            f"{', '.join(parquet.schema_arrow.names)}); set data.text_field"
        )

    def records():
        row = 0
        for batch in parquet.iter_batches(columns=[text_field], batch_size=1024):
            for text in batch.column(0).to_pylist():
                yield row, text
                row += 1

    yield from _records(records(), lambda row: f"{path}:row {row}", text_field, on_bad_record)


def _read_hub_documents(
    spec: str, text_field: str, on_bad_record: str = "error"
) -> Iterator[list[str] | BadRecord]:
    """``hub:name[:config][@split]`` streamed with ``datasets`` (needs network)."""
    from datasets import load_dataset

    name = spec[len(HUB_PREFIX) :]
    name, _, split = name.partition("@")
    name, _, config = name.partition(":")
    stream = load_dataset(name, config or None, split=split or "train", streaming=True)
    yield from _records(
        enumerate(stream), lambda i: f"{spec}:record {i}", text_field, on_bad_record
    )


def read_documents(
    source: str, text_field: str = "text", on_bad_record: str = "error"
) -> Iterator[list[str] | BadRecord]:
    """Documents (lists of sentences) of one source, in order.

    A record without usable text (a broken JSONL line, a missing field, a parquet null) raises a
    one-line ``ValueError`` naming ``file:line``/``file:row N``, or with ``on_bad_record="skip"``
    arrives as a :class:`BadRecord` in its place.
    """
    if source.startswith(HUB_PREFIX):
        return _read_hub_documents(source, text_field, on_bad_record)
    if source.endswith(JSONL_SUFFIXES):
        return _read_jsonl_documents(source, text_field, on_bad_record)
    if source.endswith(PARQUET_SUFFIXES):
        return _read_parquet_documents(source, text_field, on_bad_record)
    return _read_text_documents(source)
