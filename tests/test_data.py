import json
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from electra_lightning.data import sources as data_mod
from electra_lightning.data.datamodule import (
    ElectraDataModule,
    ExamplePacker,
    PretrainingStream,
    read_documents,
    resolve_sources,
)
from electra_lightning.data.stream import attention_mask_of

from .helpers import jsonl_with_bad_records, shared_data

CLS, SEP, PAD = 2, 3, 0


def content(example):
    ids = example.input_ids[: example.length].tolist()
    return [t for t in ids if t not in (CLS, SEP)]


def check_layout(example, max_len):
    ids = example.input_ids.tolist()
    types = example.token_type_ids.tolist()
    n = example.length
    assert len(ids) == max_len == len(types)
    assert ids[0] == CLS and ids[n - 1] == SEP
    assert all(t == PAD for t in ids[n:])
    seps = [i for i, t in enumerate(ids[:n]) if t == SEP]
    assert len(seps) in (1, 2)
    if len(seps) == 2:  # [CLS] A [SEP] B [SEP]
        a_end = seps[0]
        assert all(t == 0 for t in types[: a_end + 1])
        assert all(t == 1 for t in types[a_end + 1 : n])
        assert a_end >= 2 and n - a_end >= 3  # both segments non-empty
    else:
        assert all(t == 0 for t in types)


def synthetic_documents(n_docs=40, seed=0):
    rng = np.random.default_rng(seed)
    token = 10
    docs = []
    for _ in range(n_docs):
        doc = []
        for _ in range(rng.integers(1, 12)):
            length = int(rng.integers(1, 40))
            doc.append(list(range(token, token + length)))
            token += length
        docs.append(doc)
    return docs


@pytest.mark.parametrize("max_len,single", [(32, 0.1), (64, 0.0), (16, 1.0)])
def test_packing_is_full_length_and_lossless(max_len, single):
    docs = synthetic_documents()
    packer = ExamplePacker(max_len, CLS, SEP, PAD, single_segment_prob=single, seed=1)
    examples = []
    for doc in docs:
        examples.extend(packer.add_document(doc))
    tail = list(packer.flush())
    assert len(tail) <= 1
    for ex in examples:
        check_layout(ex, max_len)
        assert ex.length == max_len, "padding before the end of the stream"
    for ex in tail:
        check_layout(ex, max_len)
    packed = [t for ex in examples + tail for t in content(ex)]
    expected = [t for doc in docs for sentence in doc for t in sentence]
    assert packed == expected  # nothing dropped, nothing repeated, order kept


def test_document_boundary_ends_segment_a():
    # two short documents: the first ends segment A, the second starts segment B
    packer = ExamplePacker(32, CLS, SEP, PAD, single_segment_prob=0.0, seed=0)
    out = list(packer.add_document([[10, 11, 12]]))
    out += list(packer.add_document([[20 + i for i in range(40)]]))
    ids = out[0].input_ids.tolist()
    assert ids[:5] == [CLS, 10, 11, 12, SEP]
    assert ids[5] == 20


def test_packing_rejects_short_sequences():
    with pytest.raises(ValueError, match="max_seq_length"):
        ExamplePacker(4, CLS, SEP, PAD, single_segment_prob=0.1, seed=0)


def make_stream(corpus_dir, tokenizer_info, masking=None, **kwargs):
    """A stream over the demo corpus: ``kwargs`` are StreamConfig fields (default: 64 tokens,
    batch 8, no shuffle) or the stream's own (sources, endless, rank, ...; default one pass)."""
    settings = {"max_seq_length": 64, "batch_size": 8, "shuffle": False, "endless": False}
    settings.update(kwargs)
    sources = settings.pop("sources", [str(corpus_dir / "train.txt")])
    return PretrainingStream.build(sources, tokenizer_info, masking, **settings)


