"""Evaluate genomes: train each on the frozen mini set, through the content-keyed cache.

Training is deterministic, so an accuracy is a pure function of what the cache key
covers (genome, mini set, recipe incl. seed and precision, device kind, this code's
version): nothing is trained twice. With `workers > 1` several genomes train at once in
spawned processes, spread over the visible GPUs or the CPU cores.

CPU results depend on the number of intra-op threads (a conv's reductions are split per
thread), so every CPU evaluation runs with `CPU_THREADS` threads whatever `workers` and the
machine's core count are: `workers: N` gives the same bits as `workers: 1`, and a cache
entry made on a 2-core laptop is valid on a 64-core server. On CPU, parallelism comes from
workers; set `search.workers` to the number of cores.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Callable, Iterator

import torch

from minigen import settings as P
from minigen.training import device as D
from minigen.space import genome as G
from minigen import pipeline
from minigen.store import code_version, paths
from minigen.training import loop as T
from minigen.training import lifeline
from minigen.store.cache import EvaluationCache, content_key

# The code an evaluation runs, fingerprinted: part of the cache key, so editing it misses the cache.
EVAL_CODE = code_version.fingerprint(pipeline.EVALUATION_CODE)
CPU_THREADS = D.CPU_THREADS  # intra-op threads of every CPU evaluation (part of the cache key)
MAX_ATTEMPTS = 3  # a genome whose worker dies this often is recorded as failed, uncached
OOM_PREFIX = "out of memory"  # how train.TrainingFailed names an OOM: not deterministic, never cached


@dataclass(frozen=True)
class Evaluation:
    genome_id: str
    accuracy: float  # in [0, 1]; 0.0 when failed
    error: str | None  # None on success, else one line (NaN loss, out of memory, ...)
    cached: bool  # served from the cache (or an earlier duplicate) instead of trained now
    seconds: float  # training time when trained, 0.0 when cached; never in byte-compared outputs


@dataclass(frozen=True)
class _Outcome:
    accuracy: float
    error: str | None
    seconds: float
    cacheable: bool
    train_loss: float | None = None  # the last epoch's mean loss: shows bit-level agreement
    trained: bool = True  # False when no network was trained (its worker kept dying)


def search_recipe(params: P.Params | dict) -> T.Recipe:
    """The mini-training recipe of the search, from params.yaml's `seed` and `search`."""
    params = P.of(params)
    search = params.search
    # lr as a float whatever was written: the cache key hashes the recipe.
    return T.Recipe(epochs=search.epochs, batch_size=search.batch_size, lr=float(search.lr),
                    seed=params.seed, precision=search.precision)


def key_inputs(genome, mini_sha256: str, recipe: T.Recipe, device_kind: str) -> dict:
    """Everything an evaluation's result depends on."""
    inputs = {
        "genome": G.canonical_json(genome),
        "mini_sha256": mini_sha256,
        "recipe": recipe.as_dict(),
        "device_kind": device_kind,
        "code": EVAL_CODE,
    }
    if device_kind == "cpu":
        inputs["cpu_threads"] = CPU_THREADS
    return inputs


def _train(genome, train: T.Split, test: T.Split, recipe: T.Recipe) -> _Outcome:
    start = time.perf_counter()
    try:
        result = T.train_genome(genome, train, test, recipe)
    except T.TrainingFailed as exc:
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if train.x.device.type == "cuda":
            torch.cuda.empty_cache()
        return _Outcome(0.0, error, time.perf_counter() - start, not error.startswith(OOM_PREFIX))
    seconds = time.perf_counter() - start
    return _Outcome(float(result.test_accuracy), None, seconds, True, result.curve[-1]["train_loss"])


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------- worker processes


def _worker_main(conn, arrays, recipe: dict, device: str, threads: int) -> None:
    """A worker: the mini set on its device, then (key, genome, id) in, (key, outcome) out."""
    lifeline.die_with_parent(multiprocessing.parent_process().pid)  # a killed search leaves no workers
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(threads)
    train_x, train_y, test_x, test_y = (torch.from_numpy(a) for a in arrays)
    train, test = T.Split(train_x, train_y).to(device), T.Split(test_x, test_y).to(device)
    recipe = T.Recipe(**recipe)
    conn.send(_READY)
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent is gone
            return
        if task is None:
            return
        key, genome = task
        try:
            conn.send((key, _train(genome, train, test, recipe)))
        except Exception:  # a bug, not a training failure: the parent re-raises it
            conn.send((key, _WorkerCrash(traceback.format_exc())))


