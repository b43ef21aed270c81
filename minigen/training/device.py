"""Device choice and the deterministic set-up every training run goes through."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

# cuBLAS reads this when CUDA starts; without it deterministic matmuls raise errors.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":16:8")

import torch  # noqa: E402  (after the environment is set)

from minigen.errors import UserError  # noqa: E402
from minigen.store import paths  # noqa: E402
from minigen.training import gpu_claim  # noqa: E402

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


# The cards this process claimed: their lock files stay open until the process ends.
_CLAIMS: list[gpu_claim.Claim] = []


@dataclass(frozen=True)
class Placement:
    """Where a stage trains: `devices[0]`, plus the other cards a search's workers use."""

    devices: tuple[torch.device, ...]
    chosen_by: str  # "cpu", "params" (cuda:N), "only card", "claim" or "scheduler"

    @property
    def device(self) -> torch.device:
        return self.devices[0]

    def record(self) -> dict:
        """For metrics.json: the cards (index as this process sees it, name) and who chose."""
        cards = [{"index": d.index, "name": torch.cuda.get_device_name(d)} for d in self.devices if d.type == "cuda"]
        return {
            "device": str(self.device),
            "cards": cards,
            "chosen_by": self.chosen_by,
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def describe(self) -> str:
        """One line for the log."""
        record = self.record()
        where = ", ".join(f"cuda:{c['index']} ({c['name']})" for c in record["cards"]) or record["device"]
        line = f"on {where}, chosen by {self.chosen_by}"
        if record["slurm_job_id"] is not None:
            line += f"; SLURM job {record['slurm_job_id']}, CUDA_VISIBLE_DEVICES={record['cuda_visible_devices']}"
        return line


def scheduler_chose() -> bool:
    """A SLURM job that was given GPUs: SLURM set CUDA_VISIBLE_DEVICES to its cards."""
    return "SLURM_JOB_ID" in os.environ and "CUDA_VISIBLE_DEVICES" in os.environ


def place(spec: str = "auto", cards: int = 1) -> Placement:
    """Resolve `spec`; on a GPU with several cards visible, hold up to `cards` of them.

    `cuda:N` is the user's choice and a scheduler's CUDA_VISIBLE_DEVICES is SLURM's, so
    neither claims. Otherwise `auto` and `cuda` claim free cards of card 0's kind (results
    are bit-identical per kind) through lock files in the cache dir, waiting while all
    are held by other jobs (`gpu_claim`), and keep them for the process's lifetime.
    """
    device = resolve(spec)
    if device.type != "cuda":
        return Placement((device,), "cpu")
    if device.index is not None:
        return Placement((device,), "params")
    same = [i for i in range(torch.cuda.device_count())
            if kind(torch.device("cuda", i)) == kind(torch.device("cuda", 0))]
    if scheduler_chose() or len(same) == 1:
        chosen = tuple(torch.device("cuda", i) for i in same[:cards])
        placement = Placement(chosen, "scheduler" if scheduler_chose() else "only card")
    else:
        by_uuid = {str(torch.cuda.get_device_properties(i).uuid): i for i in same}
        claim = gpu_claim.claim(list(by_uuid), paths.cache_root() / "gpus", count=cards)
        _CLAIMS.append(claim)
        placement = Placement(tuple(torch.device("cuda", by_uuid[u]) for u in claim.cards), "claim")
    torch.cuda.set_device(placement.device)  # so nothing makes a context on another card
    return placement


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
