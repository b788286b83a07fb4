"""Runs by name: ``--run_name`` gives a run its directory (logs, checkpoints, config.yaml, W&B
id); a resume is the name plus ``--ckpt_path last``, its saved config supplying the rest; a resumed
run stays one run (one W&B id, one metrics.csv); ``compare`` tells runs apart by name, steps and
the hyperparameters that differ.

configs/tiny.yaml runs as shipped with only size, steps and paths scaled down (see test_shipped)."""

from __future__ import annotations

import csv
import json
import re
import signal

import pytest
import torch

from electra_lightning.common.runs import SAVED_CONFIG, WANDB_ID_FILE, resume_argv

from .helpers import REPO, run_cli

TINY = str(REPO / "configs" / "tiny.yaml")
WANDB = str(REPO / "configs" / "logger" / "wandb.yaml")


def scaled(corpus_dir, tokenizer_dir, steps: int) -> list[str]:
    """configs/tiny.yaml with its size, steps and data paths scaled down (nothing else)."""
    return [
        f"--data.train_files={corpus_dir / 'train.txt'}",
        f"--data.val_files={corpus_dir / 'val.txt'}",
        f"--data.tokenizer={tokenizer_dir}",
        f"--trainer.max_steps={steps}",
        "--trainer.val_check_interval=3",
        "--trainer.limit_val_batches=2",
        "--trainer.log_every_n_steps=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.callbacks.init_args.every_n_train_steps=3",
        "--model.size.num_layers=1",
        "--model.size.hidden_size=32",
        "--model.size.num_heads=1",
        "--model.size.intermediate_size=64",
        "--model.size.embedding_size=32",
        "--model.warmup_steps=2",
        "--data.batch_size=4",
        "--data.num_workers=0",
    ]


def sigterm_at(step: int) -> str:
    helper = {
        "class_path": "tests.helpers.SendSignal",
        "init_args": {"signum": int(signal.SIGTERM), "at_step": step},
    }
    return f"--trainer.callbacks+={json.dumps(helper)}"


def last_step(run_dir) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]


WANDB_ENV = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_two_named_runs_one_resumed_after_sigterm_are_two_runs_in_compare(
    tmp_path, corpus_dir, tokenizer_dir
):
    """Two runs of configs/tiny.yaml (+ W&B offline) under two names, the second stopped by
    SIGTERM and resumed with only its name, --ckpt_path last and one changed flag: two run
    directories, two W&B runs (the resumed one under its first id), compare shows two runs with
    their true steps and the hyperparameters that differ first."""
    base = ["--config", TINY, "--config", WANDB, *scaled(corpus_dir, tokenizer_dir, 6)]
    run_cli("fit", *base, "--run_name=lr5e-4", cwd=tmp_path, env=WANDB_ENV)
    stopped = run_cli(
        "fit",
        *base,
        "--run_name=lr1e-3",
        "--model.optimizer.init_args.lr=1e-3",
        sigterm_at(3),
        cwd=tmp_path,
        env=WANDB_ENV,
        check=False,
    )
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    a, b = tmp_path / "runs" / "lr5e-4", tmp_path / "runs" / "lr1e-3"
    assert last_step(b) == 4  # the signal came as step 4 started; that step was finished and saved
    first_id = (b / WANDB_ID_FILE).read_text().strip()

    # the resume names the run; no data, logger or model flags: the saved config has them
    resumed = run_cli(
        "fit",
        "--config",
        TINY,
        "--run_name",
        "lr1e-3",
        "--ckpt_path",
        "last",
        "--trainer.max_steps=8",
        cwd=tmp_path,
        env=WANDB_ENV,
    )
    notices = [line for line in resumed.stdout.splitlines() if line.startswith("resuming run")]
    # the callbacks: the config's, without the first run's stop helper (given by flag then)
    assert notices == [
        "resuming run 'lr1e-3' with its saved config runs/lr1e-3/config.yaml; "
        "changed: trainer.callbacks (changed), trainer.max_steps 6 → 8"
    ], resumed.stdout[-2000:]

    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["lr1e-3", "lr5e-4"]
    for run_dir, steps in ((a, 6), (b, 8)):
        assert (run_dir / SAVED_CONFIG).is_file() and last_step(run_dir) == steps
        assert sorted(p.name for p in (run_dir / "checkpoints").glob("best-*.ckpt"))
    assert "lr: 0.001" in (b / SAVED_CONFIG).read_text()
    assert "max_steps: 8" in (b / SAVED_CONFIG).read_text()
    # W&B: one id per run; the resumed run's two parts carry its first id
    ids = {d: (d / WANDB_ID_FILE).read_text().strip() for d in (a, b)}
    assert ids[b] == first_id and ids[a] != ids[b]
    parts = {d: sorted((d / "wandb").glob("offline-run-*")) for d in (a, b)}
    assert [p.name.rsplit("-", 1)[1] for p in parts[a]] == [ids[a]]
    assert [p.name.rsplit("-", 1)[1] for p in parts[b]] == [ids[b], ids[b]]
    assert not (tmp_path / "runs" / "wandb").exists()

    from electra_lightning.report.compare import read_run

    run = read_run(str(b))  # the two parts as one run: each training step logged once
    assert run.name == "lr1e-3"
    steps = sorted(s for s, _ in run.history["train/loss"])
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == 7
    # (the step the signal stopped is saved, but its training row is not logged: Lightning logs it
    # after the callback that stops; the run's parts join without a gap otherwise)
    assert set(steps) >= {0, 1, 2, 4, 5, 6, 7}

    out = run_cli("compare", str(a), str(b), "--output", str(tmp_path / "cmp.png"), cwd=tmp_path)
    lines = [line.rstrip() for line in out.stdout.splitlines()]
    assert lines[0].split() == ["run", "lr5e-4", "lr1e-3"], out.stdout
    assert lines[2].strip() == "differs:"
    differ = [line.split() for line in lines[3 : lines.index("same:")]]
    assert ["model.optimizer.init_args.lr", "0.0005", "0.001"] in differ, out.stdout
    assert ["trainer.max_steps", "6", "8"] in differ, out.stdout
    # the stop helper was given by flag to the second run's first part only: its saved config is
    # the resumed command's, whose callbacks are the config's (no helper)
    assert not any("SendSignal" in " ".join(row) for row in differ), out.stdout
    assert not any("run_name" in row[0] or "logger" in row[0] for row in differ), out.stdout
    same = [line.split()[0] for line in lines[lines.index("same:") + 1 :] if line.startswith("  ")]
    assert "model.size.hidden_size" in same and "model.optimizer.init_args.lr" not in same
    steps = next(line for line in lines if line.startswith("steps trained"))
    assert steps.split()[-2:] == ["6", "8"]
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_resumed_csv_run_continues_its_metrics_csv(tmp_path, corpus_dir, tokenizer_dir):
    """configs/tiny.yaml's CSVLogger: one metrics.csv in runs/NAME, no version_N, every step once;
    a resume from the run directory alone (--ckpt_path runs/NAME)."""
    base = ["--config", TINY, *scaled(corpus_dir, tokenizer_dir, 6)]
    stopped = run_cli(
        "fit", *base, sigterm_at(3), cwd=tmp_path, check=False, env={"PYTHONPATH": str(REPO)}
    )
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tiny"
    run_cli("fit", "--ckpt_path", "runs/tiny", cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert last_step(run_dir) == 6
    assert not list(run_dir.glob("version_*"))
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    train = [int(r["step"]) for r in rows if r.get("train/loss")]
    assert train == sorted(set(train)) and set(train) >= {0, 1, 2, 4, 5}  # (step 4: see above)
    val = [int(r["step"]) for r in rows if r.get("val/loss")]
    assert val == [2, 5]


def test_a_second_run_of_a_config_needs_only_a_name(tmp_path, corpus_dir, tokenizer_dir):
    """A fresh run into a name that holds checkpoints is refused, naming --run_name."""
    ckpt = tmp_path / "runs" / "tiny" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "last.ckpt").write_bytes(b"")
    proc = run_cli(
        "fit", "--config", TINY, *scaled(corpus_dir, tokenizer_dir, 1), cwd=tmp_path, check=False
    )
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: runs/tiny/checkpoints already holds another run's checkpoints")
    assert "--run_name" in line


