"""Hostile input ends in one line and exit code 2, before anything is trained or built.

Genomes out of bounds, files that are not UTF-8 or nest too deeply, malformed manifests
and SOURCE.json, damaged npz and batches.meta, a folder where a file belongs, data/raw
that no longer matches SOURCE.json, and unwritable outputs or caches.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from archives import make_raw_dir, write_params
from conftest import run_cli
from minigen.data import cifar_format, mini, raw as raw_data
from minigen.errors import UserError
from minigen.space import genome as G
from minigen.stages import retrain as R
from minigen.stages import sample
from minigen.stages import search as S
from test_search import FakeEvaluator, factory, tiny_params, write_mini

GOOD = [
    [".", 1, ["3*3 conv", "3*3 conv"]],
    [8, 1, ["3*3 conv", "3*3 maxpool"]],
    [16, 1, ["identity", "3*3 conv", "3*3 avgpool"]],
    [8, 1, ["3*3 dconv", "3*3 maxpool"]],
    [16, 1, ["5*5 conv", "3*3 avgpool"]],
]
SPACE = G.Space(channels=(8, 16))


def with_cell(cell: int, channels, blocks) -> list:
    genome = json.loads(json.dumps(GOOD))
    genome[cell][:2] = [channels, blocks]
    return genome


def one_line_refusal(proc, fragment: str) -> None:
    """Exit 2, no traceback, and the refusal in one line (progress lines may precede it)."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("minigen: error: ")]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().splitlines()[-1] in errors, proc.stderr
    assert len(errors) == 1 and fragment in errors[0], proc.stderr


# ---------------------------------------------------------------- genomes


@pytest.mark.parametrize("genome, fragment", [
    (with_cell(2, 16, 10**6), "blocks 1000000 is beyond the sane maximum"),
    (with_cell(3, 10**9, 1), "channels 1000000000 is beyond the sane maximum"),
    (with_cell(1, 2048, 64), "too large to build"),
    (with_cell(4, 10**400, 1), "beyond the sane maximum"),
])
def test_absurd_genomes_are_refused_in_microseconds(genome, fragment):
    started = time.perf_counter()
    with pytest.raises(G.GenomeError, match=fragment):
        G.parse(genome)
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize("genome, fragment", [
    (with_cell(2, 24, 1), "channels 24 not in the search space"),
    (with_cell(2, 16, 2), "blocks 2 not in the search space"),
])
def test_with_a_space_channels_and_blocks_must_come_from_it(genome, fragment):
    G.parse(GOOD, SPACE)
    with pytest.raises(G.GenomeError, match=fragment):
        G.parse(genome, SPACE)


def test_genome_info_refuses_a_million_blocks_at_once(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(with_cell(2, 16, 10**6)))
    started = time.monotonic()
    proc = run_cli("genome", "info", path, timeout=120)
    one_line_refusal(proc, "blocks 1000000 is beyond the sane maximum")
    assert time.monotonic() - started < 60  # it used to run on, past 2.5 GB


@pytest.fixture
def project(tmp_path) -> Path:
    write_mini(tmp_path / "data" / "mini")
    write_params(tmp_path, space={"channels": [8, 16]},
                 search={"epochs": 1, "batch_size": 8, "device": "cpu"})
    return tmp_path


@pytest.mark.parametrize("genome, fragment", [
    (with_cell(2, 16, 10**6), "beyond the sane maximum"),
    (with_cell(2, 16, 3), "blocks 3 not in the search space"),
    (with_cell(2, 4096, 1), "beyond the sane maximum"),
])
def test_evaluate_refuses_genomes_outside_the_space_before_training(project, genome, fragment):
    (project / "genome.json").write_text(json.dumps(genome))
    one_line_refusal(run_cli("evaluate", "genome.json", cwd=project, timeout=300), fragment)


def test_deeply_nested_json_is_one_line():
    with pytest.raises(G.GenomeError, match="nested too deeply"):
        G.loads("[" * 200_000 + "]" * 200_000)


# ---------------------------------------------------------------- the mini set and its manifest


def rewrite_manifest(mini_dir: Path, change) -> None:
    path = mini_dir / mini.MANIFEST
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(change(manifest)))


