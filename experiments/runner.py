"""Running the project's CLI for a study: subprocesses with their logs, and a run's whole metric
history across resumes."""

from __future__ import annotations

import csv
import fcntl
import json
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO.parent / "shared" / "data" / "glue"
_print_lock = threading.Lock()


def log(message: str) -> None:
    with _print_lock:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_cli(*args: str, env: dict, log_file: Path | None = None) -> None:
    """``python -m electra_lightning ARGS`` in the repository; output to ``log_file`` (appended)
    or to this process's output. A failure raises, naming the log."""
    command = [sys.executable, "-m", "electra_lightning", *args]
    log("$ " + " ".join(shlex.quote(a) for a in command[1:]))
    if log_file is None:
        subprocess.run(command, cwd=REPO, env=env, check=True)
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as f:
        proc = subprocess.run(command, cwd=REPO, env=env, stdout=f, stderr=f)
    if proc.returncode:
        raise RuntimeError(f"failed ({proc.returncode}): {' '.join(command)}; see {log_file}")


def merge_history(run_dir: Path) -> Path:
    """One CSVLogger-style dir (``run_dir/history``) with a run's whole history: each (re)start
    logs into a new ``version_N`` (a CSVLogger pointed at an existing version deletes its
    metrics.csv), so the versions are joined, a later version winning the steps it re-did."""
    versions = sorted(run_dir.glob("version_*"), key=lambda d: int(d.name.split("_")[1]))
    rows, keys = [], []
    for version in versions:
        path = version / "metrics.csv"
        if not path.exists():
            continue
        with open(path) as f:
            reader = csv.DictReader(f)
            new = list(reader)
            keys += [k for k in reader.fieldnames or [] if k not in keys]
        if new:
            first = min(int(r["step"]) for r in new)
            rows = [r for r in rows if int(r["step"]) < first] + new
    target = run_dir / "history"
    target.mkdir(exist_ok=True)
    shutil.copy(versions[0] / "hparams.yaml", target / "hparams.yaml")
    with open(target / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return target


def save_plan(path: Path, plan: dict) -> dict:
    """Write a study's plan (steps, FLOPs, timing) where re-runs find it, and say it."""
    path.write_text(json.dumps(plan, indent=1) + "\n")
    log(f"plan: {plan}")
    return plan


def run_glue(init: Path, tasks: list[str], seeds: int, out: Path, extra: list[str], env: dict):
    """Fine-tune ``init`` on GLUE ``tasks`` (../shared/data/glue) with seeds 1..``seeds`` through
    the ``glue`` command, keeping scores only (no checkpoints, no test predictions); resumes from
    ``out/results.jsonl`` (without starting the command when every task and seed is there).
    Two processes may ask for the same ``out`` at once: one fine-tunes, the other waits, then
    finds it done."""
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.jsonl"
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if store.exists():
            done = {(r["task"], r["seed"]) for r in map(json.loads, store.read_text().splitlines())}
            if all((t, s) in done for t in tasks for s in range(1, seeds + 1)):
                return
        run_cli(
            "glue",
            "--init_from",
            str(init),
            "--data_dir",
            str(GLUE),
            "--tasks",
            *tasks,
            "--seeds",
            str(seeds),
            "--output_dir",
            str(out),
            "--no_predict_test",
            "--trainer.callbacks.init_args.save_last=false",
            *extra,
            env=env,
            log_file=out / "log.txt",
        )
