"""The one training loop, shared by the search's mini-training and the full retrain.

The data lives on the device as uint8 tensors and batches are index slices (no
DataLoader); the model runs channels_last; the step never syncs with the host (the
loss is summed on the device and read once per epoch). Every random draw (weights,
shuffle, augmentation) comes from generators seeded by the recipe's seed, drawn on the
CPU so the stream is the same on every device.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from minigen import settings as P
from minigen.training import device as D
from minigen.model import network

NORMALIZE_MEAN = 0.5  # the authors' Normalize((0.5,)*3, (0.5,)*3)
NORMALIZE_STD = 0.5
CROP_PAD = 4
EVAL_BATCH = 1000
# Layout of activations and weights; bench/gpu_variants.py measures the alternatives.
MEMORY_FORMAT = torch.channels_last


class TrainingFailed(RuntimeError):
    """The network could not be trained (NaN loss, out of memory): recorded, not fatal."""


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int = P.PAPER.search.batch_size
    lr: float = P.PAPER.search.lr
    seed: int = P.PAPER.seed
    optimizer: str = "adam"  # adam | sgd (Nesterov)
    momentum: float = 0.0
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    warmup_epochs: int = 0
    schedule: str = "constant"  # constant | cosine (after a linear warm-up)
    augment: bool = False  # per-sample random crop (pad 4) + horizontal flip
    precision: str = "fp32"  # fp32 | bf16 (autocast) | tf32

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Split:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64, on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self):
        if self.x.dtype != torch.uint8 or self.x.dim() != 4 or self.x.shape[1:] != (3, 32, 32):
            raise ValueError(f"images must be uint8 (N, 3, 32, 32), got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.shape != (self.x.shape[0],):
            raise ValueError("labels must be (N,) matching the images")
        self.y = self.y.long()

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class FitResult:
    test_accuracy: float | None
    curve: list[dict] = field(default_factory=list)
    test_correct: torch.Tensor | None = None  # per test image, on the CPU: was it classified right?


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for one epoch's shuffle and augmentation: resumable from any epoch."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))


def normalize(x_uint8: torch.Tensor) -> torch.Tensor:
    x = x_uint8.float().div_(255.0).sub_(NORMALIZE_MEAN).div_(NORMALIZE_STD)
    return x.contiguous(memory_format=MEMORY_FORMAT)


def augment_batch(padded: torch.Tensor, idx: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Per-sample crop and flip as one gather from the padded uint8 images (deterministic).

    `padded` is (N, 32 + 2 * CROP_PAD, 32 + 2 * CROP_PAD, 3), channels last, so each
    gathered pixel is 3 adjacent bytes. Image `idx[b]` is cropped at rows `dy[b]`, columns
    `dx[b]` and mirrored where `flip[b]`; the result is (B, 3, 32, 32) in channels_last.
    """
    size = padded.shape[1] - 2 * CROP_PAD
    ar = torch.arange(size, device=padded.device)
    rows = dy[:, None] + ar  # (B, 32)
    cols = torch.where(flip[:, None], dx[:, None] + (size - 1) - ar, dx[:, None] + ar)
    out = padded[idx[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, 32, 32, 3)
    return out.permute(0, 3, 1, 2)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
            nesterov=recipe.momentum > 0, weight_decay=recipe.weight_decay,
        )
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int):
    total = recipe.epochs * steps_per_epoch
    warmup = recipe.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if recipe.schedule == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast(device: torch.device, precision: str):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def correct_mask(model: nn.Module, data: Split, precision: str = "fp32") -> torch.Tensor:
    """Per image of `data`, whether `model` classifies it right (bool, on data's device)."""
    model.eval()
    hits = torch.empty(len(data), dtype=torch.bool, device=data.x.device)
    for start in range(0, len(data), EVAL_BATCH):
        with autocast(data.x.device, precision):
            logits = model(normalize(data.x[start : start + EVAL_BATCH]))
        hits[start : start + EVAL_BATCH] = logits.argmax(1) == data.y[start : start + EVAL_BATCH]
    return hits


