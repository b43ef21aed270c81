"""The `retrain` stage: one collected genome, trained on the full training split.

`results/genomes/genome_{i}.json` is trained for `retrain.epochs` on every training image
of `data/raw/` and scored on every test image, through the same loop as the search
(`train.fit`: the images stay on the device as uint8, batches are index gathers).
Two recipes (`retrain.recipe`):

- `paper`: the authors' settings: Adam, lr `retrain.lr`, batch `retrain.batch_size`,
  inputs normalized with mean and std 0.5, no augmentation, constant lr, fp32.
- `modern`: SGD with Nesterov momentum, a linear warm-up then cosine decay to 0,
  weight decay, label smoothing, per-sample random crop (pad 4) and horizontal flip,
  bf16 autocast on a GPU (fp32 on the CPU).

Every epoch ends with an atomic checkpoint under `paths.checkpoints_dir()`, keyed by
everything the result depends on; a rerun after a crash resumes after the last finished
epoch and ends with the same weights an uninterrupted run would have. The checkpoint is
deleted once the outputs are written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from minigen.store import atomic
from minigen.data import cifar_format
from minigen.model import network
from minigen.store import paths
from minigen.training import device as D
from minigen.space import genome as G
from minigen.training import loop as T
from minigen.errors import UserError

RECIPES = ("paper", "modern")
OUTPUT_FILES = ("metrics.json", "curve.csv", "model.safetensors")
CURVE_COLUMNS = ("epoch", "train_loss", "train_accuracy", "test_accuracy")
CHECKPOINT_VERSION = 2  # bump when what training computes changes (it is in the identity)
# Tests only: end the process like `kill -9` right after this epoch's checkpoint (1-based).
ABORT_AFTER_EPOCH_ENV = "MINIGEN_TEST_ABORT_AFTER_EPOCH"


def genome_file(genomes_dir: str | Path, index: int) -> Path:
    return Path(genomes_dir) / f"genome_{index}.json"


def output_dir(retrain_dir: str | Path, index: int) -> Path:
    return Path(retrain_dir) / f"genome_{index}"


def load_record(genomes_dir: str | Path, index: int) -> dict:
    """A `collect` record {"index", "genome", "genome_id", "source", "search"}, validated."""
    path = genome_file(genomes_dir, index)
    if not path.is_file():
        raise UserError(f"genome file not found: {path} (run `minigen collect` first)")
    record = atomic.read_json(path, "genome file")
    if not isinstance(record, dict) or "genome" not in record:
        raise UserError(f"{path} is malformed: expected an object with a 'genome' key (as `minigen collect` writes)")
    try:
        genome = G.parse(record["genome"])
    except G.GenomeError as exc:
        raise UserError(f"{path} is malformed: {exc}") from None
    genome_id = G.genome_id(genome)
    if record.get("genome_id", genome_id) != genome_id:
        raise UserError(f"{path} is malformed: its genome_id {record['genome_id']!r} does not match its genome ({genome_id})")
    search = record.get("search") or {}
    if not isinstance(search, dict):
        raise UserError(f"{path} is malformed: 'search' must be an object")
    return {**record, "genome": genome, "genome_id": genome_id, "search": search}


def _check(settings: dict, key: str, ok: Callable[[float], bool], wanted: str, integer: bool = False) -> None:
    value = settings[key]
    number = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if not number or not ok(value):
        raise UserError(f"retrain.{key} must be {wanted}, got {value!r}")


def make_recipe(params: dict, device: torch.device) -> T.Recipe:
    """The `retrain.recipe` settings as a `train.Recipe` for `device`."""
    settings = params["retrain"]
    common = {"epochs": settings["epochs"], "batch_size": settings["batch_size"], "seed": params["seed"]}
    if settings["recipe"] == "paper":
        return T.Recipe(**common, lr=float(settings["lr"]), optimizer="adam")
    if settings["recipe"] != "modern":
        raise UserError(f"retrain.recipe must be one of {', '.join(RECIPES)}, got {settings['recipe']!r}")
    _check(settings, "modern_lr", lambda v: v > 0, "a positive number")
    _check(settings, "momentum", lambda v: 0 <= v < 1, "a number in [0, 1)")
    _check(settings, "weight_decay", lambda v: v >= 0, "a number >= 0")
    _check(settings, "label_smoothing", lambda v: 0 <= v < 1, "a number in [0, 1)")
    _check(settings, "warmup_epochs", lambda v: v >= 0, "an integer >= 0", integer=True)
    return T.Recipe(
        **common,
        lr=float(settings["modern_lr"]),
        optimizer="sgd",
        momentum=float(settings["momentum"]),
        weight_decay=float(settings["weight_decay"]),
        label_smoothing=float(settings["label_smoothing"]),
        warmup_epochs=int(settings["warmup_epochs"]),
        schedule="cosine",
        augment=True,
        precision="bf16" if device.type == "cuda" else "fp32",
    )


def load_full(raw_dir: str | Path) -> tuple[T.Split, T.Split, str]:
    """Train and test splits (on the CPU) and a sha256 of their content."""
    data = cifar_format.read(raw_dir)
    digest = hashlib.sha256()
    splits = []
    for name in ("train", "test"):
        x, y = data[name]
        if len(x) == 0:
            raise UserError(f"the {name} split in {raw_dir} is empty")
        if y.min() < 0 or y.max() >= network.NUM_CLASSES:
            raise UserError(f"the {name} labels in {raw_dir} must lie in 0..{network.NUM_CLASSES - 1}")
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y, dtype=np.int64)
        digest.update(f"{name}:{x.shape}:".encode())
        digest.update(x.tobytes())
        digest.update(y.tobytes())
        splits.append(T.Split(torch.from_numpy(x), torch.from_numpy(y)))
    return splits[0], splits[1], digest.hexdigest()


def checkpoint_identity(genome_id: str, recipe: T.Recipe, data_sha256: str, device_kind: str) -> dict:
    """Everything the trained weights depend on, and nothing else."""
    return {
        "version": CHECKPOINT_VERSION,
        "genome_id": genome_id,
        "recipe": recipe.as_dict(),
        "data_sha256": data_sha256,
        "device_kind": device_kind,
        "cpu_threads": D.CPU_THREADS if device_kind == "cpu" else None,
        "torch": str(torch.__version__),  # a plain str: torch.load(weights_only=True) refuses TorchVersion
    }


def checkpoint_path(identity: dict) -> Path:
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    return paths.checkpoints_dir() / f"retrain-{key}.pt"


def load_checkpoint(path: Path, identity: dict, device: torch.device, log: Callable[[str], None]) -> dict | None:
    """The checkpoint at `path` if it is intact and for `identity`; else None (start over)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(io.BytesIO(path.read_bytes()), map_location=device, weights_only=True)
        if saved["identity"] != identity:
            raise ValueError("it belongs to another run")
        if not {"epoch", "model", "optimizer", "schedule", "curve"} <= set(saved["fit"]):
            raise ValueError("it is incomplete")
    except Exception as exc:  # unreadable or foreign: a fresh start is always correct
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log(f"ignoring checkpoint {path} ({type(exc).__name__}: {reason}); starting from epoch 1")
        return None
    return saved


