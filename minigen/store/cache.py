"""The content-keyed evaluation cache: one small JSON file per key.

A key is the sha256 of everything an evaluation's result depends on (see
`evaluator.key_inputs`), so an entry can be shared by runs, experiments and projects.
Entries are written atomically (temp file, fsync, rename): concurrent writers of the same
key write the same bytes, and a crash mid-write leaves either the old entry or none. An
entry that cannot be read, fails its checksum or does not match its key counts as a
miss (said in one line) and is overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from minigen import log as messages
from minigen.store import atomic, formats, integrity


def content_key(inputs: dict) -> str:
    """sha256 over the compact, key-sorted JSON of the inputs."""
    return formats.json_sha256(inputs)


stderr_log = messages.logger("cache").info


class EvaluationCache:
    def __init__(self, root: str | Path, log: Callable[[str], None] = stderr_log):
        self.root = Path(root)
        self.log = log

    def path(self, key: str) -> Path:
        # Sharded by the first two hex digits so no folder grows past a few thousand files.
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored record for `key`; None when absent, or (said in one line) when damaged,
        edited or not for this key, so the evaluation is redone and the entry rewritten."""
        path = self.path(key)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            self.log(f"ignoring unreadable cache entry {path} ({type(exc).__name__}); evaluating again")
            return None
        problem = _problem(record, key)
        if problem is not None:
            self.log(f"ignoring cache entry {path}: {problem}; evaluating again")
            return None
        return record

    def put(self, key: str, record: dict) -> None:
        atomic.write_json(self.path(key), integrity.seal({**record, "key": key}))


def _problem(record, key: str) -> str | None:
    """Why `record` is no valid entry for `key` (checksum, then schema), or None."""
    if not integrity.is_sealed(record):
        return "its checksum does not match its content (edited, damaged or from an older minigen)"
    if record.get("key") != key:
        return "it belongs to another key"
    accuracy, error = record.get("accuracy"), record.get("error")
    valid = (
        isinstance(accuracy, (int, float))
        and not isinstance(accuracy, bool)
        and 0.0 <= accuracy <= 1.0
        and (error is None or isinstance(error, str))
    )
    return None if valid else "its accuracy or error has the wrong type or range"
