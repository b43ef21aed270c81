"""Where state that outlives a stage lives: the evaluation cache and the checkpoints.

DVC deletes a stage's outputs before it re-runs it, and queued experiments run in
temporary copies of the project, so this state sits outside the outputs, in a user-level
cache (like pip's). Its entries are content-keyed, so sharing it between projects,
experiments and runs is safe. `MINIGEN_CACHE_DIR` moves it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    explicit = os.environ.get("MINIGEN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minigen"


def evaluations_dir() -> Path:
    return cache_root() / "evaluations"


def checkpoints_dir() -> Path:
    return cache_root() / "checkpoints"
