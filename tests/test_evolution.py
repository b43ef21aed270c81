"""The evolution's rules (DESIGN.md section 3), with fake evaluators: no training here."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from types import SimpleNamespace

import pytest

from minigen.space import evolution as E
from minigen.space import genome as G
from minigen import settings as P


def make_settings(seed: int = 2809, **search) -> E.Settings:
    params = copy.deepcopy(P.DEFAULTS)
    params["seed"] = seed
    params["space"]["channels"] = [8, 16]
    params["search"].update({"population": 6, "keep": 2, "generations": 3, "max_rounds": 2, **search})
    return E.Settings.from_params(P.validate(params))


def hashed(genome_id: str, modulo: int) -> int:
    return int(hashlib.sha256(genome_id.encode()).hexdigest()[:8], 16) % modulo


class FakeEvaluate:
    """accuracy = f(genome_id); remembers every genome it was asked about."""

    def __init__(self, accuracy=lambda gid: hashed(gid, 61) / 100, fails=lambda gid: False):
        self.accuracy, self.fails, self.seen = accuracy, fails, []

    def __call__(self, genomes):
        out = []
        for genome in genomes:
            gid = G.genome_id(genome)
            self.seen.append(gid)
            if self.fails(gid):
                out.append(SimpleNamespace(accuracy=0.0, error="loss is nan after epoch 1"))
            else:
                out.append(SimpleNamespace(accuracy=self.accuracy(gid), error=None))
        return out


class RisingEvaluate(FakeEvaluate):
    """Each genome evaluated scores above every earlier one: each generation's best is new."""

    def __init__(self):
        super().__init__(accuracy=lambda gid: round(0.01 * len(self.seen), 2))


def records_of(state, round_, generation):
    return [r for r in state["history"] if r["round"] == round_ and r["generation"] == generation]


def test_fitness_formula_matches_the_paper():
    # Paper III-C: created in generation 3, still there in generation 8 -> decay 0.05.
    assert E.fitness(0.5, 0.01, 8, 3) == 0.45
    assert E.fitness(0.5, 0.01, 3, 3) == 0.5
    assert E.fitness(0.5, 0.0, 8, 3) == 0.5
    assert E.fitness(0.3, 0.02, 10, 0) == pytest.approx(0.1)


def test_every_history_record_carries_its_fitness():
    evo = E.Evolution(make_settings(decay=0.02))
    evo.run(FakeEvaluate())
    aged = 0
    for record in evo.state["history"]:
        age = record["generation"] - record["born"]
        assert record["fitness"] == pytest.approx(record["accuracy"] - 0.02 * age, abs=1e-12)
        aged += age > 0
    assert aged > 0  # survivors did age


def test_survivor_loses_decay_per_generation():
    evo = E.Evolution(make_settings(decay=0.01, generations=4, max_rounds=1))
    evo.run(FakeEvaluate())
    by_genome = {}
    for record in evo.state["history"]:
        by_genome.setdefault((record["genome_id"], record["born"]), []).append(record)
    long_lived = [rs for rs in by_genome.values() if len(rs) >= 2]
    assert long_lived
    for records in long_lived:
        for a, b in zip(records, records[1:]):
            assert b["generation"] == a["generation"] + 1
            assert b["fitness"] == pytest.approx(a["fitness"] - 0.01, abs=1e-12)


def test_decay_zero_makes_fitness_the_accuracy():
    """The paper's Fig. 3 ablation: no decay, selection by accuracy alone."""
    evo = E.Evolution(make_settings(decay=0.0))
    evo.run(FakeEvaluate())
    assert all(r["fitness"] == r["accuracy"] for r in evo.state["history"])
    assert any(r["generation"] > r["born"] for r in evo.state["history"])


def test_rank_prefers_fitness_then_population_order():
    assert E.rank([0.3, 0.5, 0.3, 0.5, 0.1]) == [1, 3, 0, 2, 4]
    # Equal accuracy: with decay the younger member scores higher and ranks first.
    old, young = E.fitness(0.4, 0.01, 5, 1), E.fitness(0.4, 0.01, 5, 5)
    assert E.rank([old, young]) == [1, 0]
    assert E.best_of_generation([0.4, 0.4, 0.2], [old, young, 0.9]) == 1