def full_mini(tmp_path) -> Path:
    """A mini set as `sample` writes it (verify wants every field)."""
    make_raw_dir(tmp_path / "raw")
    write_params(tmp_path, data={"train_per_class": 2, "test_per_class": 1})
    proc = run_cli("sample", "--raw", "raw", "--out", "mini", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "mini"


MANIFEST_DAMAGE = {
    "empty sha256 map": (lambda m: {**m, "sha256": {}}, "must give a sha256 for exactly"),
    "a file left out": (lambda m: {**m, "sha256": {"train.npz": m["sha256"]["train.npz"]}}, "test.npz"),
    "sha256 as a list": (lambda m: {**m, "sha256": list(m["sha256"].values())}, "sha256 map"),
    "no sha256": (lambda m: {k: v for k, v in m.items() if k != "sha256"}, "sha256 map"),
    "a list, not an object": (lambda m: [m], "not an object"),
    "classes as text": (lambda m: {**m, "classes": "abc"}, "'classes' must be a list"),
    "no train_indices": (lambda m: {k: v for k, v in m.items() if k != "train_indices"}, "lacks train_indices"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_DAMAGE))
def test_verify_refuses_a_malformed_manifest(tmp_path, case):
    change, fragment = MANIFEST_DAMAGE[case]
    mini_dir = full_mini(tmp_path)
    assert run_cli("verify", mini_dir).returncode == 0
    rewrite_manifest(mini_dir, change)
    one_line_refusal(run_cli("verify", mini_dir), fragment)


@pytest.mark.parametrize("content, fragment", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
])
def test_a_manifest_that_is_not_utf8_or_nests_too_deeply_is_one_line(tmp_path, content, fragment):
    mini_dir = write_mini(tmp_path / "mini")
    (mini_dir / mini.MANIFEST).write_bytes(content)
    with pytest.raises(UserError, match=fragment):
        mini.load(mini_dir)


def reseal(mini_dir: Path, name: str, data: bytes) -> None:
    """Replace a file and fix its hash in the manifest: only the content check is left."""
    (mini_dir / name).write_bytes(data)
    rewrite_manifest(mini_dir, lambda m: {**m, "sha256": {**m["sha256"], name: hashlib.sha256(data).hexdigest()}})


@pytest.mark.parametrize("data, fragment", [
    (b"PK\x03\x04 not really a zip", "is not a mini-set file"),
    (mini.npz_bytes(np.zeros((4, 3, 16, 16)), np.zeros(4)), "expected x uint8"),
])
def test_a_damaged_npz_whose_hash_matches_its_manifest_is_one_line(tmp_path, data, fragment):
    mini_dir = write_mini(tmp_path / "mini")
    reseal(mini_dir, "train.npz", data)
    with pytest.raises(UserError, match=fragment):
        mini.load(mini_dir)


def test_search_refuses_a_damaged_npz_in_one_line(tmp_path):
    mini_dir = write_mini(tmp_path / "data" / "mini")
    reseal(mini_dir, "test.npz", b"PK\x05\x06" + bytes(18))
    write_params(tmp_path, search={"device": "cpu"})
    one_line_refusal(run_cli("search", cwd=tmp_path, timeout=300), "test.npz is not a mini-set file")


def test_a_folder_where_an_npz_belongs_is_one_line(tmp_path):
    mini_dir = write_mini(tmp_path / "mini")
    (mini_dir / "test.npz").unlink()
    (mini_dir / "test.npz").mkdir()
    with pytest.raises(UserError, match="missing from the frozen mini set"):
        mini.load(mini_dir)


# ---------------------------------------------------------------- raw data and SOURCE.json


def test_a_damaged_batches_meta_is_one_line(tmp_path):
    raw = make_raw_dir(tmp_path / "raw")
    (raw / cifar_format.BATCH_DIR / cifar_format.META).write_bytes(b"\x80\x04garbage")
    with pytest.raises(UserError, match="is not a CIFAR-10 batches.meta"):
        cifar_format.read(raw)


