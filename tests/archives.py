"""Small CIFAR-format datasets for tests: a `cifar-10-python.tar.gz`, a ready `data/raw/`,
and a `params.yaml`.

    from archives import make_cifar_archive, make_raw_dir, write_params

    path, md5 = make_cifar_archive(tmp_path, train_per_class=5, test_per_class=2)
    raw = make_raw_dir(tmp_path / "data" / "raw", train_per_class=[3, 9, ...])  # unbalanced
    write_params(tmp_path, seed=1, data={"archive": str(path), "archive_md5": md5})

Per-class counts are an int (every class) or one int per class. Images get a colour per
class plus noise, so even a tiny network can learn something from them; labels come in
shuffled order, as in CIFAR-10's batches. Same arguments, same bytes (archive included).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import tarfile
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from minigen import settings as P
from minigen.data import cifar_format
from minigen.stages import download
from minigen.data import raw as raw_data

ARCHIVE_NAME = download.ARCHIVE_NAME
CLASSES = cifar_format.CIFAR10_CLASSES


def make_split(per_class: int | Sequence[int], rng: np.random.Generator, colours: np.ndarray):
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64, in shuffled order."""
    counts = [per_class] * len(colours) if isinstance(per_class, int) else list(per_class)
    assert len(counts) == len(colours), "one count per class"
    labels = rng.permutation(np.repeat(np.arange(len(counts)), counts)).astype(np.int64)
    noise = rng.normal(0, 40, size=(len(labels), 3, 32, 32))
    images = np.clip(colours[labels][:, :, None, None] + noise, 0, 255).astype(np.uint8)
    return images, labels


def make_dataset(train_per_class=5, test_per_class=2, seed: int = 0, classes: Sequence[str] = CLASSES):
    """{'train': (x, y), 'test': (x, y), 'classes': [...]}, like `cifar_format.read` returns."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(len(classes), 3)).astype(np.float64)
    return {
        "train": make_split(train_per_class, rng, colours),
        "test": make_split(test_per_class, rng, colours),
        "classes": list(classes),
    }


def make_cifar_archive(directory, train_per_class=5, test_per_class=2, seed: int = 0,
                       classes: Sequence[str] = CLASSES, name: str = ARCHIVE_NAME) -> tuple[Path, str]:
    """Write `directory/name`, laid out like the official archive; return (path, md5)."""
    data = make_dataset(train_per_class, test_per_class, seed, classes)
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = cifar_format.write(tmp, data["train"], data["test"], data["classes"])
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            tar.addfile(_info(f"{cifar_format.BATCH_DIR}/", tarfile.DIRTYPE))
            for member in raw_data.BATCH_FILES:
                payload = (root / member).read_bytes()
                tar.addfile(_info(f"{cifar_format.BATCH_DIR}/{member}", tarfile.REGTYPE, len(payload)),
                            io.BytesIO(payload))
    path.write_bytes(buffer.getvalue())
    return path, hashlib.md5(buffer.getvalue()).hexdigest()


def make_raw_dir(raw_dir, train_per_class=5, test_per_class=2, seed: int = 0,
                 classes: Sequence[str] = CLASSES) -> Path:
    """Write what `minigen download` leaves in `raw_dir` (batches + SOURCE.json), directly."""
    data = make_dataset(train_per_class, test_per_class, seed, classes)
    cifar_format.write(raw_dir, data["train"], data["test"], data["classes"])
    content = hashlib.md5(data["train"][0].tobytes() + data["test"][0].tobytes()).hexdigest()
    raw_data.record_source(raw_dir, dataset="cifar10", source_md5=content, origin="tests/archives.py",
                           split=download.OFFICIAL_SPLIT)
    return Path(raw_dir)


def params_with(**sections) -> dict:
    """The paper's settings with the given ones merged in, section by section."""
    tree = copy.deepcopy(P.DEFAULTS)
    for name, value in sections.items():
        tree[name] = {**tree[name], **value} if isinstance(value, dict) else value
    return tree


def write_params(directory, **sections) -> Path:
    """`directory/params.yaml`: every section spelled out (as `settings` demands), the
    given settings merged into the paper's."""
    path = Path(directory) / "params.yaml"
    path.write_text(yaml.safe_dump(params_with(**sections), sort_keys=True))
    return path


def _info(name: str, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime = kind, size, 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info
