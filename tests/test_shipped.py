"""Every shipped config runs as shipped: its logger (W&B offline), its DataLoader workers, its
precision, its data source kind (``hub:`` through ``datasets.load_dataset(streaming=True)``),
validation, a checkpoint and a resume.

What each test changes, because 2 CPU cores cannot run it as shipped, and nothing else:
- steps: ``trainer.max_steps`` (then +2 on resume), ``trainer.val_check_interval`` and
  ``trainer.log_every_n_steps`` (every 2 steps);
- size: ``data.batch_size`` and the model's depth/width through ``model.size.*``
  (``max_position_embeddings`` and the sequence length stay as shipped);
- paths: ``data.tokenizer``, local files where the config names local files, and each ``hub:NAME``
  source pointed at a local directory laid out as the Hub repository ``NAME`` is (a README with
  its ``configs:`` and parquet shards), read through the same ``load_dataset`` call; the runs
  write under a temporary working directory (the configs' relative ``runs/``).
- devices: ``trainer.devices=2`` for the multi-device trainer configs (CPU has one "device").
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from electra_lightning.train.hardware import BF16_ENV, usable_cpus

from .helpers import HANG_GUARD, REPO, run_cli, scaled_size, write_hub_mirror

CONFIGS = REPO / "configs"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory, corpus_dir) -> Path:
    root = tmp_path_factory.mktemp("hub")
    documents = (corpus_dir / "train.txt").read_text().split("\n\n")
    write_hub_mirror(root, "Skylion007/openwebtext", [d for d in documents if d.strip()])
    lines = (corpus_dir / "val.txt").read_text().splitlines()
    write_hub_mirror(root, "Salesforce/wikitext", lines)
    return root


def local_sources(config: Path, hub_root: Path, corpus_dir: Path) -> list[str]:
    """``data.*_files`` of ``config`` with each ``hub:NAME`` pointed at its local mirror and each
    local path at the test corpus (same kind of source as shipped)."""
    data = yaml.safe_load(config.read_text())["data"]
    args = []
    for field, corpus_file in (("train_files", "train.txt"), ("val_files", "val.txt")):
        value = data.get(field)
        if isinstance(value, str) and value.startswith("hub:"):
            args.append(f"--data.{field}=hub:{hub_root}/{value.removeprefix('hub:')}")
        elif value:
            args.append(f"--data.{field}={corpus_dir / corpus_file}")
    return args


def checkpoint_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


def fit_and_resume(cwd: Path, base: list[str], steps: int = 4) -> dict:
    """fit ``steps`` steps (validation every 2), then ``--ckpt_path last`` for 2 more; both must
    exit 0 without a traceback. Returns the two processes."""
    every = ["--trainer.val_check_interval=2", "--trainer.log_every_n_steps=2"]
    env = {BF16_ENV: "1"}  # the shipped bf16-mixed, also on a CPU that only emulates it
    first = run_cli("fit", *base, f"--trainer.max_steps={steps}", *every, cwd=cwd, env=env)
    second = run_cli(
        "fit",
        *base,
        f"--trainer.max_steps={steps + 2}",
        *every,
        "--ckpt_path=last",
        cwd=cwd,
        env=env,
    )
    for proc in (first, second):
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return {"first": first, "second": second}


def wandb_parts(cwd: Path, name: str) -> list[Path]:
    """The offline W&B directories of the run ``runs/NAME``, all under the id it keeps."""
    run_dir = cwd / "runs" / name
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert runs, f"no offline W&B run under {run_dir / 'wandb'}"
    run_id = (run_dir / "wandb-run-id").read_text().strip()
    assert all(p.name.endswith(f"-{run_id}") for p in runs), (run_id, runs)
    return runs


@pytest.mark.parametrize("name", ["electra-small", "electra-base", "electra-large"])
def test_size_config_runs_as_shipped(name, tmp_path, hub_root, corpus_dir, tokenizer_dir):
    """W&B (offline) + ``hub:`` train and validation sets + the shipped workers + bf16-mixed,
    validation, checkpoints, resume."""
    from electra_lightning.report.compare import read_wandb_run

    config = CONFIGS / f"{name}.yaml"
    shipped = yaml.safe_load(config.read_text())
    assert shipped["trainer"]["logger"]["class_path"].endswith("WandbLogger")
    assert shipped["trainer"]["precision"] == "bf16-mixed" and shipped["data"]["num_workers"] == 4
    base = [
        "--config",
        str(config),
        *local_sources(config, hub_root, corpus_dir),
        f"--data.tokenizer={tokenizer_dir}",
        "--data.batch_size=2",
        *scaled_size(config),
    ]
    fit_and_resume(tmp_path, base)
    checkpoints = tmp_path / "runs" / name / "checkpoints"
    assert checkpoint_step(checkpoints / "last.ckpt") == 6
    assert sorted(p.name for p in checkpoints.glob("best-*.ckpt"))  # monitored val/loss
    runs = wandb_parts(tmp_path, name)
    assert len(runs) == 2  # the resume continues the W&B run: a second part under the same id
    for run_dir in runs:
        run = read_wandb_run(str(run_dir))
        assert run.config["trainer.precision"] == "bf16-mixed"
        assert run.config["data.num_workers"] == min(4, usable_cpus())  # capped at the cores
        assert "val/loss" in run.history and "train/loss" in run.history, sorted(run.history)
        assert all(v == v for _, v in run.history["val/loss"])  # finite, not NaN


def test_tiny_with_wandb_hub_and_workers(tmp_path, hub_root, corpus_dir, tokenizer_dir):
    """The case a user met first: W&B + a ``hub:`` validation set + DataLoader workers. Before the
    fix, the first validation batch died in a worker with W&B's ``ForkedError``."""
    base = [
        "--config",
        str(CONFIGS / "tiny.yaml"),
        "--config",
        str(CONFIGS / "logger" / "wandb.yaml"),
        f"--data.train_files={corpus_dir / 'train.txt'}",
        f"--data.val_files=hub:{hub_root}/Salesforce/wikitext:wikitext-103-raw-v1@validation",
        f"--data.tokenizer={tokenizer_dir}",
        "--data.num_workers=2",
    ]
    fit_and_resume(tmp_path, base)
    assert checkpoint_step(tmp_path / "runs/tiny/checkpoints/last.ckpt") == 6