def _corpus_files(tmp_path, corpus_dir, kind: str, files: int) -> list[str]:
    """The demo corpus as ``files`` files of one format (txt: blank-line documents; jsonl: a
    record per document; parquet: a row per document, small row groups)."""
    docs = [d for d in read_documents(str(corpus_dir / "train.txt"))]
    parts = [docs[i::files] for i in range(files)]
    paths = []
    for i, part in enumerate(parts):
        path = tmp_path / f"part{i}.{kind}"
        if kind == "txt":
            path.write_text("\n\n".join("\n".join(d) for d in part) + "\n")
        elif kind == "jsonl":
            path.write_text("".join(json.dumps({"text": "\n".join(d)}) + "\n" for d in part))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(
                pa.table({"text": ["\n".join(d) for d in part]}), path, row_group_size=97
            )
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("kind", ["txt", "jsonl", "parquet"])
@pytest.mark.parametrize("files", [1, 5])
def test_every_document_once_over_the_shards(tmp_path, corpus_dir, tokenizer_info, kind, files):
    """For 1, 2, 3 and 8 shards, with fewer and more files than shards: the shards' documents
    over one epoch are the corpus, each exactly once; every shard gets a share."""
    sources = _corpus_files(tmp_path, corpus_dir, kind, files)
    corpus = sorted(tuple(d) for s in sources for d in read_documents(s))
    for n in (1, 2, 3, 8):
        for shuffle in (False, True):
            stream = make_stream(corpus_dir, tokenizer_info, sources=sources, shuffle=shuffle)
            shards = [[tuple(d) for d in stream.shard_documents(s, n, 0)] for s in range(n)]
            assert sorted(d for shard in shards for d in shard) == corpus, (n, shuffle)
            assert all(shards), [len(s) for s in shards]


def test_shards_read_about_their_share_of_the_bytes(tmp_path, corpus_dir):
    from electra_lightning.data.units import assign_units, split_units

    sources = _corpus_files(tmp_path, corpus_dir, "txt", 3)
    total = sum(os.path.getsize(s) for s in sources)
    for n in (2, 8, 16):
        shares = [
            sum(u.size for u in shard) for shard in assign_units(split_units(sources, n), n, 7)
        ]
        assert max(shares) <= 1.25 * total / n + 1, (n, shares)


def test_shuffle_changes_the_order_each_epoch_and_none_keeps_it(corpus_dir, tokenizer_info):
    shuffled = make_stream(corpus_dir, tokenizer_info, shuffle=True, shuffle_block=256)
    plain = make_stream(corpus_dir, tokenizer_info, shuffle=False)

    def epoch(stream, e):  # both shards' documents, in their training order
        return [tuple(d) for shard in (0, 1) for d in stream.shard_documents(shard, 2, e)]

    e0, e1 = epoch(shuffled, 0), epoch(shuffled, 1)
    assert e0 != e1 and sorted(e0) == sorted(e1)
    p0, p1 = epoch(plain, 0), epoch(plain, 1)
    assert p0 == p1
    corpus = [tuple(d) for d in read_documents(str(corpus_dir / "train.txt"))]
    assert [tuple(d) for d in plain.shard_documents(0, 1, 0)] == corpus  # corpus order
    assert e0 != p0


def test_two_ranks_two_workers_read_every_document_once(corpus_dir, tokenizer_info):
    """2 DDP ranks × 2 DataLoader workers = 4 training shards: their examples over one pass
    together hold the corpus's tokens, each once."""
    reference = make_stream(corpus_dir, tokenizer_info)
    all_tokens = np.zeros(tokenizer_info.vocab_size, dtype=np.int64)
    for ex, _ in reference.examples(0, 1, 0):
        np.add.at(all_tokens, ex.input_ids[: ex.length], 1)
    seen = np.zeros_like(all_tokens)
    examples = 0
    stream = make_stream(corpus_dir, tokenizer_info, endless=True)
    for shard in range(4):
        for ex, _ in stream.examples(shard, 4, 0):
            np.add.at(seen, ex.input_ids[: ex.length], 1)
            examples += 1
    special = list(tokenizer_info.special_ids)
    all_tokens[special] = seen[special] = 0  # [CLS]/[SEP] counts depend on packing boundaries
    assert np.array_equal(seen, all_tokens)
    assert examples > 20


def _ranks_validation(sources, tokenizer_info, ranks, workers, **kwargs):
    """Each rank's validation batches (its DataLoader over ``workers`` workers)."""
    out = []
    for rank in range(ranks):
        stream = PretrainingStream.build(
            sources,
            tokenizer_info,
            max_seq_length=64,
            batch_size=8,
            shuffle=False,
            endless=False,
            rank=rank,
            world_size=ranks,
            **kwargs,
        )
        out.append(list(DataLoader(stream, batch_size=None, num_workers=workers)))
    return out


def _key(batch) -> bytes:
    return batch["input_ids"].numpy().tobytes() + batch["masked_positions"].numpy().tobytes()