def test_elitism_keeps_the_top_keep_by_fitness():
    settings = make_settings(population=6, keep=3, generations=5)
    evo = E.Evolution(settings)
    fake = FakeEvaluate()
    for _ in range(3):
        round_, generation = evo.state["round"], evo.state["generation"]
        before = copy.deepcopy(evo.state["population"])
        evo.step(fake)
        records = records_of(evo.state, round_, generation)
        top = [records[i] for i in E.rank([r["fitness"] for r in records])[:3]]
        after = evo.state["population"]
        assert len(after) == 6
        assert [m["genome_id"] for m in after[:3]] == [r["genome_id"] for r in top]
        assert [m["born"] for m in after[:3]] == [r["born"] for r in top]
        assert all(m["origin"] == "survivor" for m in after[:3])
        assert all(m["origin"] == "child" and m["born"] == generation + 1 for m in after[3:])
        survivor_ids = {m["genome_id"] for m in after[:3]}
        assert all(set(m["parents"]) <= survivor_ids for m in after[3:])
        assert [m["genome_id"] for m in before] == [r["genome_id"] for r in records]


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_parent_selection_follows_softmax_of_fitness(temperature):
    rng = random.Random(7)
    space = G.Space(channels=(8, 16))
    parents = [G.random_genome(rng, space) for _ in range(4)]
    fitness = [0.5, 0.4, 0.2, 0.1]
    n = 3000
    children = E.breed(parents, fitness, n, random.Random(11), make_settings(temperature=temperature))
    counts = [0] * 4
    for _, (a, b) in children:
        counts[a] += 1
        counts[b] += 1
    draws = 2 * n
    expected = [math.exp(f / temperature) for f in fitness]
    expected = [e / sum(expected) for e in expected]
    for count, p in zip(counts, expected):
        sigma = math.sqrt(p * (1 - p) / draws)
        assert abs(count / draws - p) < 5 * sigma, (counts, expected)
    if temperature == 0.1:
        assert counts[0] / draws > 0.6  # a low temperature favours the best strongly


def test_children_are_crossover_then_mutation_of_their_parents():
    # With no mutation a child's every cell comes from one of its parents.
    settings = make_settings(p_channel=0.0, p_op=0.0, p_action_list=0.0)
    rng = random.Random(3)
    parents = [G.random_genome(rng, settings.space) for _ in range(3)]
    for child, (a, b) in E.breed(parents, [0.3, 0.2, 0.1], 50, random.Random(5), settings):
        assert all(cell in (pa, pb) for cell, pa, pb in zip(child, parents[a], parents[b]))


def _end_of_round_zero(accuracy, **search):
    settings = make_settings(generations=2, max_rounds=2, restart_threshold=0.35, winner_threshold=0.9, **search)
    evo = E.Evolution(settings)
    fake = FakeEvaluate(accuracy=accuracy)
    evo.step(fake)
    evo.step(fake)
    last = records_of(evo.state, 0, 1)
    return evo, last


def test_restart_above_threshold_seeds_next_round_with_top_keep():
    evo, last = _end_of_round_zero(lambda gid: 0.36 + hashed(gid, 20) / 100)
    assert evo.state["round"] == 1 and evo.state["generation"] == 0
    top = [last[i] for i in E.rank([r["fitness"] for r in last])[:2]]
    population = evo.state["population"]
    assert [m["genome_id"] for m in population[:2]] == [r["genome_id"] for r in top]
    assert all(m["origin"] == "seed" and m["born"] == 0 for m in population[:2])
    assert all(m["origin"] == "child" and m["born"] == 0 for m in population[2:])
    evo.step(FakeEvaluate())
    seeds = records_of(evo.state, 1, 0)[:2]
    assert all(r["fitness"] == r["accuracy"] and r["repeat"] for r in seeds)  # born reset: no decay


@pytest.mark.parametrize("best", [0.35, 0.2])  # equal to the threshold is not above it
def test_no_restart_at_or_below_threshold_starts_at_random(best):
    evo, last = _end_of_round_zero(lambda gid: best)
    population = evo.state["population"]
    assert evo.state["round"] == 1 and evo.state["generation"] == 0
    assert all(m["origin"] == "random" and m["born"] == 0 and "parents" not in m for m in population)
    earlier = {r["genome_id"] for r in evo.state["history"]}
    assert not earlier & {m["genome_id"] for m in population}


def test_winners_are_new_generation_bests_above_threshold_and_stop_the_search_mid_round():
    evo = E.Evolution(make_settings(generations=10, max_rounds=3, winners=3, winner_threshold=0.02))
    evo.run(RisingEvaluate())
    state = evo.state
    assert state["stopped"] == "winners"
    assert len(state["winners"]) == 3
    assert len({w["genome_id"] for w in state["winners"]}) == 3
    # Stopped in round 0, right after the generation that found the third winner.
    last = state["generations"][-1]
    assert (last["round"], last["generation"]) == (0, state["winners"][-1]["generation"])
    assert last["generation"] < 9
    rows = {(g["round"], g["generation"]): g for g in state["generations"]}
    for w in state["winners"]:
        assert w["accuracy"] > 0.02
        assert rows[(w["round"], w["generation"])]["best_accuracy"] == w["accuracy"]


