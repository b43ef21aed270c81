"""The `search` stage: outputs, checkpoints and resume, failures, and real end-to-end runs."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from conftest import run_cli
from minigen.store import atomic
from minigen import cli
from minigen.data import mini
from minigen.store import paths
from minigen.space import genome as G
from minigen import settings as P
from minigen.stages import search as S

OUTPUTS = ("history.jsonl", "winners.json", "generations.csv", "evaluations.jsonl", "metrics.json", "cost.json")
DETERMINISTIC = ("history.jsonl", "winners.json", "generations.csv", "evaluations.jsonl", "metrics.json")



def write_mini(path: Path, train_per_class: int = 2, test_per_class: int = 2, seed: int = 0) -> Path:
    """A tiny frozen mini set: class-tinted noise images, so some networks learn a little."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, per_class in (("train.npz", train_per_class), ("test.npz", test_per_class)):
        y = np.repeat(np.arange(10), per_class)
        tint = (y[:, None, None, None] * 25 + np.arange(3)[None, :, None, None] * 40) % 256
        x = np.clip(tint + rng.integers(-60, 60, size=(len(y), 3, 32, 32)), 0, 255)
        data = mini.npz_bytes(x, y)
        (path / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    (path / "manifest.json").write_text(json.dumps({"sha256": digests}))
    return path


def tiny_params(**search) -> dict:
    params = copy.deepcopy(P.DEFAULTS)
    params["space"]["channels"] = [8, 16]
    params["search"].update({
        "population": 4, "keep": 2, "generations": 3, "max_rounds": 2, "epochs": 1,
        "restart_threshold": 0.05, "winner_threshold": 0.05, "winners": 100, "device": "cpu",
        **search,
    })
    return P.validate(params)


def hashed(genome_id: str, modulo: int) -> int:
    return int(hashlib.sha256(genome_id.encode()).hexdigest()[:8], 16) % modulo


class Crash(Exception):
    pass


class FakeEvaluator:
    """The Evaluator's interface without training: accuracy is a function of the genome id."""

    def __init__(self, fails=lambda gid: False, crash_at: int | None = None):
        self.fails, self.crash_at = fails, crash_at  # crash_at: the n-th genome (1-based) raises
        self.trained, self.seen = 0, []

    def evaluate(self, genomes, progress=None):
        out = []
        for index, genome in enumerate(genomes):
            if len(self.seen) + 1 == self.crash_at:
                raise Crash("simulated crash in mid-generation")
            gid = G.genome_id(genome)
            self.seen.append(gid)
            self.trained += 1
            error = "loss is nan after epoch 1" if self.fails(gid) else None
            out.append(SimpleNamespace(genome_id=gid, accuracy=0.0 if error else hashed(gid, 61) / 100,
                                       error=error, cached=False, seconds=0.0))
            if progress is not None:
                progress(index, out[-1])
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def factory(fake: FakeEvaluator):
    return lambda mini_set, params, device: fake


def read_outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in DETERMINISTIC}


@pytest.fixture
def mini_dir(tmp_path):
    return write_mini(tmp_path / "mini")


def checkpoints() -> list[Path]:
    folder = paths.checkpoints_dir()
    return sorted(p for p in folder.glob("search-*.json")) if folder.exists() else []


# ---------------------------------------------------------------- with a fake evaluator


def test_outputs_hold_every_record(tmp_path, mini_dir):
    params = tiny_params(winner_threshold=0.3, winners=3, max_rounds=3)
    metrics = S.run(params, mini_dir, tmp_path / "out", make_evaluator=factory(FakeEvaluator()))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)

    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    generations = list(csv.DictReader((out / "generations.csv").open()))
    evaluations = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
    winners = json.loads((out / "winners.json").read_text())
    assert len(history) == 4 * len(generations)
    for record in history:
        assert {"round", "generation", "born", "genome", "genome_id", "accuracy", "fitness", "repeat"} <= set(record)
        assert G.genome_id(record["genome"]) == record["genome_id"]
    assert list(generations[0]) == list(S.GENERATION_COLUMNS)
    assert len({e["genome_id"] for e in evaluations}) == len(evaluations) == metrics["evaluations"]
    assert all(set(e) == {"genome_id", "genome", "accuracy", "error", "round", "generation"} for e in evaluations)
    assert [w["index"] for w in winners] == list(range(len(winners)))
    assert all(w["accuracy"] > 0.3 and G.genome_id(w["genome"]) == w["genome_id"] for w in winners)
    # metrics.json holds only what defines the result (what `dvc exp show` compares); the
    # run's cost, which differs between identical runs, is in cost.json.
    assert json.loads((out / "metrics.json").read_text()) == {k: metrics[k] for k in ("best_accuracy", "best_fitness", "winners")}
    cost = json.loads((out / "cost.json").read_text())
    assert {"evaluations", "trained", "seconds", "rounds", "generations", "failed", "stopped"} <= set(cost)
    assert {**json.loads((out / "metrics.json").read_text()), **cost} == metrics
    assert metrics["best_accuracy"] == max(e["accuracy"] for e in evaluations)
    assert metrics["winners"] == len(winners)
    assert not checkpoints()  # a finished search leaves no checkpoint behind