@pytest.mark.parametrize("logger", ["csv", "tensorboard", "wandb", None])
def test_tiny_with_each_logger(logger, tmp_path, corpus_dir, tokenizer_dir):
    """configs/tiny.yaml as shipped (CSV, 1 worker, 32-true, local files), and with each
    configs/logger/*.yaml."""
    base = [
        "--config",
        str(CONFIGS / "tiny.yaml"),
        *(["--config", str(CONFIGS / "logger" / f"{logger}.yaml")] if logger else []),
        f"--data.train_files={corpus_dir / 'train.txt'}",
        f"--data.val_files={corpus_dir / 'val.txt'}",
        f"--data.tokenizer={tokenizer_dir}",
    ]
    fit_and_resume(tmp_path, base)
    assert checkpoint_step(tmp_path / "runs/tiny/checkpoints/last.ckpt") == 6
    run_dir = tmp_path / "runs" / "tiny"  # the run's name decides its directory, any logger
    assert not list(run_dir.glob("version_*"))
    if logger in (None, "csv"):
        rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
        steps = [int(r["step"]) for r in rows if r.get("train/loss")]
        assert steps == [1, 3, 5], steps  # both processes' rows (0-based), each step once
    elif logger == "tensorboard":
        assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # one file per process
    else:
        assert len(wandb_parts(tmp_path, "tiny")) == 2


@pytest.mark.parametrize("trainer", ["single", "ddp", "fsdp2"])
def test_small_with_each_trainer(trainer, tmp_path, hub_root, corpus_dir, tokenizer_dir):
    """configs/electra-small.yaml + configs/trainer/X.yaml, as the README composes them."""
    config = CONFIGS / "electra-small.yaml"
    base = [
        "--config",
        str(config),
        "--config",
        str(CONFIGS / "trainer" / f"{trainer}.yaml"),
        *local_sources(config, hub_root, corpus_dir),
        f"--data.tokenizer={tokenizer_dir}",
        "--data.batch_size=2",
        *scaled_size(config),
        *(["--trainer.devices=2"] if trainer != "single" else []),
    ]
    fit_and_resume(tmp_path, base)
    last = tmp_path / "runs/electra-small/checkpoints/last.ckpt"
    if last.is_dir():  # FSDP2: a sharded checkpoint directory
        assert (last / ".metadata").is_file()
    else:
        assert checkpoint_step(last) == 6


