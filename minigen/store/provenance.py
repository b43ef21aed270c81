"""The code version behind an output: minigen's version, the git commit of its source and
whether that tree had uncommitted changes, and the torch version. Every training stage's
cost.json records it, and the report's checklist.md names it; metrics.json stays free of
commit hashes, so `dvc metrics diff` shows only results that differ."""

from __future__ import annotations

import importlib.metadata
import subprocess
from functools import lru_cache
from pathlib import Path

from minigen import __version__

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout that holds minigen/


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(SOURCE_ROOT), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):  # no git on this machine
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def code_version() -> dict:
    """{"minigen", "git_commit", "git_dirty", "torch"}; git fields null outside a git checkout."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "minigen") if commit else None
    return {
        "minigen": __version__,
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "torch": _version("torch"),
    }
