"""Checkpoint files: atomic writes, safe (``weights_only``) loads, clear errors, and the tokenizer
files a checkpoint carries (checked against an allow-list before anything is written)."""

from __future__ import annotations

import errno
import os
import pickle
import random
import resource
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

TOKENIZER_CHECKPOINT_KEY = "electra_tokenizer_files"  # the tokenizer travels inside checkpoints
DATA_STATE_KEY = "ElectraDataModule"  # where Lightning stores the data module's state_dict
# The only names a checkpoint's tokenizer files may have: plain file names, no directories.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
)
CheckpointKind = Literal["pretraining", "finetuning"]


def load_checkpoint(path: str, field: str = "--ckpt_path") -> dict:
    """``torch.load(path, weights_only=True)`` of a checkpoint written by this project.

    Refuses pickles that would run code. Raises a one-line ``ValueError`` naming the file for a
    missing, truncated, corrupt or unsafe file, a directory, and a file that holds something other
    than a Lightning checkpoint (a bare tensor, another program's dict).
    """
    path = str(path)
    if os.path.isdir(path):
        sharded = os.path.isfile(os.path.join(path, ".metadata"))
        raise ValueError(
            f"{field}: '{path}' is a directory, not a checkpoint file; "
            + (
                "it is a sharded FSDP2 checkpoint: resume it with --config "
                "configs/trainer/fsdp2.yaml, or export it"
                if sharded
                else "give the .ckpt file in it (e.g. last.ckpt)"
            )
        )
    if not os.path.isfile(path):
        raise ValueError(f"{field}: checkpoint '{path}' does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
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
    ours = (
        isinstance(checkpoint, dict)
        and isinstance(checkpoint.get("state_dict"), dict)
        and "pytorch-lightning_version" in checkpoint
        and checkpoint_kind(checkpoint) is not None
    )
    if not ours:  # whatever keys it has: another program's dict, another Lightning model's
        what = (
            f"a dict with keys {', '.join(map(str, list(checkpoint)[:5]))}"
            if isinstance(checkpoint, dict)
            else f"a {type(checkpoint).__name__}"
        )
        raise ValueError(
            f"{field}: '{path}' is not a checkpoint written by electra_lightning fit (it holds "
            f"{what}); give a .ckpt from a run's checkpoint directory"
        )
    return checkpoint


def checkpoint_kind(checkpoint: dict) -> CheckpointKind | None:
    """``pretraining`` (ElectraPretraining), ``finetuning`` (ElectraClassifier) or None."""
    hparams = checkpoint.get("hyper_parameters") or {}
    if "electra_config" in hparams:
        return "finetuning"
    if isinstance(hparams.get("size"), dict) or "generator_size" in hparams:  # before model.size
        return "pretraining"
    return None


def require_kind(checkpoint: dict, kind: CheckpointKind, path: str, field: str) -> None:
    """One line, with what to do instead, when ``checkpoint`` is not of ``kind``."""
    found = checkpoint_kind(checkpoint)
    if found == kind:
        return
    if found == "pretraining":
        raise ValueError(
            f"{field}: '{path}' is a pretraining checkpoint, not a fine-tuning one; to fine-tune "
            "from it pass it as --model.init_from (or `export` it first)"
        )
    if found == "finetuning":
        raise ValueError(
            f"{field}: '{path}' is a fine-tuning checkpoint; resume it with its fine-tuning "
            "config (configs/finetune/TASK.yaml), or `export` it for predict"
        )
    raise ValueError(f"{field}: '{path}' is not a checkpoint of this project's models")


def read_tokenizer_files(directory: str) -> dict[str, str]:
    """The tokenizer files of a directory (which may also hold a model), by name."""
    files = {}
    for name in TOKENIZER_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                files[name] = f.read()
    return files


def tokenizer_files_of(checkpoint: dict, path: str) -> dict[str, str]:
    """The tokenizer files stored in ``checkpoint`` ({} if none), checked before any is written.

    A checkpoint is untrusted input: a file name that is not one of ``TOKENIZER_FILES`` (an
    absolute path, ``..``, a separator, an unknown name) or content that is not text is refused
    with one line naming the checkpoint, so nothing can land outside the output directory.
    """
    data_state = checkpoint.get(DATA_STATE_KEY)
    files = (data_state.get("tokenizer_files") if isinstance(data_state, dict) else None) or (
        checkpoint.get(TOKENIZER_CHECKPOINT_KEY) or {}  # fine-tuning checkpoints keep it here
    )
    if not isinstance(files, dict):
        raise ValueError(f"checkpoint '{path}': its tokenizer entry is not a dict of files")
    for name, text in files.items():
        if not isinstance(name, str) or name not in TOKENIZER_FILES:
            raise ValueError(
                f"checkpoint '{path}': refused tokenizer file name {name!r} (allowed: "
                f"{', '.join(TOKENIZER_FILES)}); the checkpoint was altered or is not ours"
            )
        if not isinstance(text, str):
            raise ValueError(f"checkpoint '{path}': tokenizer file {name!r} is not text")
    return dict(files)


def write_tokenizer(files: dict[str, str], output_dir: str) -> None:
    """Write tokenizer files (names from ``TOKENIZER_FILES`` only) into ``output_dir``."""
    bad = [name for name in files if name not in TOKENIZER_FILES]
    if bad:  # callers pass tokenizer_files_of(...); this is the last line of defence
        raise ValueError(f"refused to write tokenizer files named {bad!r}")
    os.makedirs(output_dir, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(output_dir, name), "w", encoding="utf-8") as f:
            f.write(text)


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
    except BaseException as err:
        written = 0
        if os.path.exists(tmp):  # also on a second Ctrl-C mid-write: no temporary file left
            written = os.path.getsize(tmp)
            os.remove(tmp)
        if not isinstance(err, (OSError, RuntimeError)):
            raise
        # torch's zip writer reports ENOSPC (and EFBIG) as a RuntimeError ("PytorchStreamWriter
        # failed writing file ..."), not an OSError
        reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[-1][:200]
        raise ValueError(
            f"cannot write checkpoint '{path}' ({reason}); {_write_fix(err, written)} — earlier "
            "checkpoints are untouched"
        ) from None


def _write_fix(err: BaseException, written: int) -> str:
    """What to do about a failed checkpoint write: a file-size limit (``ulimit -f``; Python
    ignores SIGXFSZ, so the write fails with EFBIG) is not a full disk."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    code = getattr(err, "errno", None)
    if code == errno.EFBIG or (
        code is None and limit != resource.RLIM_INFINITY and written + (1 << 20) >= limit
    ):
        shown = "unlimited" if limit == resource.RLIM_INFINITY else f"{limit:,} bytes"
        return (
            f"the file-size limit of this process (ulimit -f: {shown}) is smaller than the "
            "checkpoint; raise it (`ulimit -f unlimited`)"
        )
    if code not in (None, errno.ENOSPC, errno.EDQUOT):
        return "check the checkpoint directory or point it elsewhere"
    return "free disk space or point the checkpoint directory elsewhere"


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO with atomic writes and ``weights_only=True`` loads."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return load_checkpoint(path)


# -- what a checkpoint carries besides the weights, and where it goes --------------------------


def _rng_state() -> dict:
    numpy_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "python": [version, list(internal), gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def gather_rng_states() -> list[dict]:
    """Every rank's RNG states (the checkpoint is written by rank 0 only)."""
    state = _rng_state()
    tensors = [k for k in ("torch", "cuda") if k in state]  # sent as lists: no device transfer
    gathered = from_all_ranks({**state, **{k: state[k].tolist() for k in tensors}})
    return [{**s, **{k: torch.tensor(s[k], dtype=torch.uint8) for k in tensors}} for s in gathered]


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def check_writable(directory: str | None, field: str) -> None:
    """Fail before training, not at the first checkpoint, when ``directory`` is not writable."""
    if not directory:
        return
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".write-test-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.remove(probe)
    except OSError as err:
        raise ValueError(
            f"{field}: cannot write to '{directory}' ({err.strerror or err}); choose a writable "
            "directory"
        ) from None


def checkpoint_step(path: str) -> int | None:
    """The optimizer step a checkpoint file (or FSDP2 directory) holds, or None if it cannot be
    read cheaply (memory-mapped; the real load and its checks come later)."""
    if os.path.isdir(path):
        path = os.path.join(path, "meta.pt")
    if not os.path.isfile(path):
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable: the real load says why, in one line
        return None
    step = checkpoint.get("global_step") if isinstance(checkpoint, dict) else None
    return step if isinstance(step, int) else None
