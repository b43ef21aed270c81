"""Search strategies: the registry, and random search (same space, generators, records and
outputs as the evolution; exactly its budget of distinct networks), with fake evaluators
and, once, with real trainings."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from test_evolution import FakeEvaluate, RisingEvaluate
from test_search import OUTPUTS, FakeEvaluator, factory, write_mini

from minigen import settings as P
from minigen.errors import UserError
from minigen.space import evolution as E
from minigen.space import state as state_schema
from minigen.space import strategies
from minigen.space.strategies import random_search as R
from minigen.stages import search as S


def params(**search) -> P.Params:
    tree = copy.deepcopy(P.DEFAULTS)
    tree["space"]["channels"] = [8, 16]
    tree["search"].update({"population": 5, "keep": 2, "generations": 4, "max_rounds": 3, "strategy": "random",
                           "device": "cpu", "epochs": 1, **search})
    return P.of(tree)


def evaluated_per_generation(state: dict) -> list[int]:
    return [row["evaluated"] for row in state["generations"]]


def test_every_strategy_module_is_a_setting_and_back():
    assert strategies.names() == tuple(sorted(P.STRATEGIES))
    assert isinstance(strategies.create(params(strategy="evolution")), E.Evolution)
    assert type(strategies.create(params())) is R.RandomSearch


# population 5, keep 2, 4 generations a round: a round's generations evaluate 5, 3, 3, 3.
@pytest.mark.parametrize("budget, per_generation", [(5, [5]), (6, [5, 1]), (13, [5, 3, 3, 2]),
                                                    (29, [5, 3, 3, 3, 5, 3, 3, 3, 1])])
def test_random_search_evaluates_exactly_its_budget_of_distinct_networks(budget, per_generation):
    fake = FakeEvaluate()
    search = strategies.create(params(budget=budget, winners=1, winner_threshold=0.0))
    state = search.run(fake)
    assert state["stopped"] == "budget"  # not "winners": a budget is evaluated whatever the winners
    assert len(fake.seen) == len(set(fake.seen)) == len(state["evaluations"]) == budget
    assert evaluated_per_generation(state) == per_generation
    assert len(state["history"]) == 5 * len(per_generation)  # the population stays full
    assert all(r["origin"] in ("random", "survivor", "seed") and "parents" not in r for r in state["history"])


def test_random_search_starts_from_the_evolutions_first_population():
    evolution, random = (strategies.create(params(strategy=s)) for s in ("evolution", "random"))
    ids = [[m["genome_id"] for m in search.state["population"]] for search in (evolution, random)]
    assert ids[0] == ids[1]


def test_a_round_starts_afresh_and_later_generations_keep_the_best_by_fitness():
    state = strategies.create(params(budget=5 + 3 * 3 + 4, max_rounds=2)).run(FakeEvaluate())
    assert evaluated_per_generation(state) == [5, 3, 3, 3, 4]  # round 1 starts with 5 slots, 4 left
    second = [r for r in state["history"] if r["round"] == 0 and r["generation"] == 1]
    first = [r for r in state["history"] if r["round"] == 0 and r["generation"] == 0]
    kept = [first[i]["genome_id"] for i in E.rank([r["fitness"] for r in first])[:2]]
    assert [r["genome_id"] for r in second[:2]] == kept
    assert [r["origin"] for r in second] == ["survivor"] * 2 + ["random"] * 3
    last = [r for r in state["history"] if r["round"] == 1]
    assert [r["origin"] for r in last] == ["seed"] + ["random"] * 4 and last[0]["born"] == 0


def test_without_a_budget_random_search_stops_as_the_evolution_does():
    state = strategies.create(params(winners=3, winner_threshold=0.0)).run(RisingEvaluate())
    assert state["stopped"] == "winners" and len(state["winners"]) == 3
    state = strategies.create(params(winners=100)).run(FakeEvaluate())
    assert state["stopped"] == "max_rounds" and len(state["evaluations"]) == 3 * (5 + 3 * 3)


def test_a_random_search_resumes_from_its_json_state_and_its_state_checks():
    settings = params(budget=20)
    whole = strategies.create(settings).run(FakeEvaluate())
    part = strategies.create(settings)
    part.step(FakeEvaluate())
    part.step(FakeEvaluate())
    saved = json.loads(json.dumps(part.state))
    assert state_schema.problem(saved, E.Settings.from_params(settings)) is None
    resumed = strategies.create(settings, saved).run(FakeEvaluate())
    assert resumed == whole
    assert state_schema.problem(resumed, E.Settings.from_params(settings)) is None  # stopped: "budget"


def test_budget_settings_are_refused_in_one_line():
    for search, words in [({"strategy": "evolution", "budget": 10}, "search.budget is for search.strategy random"),
                          ({"budget": 4}, "must lie in [search.population, 42]"),
                          ({"budget": 43}, "must lie in [search.population, 42]"),
                          ({"strategy": "grid"}, "search.strategy must be one of evolution, random")]:
        with pytest.raises(UserError, match=words.replace("[", r"\[")):
            params(**search)
    params(budget=42)  # max_rounds x (population + (generations - 1) x (population - keep))


def test_an_exhausted_space_is_one_line(monkeypatch):
    only = R.G.random_genome(R.E.generation_rng(0, 0, 0), E.Settings.from_params(params()).space)
    monkeypatch.setattr(R.G, "random_genome", lambda rng, space: copy.deepcopy(only))  # a space of one genome
    with pytest.raises(UserError, match="fewer than 5 new genomes in 5000 draws"):
        strategies.create(params())


# ---------------------------------------------------------------- the search stage


def run_stage(tmp_path: Path, name: str, make_evaluator=None, **search) -> Path:
    tree = P.as_dict(params(**search))
    out = tmp_path / name
    if make_evaluator is None:
        S.run(tree, tmp_path / "mini", out)
    else:
        S.run(tree, tmp_path / "mini", out, make_evaluator=make_evaluator)
    return out


def test_random_search_writes_the_evolutions_files_and_collect_reads_them(tmp_path):
    from minigen.stages import collect

    write_mini(tmp_path / "mini")
    evolution = run_stage(tmp_path, "evolution", factory(FakeEvaluator()), strategy="evolution", max_rounds=1)
    random = run_stage(tmp_path, "random", factory(FakeEvaluator()), budget=8, max_rounds=1)
    assert sorted(p.name for p in random.iterdir()) == sorted(p.name for p in evolution.iterdir())
    assert set(OUTPUTS) <= {p.name for p in random.iterdir()}
    header = (evolution / "generations.csv").read_text().splitlines()[0]
    assert (random / "generations.csv").read_text().splitlines()[0] == header
    picks = collect.collect(2, random, tmp_path / "genomes")
    assert len(picks) == 2


@pytest.mark.slow
def test_random_search_at_tiny_settings_trains_its_budget_and_repeats_byte_for_byte(tmp_path, monkeypatch):
    write_mini(tmp_path / "mini")
    tiny = {"population": 3, "keep": 1, "generations": 3, "max_rounds": 1, "budget": 5, "batch_size": 16}
    first = run_stage(tmp_path, "first", **tiny)
    cost = json.loads((first / "cost.json").read_text())
    assert cost["evaluations"] == cost["trained"] == 5 and cost["stopped"] == "budget"
    assert sum(1 for _ in (first / "evaluations.jsonl").open()) == 5
    monkeypatch.setenv("MINIGEN_CACHE_DIR", str(tmp_path / "another-cache"))  # train everything again
    second = run_stage(tmp_path, "second", **tiny)
    assert json.loads((second / "cost.json").read_text())["trained"] == 5
    for name in ("history.jsonl", "winners.json", "generations.csv", "evaluations.jsonl", "metrics.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
