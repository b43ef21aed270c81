"""The evaluator: cache hits and misses, duplicates, failures, parallel workers, the CLI.

Everything trains tiny networks (channels 8/16) on 20 random images for one epoch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import threading
import time

import numpy as np
import pytest
import torch
import yaml
from archives import params_with

from minigen.store import atomic
from minigen.training import evaluator as E
from minigen.space import genome as G
from minigen.data import mini as M
from minigen.store import paths
from minigen.training import loop as T
from minigen.store.cache import EvaluationCache

SPACE = G.Space(channels=(8, 16))
RECIPE = T.Recipe(epochs=1, batch_size=8)
CPU = torch.device("cpu")


def random_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def tiny_mini(sha256: str = "1" * 64) -> M.MiniSet:
    splits = [T.Split(*map(torch.from_numpy, random_images(n, seed))) for n, seed in ((20, 0), (10, 1))]
    return M.MiniSet(train=splits[0], test=splits[1], manifest={}, sha256=sha256)


def tiny_genomes(n: int, seed: int = 1) -> list:
    rng = random.Random(seed)
    return [G.random_genome(rng, SPACE) for _ in range(n)]


@pytest.fixture(scope="module")
def mini() -> M.MiniSet:
    return tiny_mini()


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "evaluations"


def evaluator(mini, cache_dir, recipe=RECIPE, **kw) -> E.Evaluator:
    return E.Evaluator(mini, recipe, CPU, cache_dir=cache_dir, **kw)


# ---------------------------------------------------------------- recipe and key


def test_search_recipe_takes_seed_and_search_settings():
    params = {"seed": 7, "search": {"epochs": 3, "batch_size": 32, "lr": 0.01, "precision": "bf16"}}
    assert E.search_recipe(params) == T.Recipe(epochs=3, batch_size=32, lr=0.01, seed=7, precision="bf16")


def test_the_cache_defaults_to_the_user_cache(mini, isolated_cache):
    assert E.Evaluator(mini, RECIPE, CPU).cache.root == paths.evaluations_dir()
    assert paths.evaluations_dir().is_relative_to(isolated_cache)


def test_the_key_covers_every_input(mini, monkeypatch):
    genome = tiny_genomes(1)[0]
    base = E.Evaluator(mini, RECIPE, CPU).key(genome)
    variants = [
        E.Evaluator(mini, dataclasses.replace(RECIPE, **change), CPU).key(genome)
        for change in ({"lr": 0.002}, {"epochs": 2}, {"seed": 1}, {"batch_size": 4}, {"precision": "bf16"})
    ]
    variants.append(E.Evaluator(tiny_mini(sha256="2" * 64), RECIPE, CPU).key(genome))
    variants.append(E.Evaluator(mini, RECIPE, CPU).key(tiny_genomes(2)[1]))
    assert E.key_inputs(genome, mini.sha256, RECIPE, "cuda:NVIDIA H100") != E.key_inputs(
        genome, mini.sha256, RECIPE, "cpu")
    monkeypatch.setattr(E, "EVAL_CODE", "0" * 64)
    variants.append(E.Evaluator(mini, RECIPE, CPU).key(genome))
    assert base not in variants and len(set(variants)) == len(variants)


def test_the_key_ignores_how_the_genome_is_spelled(mini):
    genome = tiny_genomes(1)[0]
    authors = [[None if i == 0 else c, b, a] for i, (c, b, a) in enumerate(genome)]
    ev = E.Evaluator(mini, RECIPE, CPU)
    assert ev.key(authors) == ev.key(genome)


# ---------------------------------------------------------------- the cache at work


def test_a_second_evaluator_with_the_same_settings_trains_nothing(mini, cache_dir):
    genomes = tiny_genomes(2)
    with evaluator(mini, cache_dir) as first:
        trained = first.evaluate(genomes)
    assert first.trained == 2
    assert [r.cached for r in trained] == [False, False]
    assert all(0.0 <= r.accuracy <= 1.0 and r.error is None and r.seconds > 0 for r in trained)
    assert [r.genome_id for r in trained] == [G.genome_id(g) for g in genomes]

    with evaluator(mini, cache_dir) as second:
        served = second.evaluate(genomes)
    assert second.trained == 0
    assert [r.cached for r in served] == [True, True]
    assert [r.seconds for r in served] == [0.0, 0.0]
    assert [r.accuracy for r in served] == [r.accuracy for r in trained]

    record = EvaluationCache(cache_dir).get(first.key(genomes[0]))
    assert record["genome"] == G.parse(genomes[0])
    assert record["inputs"]["mini_sha256"] == mini.sha256
    assert record["inputs"]["recipe"] == RECIPE.as_dict()
    assert record["accuracy"] == trained[0].accuracy


@pytest.mark.parametrize("change", ["lr", "epochs", "seed", "mini", "eval_version"])
def test_changing_a_key_part_is_a_miss(mini, cache_dir, monkeypatch, change):
    genome = tiny_genomes(1)[0]
    with evaluator(mini, cache_dir) as first:
        first.evaluate([genome])
    recipe, data = RECIPE, mini
    if change == "lr":
        recipe = dataclasses.replace(RECIPE, lr=0.002)
    elif change == "epochs":
        recipe = dataclasses.replace(RECIPE, epochs=2)
    elif change == "seed":
        recipe = dataclasses.replace(RECIPE, seed=1)
    elif change == "mini":
        data = tiny_mini(sha256="3" * 64)
    else:
        monkeypatch.setattr(E, "EVAL_CODE", "0" * 64)
    with evaluator(data, cache_dir, recipe) as second:
        (result,) = second.evaluate([genome])
    assert second.trained == 1 and not result.cached


def test_duplicates_in_one_call_are_trained_once(mini, cache_dir):
    a, b = tiny_genomes(2)
    seen = []
    with evaluator(mini, cache_dir) as ev:
        results = ev.evaluate([a, b, a, json.loads(json.dumps(a))], progress=lambda i, r: seen.append(i))
    assert ev.trained == 2
    assert [r.genome_id for r in results] == [G.genome_id(g) for g in (a, b, a, a)]
    assert [r.cached for r in results] == [False, False, True, True]
    assert results[0].accuracy == results[2].accuracy == results[3].accuracy
    assert results[2].seconds == 0.0
    assert sorted(seen) == [0, 1, 2, 3]


def test_a_corrupt_cache_entry_is_a_miss_and_is_rewritten(mini, cache_dir):
    genome = tiny_genomes(1)[0]
    with evaluator(mini, cache_dir) as ev:
        (first,) = ev.evaluate([genome])
        path = ev.cache.path(ev.key(genome))
    path.write_text('{"accuracy": 0.3, "err')  # as if torn (the atomic write prevents this)
    with evaluator(mini, cache_dir) as ev:
        (again,) = ev.evaluate([genome])
    assert ev.trained == 1 and not again.cached and again.accuracy == first.accuracy
    assert json.loads(path.read_text())["accuracy"] == first.accuracy


def test_nan_loss_is_recorded_as_a_failure_and_cached(mini, cache_dir):
    genome = tiny_genomes(1)[0]
    huge_lr = dataclasses.replace(RECIPE, lr=1e6)
    with evaluator(mini, cache_dir, huge_lr) as ev:
        (failed,) = ev.evaluate([genome])
    assert failed.accuracy == 0.0 and "nan" in failed.error and "\n" not in failed.error
    assert ev.trained == 1
    with evaluator(mini, cache_dir, huge_lr) as ev:
        (again,) = ev.evaluate([genome])
    assert ev.trained == 0 and again.cached and again.error == failed.error and again.accuracy == 0.0


def test_out_of_memory_is_recorded_but_not_cached(mini, cache_dir, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise T.TrainingFailed("out of memory: CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(T, "train_genome", out_of_memory)
    genome = tiny_genomes(1)[0]
    with evaluator(mini, cache_dir) as ev:
        (first,) = ev.evaluate([genome])
        assert first.accuracy == 0.0 and first.error.startswith("out of memory")
        assert ev.cache.get(ev.key(genome)) is None
        (second,) = ev.evaluate([genome])
    assert ev.trained == 2 and not second.cached


def test_cpu_evaluations_run_with_a_fixed_thread_count_and_restore_it(mini, cache_dir, monkeypatch):
    seen = []
    real = T.train_genome
    monkeypatch.setattr(T, "train_genome", lambda *a: seen.append(torch.get_num_threads()) or real(*a))
    before = torch.get_num_threads()
    with evaluator(mini, cache_dir) as ev:
        ev.evaluate(tiny_genomes(1))
    assert seen == [E.CPU_THREADS] and torch.get_num_threads() == before


# ---------------------------------------------------------------- worker processes


def test_two_workers_give_the_same_bits_as_one(mini, tmp_path):
    genomes = tiny_genomes(4, seed=2)
    with evaluator(mini, tmp_path / "one") as one:
        serial = one.evaluate(genomes)
    with evaluator(mini, tmp_path / "two", workers=2) as two:
        parallel = two.evaluate(genomes)
        assert two.trained == 4
        assert two.evaluate(genomes) == [dataclasses.replace(r, cached=True, seconds=0.0) for r in parallel]
    strip = [(r.genome_id, r.accuracy, r.error, r.cached) for r in serial]
    assert [(r.genome_id, r.accuracy, r.error, r.cached) for r in parallel] == strip
    # The last epoch's loss (a float32 sum over every step) exposes any bit-level difference.
    for genome in genomes:
        key = one.key(genome)
        assert two.key(genome) == key
        assert EvaluationCache(tmp_path / "one").get(key)["train_loss"] == EvaluationCache(tmp_path / "two").get(key)["train_loss"]


def heavy_genome() -> G.Genome:
    """A genome that trains for a while, so a kill lands mid-training."""
    return G.parse([[".", 1, ["3*3 conv", "3*3 conv"]], [128, 1, ["3*3 conv", "5*5 conv"]],
                    [128, 1, ["5*5 conv", "3*3 conv"]], [128, 1, ["3*3 conv", "3*3 conv"]],
                    [128, 1, ["5*5 conv", "5*5 conv"]]])


def kill_while_training(ev: E.Evaluator, key: str, times: int = 1) -> list[int]:
    """SIGKILL, `times` times, the worker process that is training `key`: a real crash.

    Watches the pool from a thread; returns the killed pids (filled in as it goes)."""
    killed: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 300
        while len(killed) < times and time.monotonic() < deadline:
            for slot in (ev._pool.slots if ev._pool is not None else []):
                if slot is not None and slot.task == key and slot.ready and slot.process.pid not in killed:
                    os.kill(slot.process.pid, signal.SIGKILL)
                    killed.append(slot.process.pid)
            time.sleep(0.0005)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def test_a_killed_worker_loses_only_its_evaluation_which_is_redone(mini, cache_dir, tmp_path):
    genomes = tiny_genomes(3, seed=3)
    genomes[1] = heavy_genome()
    with evaluator(mini, cache_dir, workers=2) as ev:
        killed = kill_while_training(ev, ev.key(genomes[1]))
        results = ev.evaluate(genomes)
    assert len(killed) == 1  # the worker did die
    assert ev.trained == 3 and all(r.error is None and not r.cached for r in results)
    with evaluator(mini, tmp_path / "reference") as reference:
        (expected,) = reference.evaluate([genomes[1]])
    assert results[1].accuracy == expected.accuracy


def test_a_genome_that_keeps_killing_workers_is_failed_and_not_cached(mini, cache_dir, monkeypatch):
    genome = heavy_genome()
    monkeypatch.setattr(E, "MAX_ATTEMPTS", 1)
    with evaluator(mini, cache_dir, workers=2) as ev:
        killed = kill_while_training(ev, ev.key(genome))
        (result,) = ev.evaluate([genome])
        assert ev.cache.get(ev.key(genome)) is None
    assert len(killed) == 1
    assert result.accuracy == 0.0 and "worker process died" in result.error and ev.trained == 0


def test_a_worker_that_cannot_start_is_an_error_not_a_failed_genome(mini, cache_dir, monkeypatch):
    monkeypatch.setattr(E.Evaluator, "_worker_devices", lambda self: ["cuda:99"])  # no such device
    with evaluator(mini, cache_dir, workers=2) as ev:
        with pytest.raises(RuntimeError, match="died while starting"):
            ev.evaluate(tiny_genomes(1))
    assert not any(cache_dir.rglob("*.json"))


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def project(tmp_path):
    """A folder with a tiny frozen mini set, params for it and one genome file."""
    mini_dir = tmp_path / "data" / "mini"
    hashes = {}
    for name, (n, seed) in zip(M.FILES, ((20, 0), (10, 1))):
        path = atomic.write_bytes(mini_dir / name, M.npz_bytes(*random_images(n, seed)))
        hashes[name] = atomic.sha256_file(path)
    atomic.write_json(mini_dir / M.MANIFEST, {"sha256": hashes})
    params = {
        "space": {"channels": [8, 16]},
        "search": {"epochs": 1, "batch_size": 8, "device": "cpu"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_with(**params)))
    (tmp_path / "genome.json").write_text(json.dumps(tiny_genomes(1, seed=5)[0]))
    return tmp_path


def test_cli_prints_the_accuracy_then_serves_it_from_the_cache(cli, project):
    first = cli("evaluate", "genome.json", cwd=project, check=True)
    assert "accuracy" in first.stdout and "trained in" in first.stdout and "cpu" in first.stdout
    second = cli("evaluate", "genome.json", "--json", cwd=project, check=True)
    out = json.loads(second.stdout)
    assert out["cached"] is True and out["seconds"] == 0.0 and out["error"] is None
    assert out["genome_id"] == G.genome_id(json.loads((project / "genome.json").read_text()))
    assert f"{out['accuracy']:.4f}" in first.stdout


@pytest.mark.parametrize("args, message", [
    (["missing.json"], "genome file not found"),
    (["genome.json", "--mini", "nowhere"], "no frozen mini set"),
    (["bad_channels.json"], "not in the search space"),
])
def test_cli_bad_input_is_one_line_and_exit_2(cli, project, args, message):
    genome = tiny_genomes(1)[0]
    genome[1][0] = 24
    (project / "bad_channels.json").write_text(json.dumps(genome))
    proc = cli("evaluate", *args, cwd=project)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_cli_help_explains_the_command(cli):
    proc = cli("evaluate", "--help", check=True)
    assert "GENOME_JSON" in proc.stdout and "cache" in proc.stdout and "--mini" in proc.stdout
