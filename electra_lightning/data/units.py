"""What a corpus is cut into: the formats it may hold, and the *units* (whole files, byte ranges
of larger text/JSONL files, parquet row groups, a Hub dataset's own shards) that are dealt to the
readers (ranks × DataLoader workers) each epoch, so each reads only its own share. The readers of
a unit are in ``sources.py``."""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass

TEXT_SUFFIXES = (".txt", ".text", ".raw")
JSONL_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
HUB_PREFIX = "hub:"


@dataclass(frozen=True)
class Unit:
    """A piece of the corpus that one shard reads from start to end.

    Text and JSONL: bytes ``[start, end)`` of a file (``end=-1``: to its end); a document belongs
    to the range in which its first line starts, so a reader resynchronises at the first document
    that starts at or after ``start`` and finishes the last one past ``end``. Parquet: row groups
    ``[start, end)``. Hub: shard ``hub_index`` of ``hub_count`` of the dataset's own file shards.
    """

    source: str
    start: int = 0
    end: int = -1
    size: int = 0  # bytes, for balancing shards
    hub_index: int = 0
    hub_count: int = 1


def split_units(sources: list[str], num_shards: int) -> list[Unit]:
    """The corpus cut so that ``num_shards`` shards can each read about 1/n of its bytes.

    Pieces are at most ``total / (4 · num_shards)`` bytes, so dealing them out leaves no shard
    more than 1.25× its share: smaller text/JSONL files stay whole, larger ones are cut into byte
    ranges; parquet files are split by row group; a Hub dataset becomes one unit per shard (see
    :func:`read_unit`).
    """
    local = [s for s in sources if not s.startswith(HUB_PREFIX)]
    total = sum(os.path.getsize(s) for s in local)
    target = max(1, math.ceil(total / (4 * max(1, num_shards))))
    units: list[Unit] = []
    for source in sources:
        if source.startswith(HUB_PREFIX):
            units += [Unit(source, hub_index=i, hub_count=num_shards) for i in range(num_shards)]
        elif source.endswith(PARQUET_SUFFIXES):
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(source).metadata
            for group in range(meta.num_row_groups):
                size = meta.row_group(group).total_byte_size
                units.append(Unit(source, group, group + 1, size))
        else:
            size = os.path.getsize(source)
            pieces = max(1, math.ceil(size / target)) if num_shards > 1 else 1
            bounds = [size * i // pieces for i in range(pieces + 1)]
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                units.append(Unit(source, lo, hi if hi < size else -1, hi - lo))
    return units


def assign_units(units: list[Unit], num_shards: int, seed: int | None) -> list[list[Unit]]:
    """Units per shard for one epoch: in an order shuffled by ``seed`` (None: corpus order), each
    unit to the shard with the fewest bytes so far (Hub units to their own shard), each shard
    reading its units in that order."""
    order = list(range(len(units)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    shards: list[list[Unit]] = [[] for _ in range(num_shards)]
    load = [0] * num_shards
    for index in order:
        unit = units[index]
        if unit.hub_count > 1:
            target = unit.hub_index
        else:
            target = min(range(num_shards), key=lambda s: (load[s], s))
        shards[target].append(unit)
        load[target] += max(1, unit.size)
    return shards
