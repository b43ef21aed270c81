"""The study: its settings, its jobs (an arm x seed's search and retrain) and its report,
run for real at tiny settings (the tests' digits-sized settings on a 100-image archive, so
the retrains take seconds)."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from workflows import archive_params

from minigen import settings as P
from minigen.errors import UserError
from minigen.reporting import study_stats
from minigen.stages import download, sample, study, study_report
from minigen.store import formats

ARMS = ("evolution", "random", "no_decay")
SEEDS = (1, 2)


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def cost(folder: Path) -> dict:
    return {**json.loads((folder / "metrics.json").read_text()), **json.loads((folder / "cost.json").read_text())}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The whole study once: 3 arms x 2 seeds, searched, retrained and reported."""
    root = tmp_path_factory.mktemp("study")
    tree = archive_params(root)
    tree["search"]["generations"] = 3
    tree["study"].update(seeds=list(SEEDS), retrain_epochs=1)
    params = P.of(tree)
    arms = root / "results" / "study" / "arms"
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINIGEN_CACHE_DIR", str(cache))
        download.download(P.as_dict(params), root / "data" / "raw")
        sample.sample(P.as_dict(params), root / "data" / "raw", root / "data" / "mini")
        for seed in SEEDS:
            for arm in ARMS:
                study.search(params, arm, seed, root / "data" / "mini", arms)
                study.retrain(params, arm, seed, root / "data" / "raw", arms, root / "data" / "mini")
        metrics = study_report.report(params, arms, root / "results" / "study" / "report")
    return SimpleNamespace(root=root, params=params, arms=arms, report=root / "results" / "study" / "report",
                           metrics=metrics, cache=cache)


def run_folder(tiny, arm: str, seed: int) -> Path:
    return formats.study_run_dir(tiny.arms, arm, seed)


# ---------------------------------------------------------------- the jobs and the report


