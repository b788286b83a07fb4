"""Exceptions the command line turns into one line and an exit code (no torch import here, so
``python -m electra_lightning --help`` stays quick)."""

from __future__ import annotations

import signal

# What each stop signal means, and the exit code (128 + signal number, the shell convention).
STOP_SIGNALS = {
    signal.SIGTERM: "SIGTERM",  # SLURM/Kubernetes/`timeout` preemption: 143
    signal.SIGUSR1: "SIGUSR1",  # SLURM's warning before the time limit (--signal=USR1@180): 138
    signal.SIGINT: "SIGINT",  # Ctrl-C: 130
}


class TrainingStopped(Exception):
    """Raised after a stop signal once the checkpoint is written; the CLI exits ``128 + signum``."""

    def __init__(self, signum: int, path: str, step: int):
        self.signum, self.path, self.step = signum, path, step
        self.exit_code = 128 + signum
        super().__init__(
            f"stopped by {STOP_SIGNALS.get(signum, signum)} at step {step}; saved {path}. "
            "Resume with the same command plus --ckpt_path last"
        )


class NothingToDo(Exception):
    """A command that has nothing left to do (a resume already at ``trainer.max_steps``): the CLI
    prints the message and exits 0, writing nothing."""
