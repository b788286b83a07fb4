"""The labelled data of experiment 4: class-balanced random SST-2 training subsets (one per label
count and seed, the same for every encoder), the held-out training examples the fine-tuning
settings are picked on, and the bag-of-words baseline on the same subsets.

The SST-2 training set is split once (``random.Random("held-out")``) into ``HELD_OUT_EXAMPLES``
class-balanced held-out examples and the pool every subset is drawn from; a subset of ``n``
labels for seed ``s`` is ``n / 2`` examples of each class drawn from the pool with
``random.Random(f"{n}-{s}")``: deterministic, different for every seed, shared by every encoder.
Each subset is written as a GLUE folder (``SST-2/train.tsv`` and a ``dev.tsv``) the ``glue``
command reads.
"""

from __future__ import annotations

import csv
import math
import random
from collections import Counter
from pathlib import Path

from experiments.probe import SHARED

SST2 = SHARED / "glue" / "SST-2"
HELD_OUT_EXAMPLES = 2000  # training examples the grid is scored on (never dev)
GRID_LABELS = 1000  # the grid's fine-tuning subset (drawn from the pool like the others)


def read(split: str) -> list[tuple[str, int]]:
    """(sentence, label) of an SST-2 split."""
    with open(SST2 / f"{split}.tsv", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(r["sentence"], int(r["label"])) for r in rows]


def balanced(rows: list[tuple[str, int]], n: int, rng: random.Random) -> list[tuple[str, int]]:
    """``n / 2`` rows of each class, drawn with ``rng``, in a shuffled order."""
    chosen = []
    for label in (0, 1):
        chosen += rng.sample([r for r in rows if r[1] == label], n // 2)
    rng.shuffle(chosen)
    return chosen


def split_train() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(held-out examples, the pool the subsets come from): a disjoint split of SST-2 train."""
    train = read("train")
    held_out = balanced(train, HELD_OUT_EXAMPLES, random.Random("held-out"))
    taken = Counter(held_out)
    pool = []
    for row in train:  # duplicates in SST-2 train: leave out as many as were held out
        if taken[row]:
            taken[row] -= 1
        else:
            pool.append(row)
    return held_out, pool


def subset(pool: list[tuple[str, int]], n: int, seed: int) -> list[tuple[str, int]]:
    return balanced(pool, n, random.Random(f"{n}-{seed}"))


def write_task(directory: Path, train: list, dev: list) -> Path:
    """A GLUE root holding ``SST-2/{train,dev}.tsv``; returns the root (kept if it is there)."""
    folder = directory / "SST-2"
    if not (folder / "dev.tsv").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in (("train", train), ("dev", dev)):
            with open(folder / f"{name}.tsv.tmp", "w", newline="") as f:
                f.write("sentence\tlabel\n")
                f.writelines(f"{sentence}\t{label}\n" for sentence, label in rows)
        (folder / "train.tsv.tmp").rename(folder / "train.tsv")
        (folder / "dev.tsv.tmp").rename(folder / "dev.tsv")
    return directory


def naive_bayes(train: list[tuple[str, int]], test: list[tuple[str, int]]) -> float:
    """Accuracy (%) on ``test`` of multinomial Naive Bayes on word counts (lower-cased
    whitespace tokens, add-one smoothing) fitted on ``train``."""
    counts = [Counter(), Counter()]
    docs = Counter(label for _, label in train)
    for sentence, label in train:
        counts[label].update(sentence.lower().split())
    vocab = set(counts[0]) | set(counts[1])
    totals = [sum(c.values()) + len(vocab) for c in counts]
    prior = [math.log(docs[c] / len(train)) if docs[c] else -math.inf for c in (0, 1)]
    right = 0
    for sentence, label in test:
        words = [w for w in sentence.lower().split() if w in vocab]
        score = [
            prior[c] + sum(math.log((counts[c][w] + 1) / totals[c]) for w in words) for c in (0, 1)
        ]
        right += int(score[1] > score[0]) == label
    return 100 * right / len(test)


def majority(train: list[tuple[str, int]], test: list[tuple[str, int]]) -> float:
    """Accuracy (%) on ``test`` of always answering the most frequent class of ``train`` (ties:
    the most frequent class of ``test``, the best a constant can do)."""
    counts = Counter(label for _, label in train)
    if counts[0] == counts[1]:
        counts = Counter(label for _, label in test)
    answer = max((0, 1), key=lambda c: counts[c])
    return 100 * sum(label == answer for _, label in test) / len(test)
