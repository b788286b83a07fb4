"""One writer per run: a ``fit`` holds its checkpoint directory for its lifetime.

The holder (rank 0) writes ``run.lock`` into the directory — its pid, host, the start time of the
process, when and by which command — created atomically (a hard link of a complete file, so a
reader never sees half of one), and removes it when the command ends, however it ends short of
SIGKILL: a normal end, an error, a stop signal's checkpoint-and-exit. A second ``fit`` into the
directory stops before writing anything, in one line naming the holder.

A lock whose process is gone (SIGKILL, the OOM killer, a crash of the machine) is stale. On the
same host that is certain — the pid is not running, or runs a newer process than the one that
took the lock — and the next run takes it over with a warning naming the lock's owner. From
another host it cannot be told: the run is refused with the holder's host and pid and how to
remove the lock by hand. The limits (NFS, clocks, containers) are in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import time

from electra_lightning.common.checkpoint import check_writable

LOCK_NAME = "run.lock"
_HELD: set[str] = set()  # lock paths this process holds now


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, Linux ``/proc``), or None where unknown;
    tells a pid reused by a newer process from the one that took the lock."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the name
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int, started: int | None) -> bool:
    """Whether the process that took a lock on this host is still running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    except (OSError, OverflowError):
        return False
    now = process_start(pid)
    return started is None or now is None or now == started


def describe(holder: dict) -> str:
    """``pid 123 on host h since 2026-12-05 10:00:00 (python -m electra_lightning fit …)``."""
    command = str(holder.get("command", ""))
    command = command if len(command) <= 120 else command[:117] + "..."
    return f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('since')}" + (
        f" ({command})" if command else ""
    )


class RunLock:
    """``run.lock`` in ``directory``, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, LOCK_NAME)
        self.mine: dict | None = None

    def acquire(self) -> None:
        check_writable(_shown(self.directory), "ModelCheckpoint.dirpath")
        pid = os.getpid()
        self.mine = {
            "pid": pid,
            "host": socket.gethostname(),
            "pid_started": process_start(pid),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": "python -m electra_lightning " + shlex.join(sys.argv[1:]),
        }
        for _ in range(3):  # a stale lock is removed and the creation tried again
            if self._create():
                _HELD.add(self.path)
                return
            holder = self._read()
            if holder is None:  # gone between the two calls: try again
                continue
            self._refuse_or_take_over(holder)
        raise ValueError(
            f"{_shown(self.path)}: another run took this directory while this one was starting; "
            "start one run per checkpoint directory"
        )

    def _create(self) -> bool:
        """Create the lock file with its whole content at once; False if one exists."""
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.mine, f)
            f.write("\n")
        try:
            os.link(tmp, self.path)  # atomic, and fails if the name exists (NFS included)
            return True
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: exclusive create, then the content
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.mine, f)
                f.write("\n")
            return True
        finally:
            with contextlib.suppress(OSError):
                os.remove(tmp)

    def _read(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(text)
            if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{_shown(self.path)} is not a lock this program wrote (unreadable); if no run "
                f"uses {_shown(self.directory)}, delete it"
            ) from None
        return holder

    def _refuse_or_take_over(self, holder: dict) -> None:
        here = socket.gethostname()
        if holder.get("host") != here:
            raise ValueError(
                f"{_shown(self.directory)} is in use by another run: {describe(holder)}; this "
                f"host ({here}) cannot tell whether it still runs: wait for it, write this run "
                f"elsewhere, or, if it has ended, delete {_shown(self.path)}"
            )
        pid = holder["pid"]
        ours = pid == os.getpid() and self.path not in _HELD  # left by an earlier command
        if not ours and pid_alive(pid, holder.get("pid_started")):
            raise ValueError(
                f"{_shown(self.directory)} is in use by another run: {describe(holder)}; wait "
                "for it to end (then resume with --ckpt_path last) or write this run elsewhere "
                f"(ModelCheckpoint.dirpath). Lock: {_shown(self.path)}"
            )
        print(
            f"warning: taking over the stale lock {_shown(self.path)}: {describe(holder)} is no longer "
            "running (killed?); its checkpoints stay as they are",
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)

    def release(self) -> None:
        """Remove the lock if it is still this run's."""
        if self.mine is None:
            return
        _HELD.discard(self.path)
        try:
            if self._read() == self.mine:
                os.remove(self.path)
        except (OSError, ValueError):
            pass
        self.mine = None


@contextlib.contextmanager
def hold_checkpoint_dirs(trainer):
    """Rank 0 holds every checkpoint directory of ``trainer`` while the block runs (the other
    ranks, started by rank 0 or by the cluster beside it, write there only through rank 0's
    checkpoint calls)."""
    locks: list[RunLock] = []
    try:
        if trainer.global_rank == 0:
            directories = [getattr(c, "dirpath", None) for c in trainer.checkpoint_callbacks]
            for directory in dict.fromkeys(os.path.abspath(d) for d in directories if d):
                lock = RunLock(directory)
                lock.acquire()
                locks.append(lock)
        yield locks
    finally:
        for lock in reversed(locks):
            lock.release()


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
