"""The raw data folder `download` writes: CIFAR-10's python batches plus SOURCE.json,
which records where they came from and the sha256 of every file, so every later stage
can check that what it reads is what was downloaded."""

from __future__ import annotations

from pathlib import Path

from minigen.data import cifar_format
from minigen.errors import UserError
from minigen.store import atomic

SOURCE = "SOURCE.json"
BATCH_FILES = (*cifar_format.TRAIN_BATCHES, cifar_format.TEST_BATCH, cifar_format.META)


def record_source(raw_dir: str | Path, dataset: str, source_md5: str, origin: str, split: str) -> dict:
    """Write SOURCE.json for the batches already in `raw_dir` (sha256 of each file)."""
    root = Path(raw_dir) / cifar_format.BATCH_DIR
    files = {f"{cifar_format.BATCH_DIR}/{name}": atomic.sha256_file(root / name) for name in BATCH_FILES}
    source = {"dataset": dataset, "source_md5": source_md5, "origin": origin, "split": split, "sha256": files}
    atomic.write_json(Path(raw_dir) / SOURCE, source)
    return source


def read_source(raw_dir: str | Path) -> dict:
    """SOURCE.json, after re-hashing every batch file against it."""
    raw_dir = Path(raw_dir)
    if not (raw_dir / SOURCE).is_file():
        raise UserError(f"no raw data in {raw_dir} (run `minigen download` first)")
    source = atomic.read_json(raw_dir / SOURCE, "raw-data record")
    _check_source(source, raw_dir / SOURCE)
    for name, expected in sorted(source["sha256"].items()):
        path = raw_dir / name
        if not path.is_file() or atomic.sha256_file(path) != expected:
            raise UserError(f"{path} is missing or differs from {SOURCE} (run `minigen download` again)")
    return source


def _check_source(source, path: Path) -> None:
    """SOURCE.json's shape: the fields later stages read, and a sha256 for every batch file."""
    fields = ("dataset", "source_md5", "origin", "split")
    again = "run `minigen download` again"
    if not isinstance(source, dict) or not all(isinstance(source.get(k), str) for k in fields):
        raise UserError(f"{path} is malformed: it needs text fields {', '.join(fields)} ({again})")
    hashes = source.get("sha256")
    wanted = [f"{cifar_format.BATCH_DIR}/{name}" for name in BATCH_FILES]
    if not isinstance(hashes, dict) or not all(isinstance(hashes.get(name), str) for name in wanted):
        raise UserError(f"{path} is malformed: its sha256 map must name every batch file ({again})")


def intact_source(raw_dir: str | Path) -> dict | None:
    try:
        return read_source(raw_dir)
    except UserError:
        return None


def check_labels(raw: dict) -> None:
    for split in ("train", "test"):
        labels = raw[split][1]
        if len(labels) and (labels.min() < 0 or labels.max() >= len(raw["classes"])):
            raise UserError(f"{split} labels fall outside the {len(raw['classes'])} classes of batches.meta")
