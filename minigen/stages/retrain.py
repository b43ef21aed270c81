"""The `retrain` stage: one collected genome, trained on the full training split.

`results/genomes/genome_{i}.json` is trained for `retrain.epochs` with one seed of
`retrain.seeds` on every training image of `data/raw/` and scored on every test image,
through the same loop as the search (`train.fit`: the images stay on the device as
uint8, batches are index gathers). Its test accuracy is given twice: on all test images,
as the paper, and on those the search never saw: the mini set's test images
(`data/mini/manifest.json`'s `test_indices`) chose the genome, so they are left out of
`clean_test_accuracy`.
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

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from minigen import log as messages
from minigen import settings as P
from minigen.store import atomic, integrity
from minigen.data import cifar_format
from minigen.data import mini as mini_data
from minigen.data import raw as raw_data
from minigen.model import network
from minigen import pipeline
from minigen.store import code_version, formats, paths, provenance
from minigen.space import records
from minigen.training import device as D
from minigen.training import loop as T
from minigen.errors import UserError

CHECKPOINT_KIND = "retrain-checkpoint"  # the header of its checksum (store.integrity)


def make_recipe(params: P.Params | dict, device: torch.device, seed: int | None = None) -> T.Recipe:
    """The `retrain.recipe` settings (validated by `settings`) as a `train.Recipe` for
    `device`, seeded with `seed` (None: the first of `retrain.seeds`)."""
    params = P.of(params)
    settings = params.retrain
    seed = settings.seeds[0] if seed is None else seed
    common = {"epochs": settings.epochs, "batch_size": settings.batch_size, "seed": seed}
    # Numbers as floats whatever was written: the checkpoint key hashes the recipe.
    if settings.recipe == "paper":
        return T.Recipe(**common, lr=float(settings.lr), optimizer="adam")
    return T.Recipe(
        **common,
        lr=float(settings.modern_lr),
        optimizer="sgd",
        momentum=float(settings.momentum),
        weight_decay=float(settings.weight_decay),
        label_smoothing=float(settings.label_smoothing),
        warmup_epochs=settings.warmup_epochs,
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


def unseen_test_images(mini_dir: str | Path, raw_dir: str | Path, source_md5: str, test_images: int) -> torch.Tensor:
    """A mask over the `test_images` test images of `raw_dir` (whose SOURCE.json gives
    `source_md5`): True where the image is not in the mini set's test split, i.e. the
    search never scored a genome on it."""
    manifest = mini_data.check(mini_dir)
    again = "run `minigen sample` again"
    if manifest.get("source_md5") != source_md5:
        raise UserError(f"the mini set in {mini_dir} was drawn from other data than {raw_dir} "
                        f"(source md5 {manifest.get('source_md5')!r}, {raw_dir} has {source_md5!r}): {again}")
    indices = manifest.get("test_indices")
    if (not isinstance(indices, list) or not all(type(i) is int and 0 <= i < test_images for i in indices)
            or len(set(indices)) != len(indices)):
        raise UserError(f"{Path(mini_dir) / mini_data.MANIFEST} is malformed: test_indices must be distinct "
                        f"indices of the {test_images} test images in {raw_dir} ({again})")
    unseen = torch.ones(test_images, dtype=torch.bool)
    unseen[torch.tensor(indices, dtype=torch.long)] = False
    return unseen


def accuracies(correct: torch.Tensor, unseen: torch.Tensor) -> dict:
    """Test accuracy on every image (the paper's) and on the unseen ones (None if none are)."""
    clean = int(unseen.sum())
    return {
        "test_accuracy": int(correct.sum()) / len(correct),
        "clean_test_accuracy": int(correct[unseen].sum()) / clean if clean else None,
        "clean_test_images": clean,
    }


def checkpoint_identity(genome_id: str, recipe: T.Recipe, data_sha256: str, device_kind: str) -> dict:
    """Everything the trained weights depend on, and nothing else."""
    return {
        "code": code_version.fingerprint(pipeline.STAGE_CODE["retrain"]),
        "genome_id": genome_id,
        "recipe": recipe.as_dict(),
        "data_sha256": data_sha256,
        "device_kind": device_kind,
        "cpu_threads": D.CPU_THREADS if device_kind == "cpu" else None,
        "torch": str(torch.__version__),  # a plain str: torch.load(weights_only=True) refuses TorchVersion
    }


def checkpoint_path(identity: dict) -> Path:
    key = formats.json_sha256(identity)[:24]
    return paths.checkpoints_dir() / f"retrain-{key}.pt"


def save_checkpoint(path: Path, identity: dict, state: dict, seconds: float) -> None:
    buffer = io.BytesIO()
    torch.save({"identity": identity, "fit": state, "seconds": seconds}, buffer)
    atomic.write_bytes(path, integrity.seal_bytes(buffer.getvalue(), CHECKPOINT_KIND))


def load_checkpoint(path: Path, identity: dict, device: torch.device, log: Callable[[str], None]) -> dict | None:
    """The checkpoint at `path` if it is intact (checksum, schema) and for `identity`; else
    None, said in one line: training starts over."""
    if not path.is_file():
        return None
    try:
        payload = integrity.open_bytes(path.read_bytes(), CHECKPOINT_KIND)
        saved = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
        _check_checkpoint(saved, identity)
    except Exception as exc:  # unreadable or foreign: a fresh start is always correct
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log(f"ignoring checkpoint {path} ({type(exc).__name__}: {reason}); starting from epoch 1")
        return None
    return saved


def _check_checkpoint(saved, identity: dict) -> None:
    """Raise ValueError unless `saved` has the shape `on_epoch` writes, for `identity`."""
    if not isinstance(saved, dict) or not {"identity", "fit", "seconds"} <= set(saved):
        raise ValueError("it lacks identity, fit or seconds")
    if saved["identity"] != identity:
        raise ValueError("it belongs to another run")
    fit = saved["fit"]
    if not isinstance(fit, dict) or not {"epoch", "model", "optimizer", "schedule", "curve"} <= set(fit):
        raise ValueError("it is incomplete")
    epoch, curve = fit["epoch"], fit["curve"]
    if not isinstance(epoch, int) or not 0 <= epoch < identity["recipe"]["epochs"]:
        raise ValueError(f"its epoch {epoch!r} is outside the recipe's epochs")
    if not isinstance(curve, list):
        raise ValueError("its curve is not a list")
    if not isinstance(saved["seconds"], (int, float)) or not saved["seconds"] >= 0:
        raise ValueError("its seconds is not a number >= 0")


def weights_bytes(model: torch.nn.Module, metadata: dict[str, str]) -> bytes:
    from safetensors.torch import save

    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    return save(tensors, metadata=metadata)


stderr_log = messages.logger("retrain").info


class EpochLog:
    """`on_epoch` for `train.fit`: checkpoint each epoch, then say it in one line with the
    epoch of epochs and when the retrain should end (from this run's pace)."""

    def __init__(self, label: str, epochs: int, path: Path, identity: dict, saved: dict | None,
                 log: Callable[[str], None]):
        self.label, self.epochs, self.path, self.identity, self.log = label, epochs, path, identity, log
        self.prior_seconds = saved["seconds"] if saved else 0.0
        self.first_epoch = saved["fit"]["epoch"] + 1 if saved else 0  # epochs done before this run
        self.started = time.perf_counter()

    def seconds(self) -> float:
        """Training time so far, a resumed run's earlier part included."""
        return self.prior_seconds + time.perf_counter() - self.started

    def __call__(self, epoch: int, row: dict, state: dict) -> None:
        seconds = self.seconds()
        save_checkpoint(self.path, self.identity, state, seconds)
        pace = (time.perf_counter() - self.started) / (row["epoch"] - self.first_epoch)
        self.log(f"{self.label} epoch {row['epoch']}/{self.epochs}: loss {row['train_loss']:.4f}, "
                 f"train {row['train_accuracy']:.2%}, test {row['test_accuracy']:.2%}; "
                 f"{messages.duration(seconds)} so far, ETA {messages.duration(pace * (self.epochs - row['epoch']))}")


def check_index(params: dict, index: int) -> None:
    top_k = params["collect"]["top_k"]
    if not 0 <= index < top_k:
        raise UserError(f"genome index {index} is outside collect.top_k ({top_k}): "
                        f"the collected genomes are 0 to {top_k - 1}")


def check_seed(params: dict, seed: int | None) -> int:
    """`seed`, which must be one of retrain.seeds; None: the first of them."""
    seeds = P.of(params).retrain.seeds
    if seed is None:
        return seeds[0]
    if seed not in seeds:
        raise UserError(f"seed {seed} is not in retrain.seeds ({', '.join(map(str, seeds))})")
    return seed


def write_outputs(folder: Path, genome, metrics: dict, cost: dict, curve: list[dict], model: torch.nn.Module) -> None:
    """The genome's output folder, all files or none. metrics.json, curve.csv, dvclive/ and
    the weights are the same bytes on every rerun; cost.json says what this run took."""
    # One metadata key: safetensors writes several in hash order, which changes the bytes.
    metadata = {"minigen": json.dumps({"genome": genome, "genome_id": metrics["genome_id"],
                                       "recipe": metrics["recipe_settings"]}, sort_keys=True, separators=(",", ":"))}
    with atomic.staged_dir(folder) as staging:
        atomic.write_json(staging / "metrics.json", metrics)
        atomic.write_json(staging / "cost.json", cost)
        atomic.write_text(staging / "curve.csv", formats.csv_text(curve, formats.CURVE_COLUMNS))
        for name, text in formats.dvclive_files(curve).items():
            atomic.write_text(staging / formats.DVCLIVE_DIR / name, text)
        atomic.write_bytes(staging / "model.safetensors", weights_bytes(model, metadata))


def fit(index: int, model: torch.nn.Module, train: T.Split, test: T.Split, recipe: T.Recipe, saved: dict | None,
        on_epoch: EpochLog) -> T.FitResult:
    """`train.fit` from the checkpoint `saved` (or the start); a failure is one line naming the genome."""
    device = train.x.device
    try:
        # Pinned on the CPU, so `dvc repro` (all cores) and Snakemake (1 thread) agree.
        with D.intra_op_threads(D.training_threads(device)):
            return T.fit(model, train, test, recipe, state=saved["fit"] if saved else None, on_epoch=on_epoch)
    except T.TrainingFailed as exc:
        raise UserError(f"genome {index} could not be trained: {exc}") from None
    except torch.OutOfMemoryError as exc:
        raise UserError(f"genome {index} ran out of memory on {D.kind(device)}: {str(exc).splitlines()[0]}") from None


def retrain(
    params: dict,
    index: int,
    genomes_dir: str | Path = "results/genomes",
    raw_dir: str | Path = "data/raw",
    out_dir: str | Path = "results/retrain",
    log: Callable[[str], None] = stderr_log,
    *,
    seed: int | None = None,
    mini_dir: str | Path = "data/mini",
) -> dict:
    """Train genome `index` with `seed` (None: the first of retrain.seeds) on the full data;
    write its folder; return its metrics and cost."""
    check_index(params, index)
    seed = check_seed(params, seed)
    record = records.load_record(genomes_dir, index)
    genome, genome_id = record["genome"], record["genome_id"]
    # Before hours of training: the batches are what download recorded, the mini set was drawn from them.
    source = raw_data.read_source(raw_dir)
    train_cpu, test_cpu, data_sha256 = load_full(raw_dir)
    unseen = unseen_test_images(mini_dir, raw_dir, source["source_md5"], len(test_cpu))
    folder = formats.retrain_dir(out_dir, index, seed)
    atomic.check_output_dir(folder)
    atomic.check_writable(paths.checkpoints_dir(), "the checkpoint folder")
    placement = D.place(params["retrain"]["device"])
    device = placement.device
    log(f"genome {index} {placement.describe()}")
    recipe = make_recipe(params, device, seed)
    kind = D.kind(device)
    identity = checkpoint_identity(genome_id, recipe, data_sha256, kind)
    ckpt_path = checkpoint_path(identity)
    saved = load_checkpoint(ckpt_path, identity, device, log)
    if saved:
        log(f"resuming genome {index} after epoch {saved['fit']['epoch'] + 1} (seed {seed}) from {ckpt_path}")
    log(f"genome {index} ({genome_id}): {params['retrain']['recipe']} recipe, {recipe.epochs} epochs, seed {seed}, "
        f"{len(train_cpu)} train / {len(test_cpu)} test images ({int(unseen.sum())} unseen by the search) on {kind}")

    train, test = train_cpu.to(device), test_cpu.to(device)
    model = T.build_seeded(genome, recipe.seed, device)
    on_epoch = EpochLog(f"genome {index} (seed {seed})", recipe.epochs, ckpt_path, identity, saved, log)
    result = fit(index, model, train, test, recipe, saved, on_epoch)
    metrics = {
        "index": index,
        "seed": seed,
        "genome_id": genome_id,
        **accuracies(result.test_correct, unseen),
        **network.complexity(genome),
        "epochs": recipe.epochs,
        "recipe": params["retrain"]["recipe"],
        "recipe_settings": recipe.as_dict(),
        "device_kind": kind,
        "cpu_threads": identity["cpu_threads"],
        "train_images": len(train),
        "test_images": len(test),
        "data_sha256": data_sha256,
    }
    cost = {"seconds": round(on_epoch.seconds(), 3), "placement": placement.record(), "code": provenance.code_version()}
    write_outputs(folder, genome, metrics, cost, result.curve, model)

    ckpt_path.unlink(missing_ok=True)
    return {**metrics, **cost}

