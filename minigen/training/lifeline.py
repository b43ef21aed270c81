"""Worker processes that die with their parent.

After a `kill -9` of the search, its spawned evaluation workers would train on to the end
of their genome, holding a GPU's memory for nothing. On Linux the kernel signals a child
when its parent dies (`prctl(PR_SET_PDEATHSIG)`); elsewhere a daemon thread polls the
parent's pid. Either way the worker ends with SIGKILL, as its parent did.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 1.0


def die_with_parent(parent_pid: int) -> None:
    """End this process when `parent_pid` ends; call first thing in a worker.

    The kernel's signal follows the parent *thread* that started the worker, so start
    workers from a thread that lives as long as the pool (the evaluator does).
    """
    if not _kernel_signal():
        threading.Thread(target=_watch, args=(parent_pid,), name="minigen-parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        os.kill(os.getpid(), signal.SIGKILL)


def _kernel_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc symbol: fall back to polling
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)
