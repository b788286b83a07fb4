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
    """Raised after a stop signal once the checkpoint is written (``path``; None when the signal
    came before the first training step: the restored checkpoint, if any, is the state); the CLI
    exits ``128 + signum``."""

    def __init__(self, signum: int, path: str | None, step: int):
        self.signum, self.path, self.step = signum, path, step
        self.exit_code = 128 + signum
        name = STOP_SIGNALS.get(signum, signum)
        if path is None:
            message = (
                f"stopped by {name} before training started; nothing new to save (a resumed "
                "run keeps the checkpoint it restored). Run the same command again, with "
                "--ckpt_path last, to continue"
            )
        else:
            message = (
                f"stopped by {name} at step {step}; saved {path}. "
                "Resume with the same command plus --ckpt_path last"
            )
        super().__init__(message)


class StopNow(BaseException):
    """A second Ctrl-C: stop at once without saving (exit 130). A ``BaseException`` that is not a
    ``KeyboardInterrupt``, so Lightning's interrupt handling (exit 1) passes it through."""


class StopSignals:
    """The process's stop signals, handled from the moment the command starts (before the model,
    the data, the sanity check or a checkpoint restore) to its end: a signal only records itself,
    and training stops at the next point it can (``callbacks.GracefulStop``)."""

    def __init__(self):
        self.received: int | None = None

    def install(self, reset: bool = False) -> None:
        """Handle the stop signals here (main thread only); ``reset``: a new command starts."""
        import threading

        if reset:
            self.received = None
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self.handle)

    def handle(self, signum: int, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise StopNow  # a second Ctrl-C: stop now, without saving
        if self.received is None:
            self.received = signum
            print(
                f"received {STOP_SIGNALS.get(signum, signum)}: stopping at the end of the current "
                "step (saving a checkpoint), or before training starts",
                flush=True,
            )


STOP = StopSignals()


class NothingToDo(Exception):
    """A command that has nothing left to do (a resume already at ``trainer.max_steps``): the CLI
    prints the message and exits 0, writing nothing."""


class ShardError(ValueError):
    """A data error only the shard (rank × DataLoader worker) that reads it meets, such as a
    shard with no documents: the CLI prints it on whichever rank meets it (errors every rank meets
    alike are printed once, by rank 0)."""