def curve_csv(curve: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in curve:
        writer.writerow({k: repr(row[k]) if isinstance(row[k], float) else row[k] for k in CURVE_COLUMNS})
    return buffer.getvalue()


def weights_bytes(model: torch.nn.Module, metadata: dict[str, str]) -> bytes:
    from safetensors.torch import save

    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    return save(tensors, metadata=metadata)


def stderr_log(message: str) -> None:
    print(f"minigen retrain: {message}", file=sys.stderr, flush=True)


def retrain(
    params: dict,
    index: int,
    genomes_dir: str | Path = "results/genomes",
    raw_dir: str | Path = "data/raw",
    out_dir: str | Path = "results/retrain",
    log: Callable[[str], None] = stderr_log,
) -> dict:
    """Train genome `index` on the full data; write its folder; return its metrics."""
    record = load_record(genomes_dir, index)
    genome, genome_id = record["genome"], record["genome_id"]
    device = D.resolve(params["retrain"]["device"])
    recipe = make_recipe(params, device)
    train_cpu, test_cpu, data_sha256 = load_full(raw_dir)
    kind = D.kind(device)
    identity = checkpoint_identity(genome_id, recipe, data_sha256, kind)
    ckpt_path = checkpoint_path(identity)
    saved = load_checkpoint(ckpt_path, identity, device, log)
    prior_seconds = saved["seconds"] if saved else 0.0
    if saved:
        log(f"resuming genome {index} after epoch {saved['fit']['epoch'] + 1} from {ckpt_path}")
    log(f"genome {index} ({genome_id}): {params['retrain']['recipe']} recipe, {recipe.epochs} epochs, "
        f"{len(train_cpu)} train / {len(test_cpu)} test images on {kind}")

    train, test = train_cpu.to(device), test_cpu.to(device)
    started = time.perf_counter()
    abort_after = int(os.environ.get(ABORT_AFTER_EPOCH_ENV, "0") or 0)

    def on_epoch(epoch: int, row: dict, state: dict) -> None:
        seconds = prior_seconds + time.perf_counter() - started
        buffer = io.BytesIO()
        torch.save({"identity": identity, "fit": state, "seconds": seconds}, buffer)
        atomic.write_bytes(ckpt_path, buffer.getvalue())
        log(f"genome {index} epoch {row['epoch']}/{recipe.epochs}: loss {row['train_loss']:.4f}, "
            f"train {row['train_accuracy']:.2%}, test {row['test_accuracy']:.2%}, {seconds:.0f} s")
        if row["epoch"] == abort_after:
            os._exit(137)

    model = T.build_seeded(genome, recipe.seed, device)
    try:
        # Pinned on the CPU, so `dvc repro` (all cores) and Snakemake (1 thread) agree.
        with D.intra_op_threads(D.training_threads(device)):
            result = T.fit(model, train, test, recipe, state=saved["fit"] if saved else None, on_epoch=on_epoch)
    except T.TrainingFailed as exc:
        raise UserError(f"genome {index} could not be trained: {exc}") from None
    except torch.OutOfMemoryError as exc:
        raise UserError(f"genome {index} ran out of memory on {kind}: {str(exc).splitlines()[0]}") from None
    seconds = prior_seconds + time.perf_counter() - started

    metrics = {
        "index": index,
        "genome_id": genome_id,
        "test_accuracy": result.test_accuracy,
        **network.complexity(genome),
        "epochs": recipe.epochs,
        "recipe": params["retrain"]["recipe"],
        "recipe_settings": recipe.as_dict(),
        "seconds": round(seconds, 3),
        "device_kind": kind,
        "cpu_threads": identity["cpu_threads"],
        "train_images": len(train),
        "test_images": len(test),
        "data_sha256": data_sha256,
    }
    # One metadata key: safetensors writes several in hash order, which changes the bytes.
    metadata = {"minigen": json.dumps({"genome": genome, "genome_id": genome_id, "recipe": recipe.as_dict()},
                                      sort_keys=True, separators=(",", ":"))}
    final = output_dir(out_dir, index)
    staging = atomic.staging_dir(final)
    try:
        atomic.write_json(staging / "metrics.json", metrics)
        atomic.write_text(staging / "curve.csv", curve_csv(result.curve))
        atomic.write_bytes(staging / "model.safetensors", weights_bytes(model, metadata))
        atomic.replace_dir(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the swap succeeded
    ckpt_path.unlink(missing_ok=True)
    return metrics
