"""The linear probe every study reports (``electra_lightning.finetune.probe``), on ../shared/data/glue."""

from __future__ import annotations

from pathlib import Path

from electra_lightning.finetune import probe
from electra_lightning.finetune.probe import PROBE_TASKS, headline_metric  # noqa: F401 (re-exported)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def glue_split(task: str, split: str, limit: int = 0) -> list:
    return probe.glue_split(str(SHARED / "glue"), task, split, limit)


def linear_probe(encoder, tokenizer, tasks, train_limit, device="cpu", dev_limit=0, max_length=128):
    return probe.linear_probe(
        encoder, tokenizer, tasks, train_limit, device, dev_limit, max_length, str(SHARED / "glue")
    )