@pytest.mark.parametrize("layout", [(2, 0), (2, 2), (3, 1)], ids=["2x0", "2x2", "3x1"])
def test_validation_is_dealt_by_batches_and_every_rank_runs_as_many(
    tmp_path, corpus_dir, tokenizer_info, layout
):
    """Validation, for ranks × workers shards: every rank runs the same number of batches (with
    DDP each forward is a collective), together they are the one-process validation batches
    (masks included), the few missing ones filled from the start — also for a file that is one
    long document (no blank line), which split by documents left every rank but one empty."""
    ranks, workers = layout
    lines = [line for line in (corpus_dir / "val.txt").read_text().splitlines() if line.strip()]
    one_document = tmp_path / "one-document.txt"
    one_document.write_text("\n".join(lines) + "\n")
    for source in (corpus_dir / "val.txt", one_document):
        single = [_key(b) for b in _ranks_validation([str(source)], tokenizer_info, 1, 0)[0]]
        dealt = _ranks_validation([str(source)], tokenizer_info, ranks, workers)
        counts = [len(batches) for batches in dealt]
        assert len(set(counts)) == 1 and counts[0] > 0, counts
        keys = [_key(b) for batches in dealt for b in batches]
        assert set(keys) == set(single), source  # nothing else, nothing left out
        assert len(keys) - len(single) < ranks * max(1, workers)  # at most one pad per shard


def test_batches_are_masked_and_fresh_each_epoch(corpus_dir, tokenizer_info):
    stream = make_stream(corpus_dir, tokenizer_info, endless=True)
    it = iter(stream)
    first = next(it)
    assert first["input_ids"].shape == (8, 64)
    assert set(first) >= {"generator_input_ids", "masked_positions", "masked_weights", "masked_ids"}
    special = torch.isin(first["input_ids"], torch.tensor(tokenizer_info.special_ids))
    assert not special.gather(1, first["masked_positions"])[first["masked_weights"]].any()
    # same example, next epoch: a new mask
    one_pass = make_stream(corpus_dir, tokenizer_info)
    n_batches = sum(1 for b in one_pass if b["input_ids"].size(0) == 8)  # full batches only
    for _ in range(n_batches - 1):
        batch = next(it)
    again = next(it)
    assert torch.equal(again["input_ids"], first["input_ids"])
    assert not torch.equal(again["masked_positions"], first["masked_positions"])
    # validation (endless=False) is identical every pass
    val = make_stream(corpus_dir, tokenizer_info)
    a, b = next(iter(val)), next(iter(val))
    assert all(torch.equal(a[k], b[k]) for k in a)
    del batch


def test_readers(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_text("one\ntwo\n\n\nthree\n")
    assert list(read_documents(str(txt))) == [["one", "two"], ["three"]]
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text(json.dumps({"text": "x y\nz"}) + "\n" + json.dumps({"text": "w"}) + "\n")
    assert list(read_documents(str(jsonl))) == [["x y", "z"], ["w"]]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["p q", "r"]}), tmp_path / "c.parquet")
    assert list(read_documents(str(tmp_path / "c.parquet"), "body")) == [["p q"], ["r"]]
    with pytest.raises(ValueError, match="no column 'text'"):
        list(read_documents(str(tmp_path / "c.parquet")))
    bad = tmp_path / "d.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "no"}\n')
    with pytest.raises(ValueError, match=r"d.jsonl:2: field 'text'"):
        list(read_documents(str(bad)))
    broken = tmp_path / "e.jsonl"
    broken.write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(ValueError, match=r"e.jsonl:2: broken JSON"):
        list(read_documents(str(broken)))


def test_long_line_is_read_in_bounded_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "MAX_LINE_CHARS", 1000)
    path = tmp_path / "long.txt"
    path.write_text("word " * 5000)  # 25k characters, no newline
    docs = list(read_documents(str(path)))
    pieces = [s for d in docs for s in d]
    assert max(len(s) for s in pieces) <= 1000
    assert sum(len(s.split()) for s in pieces) >= 4990


def test_resolve_sources_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02abc")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "ok.txt").write_text("hello\n")
    with pytest.raises(ValueError, match="data.train_files: '.*missing.txt' does not exist"):
        resolve_sources(str(tmp_path / "missing.txt"), "data.train_files")
    with pytest.raises(ValueError, match="empty.txt' is empty"):
        resolve_sources(str(tmp_path / "empty.txt"), "data.train_files")
    with pytest.raises(ValueError, match="looks binary"):
        resolve_sources(str(tmp_path / "bin.txt"), "data.train_files")
    with pytest.raises(ValueError, match="directory .* has no"):
        resolve_sources(str(tmp_path / "nothing"), "data.val_files")
    with pytest.raises(ValueError, match="glob .* matches no"):
        resolve_sources(str(tmp_path / "*.jsonl"), "data.train_files")
    assert resolve_sources(str(tmp_path / "ok*.txt"), "x") == [str(tmp_path / "ok.txt")]


