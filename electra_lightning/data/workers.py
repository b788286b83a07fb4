"""DataLoader worker set-up shared by every DataLoader of the package (pretraining and GLUE)."""

from __future__ import annotations

import os
import signal


def ignore_stop_signals(worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: stop signals are the main process's to handle.

    The worker leaves the job's process group, so Ctrl-C and ``kill -TERM -PGID`` reach only the
    main process, which finishes the step, saves and shuts the workers down itself. SIGINT and
    SIGUSR1 are ignored; a SIGTERM sent to the worker directly (the DataLoader's own shutdown, or a
    cluster signalling every process) ends it quietly, without a traceback.
    """
    try:
        os.setpgid(0, 0)
    except OSError:  # not permitted here (e.g. a session leader): signals still handled below
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
