"""The `sample` stage: the frozen, stratified Mini CIFAR10 in `data/mini/`.

Exactly `data.train_per_class` images of every class from the training split and
`data.test_per_class` from the test split. The draw, so anyone can redo it by hand:

    rng = numpy.random.default_rng(seed)      # one generator for both splits
    for split in (train, test):               # train first
        for label in 0..K-1:                  # classes in label order
            pool = indices of `label` in the split, ascending (batch order)
            take rng.permutation(pool)[:per_class]
        sort the split's taken indices ascending

Images are stored in that sorted (batch) order, so `train.npz` row i is source image
`train_indices[i]` (data_batch_1..5 concatenated; `test_batch` for test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minigen.store import atomic
from minigen.data import cifar_format
from minigen.data import mini
from minigen.data import raw as raw_data
from minigen.errors import UserError

SPLITS = ("train", "test")
STREAM = ("numpy.random.default_rng(seed); train then test; per class in label order "
          "rng.permutation(class indices ascending)[:per_class]; each split sorted ascending")


def draw(labels: np.ndarray, per_class: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """`per_class` indices of every label 0..n_classes-1 (counts checked beforehand), sorted."""
    chosen = [rng.permutation(np.flatnonzero(labels == label))[:per_class] for label in range(n_classes)]
    return np.sort(np.concatenate(chosen))


def check_counts(labels: np.ndarray, classes: list[str], per_class: int, split: str) -> list[int]:
    counts = np.bincount(labels, minlength=len(classes)).tolist()
    for name, have in zip(classes, counts):
        if have < per_class:
            raise UserError(f"class '{name}' has {have} {split} images, but data.{split}_per_class asks "
                            f"for {per_class} (per-class {split} counts: {counts})")
    return counts


def sample(params: dict, raw_dir: str | Path, out: str | Path) -> dict:
    """Draw the mini set from `raw_dir` into `out` (atomically); return its manifest."""
    data = params["data"]
    source = raw_data.read_source(raw_dir)
    if source["dataset"] != data["dataset"]:
        raise UserError(f"{raw_dir} holds {source['dataset']} but data.dataset is {data['dataset']} "
                        "(run `minigen download`)")
    raw = cifar_format.read(raw_dir)
    raw_data.check_labels(raw)
    classes = raw["classes"]
    per_class = {"train": data["train_per_class"], "test": data["test_per_class"]}
    available = {split: check_counts(raw[split][1], classes, per_class[split], split) for split in SPLITS}

    rng = np.random.default_rng(params["seed"])
    indices = {split: draw(raw[split][1], per_class[split], len(classes), rng) for split in SPLITS}
    drawn = {split: np.bincount(raw[split][1][indices[split]], minlength=len(classes)).tolist() for split in SPLITS}
    payloads = {f"{split}.npz": mini.npz_bytes(raw[split][0][indices[split]], raw[split][1][indices[split]])
                for split in SPLITS}
    manifest = {
        "dataset": source["dataset"],
        "seed": params["seed"],
        "stream": STREAM,
        "classes": classes,
        "train_per_class": per_class["train"],
        "test_per_class": per_class["test"],
        "class_counts": {split: dict(zip(classes, drawn[split])) for split in SPLITS},
        "source_class_counts": {split: dict(zip(classes, available[split])) for split in SPLITS},
        "train_indices": indices["train"].tolist(),
        "test_indices": indices["test"].tolist(),
        "source_md5": source["source_md5"],
        "source": {k: source[k] for k in ("dataset", "source_md5", "origin", "split")},
        "sha256": {},
    }
    with atomic.staged_dir(out) as staging:
        for name, payload in payloads.items():
            atomic.write_bytes(staging / name, payload)
            manifest["sha256"][name] = atomic.sha256_file(staging / name)
        atomic.write_json(staging / mini.MANIFEST, manifest)
    return manifest
