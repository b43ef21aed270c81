"""CIFAR-10's python on-disk format: the one format every stage after `download` reads.

`data/raw/cifar-10-batches-py/` holds `data_batch_1..5`, `test_batch` and `batches.meta`,
pickled dicts with `data` (N, 3072) uint8 rows in channel-major order and `labels`.
The embedded digits dataset and the tests' small archives are written in it too.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from minigen.store import atomic
from minigen.errors import UserError

BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated or foreign file
        raise UserError(f"{path} is not a CIFAR-10 python batch ({type(exc).__name__}); "
                        "run `minigen download` again") from None
    if len(data) != len(labels):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def _read_meta(path: Path) -> list[str]:
    """batches.meta's class names; a damaged file is one line, as a damaged batch is."""
    try:
        with open(path, "rb") as fh:
            names = pickle.load(fh, encoding="latin1")["label_names"]
        classes = [str(c) for c in names]
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated, foreign, or not a dict of names
        raise UserError(f"{path} is not a CIFAR-10 batches.meta ({type(exc).__name__}); "
                        "run `minigen download` again") from None
    if not classes or isinstance(names, (str, bytes)):
        raise UserError(f"{path} holds no list of class names; run `minigen download` again")
    return classes


def read(raw_dir: str | Path) -> dict:
    """{'train': (x, y), 'test': (x, y), 'classes': [...]} with x as (N, 3, 32, 32) uint8."""
    root = Path(raw_dir) / BATCH_DIR
    if not root.is_dir():
        raise UserError(f"no CIFAR-10 data in {raw_dir} (run `minigen download` first)")
    try:
        train = [_read_batch(root / name) for name in TRAIN_BATCHES]
        test = _read_batch(root / TEST_BATCH)
        classes = _read_meta(root / META)
    except FileNotFoundError as exc:
        raise UserError(f"raw data incomplete: {exc.filename} is missing (run `minigen download`)") from None
    return {
        "train": (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
        "test": test,
        "classes": classes,
    }


def write(raw_dir: str | Path, train: tuple, test: tuple, classes) -> Path:
    """Write images (N, 3, 32, 32) uint8 and labels in CIFAR-10's python format."""
    root = Path(raw_dir) / BATCH_DIR
    x, y = train
    chunks = np.array_split(np.arange(len(x)), len(TRAIN_BATCHES))
    for name, rows in zip(TRAIN_BATCHES, chunks):
        _write_batch(root / name, x[rows], y[rows], name)
    _write_batch(root / TEST_BATCH, *test, TEST_BATCH)
    meta = {"label_names": list(classes), "num_cases_per_batch": len(chunks[0]), "num_vis": 3072}
    atomic.write_bytes(root / META, pickle.dumps(meta, protocol=2))
    return root


def _write_batch(path: Path, x: np.ndarray, y: np.ndarray, name: str) -> None:
    entry = {
        "batch_label": name,
        "labels": [int(v) for v in y],
        "data": np.ascontiguousarray(x, dtype=np.uint8).reshape(len(x), 3072),
        "filenames": [f"{name}_{i}.png" for i in range(len(x))],
    }
    atomic.write_bytes(path, pickle.dumps(entry, protocol=2))