_READY = "ready"  # a worker's first message: a death before it is a broken set-up, not a genome's fault


@dataclass(frozen=True)
class _WorkerCrash:
    traceback: str


@dataclass
class _Slot:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    task: str | None = None  # the key it is training
    ready: bool = False


class _WorkerPool:
    """One spawned process per slot, each with its own pipe: a worker that dies loses only
    the evaluation it was running, which is resubmitted (to a fresh worker in its slot)."""

    def __init__(self, size: int, devices: list[str], threads: int, arrays: tuple, recipe: dict):
        self.context = multiprocessing.get_context("spawn")
        self.devices, self.threads, self.arrays, self.recipe = devices, threads, arrays, recipe
        self.slots: list[_Slot | None] = [None] * size

    def _start(self, index: int) -> _Slot:
        parent, child = self.context.Pipe()
        device = self.devices[index % len(self.devices)]  # round-robin over the GPUs
        process = self.context.Process(
            target=_worker_main, args=(child, self.arrays, self.recipe, device, self.threads),
            name=f"minigen-eval-{index}", daemon=True,
        )
        process.start()
        child.close()
        self.slots[index] = _Slot(process, parent)
        return self.slots[index]

    def _idle_slot(self) -> _Slot | None:
        for index, slot in enumerate(self.slots):
            if slot is None or (slot.task is None and not slot.process.is_alive()):
                return self._start(index)
            if slot.task is None:
                return slot
        return None

    def run(self, genomes: dict[str, G.Genome]) -> Iterator[tuple[str, _Outcome]]:
        try:
            yield from self._run(genomes)
        finally:  # abandoned mid-way (an error upstream): stop what is still training
            for index, slot in enumerate(self.slots):
                if slot is not None and slot.task is not None:
                    slot.process.terminate()
                    slot.process.join()
                    slot.conn.close()
                    self.slots[index] = None

    def _run(self, genomes: dict[str, G.Genome]) -> Iterator[tuple[str, _Outcome]]:
        queue = list(genomes)
        attempts: Counter[str] = Counter()
        while queue or self._busy():
            while queue and (slot := self._idle_slot()) is not None:
                key = queue.pop(0)
                slot.task = key
                try:
                    slot.conn.send((key, genomes[key]))
                except OSError:  # died while idle: noticed below through its sentinel
                    pass
            busy = self._busy()
            wait([s.conn for s in busy] + [s.process.sentinel for s in busy])
            for slot in busy:
                key, result = slot.task, self._receive(slot)
                if result is not None:
                    slot.task = None
                    yield result
                    continue
                if slot.process.is_alive():
                    continue
                if not slot.ready:
                    raise RuntimeError(
                        f"an evaluation worker died while starting (exit code {slot.process.exitcode}); "
                        "its error is printed above"
                    )
                slot.task = None
                slot.conn.close()
                attempts[key] += 1
                if attempts[key] >= MAX_ATTEMPTS:
                    message = f"worker process died {attempts[key]} times while training it"
                    yield key, _Outcome(0.0, message, 0.0, cacheable=False, trained=False)
                else:
                    queue.insert(0, key)

    @staticmethod
    def _receive(slot: _Slot) -> tuple[str, _Outcome] | None:
        """The slot's finished (key, outcome), if one has arrived."""
        while slot.conn.poll():
            try:
                message = slot.conn.recv()
            except (EOFError, OSError):  # it died: the caller sees that through is_alive
                return None
            if message == _READY:
                slot.ready = True
                continue
            key, outcome = message
            if isinstance(outcome, _WorkerCrash):
                raise RuntimeError(f"evaluation worker failed:\n{outcome.traceback}")
            return key, outcome
        return None

    def _busy(self) -> list[_Slot]:
        return [slot for slot in self.slots if slot is not None and slot.task is not None]

    def close(self) -> None:
        for slot in self.slots:
            if slot is None:
                continue
            with contextlib.suppress(OSError):
                slot.conn.send(None)
        for slot in self.slots:
            if slot is None:
                continue
            slot.process.join(timeout=10)
            if slot.process.is_alive():  # still training: its result is not wanted any more
                slot.process.terminate()
                slot.process.join()
            slot.conn.close()
        self.slots = [None] * len(self.slots)


# ---------------------------------------------------------------- the evaluator