def test_resume_argv_reads_the_saved_config_after_the_config_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved = tmp_path / "out" / "b" / SAVED_CONFIG
    saved.parent.mkdir(parents=True)
    saved.write_text("run_name: b\n")
    (tmp_path / "c.yaml").write_text(
        "run_name: a\ntrainer:\n  logger:\n    init_args:\n      save_dir: out\n"
    )
    argv = [
        "fit",
        "--config",
        "c.yaml",
        "--trainer.max_steps=9",
        "--run_name",
        "b",
        "--ckpt_path=last",
    ]
    new, path = resume_argv(argv)
    assert path == "out/b/config.yaml"
    assert new == ["fit", "--config", "c.yaml", "--config", path, *argv[3:]]
    assert resume_argv(new) == (new, path)  # a DDP rank started with it: unchanged
    # the run directory instead of the name
    new, path = resume_argv(["fit", "--ckpt_path", "out/b"])
    assert new == ["fit", "--config", "out/b/config.yaml", "--ckpt_path", "last"]
    # nothing to resume from: unchanged
    for argv in (
        ["fit", "--config", "c.yaml"],  # fresh
        ["fit", "--config", "c.yaml", "--ckpt_path=last"],  # run a: no saved config
        ["fit", "--ckpt_path=x.ckpt"],  # no name
    ):
        assert resume_argv(argv) == (argv, None)


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "."])
def test_a_run_name_that_is_not_a_name_is_one_line(name):
    from electra_lightning.common.runs import check_run_name

    with pytest.raises(ValueError, match=r"^run_name: '.*' is not a run name"):
        check_run_name(name)


def test_compare_tells_runs_by_name_and_true_steps(tmp_path):
    """A run whose training rows were never logged (log_every_n_steps above its steps) is labelled
    by its checkpoint's step, or its last validation row: never "0 steps"."""
    from electra_lightning.report.compare import figure, read_run, steps_trained, table

    a = tmp_path / "a"
    a.mkdir()
    (a / "hparams.yaml").write_text("run_name: small-a\nmodel.size.hidden_size: 64\n")
    (a / "metrics.csv").write_text("step,val/loss\n5,3.0\n")
    assert steps_trained(read_run(str(a))) == 6
    (a / "checkpoints").mkdir()
    torch.save({"global_step": 9}, a / "checkpoints" / "last.ckpt")
    run = read_run(str(a))
    assert (run.name, steps_trained(run)) == ("small-a", 9)
    assert figure([run])._suptitle.get_text() == "small-a (9 steps)"
    assert re.fullmatch(r"run\s+small-a", table([run]).splitlines()[0])
