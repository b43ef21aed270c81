"""Shared fixtures. Every test runs offline and on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "minigen" / "resources" / "published_genomes.json"


def published_genomes() -> list[dict]:
    return json.loads(PUBLISHED.read_text())["genomes"]


@pytest.fixture(scope="session")
def published() -> list[dict]:
    return published_genomes()


def run_cli(*args: str, cwd: str | os.PathLike | None = None, check: bool = False, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `minigen ARGS` as a user would, in a fresh process."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "minigen", *map(str, args)],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"minigen {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own evaluation cache and checkpoints, never the user's."""
    path = tmp_path_factory.mktemp("minigen-cache")
    monkeypatch.setenv("MINIGEN_CACHE_DIR", str(path))
    return path
