"""Messages: one `logging` logger per stage, written to stderr as `minigen STAGE: message`.

The CLI's `-v` / `-q` set the level; code run without the CLI (tests, notebooks) gets
the same handler at INFO on first use. Lines go through `tqdm.write`, so a live
progress bar on a terminal is not torn apart by them.
"""

from __future__ import annotations

import logging
import sys

ROOT = "minigen"


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)  # sys.stderr as it is now (tests swap it)
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: never raise from emit
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.name.replace('.', ' ')}: {record.getMessage()}"


def _root() -> logging.Logger:
    root = logging.getLogger(ROOT)
    if not root.handlers:
        handler = _Handler()
        handler.setFormatter(_Formatter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return root


def setup(verbosity: int = 0) -> None:
    """-1: warnings only (`-q`), 0: progress (default), 1 or more: debug detail (`-v`)."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    _root().setLevel(level)


def duration(seconds: float) -> str:
    """A time span as a person plans by: "42 s", "3 min 10 s", "2 h 05 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def logger(stage: str) -> logging.Logger:

    """The logger of `stage` ("search", "retrain", ...): its lines read `minigen search: ...`."""
    _root()
    return logging.getLogger(f"{ROOT}.{stage}")
