"""Bounded memory for any input: a line or a JSONL record of any length is read in pieces no
larger than the limits (here made small), a huge document is cut into chunks and a shuffle block
holds a bounded amount of text — with the stream still deterministic and resumable."""

from __future__ import annotations

import json

import pytest
import torch

from electra_lightning.data import sources, stream
from electra_lightning.data.sources import BadRecord, BadRecordError, read_documents, read_unit
from electra_lightning.data.stream import DATA_POSITION_KEY, PretrainingStream
from electra_lightning.data.units import Unit


class _Spy:
    """A binary file that records the largest piece any one read returned."""

    largest = 0

    def __init__(self, path, mode="r", *args, **kwargs):
        self.f = open(path, mode, *args, **kwargs)  # noqa: SIM115

    def _note(self, data):
        _Spy.largest = max(_Spy.largest, len(data))
        return data

    def read(self, *args):
        return self._note(self.f.read(*args))

    def readline(self, *args):
        return self._note(self.f.readline(*args))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.fixture
def small_limits(monkeypatch):
    """Pieces of 1,000 bytes, documents of 4,000 characters, JSONL records of 3,000 bytes,
    shuffle blocks of 8,000 characters; every read of a corpus file spied on."""
    monkeypatch.setattr(sources, "MAX_LINE_CHARS", 1000)
    monkeypatch.setattr(sources, "MAX_DOC_CHARS", 4000)
    monkeypatch.setattr(sources, "MAX_RECORD_BYTES", 3000, raising=False)
    monkeypatch.setattr(stream, "SHUFFLE_BLOCK_CHARS", 8000, raising=False)
    monkeypatch.setattr(sources, "open", _Spy, raising=False)
    _Spy.largest = 0
    return _Spy


def _words(n: int) -> list[str]:
    return [f"wörd{i % 97}" if i % 5 else f"héllo{i}" for i in range(n)]


def test_a_long_line_arrives_in_pieces_within_the_limit_splitting_no_word(tmp_path, small_limits):
    words = _words(6000)  # one line of ~50k characters, with 2-byte UTF-8 characters
    path = tmp_path / "line.txt"
    path.write_text(" ".join(words) + "\n\nnext document\n")
    docs = list(read_documents(str(path)))
    assert small_limits.largest <= 1001  # the reader never held more than a piece
    sentences = [s for d in docs[:-1] for s in d]
    assert max(len(s.encode()) for s in sentences) <= 1000
    assert max(sum(len(s) for s in d) for d in docs) <= 4000 + 1000  # documents cut
    assert " ".join(sentences).split() == words  # no word split, no character replaced
    assert docs[-1] == ["next document"]
    # a unit that starts inside the line resynchronises in bounded reads: the line's document
    # belongs to the unit where it starts
    small_limits.largest = 0
    size = path.stat().st_size
    later = list(read_unit(Unit(str(path), start=size // 2, end=-1)))
    assert [doc for _, _, doc in later] == [["next document"]]
    assert small_limits.largest <= 1001


def test_a_line_without_spaces_is_cut_between_characters(tmp_path, small_limits):
    path = tmp_path / "dense.txt"
    path.write_text("é" * 3000 + "\n")  # 6,000 bytes, no space, 2 bytes a character
    (doc,) = list(read_documents(str(path)))
    assert "".join(doc) == "é" * 3000 and all(len(s.encode()) <= 1000 for s in doc)


def test_a_whitespace_piece_inside_a_line_does_not_end_the_document(tmp_path, small_limits):
    path = tmp_path / "spaces.txt"
    path.write_text("start" + " " * 2500 + "end\nsecond line\n\nother\n")
    assert list(read_documents(str(path))) == [["start", "end", "second line"], ["other"]]


def test_a_jsonl_record_longer_than_the_limit_is_a_bad_record_never_held_whole(
    tmp_path, small_limits
):
    path = tmp_path / "records.jsonl"
    long_sentence = " ".join(_words(250))  # ~2,000 characters: within a record, over a piece
    records = [{"text": "first"}, {"text": "x " * 5000}, {"text": long_sentence}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    with pytest.raises(BadRecordError, match=r"records.jsonl:2: a record of 10,\d+ bytes, more"):
        list(read_documents(str(path)))
    small_limits.largest = 0
    docs = list(read_documents(str(path), on_bad_record="skip"))
    assert small_limits.largest <= 3001
    assert docs[0] == ["first"] and isinstance(docs[1], BadRecord)
    assert docs[1].where.endswith("records.jsonl:2")
    assert all(len(s) <= 1000 for s in docs[2]) and " ".join(docs[2]).split() == _words(250)


def _long_document_stream(path, tokenizer_info, **settings):
    return PretrainingStream.build(
        [str(path)],
        tokenizer_info,
        max_seq_length=64,
        batch_size=8,
        shuffle=True,
        shuffle_block=1024,
        **settings,
    )


def test_a_shuffle_block_of_a_huge_document_holds_bounded_text_and_resumes_exactly(
    tmp_path, small_limits, tokenizer_info
):
    path = tmp_path / "huge.txt"
    path.write_text(" ".join(_words(20000)) + "\n")  # one line of ~170k characters
    s = _long_document_stream(path, tokenizer_info, endless=False)
    chars: dict[int, int] = {}
    for block, _, _, doc in s._blocks(0, 1, 0, None):
        chars[block["block"]] = chars.get(block["block"], 0) + sum(len(x) for x in doc)
    assert len(chars) > 10 and max(chars.values()) <= 8000 + 4000 + 1000, chars
    # deterministic, and a resume from a position inside the document continues exactly
    first = _long_document_stream(path, tokenizer_info)
    batches = [b for _, b in zip(range(40), first, strict=False)]
    again = [
        b for _, b in zip(range(40), _long_document_stream(path, tokenizer_info), strict=False)
    ]
    assert all(
        torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again, strict=True)
    )
    position = batches[24][DATA_POSITION_KEY]
    assert position["within_epoch"]["block"] > 0  # inside the document, past its first block
    resumed = _long_document_stream(path, tokenizer_info, resume_positions={0: position})
    for expected, got in zip(batches[25:], resumed, strict=False):
        assert torch.equal(expected["input_ids"], got["input_ids"])
        assert torch.equal(expected["masked_positions"], got["masked_positions"])
