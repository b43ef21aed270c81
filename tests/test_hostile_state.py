"""State that outlives a run: checkpoints and cache entries check themselves, workers
die with their parent.

An edited or wrongly shaped checkpoint or cache entry is reported in one line and
discarded, and the stage carries on from scratch with the same result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from minigen.space import evolution as E
from minigen.space import state as state_schema
from minigen.stages import retrain as R
from minigen.stages import search as S
from minigen.store import integrity
from minigen.store.cache import EvaluationCache
from minigen.training import loop as T
from test_search import Crash, FakeEvaluator, checkpoints, factory, read_outputs, tiny_params, write_mini


@pytest.fixture
def crashed_search(tmp_path):
    """(params, mini_dir, the uninterrupted outputs) with a checkpoint left by a crash."""
    params, mini_dir = tiny_params(), write_mini(tmp_path / "mini")
    S.run(params, mini_dir, tmp_path / "whole", make_evaluator=factory(FakeEvaluator()))
    with pytest.raises(Crash):
        S.run(params, mini_dir, tmp_path / "crashed", make_evaluator=factory(FakeEvaluator(crash_at=6)))
    assert len(checkpoints()) == 1
    return params, mini_dir, read_outputs(tmp_path / "whole")


def edit_checkpoint(change, reseal: bool) -> None:
    [path] = checkpoints()
    checkpoint = json.loads(path.read_text())
    change(checkpoint)
    path.write_text(json.dumps(integrity.seal(checkpoint) if reseal else checkpoint, sort_keys=True))


def first_evaluation_accuracy(checkpoint: dict) -> None:
    checkpoint["state"]["evaluations"][0]["accuracy"] = 0.99  # would change the winners


@pytest.mark.parametrize("change, reseal, says", [
    (first_evaluation_accuracy, False, "its checksum does not match"),
    (lambda c: c["state"].update(population="oops"), True, "'population' must be a list"),
    (lambda c: c["state"].pop("history"), True, "the state must be an object with"),
    (lambda c: c["state"]["evaluations"][0].update(genome=[1, 2]), True, "an evaluation"),
    (lambda c: c.update(trained=-1), True, "'trained' must be an integer"),
])
def test_an_edited_or_misshapen_search_checkpoint_is_one_line_then_a_fresh_start(
        tmp_path, capsys, crashed_search, change, reseal, says):
    params, mini_dir, whole = crashed_search
    edit_checkpoint(change, reseal)
    capsys.readouterr()
    fake = FakeEvaluator()
    S.run(params, mini_dir, tmp_path / "again", make_evaluator=factory(fake))
    err = capsys.readouterr().err
    ignored = [line for line in err.splitlines() if "ignoring checkpoint" in line]
    assert len(ignored) == 1 and says in ignored[0] and "resuming" not in err
    assert read_outputs(tmp_path / "again") == whole  # from scratch, the same result
    assert fake.trained == len({json.loads(x)["genome_id"] for x in whole["evaluations.jsonl"].splitlines()})


def test_an_intact_search_checkpoint_still_resumes(tmp_path, capsys, crashed_search):
    params, mini_dir, whole = crashed_search
    capsys.readouterr()
    S.run(params, mini_dir, tmp_path / "again", make_evaluator=factory(FakeEvaluator()))
    assert "resuming from checkpoint" in capsys.readouterr().err
    assert read_outputs(tmp_path / "again") == whole


def test_the_state_schema_accepts_every_state_a_search_passes_through(tmp_path):
    settings = E.Settings.from_params(tiny_params())
    evolution = E.Evolution(settings)
    fake = FakeEvaluator()
    problems = []
    evolution.run(fake.evaluate, lambda row: problems.append(state_schema.problem(evolution.state, settings)))
    assert problems and problems == [None] * len(problems)


# ---------------------------------------------------------------- retrain checkpoints


def retrain_checkpoint(tmp_path, fit: dict | None = None):
    identity = R.checkpoint_identity("abc", T.Recipe(epochs=3), "data", "cpu")
    fit = fit or {"epoch": 1, "model": {}, "optimizer": {}, "schedule": {}, "curve": [{}, {}]}
    path = tmp_path / "ckpt.pt"
    R.save_checkpoint(path, identity, fit, 2.0)
    return path, identity


def load(path, identity, logged) -> dict | None:
    return R.load_checkpoint(path, identity, torch.device("cpu"), logged.append)


def test_a_retrain_checkpoint_round_trips(tmp_path):
    path, identity = retrain_checkpoint(tmp_path)
    assert load(path, identity, [])["fit"]["epoch"] == 1


def test_a_retrain_checkpoint_with_one_changed_byte_is_one_line_then_epoch_1(tmp_path):
    path, identity = retrain_checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    data[-40] ^= 1
    path.write_bytes(bytes(data))
    logged = []
    assert load(path, identity, logged) is None
    assert len(logged) == 1 and "checksum does not match" in logged[0] and "starting from epoch 1" in logged[0]


@pytest.mark.parametrize("fit, says", [
    ({"epoch": 7, "model": {}, "optimizer": {}, "schedule": {}, "curve": []}, "outside the recipe's epochs"),
    ({"epoch": "1", "model": {}, "optimizer": {}, "schedule": {}, "curve": []}, "outside the recipe's epochs"),
    ({"epoch": 1, "model": {}, "optimizer": {}, "schedule": {}, "curve": "x"}, "curve is not a list"),
    ({"epoch": 1, "model": {}}, "incomplete"),
])
def test_a_misshapen_retrain_checkpoint_is_one_line_then_epoch_1(tmp_path, fit, says):
    path, identity = retrain_checkpoint(tmp_path, fit)
    logged = []
    assert load(path, identity, logged) is None
    assert len(logged) == 1 and says in logged[0]


# ---------------------------------------------------------------- cache entries


def test_an_edited_cache_entry_is_one_line_and_a_miss(tmp_path):
    logged = []
    cache = EvaluationCache(tmp_path, log=logged.append)
    key = "d" * 64
    cache.put(key, {"accuracy": 0.25, "error": None})
    assert cache.get(key)["accuracy"] == 0.25 and logged == []
    entry = json.loads(cache.path(key).read_text())
    cache.path(key).write_text(json.dumps({**entry, "accuracy": 0.75}))  # valid, in range, and wrong
    assert cache.get(key) is None
    assert len(logged) == 1 and "checksum does not match" in logged[0]


def test_a_resealed_cache_entry_of_the_wrong_shape_is_a_miss(tmp_path):
    logged = []
    cache = EvaluationCache(tmp_path, log=logged.append)
    key = "e" * 64
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text(json.dumps(integrity.seal({"key": key, "accuracy": "high", "error": None})))
    assert cache.get(key) is None and len(logged) == 1 and "wrong type or range" in logged[0]


def test_an_absent_cache_entry_is_a_silent_miss(tmp_path):
    logged = []
    assert EvaluationCache(tmp_path, log=logged.append).get("f" * 64) is None and logged == []


# ---------------------------------------------------------------- workers die with their parent


PARENT = textwrap.dedent("""
    import random, sys, threading, time
    import numpy as np, torch
    from minigen.data import mini as M
    from minigen.space import genome as G
    from minigen.training import evaluator as E, loop as T

    rng = np.random.default_rng(0)
    split = lambda n: T.Split(torch.from_numpy(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)),
                              torch.from_numpy(rng.integers(0, 10, n).astype(np.int64)))
    mini = M.MiniSet(train=split(16), test=split(8), manifest={}, sha256="2" * 64)
    space = G.Space(channels=(8,))
    genomes = [G.random_genome(random.Random(seed), space) for seed in range(2)]
    evaluator = E.Evaluator(mini, T.Recipe(epochs=100000, batch_size=8), torch.device("cpu"),
                            workers=2, cache_dir=sys.argv[1])

    def report():  # the workers' pids, once both have started training
        while evaluator._pool is None or not all(s is not None and s.ready for s in evaluator._pool.slots):
            time.sleep(0.1)
        print(*(s.process.pid for s in evaluator._pool.slots), flush=True)

    threading.Thread(target=report, daemon=True).start()
    evaluator.evaluate(genomes)
""")


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has stopped; only its reaping is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_when_their_parent_is_killed(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "cache")],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    workers = []
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers), "workers trained on after their parent died"
    finally:
        parent.kill()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