def accuracy(model: nn.Module, data: Split, precision: str = "fp32") -> float:
    return correct_mask(model, data, precision).sum().item() / len(data)  # one host sync


def _train_epoch(model: nn.Module, train: Split, padded: torch.Tensor | None, recipe: Recipe, epoch: int,
                 trainer: tuple) -> tuple[float, int]:
    """One epoch in the recipe's shuffle (and augmentation) order: (mean loss, correct)."""
    optimizer, schedule, criterion = trainer
    device = train.x.device
    model.train()
    gen = epoch_generator(recipe.seed, epoch)
    order = torch.randperm(len(train), generator=gen).to(device)
    if recipe.augment:
        shifts = torch.randint(0, 2 * CROP_PAD + 1, (2, len(train)), generator=gen).to(device)
        flips = (torch.rand(len(train), generator=gen) < 0.5).to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for begin in range(0, len(train), recipe.batch_size):
        idx = order[begin : begin + recipe.batch_size]
        if recipe.augment:
            pos = torch.arange(begin, begin + len(idx), device=device)
            xb = augment_batch(padded, idx, shifts[0, pos], shifts[1, pos], flips[pos])
        else:
            xb = train.x[idx]
        yb = train.y[idx]
        with autocast(device, recipe.precision):
            logits = model(normalize(xb))
        loss = criterion(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.argmax(1) == yb).sum()
    return loss_sum.item() / len(train), correct.item()  # one host sync per epoch


def fit(
    model: nn.Module,
    train: Split,
    test: Split | None,
    recipe: Recipe,
    *,
    state: dict | None = None,
    on_epoch: Callable[[int, dict, dict], None] | None = None,
) -> FitResult:
    """Train `model` (already on the data's device) for the recipe's epochs.

    `state` (from an `on_epoch` checkpoint) resumes after its epoch. `on_epoch(epoch,
    row, state)` receives each epoch's curve row and the state to checkpoint.
    """
    D.make_deterministic(recipe.precision)
    model.to(memory_format=MEMORY_FORMAT)
    optimizer = make_optimizer(model, recipe)
    steps = math.ceil(len(train) / recipe.batch_size)
    schedule = make_schedule(optimizer, recipe, steps)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    curve: list[dict] = []
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        curve = list(state["curve"])
        start = state["epoch"] + 1
    padded = None
    if recipe.augment:
        p = CROP_PAD
        padded = nn.functional.pad(train.x, (p, p, p, p)).permute(0, 2, 3, 1).contiguous()
    for epoch in range(start, recipe.epochs):
        train_loss, correct = _train_epoch(model, train, padded, recipe, epoch, (optimizer, schedule, criterion))
        if not math.isfinite(train_loss):
            raise TrainingFailed(f"loss is {train_loss} after epoch {epoch + 1}")
        row = {"epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": correct / len(train)}
        if test is not None and on_epoch is not None:
            row["test_accuracy"] = accuracy(model, test, recipe.precision)
        curve.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "curve": curve,
            })
    # A last step can blow the weights up after the last loss was read: fail, don't score.
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise TrainingFailed(f"weights are not finite after epoch {recipe.epochs}")
    if test is None:
        return FitResult(test_accuracy=None, curve=curve)
    hits = correct_mask(model, test, recipe.precision)
    return FitResult(test_accuracy=hits.sum().item() / len(test), curve=curve, test_correct=hits.cpu())


def build_seeded(genome, seed: int, device: torch.device) -> nn.Module:
    """The seed is set before each network (paper IV-B); weights are drawn on the CPU."""
    torch.manual_seed(seed)
    return network.build(genome).to(device)


def train_genome(genome, train: Split, test: Split, recipe: Recipe) -> FitResult:
    """Seed, build, train and score one genome. Raises TrainingFailed on NaN or OOM."""
    model = build_seeded(genome, recipe.seed, train.x.device)
    try:
        return fit(model, train, test, recipe)
    except torch.OutOfMemoryError as exc:
        raise TrainingFailed(f"out of memory: {str(exc).splitlines()[0]}") from None
