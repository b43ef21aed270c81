"""The content-keyed evaluation cache: one small JSON file per key.

A key is the sha256 of everything an evaluation's result depends on (see
`evaluator.key_inputs`), so an entry can be shared by runs, experiments and projects.
Entries are written atomically (temp file, fsync, rename): concurrent writers of the same
key write the same bytes, and a crash mid-write leaves either the old entry or none. An
entry that cannot be read or does not match its key counts as a miss and is overwritten.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from minigen.store import atomic


def content_key(inputs: dict) -> str:
    """sha256 over the compact, key-sorted JSON of the inputs."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class EvaluationCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        # Sharded by the first two hex digits so no folder grows past a few thousand files.
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored record for `key`, or None when absent, unreadable or not for this key."""
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not _is_valid(record, key):
            return None
        return record

    def put(self, key: str, record: dict) -> None:
        atomic.write_json(self.path(key), {**record, "key": key})


def _is_valid(record, key: str) -> bool:
    if not isinstance(record, dict) or record.get("key") != key:
        return False
    accuracy, error = record.get("accuracy"), record.get("error")
    return (
        isinstance(accuracy, (int, float))
        and not isinstance(accuracy, bool)
        and 0.0 <= accuracy <= 1.0
        and (error is None or isinstance(error, str))
    )
