"""What a run costs: seconds per GPU job, GPU-hours per stage, wall time on N cards.

The model: a training run is a number of image passes (one image through forward and
backward; a test image, forward only, counts a third), and the time of one pass is
affine in the network's forward FLOPs (`space.complexity`: counted from the genome as
`torch.utils.flop_counter` counts the built network, so pricing a job imports no torch).
Both come from measurements in BENCHMARKS.md: the time per pass of the published
genome 1 for each workload and precision, and how much longer a pass takes per extra
MFLOP, from genome 3 against genome 1 at the same settings. FLOPs alone
would not do: genome 3 has 6x genome 1's FLOPs and takes 1.4x as long, because this
space's small and depthwise convolutions run far below the card's peak.

Which networks: a search's are unknown before it runs, so they are priced at the mean
of its generation 0 (the random genomes it starts from; children stay alike), and so
is a retrain until `collect` has written its genome. The search is priced for one round of
`search.generations` (a search that finds its `search.winners` in its first round ends
within it) and, as its worst case, for all `search.max_rounds`.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from minigen.space import complexity

# ---------------------------------------------------------------- measurements
# All from BENCHMARKS.md. GPU: one NVIDIA H200, torch 2.11.0+cu130, 2026-11-28.
# - "One evaluation at the paper's settings" (bench/gpu.sh): genome 1, 1,000 images x 20
#   epochs, batch 64, scored on 100 images: 8.92 s fp32, 6.82 s bf16, one at a time; tf32
#   from bench/gpu_variants.py, 0.228 s per epoch x 20. Genome 3, fp32: 12.53 s.
# - "Retrain: one epoch on 50,000 images" (bench/retrain_epoch.py): genome 1, 50,000 train
#   + 10,000 test images: paper recipe (fp32) 21.6 s, modern recipe (bf16) 16.3 s.
# CPU: "CPU: minigen against the authors' loop" (bench/cpu.sh, the 2-core development
#   machine, one thread per evaluation, two at once): 200 images x 2 epochs scored on 100,
#   training time genome 1 23.6 s, genome 0 31.4 s.
SEARCH_EVAL_SECONDS = {"fp32": 8.92, "bf16": 6.82, "tf32": 0.228 * 20}
SEARCH_EVAL_GENOME_3_FP32_SECONDS = 12.53
RETRAIN_EPOCH_SECONDS = {"paper": 21.6, "modern": 16.3}
CPU_EVAL_SECONDS = {1: 23.6, 0: 31.4}  # published genome index -> seconds
BENCH_EVAL = (1000, 20, 100)  # train images, epochs, test images of the GPU evaluations
BENCH_RETRAIN = (50_000, 10_000)  # train, test images of the retrain epoch
BENCH_CPU_EVAL = (200, 2, 100)

JOB_START_SECONDS = 60  # a GPU job's process start, imports, data to the card, CUDA set-up
SAFETY = 1.5  # a job's time limit on a cluster: its worst-case estimate times this
MIN_LIMIT_MINUTES = 10
CPU_STAGE_MINUTES = {"download": 30, "sample": 15, "collect": 10, "report": 15}  # generous: minutes in practice
FULL_SPLITS = {"cifar10": (50_000, 10_000), "digits": (1_442, 355)}  # train, test images
CLASSES = 10
PUBLISHED = Path(__file__).resolve().parents[1] / "resources" / "published_genomes.json"


def _passes(train_images: int, epochs: int, test_images: int) -> float:
    return train_images * epochs + test_images / 3


@functools.lru_cache(maxsize=None)
def _mflop(genome_json: str) -> float:
    return complexity.complexity(json.loads(genome_json))["flops"] / 1e6


def mflop(genome) -> float:
    """Forward MFLOP per 32x32 image of `genome` (cached per process)."""
    return _mflop(json.dumps(genome, sort_keys=True))


def _published(index: int):
    """A genome of the paper (resources/published_genomes.json), as BENCHMARKS.md numbers them."""
    return json.loads(PUBLISHED.read_text())["genomes"][index]["genome"]


@dataclass(frozen=True)
class PassModel:
    """Seconds per image pass: `base` at `base_mflop`, `slope` more per extra MFLOP."""

    base: float
    base_mflop: float
    slope: float

    def seconds(self, mflop: float, passes: float) -> float:
        return passes * max(self.base + self.slope * (mflop - self.base_mflop), 0.0)


@functools.lru_cache(maxsize=None)
def pass_model(workload: str, device: str = "cuda", precision: str = "fp32") -> PassModel:
    """The measured model for `workload` ("search" or a retrain recipe) on `device`."""
    g1 = mflop(_published(1))
    if device == "cpu":
        g0 = mflop(_published(0))
        per_pass = {i: s / _passes(*BENCH_CPU_EVAL) for i, s in CPU_EVAL_SECONDS.items()}
        return PassModel(per_pass[1], g1, (per_pass[0] - per_pass[1]) / (g0 - g1))
    # Extra time per MFLOP, relative to genome 1's time: taken as the same for every
    # workload and precision (only fp32 evaluations of genome 3 were measured).
    relative = (SEARCH_EVAL_GENOME_3_FP32_SECONDS / SEARCH_EVAL_SECONDS["fp32"] - 1) / (mflop(_published(3)) - g1)
    if workload == "search":
        base = SEARCH_EVAL_SECONDS[precision] / _passes(*BENCH_EVAL)
    else:
        train, test = BENCH_RETRAIN
        base = RETRAIN_EPOCH_SECONDS[workload] / (train + test / 3)
    return PassModel(base, g1, base * relative)


# ---------------------------------------------------------------- the stages


def space_mflop(params: dict) -> float:
    """Mean forward MFLOP of the search's generation 0: the random genomes it starts from."""
    return _space_mflop(json.dumps(params["space"], sort_keys=True), params["seed"], params["search"]["population"])


