"""Where the text comes from: files, directories, globs or Hub datasets, read as documents.

A document is a list of sentences (one per line of a text file; a blank line ends a document;
one JSONL record or parquet row each). Nothing is read whole: long lines arrive in pieces and
long documents in chunks. A record without usable text raises a one-line error naming
``file:line``, or with ``on_bad_record="skip"`` arrives as a :class:`BadRecord` in its place.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import stat
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from electra_lightning.data.units import (  # noqa: F401 (the formats, re-exported for the readers' users)
    HUB_PREFIX,
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    SUFFIXES,
    TEXT_SUFFIXES,
    Unit,
    split_units,
)

MAX_LINE_CHARS = 1 << 16  # a longer line is read (and tokenized) in pieces of this size
MAX_DOC_SENTENCES = 256  # a longer document is cut, so one huge file still spreads over shards
MAX_DOC_CHARS = 1 << 20  # ... and so is a document this large (bounded memory)
MAX_RECORD_BYTES = 1 << 23  # a longer JSONL line is a bad record, passed over in pieces


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
            matches = _once(sorted(p for p in _glob(entry) if _is_corpus_file(p)))
            if not matches:
                raise ValueError(
                    f"{field_name}: glob '{entry}' matches no {'/'.join(SUFFIXES)} files"
                )
            sources.extend(matches)
        elif os.path.isdir(entry):
            matches = _once(sorted(p for p in _walk_files(entry) if _is_corpus_file(p)))
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
        elif os.path.exists(entry):
            raise ValueError(
                f"{field_name}: '{entry}' is {_kind_of(entry)}, not a regular file; write the "
                "text to a file and give that"
            )
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


def _kind_of(path: str) -> str:
    mode = os.stat(path).st_mode
    for test, kind in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file or directory"


def _walk_files(root: str) -> Iterator[str]:
    """Every file under ``root``, following symlinks to directories but entering each real
    directory once, so a symlink loop (``corp/loop -> .``) is not walked round."""
    seen: set[tuple[int, int]] = set()

    def key(path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:  # a dangling symlink or no permission: nothing to read there
            return None
        return st.st_dev, st.st_ino

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = key(dirpath)
        if here is None or here in seen:
            dirnames[:] = []
            continue
        seen.add(here)
        dirnames[:] = [d for d in dirnames if key(os.path.join(dirpath, d)) not in seen]
        for name in filenames:
            yield os.path.join(dirpath, name)


def _glob(pattern: str) -> Iterator[str]:
    """``glob.glob(pattern, recursive=True)``, except that ``**`` walks the directories below the
    pattern's fixed part with :func:`_walk_files` (each real directory once) instead of following
    a symlink loop round until the path is too long."""
    parts = pattern.split(os.sep)
    if "**" not in parts:
        yield from glob.glob(pattern)
        return
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = os.sep.join(parts[:fixed]) or ("." if not pattern.startswith(os.sep) else os.sep)
    wanted = parts[fixed:]
    for path in _walk_files(base):
        if _match_parts(wanted, os.path.relpath(path, base).split(os.sep)):
            yield path if parts[:fixed] else os.path.relpath(path)


def _match_parts(pattern: list[str], parts: list[str]) -> bool:
    """Whether path components match glob components (``**``: any number of directories); as
    in ``glob``, a hidden name (``.x``) matches only a component that starts with a dot."""
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        return any(
            _match_parts(pattern[1:], parts[i:])
            for i in range(len(parts) + 1)
            if not any(p.startswith(".") for p in parts[:i])
        )
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _match_parts(pattern[1:], parts[1:])


def _once(paths: list[str]) -> list[str]:
    """``paths`` without a second name (a symlink) of a file already listed."""
    seen: set[str] = set()
    kept = []
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            kept.append(path)
    return kept


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
    return [piece for line in text.splitlines() for piece in _pieces(line.strip()) if piece]


def _pieces(line: str) -> list[str]:
    """A line as pieces of at most ``MAX_LINE_CHARS``, each cut after a space where there is one
    (a word is not split unless it alone is longer)."""
    pieces = []
    while len(line) > MAX_LINE_CHARS:
        cut = line.rfind(" ", 1, MAX_LINE_CHARS) + 1 or MAX_LINE_CHARS
        pieces.append(line[:cut].strip())
        line = line[cut:]
    pieces.append(line.strip())
    return pieces


def _chunk_sentences(sentences: list[str]) -> Iterator[list[str]]:
    """A record's sentences as documents of at most ``MAX_DOC_SENTENCES`` sentences and about
    ``MAX_DOC_CHARS`` characters, as a text file's are cut."""
    chunk: list[str] = []
    chars = 0
    for sentence in sentences:
        chunk.append(sentence)
        chars += len(sentence)
        if len(chunk) >= MAX_DOC_SENTENCES or chars >= MAX_DOC_CHARS:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


