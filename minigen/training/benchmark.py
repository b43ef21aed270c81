"""One timed evaluation on random data: seconds, images/s and achieved GFLOP/s.

The engine behind `minigen bench eval` (and the helpers `bench/original_loop.py` shares,
so both report the same figures the same way). Images are random uint8 with balanced
labels, drawn from a seeded generator: the speed of a training run does not depend on
what the pixels show.

Timing: `seconds` covers `train.train_genome` (seed, build, train, score the test
images). An optional warm-up first trains the same genome for one step, so one-off costs
(CUDA context, cuDNN/oneDNN start-up) land in `warmup_seconds` instead; process start-up
and imports are in neither.
"""

from __future__ import annotations

import platform
import resource
import sys
import time

import torch

from minigen import settings as P
from minigen.training import device as D
from minigen.model import network
from minigen.training import loop as T

DEFAULT_TEST_IMAGES = 100


def random_splits(train_images: int, test_images: int, seed: int) -> tuple[T.Split, T.Split]:
    """Seeded random uint8 images with balanced labels (class = index mod 10), on the CPU."""
    gen = torch.Generator().manual_seed(seed)

    def split(n: int) -> T.Split:
        x = torch.randint(0, 256, (n, 3, network.IMAGE_SIZE, network.IMAGE_SIZE), dtype=torch.uint8, generator=gen)
        y = torch.arange(n) % network.NUM_CLASSES
        return T.Split(x, y[torch.randperm(n, generator=gen)])

    return split(train_images), split(test_images)


def forward_flops(genome) -> int:
    return network.complexity(genome)["flops"]


def throughput(genome, train_images: int, epochs: int, seconds: float) -> dict:
    """Seconds, images/s and achieved GFLOP/s (forward FLOPs x3 for a training step)."""
    images = train_images * epochs
    flops = forward_flops(genome)
    return {
        "seconds": seconds,
        "train_images": train_images,
        "epochs": epochs,
        "images_per_second": images / seconds,
        "forward_flops_per_image": flops,
        "gflops": 3 * flops * images / seconds / 1e9,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def peak_host_mb() -> float:
    """This process's peak resident memory (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(genome, *, train_images: int, epochs: int, device: torch.device, precision: str = "fp32",
             batch_size: int = P.PAPER.search.batch_size, test_images: int = DEFAULT_TEST_IMAGES,
             seed: int = P.PAPER.seed, warmup: bool = True) -> dict:
    """Time one evaluation of `genome` (train on `train_images` for `epochs`, then score)."""
    train, test = random_splits(train_images, test_images, seed)
    train, test = train.to(device), test.to(device)
    warmup_seconds = 0.0
    if warmup:
        started = time.perf_counter()
        first = T.Split(train.x[:batch_size], train.y[:batch_size])
        T.train_genome(genome, first, first, T.Recipe(epochs=1, batch_size=batch_size, seed=seed, precision=precision))
        sync(device)
        warmup_seconds = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    recipe = T.Recipe(epochs=epochs, batch_size=batch_size, seed=seed, precision=precision)
    started_at = time.time()  # wall-clock stamps let a caller line up concurrent runs
    started = time.perf_counter()
    result = T.train_genome(genome, train, test, recipe)
    sync(device)
    seconds = time.perf_counter() - started
    out = {
        "loop": "minigen",
        **throughput(genome, train_images, epochs, seconds),
        "warmup_seconds": warmup_seconds,
        "started_at": started_at,
        "finished_at": started_at + seconds,
        "test_accuracy": result.test_accuracy,
        "final_train_loss": result.curve[-1]["train_loss"],
        "precision": precision,
        "batch_size": batch_size,
        "device": device_name(device),
        "device_kind": D.kind(device),
        "torch": torch.__version__,
        "peak_host_mb": round(peak_host_mb(), 1),
    }
    if device.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def format_result(result: dict) -> str:
    lines = [
        f"loop              {result['loop']}",
        f"device            {result['device']}",
        f"torch             {result['torch']}",
        f"work              {result['train_images']} images x {result['epochs']} epochs"
        + (f", {result['precision']}" if "precision" in result else ""),
        f"seconds           {result['seconds']:.3f}",
        f"images/s          {result['images_per_second']:.1f}",
        f"GFLOP/s           {result['gflops']:.1f}  (forward {result['forward_flops_per_image'] / 1e9:.3f} GFLOP/image, x3 to train)",
    ]
    if "warmup_seconds" in result:
        lines.append(f"warm-up seconds   {result['warmup_seconds']:.3f}  (not in seconds)")
    lines.append(f"test accuracy     {result['test_accuracy']:.3f}  (random data: chance)")
    return "\n".join(lines)