def test_fsdp1_config_refuses_cpu_in_one_line(tmp_path, corpus_dir, tokenizer_dir):
    """configs/trainer/fsdp.yaml is for GPUs (Lightning refuses FSDP on CPU): one line, exit 2."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = run_cli(
        "fit",
        "--config",
        str(CONFIGS / "tiny.yaml"),
        "--config",
        str(CONFIGS / "trainer" / "fsdp.yaml"),
        f"--data.train_files={corpus_dir / 'train.txt'}",
        f"--data.val_files={corpus_dir / 'val.txt'}",
        f"--data.tokenizer={tokenizer_dir}",
        "--trainer.max_steps=1",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "GPU" in errors[0], proc.stderr[-2000:]


WORKER_IMPORTS = textwrap.dedent(
    """
    import json, sys
    from torch.utils.data import DataLoader, IterableDataset
    from electra_lightning.data.datamodule import ElectraDataModule

    class NewModules(IterableDataset):
        # yields, from inside the worker, the modules the worker imported while reading
        def __init__(self, inner):
            self.inner = inner
        def __iter__(self):
            before = set(sys.modules)
            for i, _ in enumerate(self.inner):
                if i == 2:
                    break
            yield sorted(set(sys.modules) - before)

    dm = ElectraDataModule(train_files=sys.argv[1:-1], tokenizer=sys.argv[-1], batch_size=2,
                           num_workers=1)
    dm.setup("fit")
    loader = DataLoader(NewModules(dm.train_dataloader().dataset), batch_size=None,
                        num_workers=1)
    print(json.dumps(next(iter(loader))))
    """
)


@pytest.mark.parametrize("kind", ["txt", "jsonl", "parquet", "hub"])
def test_a_worker_imports_nothing(kind, tmp_path, hub_root, corpus_dir, tokenizer_dir):
    """The class of the W&B ``ForkedError``: a forked DataLoader worker that imports a library for
    the first time runs the parent's import hooks. For every source kind, the training process
    imports what its workers need before they start, so a worker imports no module at all."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = (corpus_dir / "train.txt").read_text().splitlines()
    source = {
        "txt": str(corpus_dir / "train.txt"),
        "hub": f"hub:{hub_root}/Skylion007/openwebtext",
    }.get(kind)
    if kind == "jsonl":
        source = str(tmp_path / "c.jsonl")
        Path(source).write_text("".join(json.dumps({"text": line}) + "\n" for line in lines))
    elif kind == "parquet":
        source = str(tmp_path / "c.parquet")
        pq.write_table(pa.table({"text": lines}), source)
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", WORKER_IMPORTS, source, str(tokenizer_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=HANG_GUARD,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    new = json.loads(proc.stdout.strip().splitlines()[-1])
    assert new == [], f"a worker imported {new[:10]} ({len(new)} modules)"


def test_hub_source_with_workers_reads_every_record_once(hub_root, tokenizer_dir):
    """Sharded on the Hub dataset's file shards across DataLoader workers, a ``hub:`` source is read
    whole and once: ``datasets`` must not split each worker's shard among the workers again."""
    from electra_lightning.data.datamodule import ElectraDataModule

    def content_tokens(workers: int) -> int:
        dm = ElectraDataModule(
            train_files=f"hub:{hub_root}/Skylion007/openwebtext",
            val_files=f"hub:{hub_root}/Skylion007/openwebtext",
            tokenizer=str(tokenizer_dir),
            batch_size=4,
            num_workers=workers,
        )
        special = torch.tensor(dm.tokenizer_info.special_ids)
        return sum(
            int((~torch.isin(batch["input_ids"], special)).sum()) for batch in dm.val_dataloader()
        )

    assert content_tokens(2) == content_tokens(0) > 0


def test_the_cpu_short_budget_recipe_runs_as_shipped(tmp_path, corpus_dir, tokenizer_dir):
    """configs/cpu-small-budget.yaml as shipped (CSV, 1 worker, 32-true, local files, its own
    sequence length, generator width, dropout and lr), scaled down in batch and steps: fit, resume,
    and the context gains it is documented by are logged."""
    config = CONFIGS / "cpu-small-budget.yaml"
    shipped = yaml.safe_load(config.read_text())
    assert shipped["model"]["dropout"] == 0.0 and shipped["data"]["max_seq_length"] == 64
    base = [
        "--config",
        str(config),
        f"--data.train_files={corpus_dir / 'train.txt'}",
        f"--data.val_files={corpus_dir / 'val.txt'}",
        f"--data.tokenizer={tokenizer_dir}",
        "--data.batch_size=4",
        "--model.warmup_steps=2",
    ]
    fit_and_resume(tmp_path, base)
    run_dir = tmp_path / "runs" / "cpu-small-budget"
    assert checkpoint_step(run_dir / "checkpoints" / "last.ckpt") == 6
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    for key in ("val/gen_context_gain", "val/disc_context_gain"):
        assert any(r.get(key) for r in rows), key
