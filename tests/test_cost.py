"""The cost model and `minigen plan`: it gives back the measurements it is built from,
grows with the work, and plans wall time the way jobs spread over cards."""

from __future__ import annotations

import json

import pytest
from conftest import published_genomes
from workflows import paper_params, write_params

from minigen import cli
from minigen import settings as P
from minigen.training import cost


@pytest.fixture(scope="module")
def paper() -> dict:
    return P.load(None)


def eval_of(genome, params) -> float:
    data, search = params["data"], params["search"]
    passes = data["train_per_class"] * 10 * search["epochs"] + data["test_per_class"] * 10 / 3
    return cost.pass_model("search", "cuda", search["precision"]).seconds(cost.mflop(genome), passes)


def test_the_model_gives_back_the_benchmarks_it_is_built_from(paper):
    g1, g3 = published_genomes()[1]["genome"], published_genomes()[3]["genome"]
    # BENCHMARKS.md: 1,000 images x 20 epochs, scored on 100, NVIDIA H200.
    bench = {**paper, "data": {**paper["data"], "train_per_class": 100, "test_per_class": 10}}
    assert eval_of(g1, bench) == pytest.approx(8.92, rel=1e-9)
    assert eval_of(g3, bench) == pytest.approx(12.53, rel=1e-9)
    tf32 = {**bench, "search": {**bench["search"], "precision": "tf32"}}
    assert eval_of(g1, tf32) == pytest.approx(4.56, rel=1e-9)
    # A 340-epoch paper-recipe retrain of genome 1: 21.6 s per epoch, 2.04 h in all.
    retrain = cost.retrain_seconds(paper, cost.mflop(g1)) - cost.JOB_START_SECONDS
    assert retrain == pytest.approx(21.6 * 340, rel=1e-9)


def test_time_grows_with_epochs_images_and_flops(paper):
    small, big = 500.0, 5000.0
    assert cost.retrain_seconds(paper, small) < cost.retrain_seconds(paper, big)
    longer = {**paper, "retrain": {**paper["retrain"], "epochs": 680}}
    assert cost.retrain_seconds(longer, small) > 1.9 * cost.retrain_seconds(paper, small)
    digits = {**paper, "data": {**paper["data"], "dataset": "digits"}}
    assert cost.retrain_seconds(digits, small) < cost.retrain_seconds(paper, small) / 20
    modern = {**paper, "retrain": {**paper["retrain"], "recipe": "modern"}}
    assert cost.retrain_seconds(modern, small) < cost.retrain_seconds(paper, small)  # bf16


def test_a_search_round_of_the_paper_trains_255_networks(paper):
    per_generation = cost.search_evaluations(paper["search"])
    assert per_generation[:2] == [15, 10] and len(per_generation) == 25
    assert sum(per_generation) == 255
    assert sum(cost.search_evaluations(paper["search"], rounds=20)) == 20 * 255
    # Spread over 4 cards a generation of 10 takes 3 waves: 7 + 24 * 3 = 79 waves of 255.
    one, four = (cost.search_seconds(paper, cards=n) - cost.JOB_START_SECONDS for n in (1, 4))
    assert four / one == pytest.approx((4 + 24 * 3) / 255)


def test_jobs_spread_longest_first_onto_the_least_busy_card():
    assert cost.makespan([3, 3, 2, 2, 2], 2) == 7
    assert cost.makespan([1.0] * 10, 4) == 3
    assert cost.makespan([5, 1, 1], 10) == 5
    assert cost.makespan([], 3) == 0


def test_cluster_limits_have_a_margin_and_a_floor(paper):
    assert cost.limit_minutes(60) == cost.MIN_LIMIT_MINUTES
    assert cost.limit_minutes(4 * 3600) == 4 * 60 * cost.SAFETY
    worst = cost.search_seconds(paper, rounds=paper["search"]["max_rounds"])
    assert cost.search_limit_minutes(paper) == cost.limit_minutes(worst)


def test_a_collected_genome_is_priced_by_its_own_flops(paper, tmp_path):
    heavy = published_genomes()[6]["genome"]  # 5.5 GFLOP, against ~1.4 for the space
    (tmp_path / "genome_0.json").write_text(json.dumps({"index": 0, "genome": heavy}))
    assert cost.genome_mflop_of(tmp_path / "genome_0.json") == cost.mflop(heavy)
    assert cost.genome_mflop_of(tmp_path / "genome_1.json") is None
    assert cost.retrain_limit_minutes(paper, tmp_path / "genome_0.json") > cost.retrain_limit_minutes(paper)


def test_plan_on_more_cards_is_shorter_but_costs_the_same(paper, tmp_path):
    plan = cost.plan(paper, tmp_path, [1, 4, 10])
    assert plan["retrain"]["jobs"] == 10 and plan["retrain"]["collected"] == 0
    assert plan["total_hours"] == pytest.approx(plan["search"]["hours"] + plan["retrain"]["hours"])
    wall = plan["wall"]
    assert wall[1]["total"] == pytest.approx(plan["total_hours"] * 3600)
    assert wall[1]["total"] > wall[4]["total"] > wall[10]["total"]
    assert wall[10]["retrain"] == pytest.approx(max(plan["retrain"]["per_job"]))
    assert wall[10]["search"] == wall[1]["search"]  # search.workers is 1 in the paper's params


def test_minigen_plan_prints_the_stages_and_1_n_10_gpus(tmp_path, capsys):
    params = paper_params()
    params["search"]["workers"] = 2
    write_params(tmp_path / "params.yaml", params)
    assert cli.main(["plan", "--gpus", "3", "--params", str(tmp_path / "params.yaml"),
                     "--genomes", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["stage", "jobs", "GPU-h", "per", "job", "basis"]
    rows = [line.split()[0] for line in out.splitlines()[out.splitlines().index(
        next(line for line in out.splitlines() if "wall time" in line)) + 1:] if line.split()[0].isdigit()]
    assert rows == ["1", "3", "10"]
    assert "search.workers is 2" in out
    assert cli.main(["plan", "--gpus", "0", "--params", str(tmp_path / "params.yaml")]) == 2
    assert "--gpus must be >= 1" in capsys.readouterr().err


def test_three_retrain_seeds_plan_three_retrains_per_genome(paper, tmp_path):
    one = cost.plan(paper, tmp_path, [1, 30])
    three = cost.plan(P.validate({**paper, "retrain": {**paper["retrain"], "seeds": [1, 2, 3]}}), tmp_path, [1, 30])
    assert (one["retrain"]["jobs"], three["retrain"]["jobs"]) == (10, 30)
    assert three["retrain"]["hours"] == pytest.approx(3 * one["retrain"]["hours"])
    assert three["wall"][30]["retrain"] == pytest.approx(one["wall"][30]["retrain"])  # one job per card