def test_a_crash_resumes_from_the_checkpoint_and_ends_identical(tmp_path, mini_dir, capsys):
    params = tiny_params()
    whole = FakeEvaluator()
    S.run(params, mini_dir, tmp_path / "whole", make_evaluator=factory(whole))

    (tmp_path / "crashed").mkdir()
    (tmp_path / "crashed" / "earlier.txt").write_text("an earlier output")
    # Generation 0 evaluates 4 genomes, so the 6th is in mid generation 1.
    first = FakeEvaluator(crash_at=6)
    with pytest.raises(Crash):
        S.run(params, mini_dir, tmp_path / "crashed", make_evaluator=factory(first))
    assert len(checkpoints()) == 1
    assert [p.name for p in (tmp_path / "crashed").iterdir()] == ["earlier.txt"]  # untouched, no partial outputs
    capsys.readouterr()

    second = FakeEvaluator()
    S.run(params, mini_dir, tmp_path / "crashed", make_evaluator=factory(second))
    assert "resuming from checkpoint" in capsys.readouterr().err
    assert read_outputs(tmp_path / "crashed") == read_outputs(tmp_path / "whole")
    # Generation 0 (checkpointed) was not redone; the lost half of generation 1 was.
    assert len(first.seen) == 5
    assert not set(first.seen[:4]) & set(second.seen)
    assert first.seen[4] == second.seen[0]
    assert second.seen == whole.seen[4:]


def test_a_checkpoint_from_other_settings_is_never_resumed(tmp_path, mini_dir, capsys):
    base = tiny_params()
    with pytest.raises(Crash):
        S.run(base, mini_dir, tmp_path / "a", make_evaluator=factory(FakeEvaluator(crash_at=6)))
    [stale] = checkpoints()

    other = tiny_params(p_op=0.3)
    expected = FakeEvaluator()
    S.run(other, mini_dir, tmp_path / "expected", make_evaluator=factory(expected))
    assert checkpoints() == [stale]  # other settings, other key: it was not even looked at

    # Even planted under the other settings' key, the fingerprint inside gives it away.
    identity = S.checkpoint_identity(other, "cpu", mini.load(mini_dir).sha256)
    planted = S.checkpoint_path(S.fingerprint(identity))
    planted.write_bytes(stale.read_bytes())
    capsys.readouterr()
    fake = FakeEvaluator()
    S.run(other, mini_dir, tmp_path / "b", make_evaluator=factory(fake))
    err = capsys.readouterr().err
    assert "ignoring checkpoint" in err and "resuming" not in err
    assert read_outputs(tmp_path / "b") == read_outputs(tmp_path / "expected")
    assert sorted(fake.seen) == sorted(expected.seen)


def test_checkpoint_key_covers_what_decides_the_result_and_nothing_else(mini_dir):
    params = tiny_params()
    sha = mini.load(mini_dir).sha256
    key = S.fingerprint(S.checkpoint_identity(params, "cpu", sha))
    same = [tiny_params(workers=4), tiny_params(device="auto")]
    assert all(S.fingerprint(S.checkpoint_identity(p, "cpu", sha)) == key for p in same)
    other_seed = copy.deepcopy(params)
    other_seed["seed"] = 1
    other_space = copy.deepcopy(params)
    other_space["space"]["channels"] = [8, 24]
    different = [
        S.checkpoint_identity(tiny_params(epochs=2), "cpu", sha),
        S.checkpoint_identity(tiny_params(temperature=0.5), "cpu", sha),
        S.checkpoint_identity(other_seed, "cpu", sha),
        S.checkpoint_identity(other_space, "cpu", sha),
        S.checkpoint_identity(params, "cuda:NVIDIA H100 80GB HBM3", sha),
        S.checkpoint_identity(params, "cpu", "0" * 64),
    ]
    keys = {S.fingerprint(identity) for identity in different}
    assert key not in keys and len(keys) == len(different)