def test_the_report_holds_every_arm_with_mean_std_over_seeds_and_a_p_value(tiny):
    rows = {row["arm"]: row for row in read_csv(tiny.report / "table.csv")}
    assert list(rows) == list(ARMS)
    for arm, row in rows.items():
        assert row["seeds"] == str(len(SEEDS))
        for key in study_report.COMPARED:
            float(row[f"{key}_mean"]), float(row[f"{key}_std"])  # two seeds: both defined
            assert (row[f"{key}_p"] == "") is (arm == "evolution")
            if arm != "evolution":
                assert 0.0 <= float(row[f"{key}_p"]) <= 1.0
    table = (tiny.report / "table.md").read_text()
    assert all(f"| {arm}" in table for arm in ARMS) and " ± " in table
    assert "2 against 2 seeds are too few to tell" in table
    assert set(tiny.metrics["arms"]) == set(ARMS) and tiny.metrics["seeds"] == len(SEEDS)
    assert json.loads((tiny.report / "metrics.json").read_text()) == tiny.metrics
    runs = read_csv(tiny.report / "runs.csv")
    assert [(r["arm"], int(r["seed"])) for r in runs] == [(a, s) for a in ARMS for s in SEEDS]
    curves = read_csv(tiny.report / "curves.csv")
    assert {r["arm"] for r in curves} == set(ARMS) and all(r["seeds"] == "2" for r in curves)
    for figure in ("fig3_generations.png", "accuracy_by_arm.png"):
        assert (tiny.report / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_random_arm_evaluates_what_the_reference_did_seed_by_seed(tiny):
    for seed in SEEDS:
        reference = cost(run_folder(tiny, "evolution", seed) / "search")
        random = cost(run_folder(tiny, "random", seed) / "search")
        assert random["evaluations"] == reference["evaluations"] and random["stopped"] == "budget"
        record = json.loads((run_folder(tiny, "random", seed) / "genomes" / "genome_0.json").read_text())
        assert record["study"] == {"arm": "random", "seed": seed, "strategy": "random",
                                   "budget": reference["evaluations"]}


def test_each_arm_runs_its_own_settings_and_retrains_its_best_genome(tiny):
    def history(arm, seed):
        return [json.loads(line) for line in (run_folder(tiny, arm, seed) / "search" / "history.jsonl").open()]

    aged = [r for r in history("evolution", 1) if r["born"] < r["generation"]]
    assert aged and all(r["fitness"] < r["accuracy"] for r in aged)  # decay 0.01
    assert all(r["fitness"] == r["accuracy"] for r in history("no_decay", 1))  # decay 0
    for arm in ARMS:
        folder = run_folder(tiny, arm, 2)
        evaluations = [json.loads(line) for line in (folder / "search" / "evaluations.jsonl").open()]
        record = json.loads((folder / "genomes" / "genome_0.json").read_text())
        assert record["search"]["accuracy"] == max(e["accuracy"] for e in evaluations)
        retrained = json.loads((folder / "retrain" / "genome_0" / "seed_2" / "metrics.json").read_text())
        assert retrained["genome_id"] == record["genome_id"] and retrained["epochs"] == 1
        assert retrained["seed"] == 2 and retrained["clean_test_images"] < retrained["test_images"]


def test_a_rerun_of_a_job_trains_nothing_and_writes_the_same_bytes(tiny, monkeypatch):
    monkeypatch.setenv("MINIGEN_CACHE_DIR", str(tiny.cache))  # the evaluation cache the study filled
    folder = run_folder(tiny, "no_decay", 1) / "search"
    before = {name: (folder / name).read_bytes() for name in ("history.jsonl", "evaluations.jsonl", "metrics.json")}
    study.search(tiny.params, "no_decay", 1, tiny.root / "data" / "mini", tiny.arms)
    assert cost(folder)["trained"] == 0
    assert {name: (folder / name).read_bytes() for name in before} == before


def test_a_compared_random_arm_needs_its_reference_first(tmp_path):
    params = P.of(copy.deepcopy(P.DEFAULTS))
    with pytest.raises(UserError, match=r"run `minigen study search evolution 2809` first"):
        study.search(params, "random", 2809, tmp_path / "mini", tmp_path / "arms")


def test_jobs_refuse_arms_and_seeds_the_study_does_not_hold():
    params = P.of(copy.deepcopy(P.DEFAULTS))
    with pytest.raises(UserError, match="study arm 'nope' is not in study.arms"):
        study.job_settings(params, "nope", 2809)
    with pytest.raises(UserError, match="seed 7 is not in study.seeds"):
        study.job_settings(params, "random", 7)


# ---------------------------------------------------------------- settings


def test_an_arm_is_the_base_settings_with_its_overrides_its_seed_and_the_study_epochs():
    tree = copy.deepcopy(P.DEFAULTS)
    tree["study"]["arms"]["modern"] = {"retrain": {"recipe": "modern"}, "search": {"p_op": 0.7}}
    tree["study"]["retrain_epochs"] = 12
    params = P.of(tree)
    assert params.study.compared == ["random", "no_decay", "modern"]  # null follows the arms
    arm = P.arm_settings(params, "modern", 5)
    assert (arm.seed, arm.retrain.recipe, arm.retrain.epochs, arm.search.p_op) == (5, "modern", 12, 0.7)
    assert arm.search.decay == params.search.decay and arm.space == params.space
    assert P.arm_settings(params, "no_decay", 5).search.decay == 0


@pytest.mark.parametrize("change, words", [
    (lambda s: s["arms"]["no_decay"]["search"].update(decay=-1),
     "study.arms.no_decay: search.decay must be a finite number >= 0, got -1"),
    (lambda s: s["arms"]["random"].update(data={"dataset": "digits"}), "study.arms must be a mapping"),
    (lambda s: s.update(compared=["random"]), "study.compared must be ['random', 'no_decay']"),
    (lambda s: s.update(reference="paper", compared=None), "study.reference (paper) must name one of study.arms"),
    (lambda s: s["arms"]["random"].update(retrain={"epochs": 3}), "set study.retrain_epochs instead"),
    (lambda s: s["arms"].update({"Bad-Name": {}}), "study.arms must be a mapping"),
    (lambda s: s.update(seeds=[1, 1]), "study.seeds must be a list of 1 to 64 distinct seeds"),
])
def test_a_bad_study_is_refused_in_one_line(change, words):
    tree = copy.deepcopy(P.DEFAULTS)
    change(tree["study"])
    with pytest.raises(UserError) as info:
        P.validate(tree)
    assert words in str(info.value) and len(str(info.value).splitlines()) == 1


# ---------------------------------------------------------------- statistics


def test_the_rank_test_says_when_seeds_are_too_few_to_tell():
    assert study_stats.smallest_p(3, 3) == pytest.approx(0.1) and study_stats.seeds_needed() == 4
    few = study_stats.rank_test([0.5, 0.6, 0.7], [0.1, 0.2, 0.3])
    assert few["p_value"] == pytest.approx(0.1) and "too few to tell" in few["note"]
    enough = study_stats.rank_test([0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.3, 0.4])
    assert enough["p_value"] == pytest.approx(2 / 70) and enough["note"] is None
    assert study_stats.verdict("accuracy", enough) == "accuracy p = 0.029, a difference at 0.05"
    assert study_stats.verdict("accuracy", few) == "accuracy p = 0.10"  # its note says why, once
    assert study_stats.mean_std([1.0]) == (1.0, None)
    assert study_stats.mean_std([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))


def test_the_last_change_is_the_last_generation_whose_best_differs():
    assert study_report.last_change(["a", "a", "b", "b", "c", "c"]) == 4
    assert study_report.last_change(["a", "a", "a"]) == 0
    assert study_report.last_change([]) == 0