# ---------------------------------------------------------------------------------------------
# Units: the pieces shards read — whole files, byte ranges, parquet row groups, Hub shards
# ---------------------------------------------------------------------------------------------


# An item of a unit: (record offset, chunk index within the record, chunk). The offset is the
# byte where the record starts (text/JSONL), its row (parquet) or its index (Hub); a reader can
# start exactly at any (offset, chunk index) it yielded, which is how a resume seeks.
Item = tuple[int, int, "list[str] | BadRecord"]


_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """A data warning, printed once per ``key`` (``file: what``) and process however often it
    recurs (every part of a file, every pass)."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, stacklevel=3)


def read_unit(
    unit: Unit,
    text_field: str = "text",
    on_bad_record: str = "error",
    at: tuple[int, int] | None = None,
    notices: list[tuple[str, str]] | None = None,
) -> Iterator[Item]:
    """The documents (chunks of at most ``MAX_DOC_SENTENCES`` sentences) of one unit, in order,
    from the start of the unit or exactly from ``at`` = (offset, chunk index). Data warnings
    (``file: what``) go to ``notices`` when given (a DataLoader worker hands them to the main
    process, which prints each once per run), else are warned once per process; each is a
    (key, message) pair, the key naming the file and what is wrong with it."""
    if unit.source.startswith(HUB_PREFIX):
        items = _hub_items(unit, text_field, on_bad_record)
    elif unit.source.endswith(JSONL_SUFFIXES):
        items = _jsonl_items(unit, text_field, on_bad_record, at)
    elif unit.source.endswith(PARQUET_SUFFIXES):
        items = _parquet_items(unit, text_field, on_bad_record, at)
    else:
        items = _text_items(unit, at, notices)
    if at is None:
        return items
    return (item for item in items if (item[0], item[1]) >= at)


def read_documents(
    source: str, text_field: str = "text", on_bad_record: str = "error"
) -> Iterator[list[str] | BadRecord]:
    """Documents (lists of sentences) of one whole source, in order.

    A record without usable text (a broken JSONL line, a missing field, a parquet null) raises a
    one-line ``ValueError`` naming ``file:line``/``file:row N``, or with ``on_bad_record="skip"``
    arrives as a :class:`BadRecord` in its place.
    """
    units = split_units([source], 1) if source.endswith(PARQUET_SUFFIXES) else [Unit(source)]
    for unit in units:
        for _, _, chunk in read_unit(unit, text_field, on_bad_record):
            yield chunk


def _start_of_line_at_or_after(f, start: int) -> int:
    if start <= 0:
        return 0
    f.seek(start - 1)
    while True:  # to the end of the line, in bounded reads (a line may be 200 MB)
        part = f.readline(MAX_LINE_CHARS)
        if not part or part.endswith(b"\n"):
            return f.tell()


def _read_piece(f) -> tuple[bytes, bool]:
    """The next line of a binary file, or its next piece of at most ``MAX_LINE_CHARS`` bytes when
    it is longer: cut after the last space or tab in the piece (or, with none, before a UTF-8
    character that does not fit), so neither a word nor a character is split; the file is left
    just after the piece. Returns (piece, whether it ends the line)."""
    raw = f.readline(MAX_LINE_CHARS)
    if len(raw) < MAX_LINE_CHARS or raw.endswith(b"\n"):
        return raw, True
    cut = max(raw.rfind(b" "), raw.rfind(b"\t")) + 1
    if cut <= 0:  # no space: leave out a last character whose bytes do not all fit
        lead = len(raw) - 1
        while lead > len(raw) - 4 and raw[lead] & 0xC0 == 0x80:
            lead -= 1
        size = 1 if raw[lead] < 0xC0 else 2 if raw[lead] < 0xE0 else 3 if raw[lead] < 0xF0 else 4
        cut = lead if lead > 0 and lead + size > len(raw) else len(raw)
    f.seek(cut - len(raw), os.SEEK_CUR)
    return raw[:cut], False


def _line_before_is_blank(f, position: int) -> bool:
    """Whether the line that ends just before ``position`` (a line start) is blank: whitespace
    only, and short enough to be read as one piece (as :func:`_text_items` decides)."""
    if position <= 0:
        return True
    start = max(0, position - MAX_LINE_CHARS - 1)
    f.seek(start)
    body = f.read(position - start)[:-1]  # without the newline that ends the line
    newline = body.rfind(b"\n")
    if newline < 0 and start > 0:
        return False  # longer than a piece: not blank, whatever it holds
    line = body[newline + 1 :]
    return not line.strip() and len(line) < MAX_LINE_CHARS


def _text_items(
    unit: Unit, at: tuple[int, int] | None, notices: list[tuple[str, str]] | None = None
) -> Iterator[Item]:
    """Text: a blank line ends a document, each line is a sentence; lines longer than
    ``MAX_LINE_CHARS`` bytes arrive in pieces and long documents in chunks (bounded memory).
    Bytes that are not UTF-8 become U+FFFD; a warning names the file and the count."""
    replaced = 0
    with open(unit.source, "rb") as f:
        if at is not None:
            position = at[0]
        else:
            position = _start_of_line_at_or_after(f, unit.start)
            if not _line_before_is_blank(f, position):  # inside a document of the range before
                f.seek(position)
                starts_line = True
                while True:
                    piece, ends_line = _read_piece(f)
                    if not piece or (starts_line and ends_line and not piece.strip()):
                        break
                    starts_line = ends_line
                position = f.tell()
        f.seek(position)
        doc: list[str] = []
        doc_start, chunk, doc_chars = -1, 0, 0
        line_start, starts_line = position, True
        while True:
            if starts_line:
                line_start = f.tell()
            raw, ends_line = _read_piece(f)
            if not raw:
                break
            text = raw.decode("utf-8", errors="replace")
            replaced += text.count("\ufffd")
            text = text.strip()
            blank = starts_line and ends_line  # a whole line (a piece of a longer one is not)
            starts_line = ends_line
            if not text:
                if blank:
                    if doc:
                        yield doc_start, chunk, doc
                        doc, doc_chars = [], 0
                    doc_start = -1
                continue
            if doc_start < 0:  # the first line of a document
                if unit.end >= 0 and line_start >= unit.end:
                    break  # it belongs to the next range
                doc_start, chunk = line_start, 0
            doc.append(text)
            doc_chars += len(text)
            if len(doc) >= MAX_DOC_SENTENCES or doc_chars >= MAX_DOC_CHARS:
                yield doc_start, chunk, doc
                doc, doc_chars, chunk = [], 0, chunk + 1
        if doc:
            yield doc_start, chunk, doc
    if replaced:
        key = f"{unit.source}: invalid UTF-8"
        message = f"{unit.source}: {replaced} invalid UTF-8 byte sequences were replaced by U+FFFD"
        if unit.end >= 0 or unit.start > 0:
            message += " (in the part of it read first; said once per run)"
        if notices is None:
            warn_once(key, message)
        else:
            notices.append((key, message))


def _line_number(path: str, offset: int) -> int:
    """1-based line of the byte ``offset`` (counted only when a bad record needs naming)."""
    count, done = 1, 0
    with open(path, "rb") as f:
        while done < offset:
            block = f.read(min(1 << 20, offset - done))
            if not block:
                break
            count += block.count(b"\n")
            done += len(block)
    return count


def _chunks(offset: int, sentences) -> Iterator[Item]:
    if isinstance(sentences, BadRecord):
        yield offset, 0, sentences
        return
    for index, chunk in enumerate(_chunk_sentences(sentences)):
        yield offset, index, chunk


def _jsonl_items(unit: Unit, text_field: str, on_bad_record: str, at) -> Iterator[Item]:
    path = unit.source
    first_line: list[int] = []  # the line number at ``position``: counted once, when first needed
    with open(path, "rb") as f:
        position = at[0] if at is not None else _start_of_line_at_or_after(f, unit.start)
        f.seek(position)
        lines_read = 0
        while True:
            offset = f.tell()
            if unit.end >= 0 and offset >= unit.end:
                break
            raw = f.readline(MAX_RECORD_BYTES + 1)
            lines_read += 1
            if not raw:
                break

            def where(lines_read=lines_read) -> str:  # cost: linear in the file, paid once
                if not first_line:
                    first_line.append(_line_number(path, position))
                return f"{path}:{first_line[0] + lines_read - 1}"

            if len(raw) > MAX_RECORD_BYTES:  # passed over in bounded reads, never held whole
                size = len(raw)
                del raw
                while True:
                    part = f.readline(MAX_LINE_CHARS)
                    size += len(part)
                    if not part or part.endswith(b"\n"):
                        break
                reason = (
                    f"a record of {size:,} bytes, more than the {MAX_RECORD_BYTES:,} a JSONL "
                    "line may hold (split its text over several records, or give it as a .txt "
                    "file: a text file's lines may be of any length)"
                )
                yield offset, 0, _bad(where(), reason, on_bad_record)
                continue
            line = raw.decode("utf-8", errors="replace")
            del raw
            if not line.strip():
                continue

            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield offset, 0, _bad(where(), f"broken JSON line ({err.msg})", on_bad_record)
                continue
            if not isinstance(record, dict):
                yield offset, 0, _bad(where(), "not a JSON object", on_bad_record)
                continue
            text = record.get(text_field)
            del record, line
            sentences = (
                _split_record(text, where(), text_field, on_bad_record)
                if not isinstance(text, str)
                else _split_record(text, "", text_field, on_bad_record)
            )
            del text
            yield from _chunks(offset, sentences)


def _parquet_items(unit: Unit, text_field: str, on_bad_record: str, at) -> Iterator[Item]:
    import pyarrow.parquet as pq

    path = unit.source
    parquet = pq.ParquetFile(path)
    if text_field not in parquet.schema_arrow.names:
        raise ValueError(
            f"{path}: parquet file has no column '{text_field}' (columns: "
            f"{', '.join(parquet.schema_arrow.names)}); set data.text_field"
        )
    meta = parquet.metadata
    first_row = sum(meta.row_group(g).num_rows for g in range(unit.start))
    end = meta.num_row_groups if unit.end < 0 else unit.end
    row = first_row
    for group in range(unit.start, end):
        rows = meta.row_group(group).num_rows
        if at is not None and at[0] >= row + rows:
            row += rows  # seek: a row group before the resume point is not read
            continue
        try:
            column = parquet.read_row_group(group, columns=[text_field]).column(0).to_pylist()
        except Exception as err:  # noqa: BLE001 — corrupt pages/compression: pyarrow's many kinds
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            where = f"{path}:row group {group} (rows {row}–{row + rows - 1})"
            bad = _bad(where, f"unreadable ({reason})", on_bad_record)
            if at is None or at[0] <= row:
                yield row, 0, bad  # the whole group counts as one bad record
            row += rows
            continue
        for text in column:
            if at is None or row >= at[0]:
                where = f"{path}:row {row}"
                yield from _chunks(row, _split_record(text, where, text_field, on_bad_record))
            row += 1


_warned_hub: set[str] = set()
HUB_READ_BATCH = 256  # records fetched from a hub: stream at a time


def parse_hub_spec(spec: str) -> tuple[str, str | None, str]:
    """``hub:name[:config][@split]`` → (name, config or None, split; default ``train``). The name
    may be a local dataset directory laid out as on the Hub (tests and offline mirrors)."""
    name = spec[len(HUB_PREFIX) :]
    name, _, split = name.partition("@")
    name, _, config = name.partition(":")
    return name, config or None, split or "train"


def open_hub(spec: str, field_name: str = "data.train_files"):
    """The ``datasets`` stream of a ``hub:`` source, or a one-line ``ValueError`` naming the
    dataset and the fix when it cannot be opened (offline, a typo, a private dataset)."""
    from datasets import load_dataset

    name, config, split = parse_hub_spec(spec)
    try:
        return load_dataset(name, config, split=split, streaming=True)
    except Exception as err:  # offline, unknown name/config/split: say which and what to do
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(
            f"{field_name}: cannot open the Hugging Face dataset '{name}'"
            f"{f' (config {config})' if config else ''}, split '{split}' "
            f"({type(err).__name__}{': ' + reason[:200] if reason else ''}); check the name, or "
            f"if this machine is offline point {field_name} at local .txt/.jsonl/.parquet files"
        ) from None


def _hub_items(unit: Unit, text_field: str, on_bad_record: str) -> Iterator[Item]:
    """``hub:name[:config][@split]`` streamed with ``datasets`` (needs network), sharded on the
    dataset's own file shards; a dataset with fewer file shards than readers falls back to every
    reader streaming it all and keeping every n-th record (with a warning)."""
    spec = unit.source
    stream = open_hub(spec)
    every = 1
    if unit.hub_count > 1:
        if getattr(stream, "num_shards", 1) >= unit.hub_count:
            stream = stream.shard(num_shards=unit.hub_count, index=unit.hub_index)
        else:
            every = unit.hub_count
            if spec not in _warned_hub:
                _warned_hub.add(spec)
                print(
                    f"warning: {spec} has {getattr(stream, 'num_shards', 1)} file shards for "
                    f"{unit.hub_count} readers: each reader streams all of it and keeps every "
                    f"{unit.hub_count}th record",
                    file=sys.stderr,
                )
    # stream.iter(), not `for record in stream`: inside a DataLoader worker, iterating the stream
    # makes `datasets` split it among the workers a second time, on top of the sharding above,
    # and a worker would silently read a fraction of its shard, or nothing
    index = -1
    for batch in stream.iter(batch_size=HUB_READ_BATCH):
        rows = len(next(iter(batch.values()), []))
        for text in batch.get(text_field, [None] * rows):
            index += 1
            if every > 1 and index % every != unit.hub_index:
                continue
            sentences = _split_record(text, f"{spec}:record {index}", text_field, on_bad_record)
            yield from _chunks(index, sentences)