def test_failed_genomes_are_recorded_and_the_search_completes(tmp_path, mini_dir):
    fake = FakeEvaluator(fails=lambda gid: hashed(gid, 3) == 0)
    metrics = S.run(tiny_params(), mini_dir, tmp_path / "out", make_evaluator=factory(fake))
    history = [json.loads(line) for line in (tmp_path / "out" / "history.jsonl").read_text().splitlines()]
    failed = [r for r in history if "error" in r]
    assert failed and all(r["accuracy"] == 0.0 for r in failed)
    assert metrics["failed"] == len({r["genome_id"] for r in failed}) > 0
    assert metrics["generations"] == 6


def test_bad_mini_set_is_one_line_and_leaves_outputs_untouched(tmp_path, mini_dir, capsys):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    out = tmp_path / "out"
    out.mkdir()
    (out / "history.jsonl").write_text("earlier\n")
    (mini_dir / "test.npz").write_bytes(b"tampered")
    code = cli.main(["search", "--params", str(tmp_path / "params.yaml"), "--mini", str(mini_dir), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "differs from its manifest" in err and len(err.strip().splitlines()) == 1
    assert (out / "history.jsonl").read_text() == "earlier\n"
    code = cli.main(["search", "--params", str(tmp_path / "params.yaml"), "--mini", str(tmp_path / "nope")])
    assert code == 2 and "minigen sample" in capsys.readouterr().err


def test_search_help_names_paths_only(capsys):
    with pytest.raises(SystemExit):
        cli.main(["search", "--help"])
    text = capsys.readouterr().out
    assert "--mini" in text and "--out" in text and "--params" in text and "--epochs" not in text


# ---------------------------------------------------------------- real trainings, end to end


def make_project(root: Path, **search) -> Path:
    root.mkdir(parents=True)
    write_mini(root / "data" / "mini")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(**search)))
    return root


def outputs_of(root: Path) -> dict[str, bytes]:
    return read_outputs(root / "results" / "search")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One real tiny search, run to the end, with its own evaluation cache."""
    root = make_project(tmp_path_factory.mktemp("whole") / "project")
    cache = tmp_path_factory.mktemp("cache-whole")
    run_cli("search", cwd=root, env={"MINIGEN_CACHE_DIR": str(cache)}, check=True)
    return SimpleNamespace(root=root, cache=cache, outputs=outputs_of(root))


@pytest.mark.slow
def test_rerun_is_byte_identical_and_trains_nothing(uninterrupted):
    cost = json.loads((uninterrupted.root / "results" / "search" / "cost.json").read_text())
    assert cost["trained"] == cost["evaluations"] > 0
    proc = run_cli("search", cwd=uninterrupted.root, env={"MINIGEN_CACHE_DIR": str(uninterrupted.cache)}, check=True)
    assert "round 1 gen 2 (3/" in proc.stderr  # a log line per generation: generation x of y
    assert re.search(r"\d+ evaluated \(\d+ new\), 0 trained; .* so far, (round ETA|round done)", proc.stderr)
    assert "\r" not in proc.stderr  # not a terminal: no progress bar frames
    assert outputs_of(uninterrupted.root) == uninterrupted.outputs
    cost = json.loads((uninterrupted.root / "results" / "search" / "cost.json").read_text())
    assert cost["trained"] == 0


@pytest.mark.slow
def test_kill_9_mid_search_then_rerun_ends_identical(uninterrupted, tmp_path):
    root = make_project(tmp_path / "project")
    cache = tmp_path / "cache"
    env = dict(os.environ, MINIGEN_CACHE_DIR=str(cache), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "minigen", "search"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list((cache / "checkpoints").glob("search-*.json")):
            assert proc.poll() is None, "the search ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    assert not (root / "results" / "search").exists()

    resumed = run_cli("search", cwd=root, env={"MINIGEN_CACHE_DIR": str(cache)}, check=True)
    assert "resuming from checkpoint" in resumed.stderr
    assert outputs_of(root) == uninterrupted.outputs  # trained from scratch in another cache: same bits
    assert not list((cache / "checkpoints").glob("search-*.json"))


@pytest.mark.slow
def test_huge_learning_rate_gives_nan_which_is_recorded(tmp_path):
    # lr 1e6 does not reliably overflow these small nets; 1e30 does, from the second step on
    # (the loss is read before each step, so a one-step training would not show it).
    root = make_project(tmp_path / "project", lr=1e30, batch_size=8, population=2, keep=1, generations=2,
                        max_rounds=1)
    run_cli("search", cwd=root, check=True)
    out = root / "results" / "search"
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(history) == 4
    assert all(r["accuracy"] == 0.0 and "nan" in r["error"].lower() for r in history)
    cost = atomic.read_json(out / "cost.json")
    assert cost["failed"] == cost["evaluations"] > 0 and cost["generations"] == 2

