"""Checkpoint files: atomic writes, safe (``weights_only``) loads, clear errors."""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


def load_checkpoint(path: str, field: str = "--ckpt_path") -> dict:
    """``torch.load(path, weights_only=True)``: refuses pickles that would run code.

    Raises a one-line ``ValueError`` naming the file for a missing, truncated, corrupt or unsafe
    checkpoint.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise ValueError(f"{field}: checkpoint '{path}' does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err) or "Unsupported global" in str(err):
            raise ValueError(
                f"{field}: refused to load '{path}': it holds objects that would run code when "
                "unpickled (loaded with weights_only=True); if you trust the file, convert it "
                "yourself with torch.load(weights_only=False)"
            ) from None
        raise ValueError(
            f"{field}: checkpoint '{path}' is truncated or corrupt (not a torch checkpoint); "
            "use an earlier one"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        first = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(
            f"{field}: checkpoint '{path}' is truncated or corrupt ({first}); use an earlier one"
        ) from None


def from_all_ranks(obj: Any) -> list:
    """``obj`` of every rank, in rank order (``[obj]`` without a process group). Checkpoints are
    written by rank 0 alone, so per-rank state (RNG, data position) is gathered first."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [obj]
    gathered: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def atomic_save(obj: Any, path: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``.

    A crash or a full disk mid-write leaves the previous file at ``path`` untouched.
    """
    path = str(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise ValueError(
            f"cannot write checkpoint '{path}' ({err.strerror or err}); free disk space or point "
            "the checkpoint directory elsewhere — earlier checkpoints are untouched"
        ) from None


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO with atomic writes and ``weights_only=True`` loads."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return load_checkpoint(path)