def test_datamodule_errors(tmp_path, corpus_dir, tokenizer_dir):
    train = str(corpus_dir / "train.txt")
    with pytest.raises(ValueError, match="data.tokenizer"):
        ElectraDataModule(train_files=train, tokenizer=str(tmp_path / "nope"))
    (tmp_path / "tok").mkdir()
    with pytest.raises(ValueError, match="data.tokenizer: .* no tokenizer.json"):
        ElectraDataModule(train_files=train, tokenizer=str(tmp_path / "tok"))
    with pytest.raises(ValueError, match="data.batch_size"):
        ElectraDataModule(train_files=train, tokenizer=str(tokenizer_dir), batch_size=0)
    with pytest.raises(ValueError, match="data.max_seq_length"):
        ElectraDataModule(train_files=train, tokenizer=str(tokenizer_dir), max_seq_length=4)
    with pytest.raises(ValueError, match="mask_prob"):
        ElectraDataModule(train_files=train, tokenizer=str(tokenizer_dir), mask_prob=1.5)
    dm = ElectraDataModule(train_files=train, tokenizer=str(tokenizer_dir))
    assert dm.vocab_size == 2000 and dm.pad_token_id == 0


def test_real_text_packs_full_examples(tokenizer_info):
    corpus = shared_data("nltk_english_text", "inaugural")
    stream = make_stream(
        corpus, tokenizer_info, sources=resolve_sources(str(corpus), "x"), max_seq_length=128
    )
    examples = [ex for ex, _ in stream.examples(0, 1)]
    assert len(examples) > 100
    assert all(ex.length == 128 for ex in examples[:-1])
    pairs = sum(ex.token_type_ids.any() for ex in examples)
    assert 0.8 < pairs / len(examples) < 0.97  # ~10% single-segment examples


@pytest.mark.parametrize("shuffle", [False, True])
def test_stream_resumes_exactly_from_any_batch(corpus_dir, tokenizer_info, shuffle):
    """Restart a shard from the position a batch carried: the following batches are identical,
    across an epoch boundary too, with the shuffle on (small blocks, so positions land inside
    later blocks of later units) and off."""
    from electra_lightning.data.datamodule import DATA_POSITION_KEY

    # shard 1 of 3: its share is several byte ranges of the file (units), read block by block
    kw = dict(batch_size=16, max_seq_length=128, shuffle=shuffle, shuffle_block=50)
    kw.update(rank=1, world_size=3)
    stream = make_stream(corpus_dir, tokenizer_info, endless=True, **kw)
    one_pass = sum(1 for _ in make_stream(corpus_dir, tokenizer_info, **kw))
    it = iter(stream)
    reference = [next(it) for _ in range(one_pass + 3)]
    for cut in (0, 7, one_pass - 2, one_pass - 1):
        position = reference[cut][DATA_POSITION_KEY]
        resumed = make_stream(
            corpus_dir,
            tokenizer_info,
            endless=True,
            resume_positions={position["shard"]: position},
            **kw,
        )
        rit = iter(resumed)
        for expected in reference[cut + 1 : cut + 4]:
            got = next(rit)
            assert got.keys() == expected.keys(), cut  # a mask only where padding is
            for key in ("input_ids", "token_type_ids", "masked_positions", "generator_input_ids"):
                assert torch.equal(got[key], expected[key]), (cut, key)
            assert torch.equal(attention_mask_of(got), attention_mask_of(expected)), cut
            assert got[DATA_POSITION_KEY]["epoch"] == expected[DATA_POSITION_KEY]["epoch"]


def test_datamodule_position_state(corpus_dir, tokenizer_dir):
    dm = ElectraDataModule(
        train_files=str(corpus_dir / "train.txt"),
        tokenizer=str(tokenizer_dir),
        batch_size=4,
        num_workers=0,
    )
    batch = next(iter(dm.train_dataloader()))
    batch = dm.on_before_batch_transfer(batch, 0)
    assert "data_position" not in batch and 0 in dm.positions
    state = dm.state_dict()
    other = ElectraDataModule(
        train_files=str(corpus_dir / "train.txt"),
        tokenizer=str(tokenizer_dir),
        batch_size=4,
        num_workers=0,
    )
    other.load_state_dict(state)
    assert other.positions.keys() == {0}
    with pytest.raises(ValueError, match="format version"):
        other.load_state_dict({**state, "version": 99})
    changed = ElectraDataModule(
        train_files=str(corpus_dir / "train.txt"),
        tokenizer=str(tokenizer_dir),
        batch_size=8,
        num_workers=0,
    )
    with pytest.raises(ValueError, match="batch_size.*resume_position=false"):
        changed.load_state_dict(state)


