"""Streaming at scale, as ratios measured in one run:

1. one of 16 shards streaming its share of the corpus vs one shard streaming all of it, one
   training epoch each (read + tokenize + pack + mask; goal ≤ 0.1, ideal 1/16 = 0.0625);
2. resuming at 90% of a ≥ 200 MB corpus vs at 0%: the time to the first batch (goal ≤ 1.5).

    python benchmarks/stream_bench.py CORPUS_DIR TOKENIZER_DIR [--resume_mb 200]

Runs against the ``electra_lightning`` importable from the current directory, so the same script
measures an older checkout too (run it from there); positions are built the way each version's
checkpoints hold them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, ".")

from electra_lightning.data.datamodule import PretrainingStream, load_tokenizer_info  # noqa: E402
from electra_lightning.data.stream import DATA_POSITION_KEY  # noqa: E402
from electra_lightning.model.masking import MaskingConfig  # noqa: E402


def stream(sources, tok, rank=0, world=1, endless=False, resume=None):
    kwargs = {"endless": endless, "rank": rank, "world_size": world}
    if resume is not None:
        kwargs["resume_positions"] = {0: resume}
    if hasattr(PretrainingStream, "build"):
        return PretrainingStream.build(
            sources, tok, max_seq_length=128, batch_size=128, shuffle=False, **kwargs
        )
    try:  # a checkout from before StreamConfig
        return PretrainingStream(sources, tok, 128, 128, MaskingConfig(), shuffle=False, **kwargs)
    except TypeError:  # before the shuffle existed
        return PretrainingStream(sources, tok, 128, 128, MaskingConfig(), **kwargs)


def one_pass_seconds(sources, tok, rank, world) -> tuple[float, int]:
    """One training epoch of shard ``rank`` of ``world``: the endless stream up to its pass's last
    batch. (A finite stream is validation's, which deals batches of the whole pass to shards,
    so every shard reads everything.)"""
    start = time.perf_counter()
    batches = 0
    for batch in stream(sources, tok, rank, world, endless=True):
        batches += 1
        if batch[DATA_POSITION_KEY]["epoch"] > 0:
            break
    return time.perf_counter() - start, batches


def first_batch_seconds(sources, tok, resume) -> float:
    start = time.perf_counter()
    next(iter(stream(sources, tok, endless=True, resume=resume)))
    return time.perf_counter() - start


def position_at(sources: list[str], tok, fraction: float) -> dict:
    """The data position at the first file boundary past ``fraction`` of the bytes."""
    sizes = [Path(s).stat().st_size for s in sources]
    total, seen, index = sum(sizes), 0, 0
    while seen < fraction * total:
        seen += sizes[index]
        index += 1
    packer = stream(sources, tok).new_packer(0).state_dict()
    if hasattr(PretrainingStream, "shard_units"):
        from electra_lightning.data.units import assign_units, split_units

        units = assign_units(split_units(sources, 1), 1, None)[0]
        unit = next(i for i, u in enumerate(units) if u.source == sources[index])
        within = {"unit": unit, "block_at": [0, 0], "block": 0, "item": 0, "sentence": 0}
    else:  # before units: a document index, reached by reading every document
        from electra_lightning.data.datamodule import read_documents

        documents = sum(1 for s in sources[:index] for _ in read_documents(s))
        within = {"document": documents, "sentence": 0}
    within["packer"] = packer
    return {"shard": 0, "num_shards": 1, "epoch": 0, "batch": 1, "within_epoch": within}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("tokenizer")
    parser.add_argument("--resume_mb", type=int, default=200)
    args = parser.parse_args()
    tok = load_tokenizer_info(args.tokenizer)
    files = sorted(str(p) for p in Path(args.corpus).rglob("*.txt"))
    mb = sum(Path(f).stat().st_size for f in files) / 2**20

    probe = stream(files, tok)
    if hasattr(probe, "shard_units"):
        read = sum(u.size for u in probe.shard_units(0, 16, 0)) / 2**20
    else:  # every shard read every document and kept 1/16
        read = mb
    share, share_batches = one_pass_seconds(files, tok, 0, 16)
    whole, whole_batches = one_pass_seconds(files, tok, 0, 1)
    print(f"## Sharding ({mb:.0f} MB, {len(files)} files)")
    print(f"one of 16 shards: {share:.1f} s ({share_batches} batches)")
    print(f"one shard, whole corpus: {whole:.1f} s ({whole_batches} batches)")
    print(f"ratio share / whole: {share / whole:.3f} (goal <= 0.1; ideal 0.0625)")
    print(f"bytes one of 16 shards reads: {read:.1f} MB of {mb:.1f} MB ({read / mb:.3f})")

    tmp = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    try:
        copies, written, big = 0, 0, []
        while written < args.resume_mb * 2**20:
            for f in files:
                target = tmp / f"copy{copies:02d}" / Path(f).relative_to(args.corpus)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
                big.append(str(target))
                written += target.stat().st_size
            copies += 1
        big.sort()
        at0 = first_batch_seconds(big, tok, None)
        at90 = first_batch_seconds(big, tok, position_at(big, tok, 0.9))
        print(f"\n## Resume ({written / 2**20:.0f} MB, {len(big)} files)")
        print(f"first batch from 0%: {at0:.2f} s; from 90%: {at90:.2f} s")
        print(f"ratio resume at 90% / at 0%: {at90 / at0:.2f} (goal <= 1.5)")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
