"""Claim GPUs for the lifetime of a process: one lock file per card, held with `flock`.

The OS drops a `flock` when the last descriptor of its open file closes, so a claim ends
when its process ends, `kill -9` included, and nothing is left to clean up. `flock`
rather than POSIX record locks (`lockf`), because those belong to the process: a second
claim by the same process would be granted the card it already holds.

When every card is held, `claim` waits (with one log line) until one frees instead of
failing: `snakemake --resources gpu=K` and `dvc queue start -j K` never start more GPU
jobs than they were told to, so a job that finds all cards busy has been started beside
jobs of another run or user, and queuing behind them is what the user would do by hand.
Pure logic over card ids (CUDA UUIDs on a real machine) and a folder: no GPU needed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # how often a waiting claim retries; a free card is taken within this


@dataclass
class Claim:
    """Cards held by this process until `release` (or the process's end)."""

    cards: tuple[str, ...]
    _fds: list[int] = field(default_factory=list, repr=False)

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing the only descriptor drops the flock
        self._fds.clear()
        self.cards = ()

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_path(lock_dir: str | os.PathLike, card: str) -> Path:
    """The lock file of `card`: its id, made safe as a file name."""
    return Path(lock_dir) / (re.sub(r"[^A-Za-z0-9_.-]", "_", card) + ".lock")


def _try_lock(path: Path) -> int | None:
    """The descriptor of `path`, exclusively flocked by us, or None when it is held."""
    # O_RDWR without O_TRUNC: opening must not wipe the holder's note in the file.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        writable = True
    except PermissionError:  # another user's lock file (a shared cache dir): flock needs no write
        fd, writable = os.open(path, os.O_RDONLY | os.O_CLOEXEC), False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if writable:  # who holds it, for the message of a process that has to wait
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def try_claim(card_ids: Sequence[str], lock_dir: str | os.PathLike, count: int = 1) -> Claim:
    """Up to `count` of the free cards, in the order of `card_ids`; maybe none."""
    if count < 1:
        raise ValueError("count must be >= 1")
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    cards, fds = [], []
    for card in card_ids:
        if len(cards) == count:
            break
        fd = _try_lock(lock_path(lock_dir, card))
        if fd is not None:
            cards.append(card)
            fds.append(fd)
    return Claim(tuple(cards), fds)


def holders(card_ids: Sequence[str], lock_dir: str | os.PathLike) -> dict[str, str]:
    """What each card's lock file says about its (last) holder."""
    notes = {}
    for card in card_ids:
        try:
            notes[card] = lock_path(lock_dir, card).read_text().strip() or "unknown"
        except OSError:
            notes[card] = "unknown"
    return notes


def claim(
    card_ids: Sequence[str],
    lock_dir: str | os.PathLike,
    count: int = 1,
    poll_seconds: float = POLL_SECONDS,
) -> Claim:
    """At least one and up to `count` free cards; while all are held, wait for one."""
    if not card_ids:
        raise ValueError("no cards to claim")
    waited = False
    while True:
        got = try_claim(card_ids, lock_dir, count)
        if got.cards:
            if waited:
                log.warning("claimed GPU %s after waiting", ", ".join(got.cards))
            return got
        if not waited:
            held = "; ".join(f"{card}: {note}" for card, note in holders(card_ids, lock_dir).items())
            log.warning("all %d GPU(s) are held by other jobs (%s); waiting for one to free "
                        "(locks in %s)", len(card_ids), held, lock_dir)
            waited = True
        time.sleep(poll_seconds)