def test_winner_threshold_is_strict():
    # All score 0.4. Above the threshold, every generation's best is a newborn (equal
    # accuracy goes to the higher fitness, the younger), so each of the 3 adds a winner.
    for threshold, expected in [(0.4, 0), (0.39, 3)]:
        evo = E.Evolution(make_settings(winner_threshold=threshold, max_rounds=1))
        evo.run(FakeEvaluate(accuracy=lambda gid: 0.4))
        assert len(evo.state["winners"]) == expected


def test_a_winner_is_never_counted_twice_and_repeats_are_not_re_evaluated():
    # keep 1 and no mutation: every child is a clone of the one survivor.
    settings = make_settings(population=3, keep=1, generations=4, max_rounds=1, winner_threshold=0.1,
                             p_channel=0.0, p_op=0.0, p_action_list=0.0)
    fake = FakeEvaluate(accuracy=lambda gid: 0.2 + hashed(gid, 50) / 100)
    evo = E.Evolution(settings)
    evo.run(fake)
    state = evo.state
    assert len(state["winners"]) == 1
    assert [g["winners"] for g in state["generations"]] == [1, 1, 1, 1]
    assert len(fake.seen) == len(set(fake.seen)) == 3  # generation 0 only
    later = [r for r in state["history"] if r["generation"] > 0]
    assert all(r["repeat"] and r["genome_id"] == state["winners"][0]["genome_id"] for r in later)


def test_max_rounds_stops_a_search_short_of_winners():
    evo = E.Evolution(make_settings(generations=2, max_rounds=3, winners=10, winner_threshold=0.99))
    evo.run(FakeEvaluate())
    assert evo.state["stopped"] == "max_rounds"
    assert [(g["round"], g["generation"]) for g in evo.state["generations"]] == [
        (r, g) for r in range(3) for g in range(2)
    ]
    assert E.summary(evo.state)["rounds"] == 3
    with pytest.raises(RuntimeError):
        evo.step(FakeEvaluate())


def test_each_genome_is_evaluated_once_and_later_appearances_are_repeats():
    fake = FakeEvaluate()
    evo = E.Evolution(make_settings(generations=4, max_rounds=3, p_op=0.05, p_channel=0.05, p_action_list=0.0))
    evo.run(fake)
    assert len(fake.seen) == len(set(fake.seen)) == len(evo.state["evaluations"])
    first_seen = set()
    for record in evo.state["history"]:
        assert record["repeat"] == (record["genome_id"] in first_seen)
        first_seen.add(record["genome_id"])
    assert any(r["repeat"] and r["origin"] == "child" for r in evo.state["history"])  # duplicates were born


def test_failed_genomes_score_zero_with_their_error_and_the_search_goes_on():
    fake = FakeEvaluate(fails=lambda gid: hashed(gid, 3) == 0)
    evo = E.Evolution(make_settings())
    evo.run(fake)
    failed = [r for r in evo.state["history"] if "error" in r]
    assert failed and evo.done
    assert all(r["accuracy"] == 0.0 and r["error"] == "loss is nan after epoch 1" for r in failed)
    assert E.summary(evo.state)["failed"] == len({r["genome_id"] for r in failed})
    ok = [r for r in evo.state["history"] if "error" not in r]
    assert ok and all(r["accuracy"] == hashed(r["genome_id"], 61) / 100 for r in ok)


def test_same_settings_same_search_other_seed_other_search():
    def run(seed):
        evo = E.Evolution(make_settings(seed=seed))
        evo.run(FakeEvaluate())
        return json.dumps(evo.state, sort_keys=True)

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_resuming_from_a_json_state_ends_where_an_uninterrupted_run_ends():
    settings = make_settings(generations=3, max_rounds=3)
    whole = E.Evolution(settings)
    whole.run(FakeEvaluate())

    first = E.Evolution(settings)
    for _ in range(4):
        first.step(FakeEvaluate())
    saved = json.loads(json.dumps(first.state))
    done_before = {e["genome_id"] for e in saved["evaluations"]}
    fake = FakeEvaluate()
    resumed = E.Evolution(settings, saved)
    resumed.run(fake)
    assert json.dumps(resumed.state, sort_keys=True) == json.dumps(whole.state, sort_keys=True)
    assert fake.seen and not set(fake.seen) & done_before
