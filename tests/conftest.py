"""Shared fixtures: a small corpus built from Python's own docstrings and a tokenizer trained on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# after the offline settings: tests.helpers imports lightning, which imports huggingface_hub
from .helpers import REPO  # noqa: E402


@pytest.fixture(autouse=True)
def no_inherited_wandb_service():
    """A test that runs ``wandb.init`` in this process leaves ``WANDB_SERVICE`` in os.environ;
    every later subprocess would then log through this process's W&B service (runs written
    after the subprocess exits, a resumed run refused). Dropped after each test."""
    yield
    os.environ.pop("WANDB_SERVICE", None)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    subprocess.run(
        [sys.executable, str(REPO / "data" / "make_demo_corpus.py"), "--output_dir", str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def tokenizer_dir(corpus_dir, tmp_path_factory) -> Path:
    from electra_lightning.data.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(str(corpus_dir / "train.txt"), str(out), vocab_size=2000)
    return out


@pytest.fixture(scope="session")
def tokenizer_info(tokenizer_dir):
    from electra_lightning.data.datamodule import load_tokenizer_info

    return load_tokenizer_info(str(tokenizer_dir))
