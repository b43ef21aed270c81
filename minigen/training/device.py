"""Device choice and the deterministic set-up every training run goes through."""

from __future__ import annotations

import contextlib
import os

# cuBLAS reads this when CUDA starts; without it deterministic matmuls raise errors.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":16:8")

import torch  # noqa: E402  (after the environment is set)

from minigen.errors import UserError  # noqa: E402

# CPU results depend on the intra-op thread count (a conv's reductions are split per
# thread), so every CPU training (evaluation or retrain) runs on this many threads.
CPU_THREADS = 1


def resolve(spec: str = "auto") -> torch.device:
    """`auto`, `cpu`, `cuda` or `cuda:N` -> a device that exists here."""
    spec = str(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(f"device {spec!r} asked for, but no CUDA GPU is visible (use device: auto or cpu)")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device {spec!r} asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
        return device
    raise UserError(f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)")


def kind(device: torch.device) -> str:
    """What results are bit-exact across: the device type and, on GPU, the card's name."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


def make_deterministic(precision: str = "fp32") -> None:
    """Deterministic kernels only; TF32 only when asked for (the paper trained in fp32)."""
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also NaN-fills every new tensor: a debugging aid, pure extra work
    # (a fill kernel per allocation on a GPU). Kernels overwrite those buffers, so the
    # results are the same bits without it (tests/test_retrain.py checks).
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


@contextlib.contextmanager
def intra_op_threads(count: int | None):
    """Run with `count` intra-op threads (None: leave as is), restoring the old count."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def training_threads(device: torch.device) -> int | None:
    """The pinned thread count for training on `device` (None on a GPU: not pinned)."""
    return CPU_THREADS if device.type == "cpu" else None
