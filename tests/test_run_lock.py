"""One writer per run: a fit holds its checkpoint directory (``run.lock``) for its lifetime; a
second fit into it stops before writing, in one line naming the holder; a stale lock is named
and taken over on the same host, refused with how to remove it from another."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from electra_lightning.common.run_lock import LOCK_NAME, RunLock, process_start

from .helpers import HANG_GUARD, run_main, tiny_args


@pytest.fixture
def sleeper():
    """A live process that is not this one (the holder of a lock written on its behalf)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    yield proc
    proc.kill()
    proc.wait()


def write_lock(directory, pid, host=None, command="python -m electra_lightning fit (other)"):
    directory.mkdir(parents=True, exist_ok=True)
    holder = {
        "pid": pid,
        "host": host or socket.gethostname(),
        "pid_started": process_start(pid),
        "since": "2026-12-05 10:00:00",
        "command": command,
    }
    (directory / LOCK_NAME).write_text(json.dumps(holder))
    return directory / LOCK_NAME


def fit_args(ctx_corpus, ctx_tokenizer, steps=2):
    return [
        "fit",
        *tiny_args(ctx_corpus, ctx_tokenizer, steps=steps),
        "--trainer.limit_val_batches=0",
    ]


def test_a_fit_into_a_held_directory_stops_before_writing(
    tmp_path, corpus_dir, tokenizer_dir, capsys, sleeper
):
    """Was: both fits ran (exit 0) and overwrote each other's last.ckpt and best-*.ckpt."""
    checkpoints = tmp_path / "runs/tiny/checkpoints"
    lock = write_lock(checkpoints, sleeper.pid)
    before = lock.read_bytes()
    code, err = run_main(fit_args(corpus_dir, tokenizer_dir), tmp_path, capsys)
    assert code == 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: runs/tiny/checkpoints is in use by another run: pid {sleeper.pid} on host "
        f"{socket.gethostname()} since 2026-12-05 10:00:00 (python -m electra_lightning fit "
        "(other)); wait for it to end (then resume with --ckpt_path last) or write this run "
        "elsewhere (ModelCheckpoint.dirpath). Lock: runs/tiny/checkpoints/run.lock"
    ], err[-2000:]
    assert sorted(os.listdir(checkpoints)) == [LOCK_NAME] and lock.read_bytes() == before
    assert sorted(os.listdir(tmp_path / "runs/tiny")) == ["checkpoints"]  # no log written


def test_a_stale_lock_is_named_and_taken_over(tmp_path, corpus_dir, tokenizer_dir, capsys):
    """A run killed with SIGKILL leaves its lock: on the same host its pid is gone, so the next
    run names it in a warning, takes it over, and removes it when it ends."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    checkpoints = tmp_path / "runs/tiny/checkpoints"
    write_lock(checkpoints, dead.pid)
    code, err = run_main(fit_args(corpus_dir, tokenizer_dir), tmp_path, capsys)
    assert code == 0, err[-2000:]
    warnings = [line for line in err.splitlines() if "stale lock" in line]
    assert warnings == [
        "warning: taking over the stale lock runs/tiny/checkpoints/run.lock: pid "
        f"{dead.pid} on host {socket.gethostname()} since 2026-12-05 10:00:00 (python -m "
        "electra_lightning fit (other)) is no longer running (killed?); its checkpoints stay as "
        "they are"
    ], err[-2000:]
    assert (checkpoints / "last.ckpt").exists() and not (checkpoints / LOCK_NAME).exists()


def test_a_pid_reused_by_a_newer_process_is_stale(tmp_path, sleeper):
    """The lock's pid runs, but a process started after the lock was taken (pid reuse)."""
    lock = write_lock(tmp_path, sleeper.pid)
    holder = json.loads(lock.read_text())
    holder["pid_started"] -= 1
    lock.write_text(json.dumps(holder))
    run = RunLock(str(tmp_path))
    run.acquire()
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    run.release()
    assert not lock.exists()


def test_a_lock_from_another_host_is_refused_with_how_to_remove_it(tmp_path):
    lock = write_lock(tmp_path, 1, host="node-17")
    with pytest.raises(ValueError) as err:
        RunLock(str(tmp_path)).acquire()
    message = str(err.value)
    assert "is in use by another run: pid 1 on host node-17" in message
    assert "cannot tell whether it still runs" in message and f"delete {lock}" in message
    assert json.loads(lock.read_text())["host"] == "node-17"  # not touched


def test_a_lock_is_released_only_by_its_holder(tmp_path, sleeper):
    run = RunLock(str(tmp_path))
    run.acquire()
    with pytest.raises(ValueError, match="is in use by another run"):
        RunLock(str(tmp_path)).acquire()  # the same process, a second command: refused
    write_lock(tmp_path, sleeper.pid)  # replaced by hand while held: not ours to remove
    run.release()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == sleeper.pid


def test_an_unreadable_lock_names_the_file(tmp_path):
    (tmp_path / LOCK_NAME).write_text("not json")
    with pytest.raises(ValueError, match=r"run.lock is not a lock this program wrote"):
        RunLock(str(tmp_path)).acquire()


@pytest.mark.slow
def test_two_fits_into_one_directory_and_sigterm_releases_the_lock(
    tmp_path, corpus_dir, tokenizer_dir, capsys
):
    """A real first fit holds the directory: the second, started while it trains, is refused;
    the first, stopped by SIGTERM, saves, exits 143 and leaves no lock."""
    first = subprocess.Popen(
        [sys.executable, "-m", "electra_lightning", *fit_args(corpus_dir, tokenizer_dir, 100000)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = tmp_path / "runs/tiny/checkpoints" / LOCK_NAME
    try:
        deadline = time.time() + HANG_GUARD
        while not (tmp_path / "runs/tiny/checkpoints/config.yaml").exists():  # training began
            assert first.poll() is None and time.time() < deadline, first.stderr.read()[-2000:]
            time.sleep(0.5)
        assert json.loads(lock.read_text())["pid"] == first.pid
        code, err = run_main(fit_args(corpus_dir, tokenizer_dir), tmp_path, capsys)
        assert code == 2 and f"is in use by another run: pid {first.pid}" in err, err[-2000:]
        # only the first run's files (the second starts no log of its own: no version_*, no wandb)
        first_run = {"checkpoints", "config.yaml", "hparams.yaml", "metrics.csv"}
        assert set(os.listdir(tmp_path / "runs/tiny")) <= first_run
        first.send_signal(signal.SIGTERM)
        _, first_err = first.communicate(timeout=HANG_GUARD)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 143, first_err[-2000:]
    assert not lock.exists()
    assert (tmp_path / "runs/tiny/checkpoints/last.ckpt").exists()
