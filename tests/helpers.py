"""What several test modules share (each test module imports from here, never from another test
module): paths and limits, running the CLI, small inputs, a host-sync spy, and the test-only
callbacks passed on the command line with ``--trainer.callbacks+=tests.helpers.NAME``.

Imported by conftest after it sets the offline environment (lightning imports huggingface_hub)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from torch.utils._python_dispatch import TorchDispatchMode

from electra_lightning.cli.main import main
from electra_lightning.model.masking import MaskingConfig, mask_tokens

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# Subprocesses are bounded by their work (steps, examples); this only stops a hung one from
# holding CI until its hard limit. Far above what any test takes on a loaded 2-core machine.
HANG_GUARD = 1800


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


# -- running the CLI ------------------------------------------------------------------------------


def run_cli(*args, cwd, check=True, env=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "electra_lightning", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def tiny_args(corpus_dir, tokenizer_dir, steps=30):
    return [
        "--config",
        str(REPO / "configs" / "tiny.yaml"),
        f"--data.train_files={corpus_dir / 'train.txt'}",
        f"--data.val_files={corpus_dir / 'val.txt'}",
        f"--data.tokenizer={tokenizer_dir}",
        f"--trainer.max_steps={steps}",
        "--trainer.val_check_interval=15",
        "--trainer.limit_val_batches=2",
        "--trainer.log_every_n_steps=5",
        "--trainer.enable_progress_bar=false",
        "--trainer.callbacks.init_args.every_n_train_steps=15",
        "--model.size.num_layers=2",
        "--model.warmup_steps=5",
        "--data.num_workers=0",
    ]


@contextmanager
def cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_main(argv: list[str], workdir: Path, capsys) -> tuple[int, str]:
    """``python -m electra_lightning ARGV`` in-process: (exit code, stderr)."""
    capsys.readouterr()
    with cwd(workdir):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argument-parser errors
            code = exit_.code
    return code, capsys.readouterr().err


# -- small inputs ---------------------------------------------------------------------------------


def tiny_batch(vocab_size: int, seq_length: int, batch: int = 4, seed: int = 0) -> dict:
    """A pretraining batch of random ids: [CLS] at 0, [SEP] in the middle and near the end, the
    second segment's token types 1, the first example's last 4 positions padding, up to 4
    positions masked (ids 0–4 are the special tokens)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (batch, seq_length), generator=g)
    ids[:, 0], ids[:, seq_length // 2], ids[:, -5] = 2, 3, 3
    attention = torch.ones(batch, seq_length, dtype=torch.long)
    attention[0, -4:] = 0  # one padded example
    ids[0, -4:] = 0
    types = (torch.arange(seq_length) > seq_length // 2).long().expand(batch, seq_length).clone()
    special = torch.isin(ids, torch.tensor([0, 1, 2, 3, 4]))
    masked = mask_tokens(ids, special, MaskingConfig(0.25), 4, vocab_size, g)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": attention, **masked}


def jsonl_with_bad_records(corpus_dir, path, bad_every=37):
    """The demo corpus as JSONL, one document per 5 lines, with a broken line, a record without
    the text field and a non-object every ``bad_every`` records."""
    lines = [line.strip() for line in open(corpus_dir / "train.txt") if line.strip()]
    bad, kinds = [], ['{"text": broken', '{"body": "no text"}', "[1, 2]"]
    with open(path, "w") as f:
        for n, start in enumerate(range(0, len(lines), 5), 1):
            if n % bad_every == 0:
                f.write(kinds[len(bad) % 3] + "\n")
                bad.append(n)
            else:
                f.write(json.dumps({"text": "\n".join(lines[start : start + 5])}) + "\n")
    return bad


# The Hub datasets the shipped configs name, mirrored locally with the Hub's layout.
HUB_LAYOUT = {
    "Skylion007/openwebtext": ("plain_text", "train", 4),  # (config, split, file shards)
    "Salesforce/wikitext": ("wikitext-103-raw-v1", "validation", 1),
}


def write_hub_mirror(root: Path, name: str, texts: list[str]) -> Path:
    """A local directory that ``datasets.load_dataset(DIR, CONFIG, split=..., streaming=True)``
    reads as it reads the Hub repository ``name``: parquet shards and a README's ``configs:``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    config, split, shards = HUB_LAYOUT[name]
    directory = root / name
    (directory / config).mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        pq.write_table(
            pa.table({"text": texts[shard::shards]}),
            directory / config / f"{split}-{shard:05d}-of-{shards:05d}.parquet",
        )
    default = "\n  default: true" if config == "plain_text" else ""
    (directory / "README.md").write_text(
        f"---\nconfigs:\n- config_name: {config}{default}\n  data_files:\n"
        f"  - split: {split}\n    path: {config}/{split}-*\n---\n"
    )
    return directory


def scaled_size(config: Path) -> list[str]:
    """The model 2 layers deep and 1/4 as wide (min 32), keeping whether the embeddings are
    narrower than the hidden layers (Small's embeddings_project)."""
    from electra_lightning.model.electra import ModelSize

    size = ModelSize(**yaml.safe_load(config.read_text())["model"]["size"]).resolved()
    hidden = max(32, size.hidden_size // 4)
    embedding = hidden if size.embedding_size == size.hidden_size else hidden // 2
    return [
        "--model.size.num_layers=2",
        f"--model.size.hidden_size={hidden}",
        f"--model.size.num_heads={max(1, size.num_heads // 4)}",
        f"--model.size.intermediate_size={hidden * 4}",
        f"--model.size.embedding_size={embedding}",
    ]


def summary_of(tmp_path, rows: str, **kwargs) -> str:
    from electra_lightning.report.summary import summarize

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(rows)
    return summarize(str(run), **kwargs)


# -- a host-sync spy and test-only callbacks ------------------------------------------------------

# The ops through which a tensor's value reaches the host: on CUDA each one waits for the GPU.
SYNC_OPS = {
    torch.ops.aten._local_scalar_dense.default,  # .item(), float(t), int(t), bool(t)
    torch.ops.aten.is_nonzero.default,  # `if t:`
    torch.ops.aten.equal.default,  # torch.equal
    torch.ops.aten._assert_async.default,
    torch.ops.aten._assert_async.msg,
}


class SyncSpy(TorchDispatchMode):
    """Records every op that reads a tensor's value on the host, with where it was called from.

    How device syncs are told from host-only ones on a CPU run: the data is read in a DataLoader
    worker (another process, not spied), so every tensor the spied process touches during the
    step is one the training device would hold — the model's, the optimizer's, the batch after
    the transfer, Lightning's logged values. A value read from any of them is counted; nothing
    is excused. Copies to the CPU (``.cpu()``/``.to("cpu")``) are also a sync on CUDA: they are
    counted when the source is not already a host tensor, which on a CPU run cannot be told, so
    they are listed separately (``copies``) and must be 0 too."""

    def __init__(self):
        super().__init__()
        self.syncs: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SYNC_OPS:
            frames = [
                f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                for f in traceback.extract_stack()[:-1]
                if "torch/utils/_python_dispatch" not in f.filename
            ]
            self.syncs.append(f"{func}: " + " <- ".join(reversed(frames[-6:])))
        return func(*args, **(kwargs or {}))


class RankAudit(L.Callback):
    """Records a hash of every trained example and, at the end, this rank's full weights."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.samples: list[str] = []
        self.val_batches = 0  # validation batches this rank ran (sanity check included)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        for row in batch["input_ids"]:
            self.samples.append(hashlib.sha1(row.cpu().numpy().tobytes()).hexdigest())

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        self.val_batches += 1

    def on_train_end(self, trainer, pl_module):
        state = {}
        for name, tensor in pl_module.state_dict().items():
            if hasattr(tensor, "full_tensor"):  # FSDP2 DTensor shard → the whole tensor
                tensor = tensor.full_tensor()
            state[name] = tensor.detach().cpu().clone()
        os.makedirs(self.out_dir, exist_ok=True)
        torch.save(
            {
                "rank": trainer.global_rank,
                "samples": self.samples,
                "val_batches": self.val_batches,
                "state": state,
            },
            os.path.join(self.out_dir, f"rank{trainer.global_rank}.pt"),
        )


class StepFile(L.Callback):
    """Writes the number of finished optimizer steps to a file after every batch, so a test
    knows where a run is without waiting for a logger to flush."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            f.write(str(trainer.global_step))
        os.replace(tmp, self.path)  # a reader never sees a half-written file


class SendSignal(L.Callback):
    """Sends ``signum`` to this process when step ``at_step`` (or micro-batch ``at_batch``) starts
    (a cluster's SIGTERM, SLURM's SIGUSR1, Ctrl-C)."""

    def __init__(self, signum: int, at_step: int = -1, at_batch: int = -1, rank: int = -1):
        self.signum, self.at_step, self.at_batch, self.rank = signum, at_step, at_batch, rank
        self.sent = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # at_batch: the micro-batch (with gradient accumulation several make one step); rank:
        # only that rank is signalled (-1: every rank)
        if self.rank >= 0 and trainer.global_rank != self.rank:
            return
        due = trainer.global_step == self.at_step or batch_idx == self.at_batch
        if due and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


class SendSignalAt(L.Callback):
    """Sends ``signum`` to this process from the callback hook ``hook`` (``setup``,
    ``on_load_checkpoint``, ``on_sanity_check_start``, ...): a deterministic point in the start-up
    window, instead of a sleep."""

    def __init__(self, signum: int, hook: str):
        self.signum = signum
        setattr(self, hook, self._send)

    def _send(self, *args, **kwargs):
        os.kill(os.getpid(), self.signum)