class Evaluator:
    """Evaluates genomes on one mini set with one recipe; results cached as each finishes."""

    def __init__(
        self,
        mini,
        recipe: T.Recipe,
        device: torch.device,
        *,
        workers: int = 1,
        cache_dir: Path | None = None,
        cards: list[torch.device] | None = None,
    ):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.mini = mini
        self.recipe = recipe
        self.device = torch.device(device)
        self.workers = workers
        self.cards = cards  # the GPUs the workers share (D.place's), None: see _worker_devices
        self.device_kind = D.kind(self.device)
        self.cache = EvaluationCache(paths.evaluations_dir() if cache_dir is None else cache_dir)
        self.trained = 0
        self._pool: _WorkerPool | None = None

    # -- keys and records

    def key(self, genome) -> str:
        return content_key(key_inputs(genome, self.mini.sha256, self.recipe, self.device_kind))

    def _store(self, key: str, genome, outcome: _Outcome) -> None:
        if not outcome.cacheable:
            return
        self.cache.put(key, {
            "genome": genome,
            "genome_id": G.genome_id(genome),
            "inputs": key_inputs(genome, self.mini.sha256, self.recipe, self.device_kind),
            "accuracy": outcome.accuracy,
            "error": outcome.error,
            "train_loss": outcome.train_loss,
            "seconds": round(outcome.seconds, 3),
        })

    # -- evaluation

    def evaluate(
        self, genomes: list, progress: Callable[[int, Evaluation], None] | None = None
    ) -> list[Evaluation]:
        """One Evaluation per genome, in input order. Duplicates are trained once.

        `progress(index, evaluation)` is called as each input's result becomes known.
        """
        parsed = [G.parse(genome) for genome in genomes]
        keys = [self.key(genome) for genome in parsed]
        ids = [G.genome_id(genome) for genome in parsed]
        positions: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            positions.setdefault(key, []).append(index)
        results: list[Evaluation | None] = [None] * len(parsed)

        def settle(key: str, accuracy: float, error: str | None, cached: bool, seconds: float) -> None:
            for n, index in enumerate(positions[key]):
                # Later duplicates were not trained for themselves: they count as cached.
                first_trained = n == 0 and not cached
                results[index] = Evaluation(
                    ids[index], accuracy, error, cached=not first_trained, seconds=seconds if first_trained else 0.0
                )
                if progress is not None:
                    progress(index, results[index])

        todo: dict[str, G.Genome] = {}
        for key, indices in positions.items():
            record = self.cache.get(key)
            if record is not None:
                settle(key, float(record["accuracy"]), record["error"], True, 0.0)
            else:
                todo[key] = parsed[indices[0]]
        for key, outcome in self._train_all(todo):
            self.trained += outcome.trained
            self._store(key, todo[key], outcome)
            settle(key, outcome.accuracy, outcome.error, False, outcome.seconds)
        return results  # type: ignore[return-value]

    def _train_all(self, todo: dict[str, G.Genome]) -> Iterator[tuple[str, _Outcome]]:
        if not todo:
            return iter(())
        if self.workers == 1:
            return self._train_here(todo)
        return self._train_in_pool(todo)

    def _train_here(self, todo: dict[str, G.Genome]) -> Iterator[tuple[str, _Outcome]]:
        train, test = self.mini.train.to(self.device), self.mini.test.to(self.device)
        threads = D.training_threads(self.device)
        for key, genome in todo.items():
            with D.intra_op_threads(threads):
                outcome = _train(genome, train, test, self.recipe)
            yield key, outcome

    def _train_in_pool(self, todo: dict[str, G.Genome]) -> Iterator[tuple[str, _Outcome]]:
        if self._pool is None:
            threads = CPU_THREADS if self.device.type == "cpu" else max(1, _cores() // self.workers)
            arrays = tuple(
                t.cpu().numpy() for t in (self.mini.train.x, self.mini.train.y, self.mini.test.x, self.mini.test.y)
            )
            self._pool = _WorkerPool(self.workers, self._worker_devices(), threads, arrays, self.recipe.as_dict())
        return self._pool.run(todo)

    def _worker_devices(self) -> list[str]:
        if self.cards:
            return [str(card) for card in self.cards]
        if self.device.type != "cuda":
            return [str(self.device)]
        if self.device.index is not None:
            return [str(self.device)]
        # Only cards of the same kind as the main one: results are bit-exact per kind.
        return [
            f"cuda:{i}" for i in range(torch.cuda.device_count())
            if D.kind(torch.device(f"cuda:{i}")) == self.device_kind
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