@functools.lru_cache(maxsize=None)
def _space_mflop(space_json: str, seed: int, population: int) -> float:
    from minigen.space import evolution as E
    from minigen.space import genome as G

    from minigen import settings as P

    space = G.Space.from_settings(P.Space.model_validate(json.loads(space_json)))
    rng = E.generation_rng(seed, 0, 0)  # the draws of round 0, generation 0
    return sum(mflop(G.random_genome(rng, space)) for _ in range(population)) / population


def search_evaluations(search: dict, rounds: int = 1) -> list[int]:
    """New networks per generation over `rounds` rounds (repeats and survivors are free)."""
    later = search["population"] - search["keep"]
    per_round = [search["population"]] + [later] * (search["generations"] - 1)
    return per_round * rounds


def _on(device: str) -> str:
    return "cpu" if device == "cpu" else "cuda"


def eval_seconds(params: dict) -> float:
    """One search evaluation of a typical network of the space."""
    data, search = params["data"], params["search"]
    passes = _passes(data["train_per_class"] * CLASSES, search["epochs"], data["test_per_class"] * CLASSES)
    model = pass_model("search", _on(search["device"]), search["precision"])
    return model.seconds(space_mflop(params), passes)


def retrain_seconds(params: dict, genome_mflop: float | None = None) -> float:
    """One retrain of a genome of `genome_mflop` (default: a typical network of the space)."""
    retrain = params["retrain"]
    train, test = FULL_SPLITS[params["data"]["dataset"]]
    passes = retrain["epochs"] * _passes(train, 1, test)
    model = pass_model(retrain["recipe"], _on(retrain["device"]))
    mflop_ = space_mflop(params) if genome_mflop is None else genome_mflop
    return JOB_START_SECONDS + model.seconds(mflop_, passes)


def search_seconds(params: dict, cards: int = 1, rounds: int = 1) -> float:
    """The search's wall time with its evaluations spread over `cards` cards (or cores)."""
    each = eval_seconds(params)
    waves = sum(math.ceil(n / cards) for n in search_evaluations(params["search"], rounds))
    return JOB_START_SECONDS + waves * each


def genome_mflop_of(path: str | Path) -> float | None:
    """The MFLOP of a collected genome file, or None while it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    return mflop(json.loads(path.read_text())["genome"])


def limit_minutes(seconds: float) -> int:
    """A cluster time limit for a job estimated at `seconds` in its worst case."""
    return max(MIN_LIMIT_MINUTES, math.ceil(seconds * SAFETY / 60))


def search_limit_minutes(params: dict) -> int:
    """Time limit of the search job: every round run, on its `workers` cards or cores."""
    return limit_minutes(search_seconds(params, params["search"]["workers"], params["search"]["max_rounds"]))


def retrain_limit_minutes(params: dict, genome_path: str | Path | None = None) -> int:
    mflop_ = genome_mflop_of(genome_path) if genome_path is not None else None
    return limit_minutes(retrain_seconds(params, mflop_))


# ---------------------------------------------------------------- the plan


def makespan(seconds: list[float], cards: int) -> float:
    """Wall time of independent jobs on `cards` cards, longest first onto the least busy."""
    loads = [0.0] * max(1, cards)
    for job in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += job
    return max(loads)


def plan(params: dict, genomes_dir: str | Path, gpus: list[int]) -> dict:
    """Each GPU stage's jobs, hours and basis, and the wall time on each of `gpus` cards."""
    search = params["search"]
    genome_mflops = [genome_mflop_of(Path(genomes_dir) / f"genome_{i}.json") for i in range(params["collect"]["top_k"])]
    seeds = len(params["retrain"]["seeds"])  # one retrain job per genome x seed
    retrains = [retrain_seconds(params, m) for m in genome_mflops for _ in range(seeds)]
    evaluations = sum(search_evaluations(search))
    search_hours = search_seconds(params) / 3600
    walls = {}
    for n in gpus:
        search_wall = search_seconds(params, cards=min(n, search["workers"]))
        walls[n] = {"search": search_wall, "retrain": makespan(retrains, n),
                    "total": search_wall + makespan(retrains, n)}
    return {
        "search": {
            "jobs": 1, "hours": search_hours, "evaluations": evaluations, "mflop": space_mflop(params),
            "eval_seconds": eval_seconds(params), "rounds": search["max_rounds"],
            "worst_hours": search_seconds(params, rounds=search["max_rounds"]) / 3600,
        },
        "retrain": {
            "jobs": len(retrains), "hours": sum(retrains) / 3600, "per_job": retrains,
            "collected": sum(m is not None for m in genome_mflops), "genomes": len(genome_mflops), "seeds": seeds,
        },
        "total_hours": search_hours + sum(retrains) / 3600,
        "wall": walls,
        "devices": {"search": _on(search["device"]), "retrain": _on(params["retrain"]["device"])},
    }