@pytest.mark.parametrize("change, fragment", [
    (lambda s: {**s, "sha256": {}}, "must name every batch file"),
    (lambda s: [s], "is malformed"),
    (lambda s: {**s, "dataset": 3}, "is malformed"),
])
def test_a_malformed_source_json_is_one_line(tmp_path, change, fragment):
    raw = make_raw_dir(tmp_path / "raw")
    path = raw / raw_data.SOURCE
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(UserError, match=fragment):
        raw_data.read_source(raw)


def write_genome_record(genomes_dir: Path) -> None:
    genomes_dir.mkdir(parents=True)
    record = {"index": 0, "genome": GOOD, "genome_id": G.genome_id(GOOD)}
    (genomes_dir / "genome_0.json").write_text(json.dumps(record))


def test_retrain_refuses_raw_data_that_no_longer_matches_source_json(tmp_path):
    raw = make_raw_dir(tmp_path / "raw")
    write_genome_record(tmp_path / "genomes")
    batch = raw / cifar_format.BATCH_DIR / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:-1] + b"\x00")
    params = {**tiny_params(), "retrain": {**tiny_params()["retrain"], "device": "cpu", "epochs": 1}}
    with pytest.raises(UserError, match="data_batch_2 is missing or differs from SOURCE.json"):
        R.retrain(params, 0, tmp_path / "genomes", raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- outputs and caches, before training


def test_an_unwritable_cache_is_reported_before_the_search_trains(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    monkeypatch.setenv("MINIGEN_CACHE_DIR", str(tmp_path / "cache"))
    fake = FakeEvaluator()
    with pytest.raises(UserError, match="cannot create folder .*cache/evaluations: Not a directory"):
        S.run(tiny_params(), write_mini(tmp_path / "mini"), tmp_path / "out", make_evaluator=factory(fake))
    assert fake.seen == []


def test_an_unwritable_results_folder_is_reported_before_the_search_trains(tmp_path):
    (tmp_path / "results").write_text("a file where the results folder should be")
    fake = FakeEvaluator()
    with pytest.raises(UserError, match="a file of that name is in the way"):
        S.run(tiny_params(), write_mini(tmp_path / "mini"), tmp_path / "results" / "search",
              make_evaluator=factory(fake))
    assert fake.seen == []


def test_retrain_reports_an_unwritable_output_before_training(tmp_path):
    raw = make_raw_dir(tmp_path / "raw")
    write_genome_record(tmp_path / "genomes")
    (tmp_path / "out").write_text("a file where the retrain folder should be")
    params = {**tiny_params(), "retrain": {**tiny_params()["retrain"], "device": "cpu", "epochs": 1}}
    drawn = sample.sample({**params, "data": {**params["data"], "dataset": "cifar10", "train_per_class": 2,
                                              "test_per_class": 1}}, raw, tmp_path / "mini")
    with pytest.raises(UserError, match="cannot create folder .*/out/genome_0: Not a directory"):
        R.retrain(params, 0, tmp_path / "genomes", raw, tmp_path / "out", log=lambda m: None,
                  mini_dir=tmp_path / "mini")
    assert drawn["test_indices"]  # the mini set passed its checks: the output was what stopped it


def test_a_folder_where_the_genome_file_belongs_is_one_line(tmp_path):
    (tmp_path / "genome.json").mkdir()
    one_line_refusal(run_cli("genome", "info", tmp_path / "genome.json"), "cannot read genome file")


# ---------------------------------------------------------------- search outputs that collect reads


@pytest.mark.parametrize("winners, evaluations, fragment", [
    (b"[]", b"\xff\xfe\n", "cannot read"),
    (b"[]", b'{"genome_id": "a"}\n', "line 1 is not a search record"),
    (b"[]", b"[" * 100_000 + b"\n", "line 1 is not a search record"),
    (b'[{"genome_id": 3}]', b"", "must hold a list of winners"),
    (b"\xff", b"", "not UTF-8"),
])
def test_damaged_search_outputs_are_one_line_for_collect(tmp_path, winners, evaluations, fragment):
    from minigen.stages import collect as C

    search = tmp_path / "search"
    search.mkdir()
    (search / "winners.json").write_bytes(winners)
    (search / "evaluations.jsonl").write_bytes(evaluations)
    with pytest.raises(UserError, match=fragment):
        C.collect(1, search, tmp_path / "genomes")