@pytest.mark.parametrize("taken", [3, 4])
def test_datamodule_with_two_workers_resumes_the_batch_order_after_odd_and_even_counts(
    corpus_dir, tokenizer_dir, taken
):
    """The DataLoader takes batches from its workers in turn, starting with worker 0: after an
    odd number of batches the uninterrupted run's next batch comes from worker 1's shard, so a
    resume must start with that shard too (a SIGTERM can stop a run at any step)."""

    def datamodule():
        return ElectraDataModule(
            train_files=str(corpus_dir / "train.txt"),
            tokenizer=str(tokenizer_dir),
            batch_size=4,
            max_seq_length=64,
            num_workers=2,
        )

    def take(dm, n):
        it = iter(dm.train_dataloader())
        return [dm.on_before_batch_transfer(next(it), 0)["input_ids"] for _ in range(n)]

    first = datamodule()
    straight = take(first, taken + 3)
    stopped = datamodule()
    take(stopped, taken)
    resumed = datamodule()
    resumed.load_state_dict(stopped.state_dict())
    for got, expected in zip(take(resumed, 3), straight[taken:], strict=True):
        assert torch.equal(got, expected)


def test_bad_records_error_or_skip(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a b"}\n{"text": broken\n{"body": 1}\n[1]\n{"text": "c d"}\n')
    with pytest.raises(ValueError, match=r"c.jsonl:2: broken JSON line .*data.on_bad_record=skip"):
        list(read_documents(str(path)))
    docs = list(read_documents(str(path), on_bad_record="skip"))
    assert docs[0] == ["a b"] and docs[4] == ["c d"]
    assert [(d.where.rsplit("/", 1)[-1], d.reason.split(" (")[0]) for d in docs[1:4]] == [
        ("c.jsonl:2", "broken JSON line"),
        ("c.jsonl:3", "field 'text' is missing or not a string"),
        ("c.jsonl:4", "not a JSON object"),
    ]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a", None, "b"]}), tmp_path / "p.parquet")
    with pytest.raises(ValueError, match=r"p.parquet:row 1: field 'text'"):
        list(read_documents(str(tmp_path / "p.parquet")))
    docs = list(read_documents(str(tmp_path / "p.parquet"), on_bad_record="skip"))
    assert docs[0] == ["a"] and docs[2] == ["b"] and docs[1].where.endswith("p.parquet:row 1")


def test_skipped_records_are_counted_deterministic_and_resume_exactly(
    tmp_path, corpus_dir, tokenizer_info, capfd
):
    """Skip mode: every bad record is skipped and counted once per epoch, the count travels with
    the position, and a stream restarted from any batch's position continues identically (same
    batches, same counts)."""
    from electra_lightning.data.datamodule import DATA_POSITION_KEY

    path = tmp_path / "bad.jsonl"
    bad = jsonl_with_bad_records(corpus_dir, path)
    assert len(bad) >= 6

    def stream(**kw):
        return make_stream(
            corpus_dir,
            tokenizer_info,
            sources=[str(path)],
            endless=True,
            batch_size=16,
            max_seq_length=128,
            on_bad_record="skip",
            **kw,
        )

    one_pass = sum(
        1
        for _ in make_stream(
            corpus_dir,
            tokenizer_info,
            sources=[str(path)],
            batch_size=16,
            max_seq_length=128,
            on_bad_record="skip",
        )
    )
    it = iter(stream())
    reference = [next(it) for _ in range(one_pass + 2)]
    counts = [b[DATA_POSITION_KEY]["skipped"] for b in reference]
    assert counts == sorted(counts) and counts[one_pass - 1] == len(bad)  # every one, once
    assert counts[-1] >= len(bad)  # counted again in the second epoch
    warned = capfd.readouterr().err
    assert f"bad.jsonl:{bad[0]}: broken JSON line" in warned and "data.on_bad_record=skip" in warned
    for cut in (3, one_pass // 2, one_pass - 1):
        rit = iter(stream(resume_positions={0: reference[cut][DATA_POSITION_KEY]}))
        for expected in reference[cut + 1 : cut + 3]:
            got = next(rit)
            assert torch.equal(got["input_ids"], expected["input_ids"]), cut
            assert torch.equal(got["masked_positions"], expected["masked_positions"]), cut
            assert got[DATA_POSITION_KEY]["skipped"] == expected[DATA_POSITION_KEY]["skipped"]


def test_skipped_count_survives_the_datamodule_state_and_is_limited(
    tmp_path, corpus_dir, tokenizer_dir
):
    path = tmp_path / "bad.jsonl"
    jsonl_with_bad_records(corpus_dir, path, bad_every=3)
    kw = dict(
        train_files=str(path),
        tokenizer=str(tokenizer_dir),
        batch_size=4,
        num_workers=0,
        on_bad_record="skip",
    )
    dm = ElectraDataModule(**kw, max_bad_records=100)
    it = iter(dm.train_dataloader())
    for _ in range(3):
        dm.on_before_batch_transfer(next(it), 0)
    assert dm.skipped_records() > 5
    other = ElectraDataModule(**kw, max_bad_records=5)
    other.load_state_dict(dm.state_dict())
    assert other.skipped_records() == dm.skipped_records()
    other.check_skipped_records(5)
    with pytest.raises(ValueError, match="6 bad records skipped, more than data.max_bad_records=5"):
        other.check_skipped_records(6)
    # the data module enforces its own limit as batches arrive (no model involved)
    strict = ElectraDataModule(**kw, max_bad_records=1)
    it = iter(strict.train_dataloader())
    with pytest.raises(ValueError, match="more than data.max_bad_records=1"):
        for _ in range(3):
            strict.on_before_batch_transfer(next(it), 0)


def test_only_a_batch_with_padding_carries_an_attention_mask(corpus_dir, tokenizer_info):
    """Packed batches fill every position: no mask (so attention checks nothing on the device);
    the stream's last, short examples are padded and come with their mask."""
    batches = list(make_stream(corpus_dir, tokenizer_info))
    assert len(batches) > 2
    assert all("attention_mask" not in b for b in batches[:-1])
    last = batches[-1]
    assert "attention_mask" in last and (last["attention_mask"] == 0).any()
    assert torch.equal(attention_mask_of(last), last["attention_mask"])
    assert attention_mask_of(batches[0]).all()


def test_a_data_warning_is_printed_once_per_file_per_run(
    tmp_path, corpus_dir, tokenizer_dir, capfd
):
    """A file with invalid UTF-8 throughout, read by 2 workers in 8 byte ranges over several
    passes: its warning reaches the main process with the batches and is printed once."""
    from electra_lightning import ElectraDataModule
    from electra_lightning.data.sources import _warned

    path = tmp_path / "latin1.txt"
    docs = (corpus_dir / "train.txt").read_bytes().split(b"\n\n")
    path.write_bytes(b"\n\n".join(d + b"\ncaf\xe9 ol\xe9" for d in docs))
    dm = ElectraDataModule(
        train_files=str(path),
        tokenizer=str(tokenizer_dir),
        max_seq_length=64,
        batch_size=8,
        num_workers=2,
    )
    dm.setup("fit")
    _warned.clear()
    loader = dm.train_dataloader()
    batches = 0
    with pytest.warns(UserWarning) as caught:
        for batch in loader:
            dm.on_before_batch_transfer(batch, 0)
            batches += 1
            if batches == 3 * 120:  # the file is ~110 batches: several passes
                break
    printed = capfd.readouterr().err.count("invalid UTF-8")
    messages = [str(w.message) for w in caught if "invalid UTF-8" in str(w.message)]
    assert len(messages) == 1 and printed == 0, (messages, printed)  # none from the workers
    assert messages[0].startswith(f"{path}: ") and "said once per run" in messages[0]


def test_the_runs_output_is_left_out_of_a_corpus_reached_through_a_symlink(tmp_path):
    """The corpus named through a symlink, the run writing inside the real directory (or the
    other way round): W&B's requirements.txt is not read back as text."""
    from electra_lightning.data.datamodule import exclude_outputs

    real = tmp_path / "corpus"
    (real / "runs/wandb/files").mkdir(parents=True)
    (real / "a.txt").write_text("text\n")
    (real / "runs/wandb/files/requirements.txt").write_text("torch==2.13.0\n")
    (tmp_path / "link").symlink_to(real)
    sources = [
        str(tmp_path / "link/a.txt"),
        str(tmp_path / "link/runs/wandb/files/requirements.txt"),
    ]
    assert exclude_outputs(sources, [str(real / "runs/wandb")], "data.train_files") == sources[:1]
    sources = [str(real / "a.txt"), str(real / "runs/wandb/files/requirements.txt")]
    kept = exclude_outputs(sources, [str(tmp_path / "link/runs/wandb")], "data.train_files")
    assert kept == sources[:1]


def test_a_refused_resume_says_what_differs_in_the_data():
    from electra_lightning.data.datamodule import describe_change

    saved = {"sources": ["a.txt", "b.txt"], "sizes": [10, 20], "batch_size": 8}
    grown = {"sources": ["a.txt", "b.txt"], "sizes": [10, 25], "batch_size": 8}
    assert describe_change("sizes", saved, grown) == "b.txt changed size (20 → 25 bytes)"
    moved = {"sources": ["a.txt", "c.txt"], "sizes": [10, 20], "batch_size": 8}
    assert describe_change("sources", saved, moved) == (
        "data.train_files: 1 added (first: c.txt), 1 gone (first: b.txt)"
    )
    other = {**saved, "batch_size": 16}
    assert describe_change("batch_size", saved, other) == "data.batch_size: checkpoint 8, now 16"


def _all_bad_jsonl(path, records):
    """A JSONL file whose records all lack the text field (a wrong data.text_field)."""
    path.write_text("".join(json.dumps({"body": f"sentence {i} ."}) + "\n" for i in range(records)))
    return str(path)


def _skipping_stream(source, tokenizer_info, **settings):
    return PretrainingStream.build(
        [source],
        tokenizer_info,
        max_seq_length=64,
        batch_size=8,
        on_bad_record="skip",
        shuffle=False,
        **settings,
    )


def test_a_wrong_text_field_stops_at_the_limit_in_a_few_lines(tmp_path, tokenizer_info, capsys):
    """5,000 bad records, max_bad_records 100: it stops at record 101, before any batch exists,
    in a handful of lines, and says every record so far is bad (it used to print a line per
    record, 5,000 of them, and only checked the limit once a batch existed)."""
    source = _all_bad_jsonl(tmp_path / "wrong-field.jsonl", 5000)
    stream = _skipping_stream(source, tokenizer_info, max_bad_records=100)
    with pytest.raises(
        ValueError,
        match=r"101 bad records skipped, more than data.max_bad_records="
        r"100 \(every record read so far is bad\); the last: .*wrong-field.jsonl:101",
    ):
        next(iter(stream))
    lines = capsys.readouterr().err.strip().splitlines()
    assert 3 <= len(lines) <= 10, lines
    assert lines[0].startswith(f"warning: skipped bad record {source}:1: ")
    assert any(line.endswith("100 bad records skipped so far") for line in lines)


def test_every_record_bad_below_the_limit_is_said_as_such(tmp_path, tokenizer_info):
    source = _all_bad_jsonl(tmp_path / "wrong-field.jsonl", 50)
    stream = _skipping_stream(source, tokenizer_info)
    with pytest.raises(ValueError, match=r"every record shard 0/1 read is bad \(50; e.g. .*:50: "):
        next(iter(stream))


def test_bad_record_line_numbers_cost_one_scan_per_unit(tmp_path, tokenizer_info, monkeypatch):
    """Naming a bad record's line used to rescan the file from byte 0 for each record (quadratic
    in the bad region); now one scan per unit, however many records are bad."""
    import electra_lightning.data.sources as sources

    scans = []
    real = sources._line_number
    monkeypatch.setattr(sources, "_line_number", lambda *a: scans.append(a) or real(*a))
    source = _all_bad_jsonl(tmp_path / "wrong-field.jsonl", 400)
    items = list(sources.read_unit(sources.Unit(source), "text", "skip"))
    assert len(items) == 400 and [i[2].where for i in items[:3]] == [
        f"{source}:1",
        f"{source}:2",
        f"{source}:3",
    ]
    assert items[-1][2].where == f"{source}:400"
    assert len(scans) == 1


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_a_corrupt_parquet_row_group_is_a_bad_record(tmp_path, tokenizer_info, corpus_dir, mode):
    """Row group 1 of 3 has corrupt compressed data: `error` names the file and row group in one
    line (it was a worker traceback ending in `OSError: Corrupt snappy compressed data.`);
    `skip` counts it as one bad record and reads groups 0 and 2."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from electra_lightning.data.sources import Unit, read_unit

    docs = [d for d in (corpus_dir / "train.txt").read_text().split("\n\n") if d.strip()][:30]
    path = tmp_path / "corpus.parquet"
    pq.write_table(
        pa.table({"text": docs}),
        path,
        row_group_size=10,
        compression="snappy",
        use_dictionary=False,
    )
    column = pq.ParquetFile(path).metadata.row_group(1).column(0)
    start = column.data_page_offset + column.total_compressed_size // 2  # inside its data page
    data = bytearray(path.read_bytes())
    data[start : start + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    items = read_unit(Unit(str(path), 0, -1), "text", mode)
    if mode == "error":
        with pytest.raises(
            ValueError, match=r"corpus.parquet:row group 1 \(rows 10–19\): unreadable"
        ):
            list(items)
        return
    items = list(items)
    bad = [i for i in items if not isinstance(i[2], list)]
    assert len(bad) == 1 and "row group 1" in bad[0][2].where
    assert {i[0] for i in items if isinstance(i[2], list)} == set(range(10)) | set(range(20, 30))


def _looped_corpus(root):
    """corp/{a,b}.txt, corp/sub/c.jsonl, a hidden corp/.cache/d.txt and corp/loop -> ."""
    corp = root / "corp"
    (corp / "sub").mkdir(parents=True)
    (corp / ".cache").mkdir()
    (corp / "a.txt").write_text("a\n")
    (corp / "b.txt").write_text("b\n")
    (corp / "sub/c.jsonl").write_text('{"text": "c"}\n')
    (corp / ".cache/d.txt").write_text("d\n")
    (corp / "loop").symlink_to(".")
    return corp


def test_globs_and_directories_read_each_file_once_through_a_symlink_loop(tmp_path):
    """`corp/loop -> .`: a `**` glob and a directory source list each file once (a glob used to
    follow the loop until the path was too long: the same files 41 times)."""
    corp = _looped_corpus(tmp_path)
    real = {"a.txt", "b.txt", "sub/c.jsonl", ".cache/d.txt"}
    for spec in (f"{corp}/**/*.*", str(corp), f"{corp}/**", f"{corp}/*/*.*"):
        found = resolve_sources(spec, "data.train_files")
        names = [os.path.relpath(os.path.realpath(p), corp) for p in found]
        assert len(names) == len(set(names)), (spec, found)
        assert set(names) <= real, (spec, found)
    assert len(resolve_sources(str(corp), "data.train_files")) == 4  # a directory: hidden too
    assert len(resolve_sources(f"{corp}/**/*.*", "data.train_files")) == 3  # glob: no hidden


def test_globs_match_what_glob_matches_without_a_loop(tmp_path, monkeypatch):
    import glob

    from electra_lightning.data.sources import _glob

    corp = _looped_corpus(tmp_path)
    (corp / "loop").unlink()
    (corp / "sub/deeper").mkdir()
    (corp / "sub/deeper/e.txt").write_text("e\n")
    monkeypatch.chdir(tmp_path)
    for pattern in (
        "corp/**/*.txt",
        "corp/**",
        "**/*.jsonl",
        "corp/*/*.jsonl",
        "corp/**/deeper/*.txt",
        "corp/.cache/*.txt",
        f"{corp}/**/*.txt",
        "corp/s*/**/*.txt",
    ):
        expected = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
        assert sorted(_glob(pattern)) == sorted(expected), pattern


def test_a_named_pipe_as_a_corpus_file_says_what_it_is(tmp_path):
    pipe = tmp_path / "stream.txt"
    os.mkfifo(pipe)
    with pytest.raises(ValueError, match=r"stream.txt' is a named pipe \(FIFO\), not a regular"):
        resolve_sources(str(pipe), "data.train_files")


def test_stream_and_masking_defaults_are_written_once():
    """The data module's stream and masking options read their defaults from StreamConfig and
    MaskingConfig (``batch_size: int = StreamConfig.batch_size``) instead of typing them again,
    and the packer, which the stream always configures, declares none of its own."""
    import ast
    import dataclasses
    import inspect
    import textwrap

    from electra_lightning.data.stream import StreamConfig
    from electra_lightning.model.masking import MaskingConfig

    tree = ast.parse(textwrap.dedent(inspect.getsource(ElectraDataModule.__init__)))
    args = tree.body[0].args
    written = {
        a.arg: ast.unparse(d)
        for a, d in zip(args.args[-len(args.defaults) :], args.defaults, strict=True)
    }
    owner = {f.name: f"StreamConfig.{f.name}" for f in dataclasses.fields(StreamConfig)}
    owner |= {f.name: f"MaskingConfig.{f.name}" for f in dataclasses.fields(MaskingConfig)}
    owner["whole_word_masking"] = owner.pop("whole_word")  # the option's name for it
    assert {name: written.get(name) for name in owner} == owner
    packer_defaults = [
        f.name
        for f in dataclasses.fields(ExamplePacker)
        if f.name in owner and f.default is not dataclasses.MISSING
    ]
    assert packer_defaults == []
