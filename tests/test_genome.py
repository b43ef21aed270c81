"""The genome encoding: parsing, canonical form and id, random sampling, mutation, crossover.

Pure Python (no torch): building the networks is tested in test_ops_network.py.
Every statistical test draws from a fixed seed, so it cannot flake; its tolerance is
5 standard deviations of the binomial count it checks.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import subprocess
import sys

import pytest

from minigen.space import genome as G

PAPER_RATES = G.MutationRates(p_channel=0.3, p_op=0.5, p_action_list=0.2)
SMALL_SPACE = G.Space(channels=(8, 16), blocks=(1, 2, 1, 3), p_identity=0.5)
SPACES = [
    G.Space(),
    SMALL_SPACE,
    G.Space(p_identity=0.0),
    G.Space(p_identity=1.0),
]


def assert_rate(hits: int, trials: int, p: float) -> None:
    """hits/trials within 5 binomial standard deviations of p (exact when p is 0 or 1)."""
    tolerance = 5 * math.sqrt(p * (1 - p) / trials)
    observed = hits / trials
    assert abs(observed - p) <= tolerance, f"rate {observed:.4f} vs expected {p:.4f} (±{tolerance:.4f}, n={trials})"


def assert_count(hits: int, probs: list[float]) -> None:
    """A count of independent events with the given probabilities, within 5 standard deviations."""
    mean = sum(probs)
    tolerance = 5 * math.sqrt(sum(p * (1 - p) for p in probs))
    assert abs(hits - mean) <= tolerance, f"count {hits} vs expected {mean:.1f} (±{tolerance:.1f})"


def random_genomes(count: int, seed: int, space: G.Space = G.Space()) -> list:
    rng = random.Random(seed)
    return [G.random_genome(rng, space) for _ in range(count)]


# ---------------------------------------------------------------- parsing


def test_published_genomes_parse_to_canonical_form(published):
    assert len(published) == 10
    for entry in published:
        genome = G.parse(entry["genome"], G.Space())
        assert genome[0][0] == "."
        assert genome[1:] == entry["genome"][1:]
        assert G.parse(genome) == genome  # canonical form is a fixed point


@pytest.mark.parametrize("spelling", [".", None, "inf", 3, 64.0, float("inf")])
def test_input_cell_channel_spellings_are_all_accepted_and_ignored(published, spelling):
    genome = json.loads(json.dumps(published[0]["genome"]))
    genome[0][0] = spelling
    assert G.parse(genome) == G.parse(published[0]["genome"])
    assert G.genome_id(genome) == G.genome_id(published[0]["genome"])


def test_an_object_with_a_genome_key_parses_like_the_bare_list(published):
    genome = published[3]["genome"]
    assert G.parse({"genome": genome, "accuracy": 0.5}) == G.parse(genome)


def test_tuples_parse_like_lists(published):
    genome = published[2]["genome"]
    as_tuples = tuple(tuple(cell[:2]) + (tuple(cell[2]),) for cell in genome)
    assert G.parse(as_tuples) == G.parse(genome)


def _with(published, cell: int, slot: int, value):
    genome = json.loads(json.dumps(published[1]["genome"]))
    genome[cell][slot] = value
    return genome


BAD_GENOMES = {
    "unknown op": (lambda p: _with(p, 2, 2, ["3*3 avgpool", "7*7 conv"]), "unknown op"),
    "identity not first": (lambda p: _with(p, 3, 2, ["3*3 conv", "identity"]), "identity"),
    "identity twice": (lambda p: _with(p, 3, 2, ["identity", "identity", "3*3 conv"]), "identity"),
    "four cells": (lambda p: p[1]["genome"][:4], "5 cells"),
    "six cells": (lambda p: p[1]["genome"] + [p[1]["genome"][1]], "5 cells"),
    "normal list of 1": (lambda p: _with(p, 1, 2, ["3*3 conv"]), "2 to 4"),
    "normal list of identity alone": (lambda p: _with(p, 1, 2, ["identity"]), "2 to 4"),
    "normal list of 5": (lambda p: _with(p, 4, 2, ["3*3 conv"] * 5), "2 to 4"),
    "input list of 3 without identity": (lambda p: _with(p, 0, 2, ["3*3 conv"] * 3), "input cell"),
    "input list of 2 with identity": (lambda p: _with(p, 0, 2, ["identity", "3*3 conv"]), "input cell"),
    "input list of 1": (lambda p: _with(p, 0, 2, ["3*3 conv"]), "input cell"),
    "zero channels": (lambda p: _with(p, 2, 0, 0), "channels"),
    "negative channels": (lambda p: _with(p, 2, 0, -24), "channels"),
    "fractional channels": (lambda p: _with(p, 2, 0, 24.5), "channels"),
    "zero blocks": (lambda p: _with(p, 2, 1, 0), "blocks"),
    "negative blocks": (lambda p: _with(p, 4, 1, -1), "blocks"),
    "two input blocks": (lambda p: _with(p, 0, 1, 2), "1 block"),
    "maxpool in input cell": (lambda p: _with(p, 0, 2, ["3*3 maxpool", "3*3 conv"]), "not allowed in the input cell"),
    "dil conv in input cell": (lambda p: _with(p, 0, 2, ["identity", "3*3 conv", "3*3 dil conv"]), "not allowed"),
    "op not a string": (lambda p: _with(p, 1, 2, ["3*3 conv", 3]), "op names"),
    "cell not a triple": (lambda p: p[1]["genome"][:1] + [[64, 1]] * 4, "cell 1"),
    "not a list": (lambda p: {"cells": p[1]["genome"]}, "list of 5 cells"),
    "bad input channel": (lambda p: _with(p, 0, 0, "wide"), "cell 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_GENOMES))
def test_bad_genomes_are_refused_with_a_clear_message(published, case):
    make, fragment = BAD_GENOMES[case]
    with pytest.raises(G.GenomeError) as caught:
        G.parse(make(published))
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_space_restricts_channels(published):
    genome = published[0]["genome"]
    G.parse(genome, G.Space())
    with pytest.raises(G.GenomeError, match="not in the search space"):
        G.parse(genome, SMALL_SPACE)


def test_loads_refuses_unreadable_json():
    with pytest.raises(G.GenomeError, match="not valid JSON"):
        G.loads('[[".", 1, ["identity", ')


def test_load_names_the_file_and_refuses_a_missing_one(tmp_path, published):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(published[5]["genome"]))
    assert G.load(str(path)) == G.parse(published[5]["genome"])
    with pytest.raises(G.GenomeError, match="not found"):
        G.load(str(tmp_path / "missing.json"))
    path.write_text("[1, 2]")
    with pytest.raises(G.GenomeError, match=str(path)):
        G.load(str(path))


def test_authors_format_round_trips(published):
    for entry in published:
        text = G.format_authors(entry["genome"])
        assert G.loads(text) == G.parse(entry["genome"])
        assert len(text.splitlines()) == 7  # brackets + one line per cell


# ---------------------------------------------------------------- canonical form and id


def test_genome_id_is_a_sha256_of_the_canonical_json(published):
    genome = published[1]["genome"]
    # Canonical form written out by hand: cell 0's channel becomes ".", nothing else changes.
    canonical = [[".", 1, genome[0][2]]] + [[c, b, list(al)] for c, b, al in genome[1:]]
    text = json.dumps(canonical, separators=(",", ":"))
    assert G.canonical_json(genome) == text
    assert G.genome_id(genome) == hashlib.sha256(text.encode()).hexdigest()[:16]
    # Stability across versions of this code: the id of published genome 1, computed once.
    assert G.genome_id(genome) == "08f2b0a708fc5bc0"


def test_genome_ids_differ_between_genomes(published):
    ids = {G.genome_id(entry["genome"]) for entry in published}
    ids |= {G.genome_id(g) for g in random_genomes(200, seed=11)}
    assert len(ids) == 210


def test_genome_id_is_the_same_in_every_process(published):
    """The id must not depend on Python's salted hash(): compare processes with other seeds."""
    script = (
        "import json, sys; from minigen.space import genome as G; "
        "gs = json.load(sys.stdin); print(json.dumps([G.genome_id(g) for g in gs]))"
    )
    genomes = json.dumps([entry["genome"] for entry in published])
    expected = [G.genome_id(entry["genome"]) for entry in published]
    for hash_seed in ("0", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", script], input=genomes, capture_output=True, text=True, check=True,
            env=dict(os.environ, PYTHONHASHSEED=hash_seed),
        ).stdout
        assert json.loads(out) == expected


# ---------------------------------------------------------------- random sampling


@pytest.mark.parametrize("space", SPACES, ids=["paper", "small", "no-identity", "all-identity"])
def test_random_genomes_are_valid_and_cover_the_space(space):
    genomes = random_genomes(300, seed=5, space=space)
    input_ops, normal_ops, lengths = set(), set(), set()
    for genome in genomes:
        assert G.parse(genome, space) == genome
        assert [cell[1] for cell in genome[1:]] == list(space.blocks)
        input_ops.update(genome[0][2])
        for cell in genome[1:]:
            normal_ops.update(cell[2])
            lengths.add(len(cell[2]))
    identity = {G.IDENTITY} if space.p_identity > 0 else set()
    assert input_ops == set(G.INPUT_OPS) | identity
    assert normal_ops == set(G.NORMAL_OPS) | identity
    assert lengths == {2, 3, 4}


@pytest.mark.parametrize("p_identity", [0.2, 0.5])
def test_random_action_lists_start_with_identity_at_the_configured_rate(p_identity):
    space = G.Space(p_identity=p_identity)
    genomes = random_genomes(2000, seed=17, space=space)
    lists = [cell[2] for genome in genomes for cell in genome]
    assert_rate(sum(G.has_identity(al) for al in lists), len(lists), p_identity)


def test_the_same_seed_gives_the_same_genome_and_other_seeds_differ():
    for seed in range(20):
        assert G.random_genome(random.Random(seed)) == G.random_genome(random.Random(seed))
    assert len({G.genome_id(G.random_genome(random.Random(seed))) for seed in range(50)}) == 50


# ---------------------------------------------------------------- evolution operators


def children(parents: list, seed: int, rates: G.MutationRates, space: G.Space) -> list:
    rng = random.Random(seed)
    out = []
    for _ in range(len(parents)):
        a, b = rng.sample(parents, 2)
        out.append(G.mutate(G.crossover(a, b, rng), rng, rates, space))
    return out


@pytest.mark.parametrize("space", SPACES, ids=["paper", "small", "no-identity", "all-identity"])
@pytest.mark.parametrize(
    "rates",
    [PAPER_RATES, G.MutationRates(1.0, 1.0, 1.0), G.MutationRates(1.0, 1.0, 0.0), G.MutationRates(0.3, 0.5, 0.2, True)],
    ids=["paper", "all", "all-but-list", "ramp"],
)
def test_mutated_and_crossed_children_stay_valid(space, rates):
    generation = random_genomes(100, seed=23, space=space)
    for _ in range(3):  # three generations of descendants
        generation = children(generation, seed=len(generation), rates=rates, space=space)
        for child in generation:
            assert G.parse(child, space) == child


def test_operators_do_not_touch_their_parents(published):
    a, b = (G.parse(published[i]["genome"]) for i in (0, 1))
    before = json.dumps([a, b])
    rng = random.Random(3)
    for _ in range(50):
        crossed = G.crossover(a, b, rng)
        G.mutate(crossed, rng, G.MutationRates(1.0, 1.0, 0.5))
        for cell in crossed:
            cell[2].append("3*3 conv")  # a crossover child holds copies, not its parents' lists
    assert json.dumps([a, b]) == before


def test_the_same_seed_gives_the_same_children():
    parents = random_genomes(30, seed=1)
    assert children(parents, 99, PAPER_RATES, G.Space()) == children(parents, 99, PAPER_RATES, G.Space())
    assert children(parents, 99, PAPER_RATES, G.Space()) != children(parents, 98, PAPER_RATES, G.Space())


# A mutation always changes what it touches (a reassigned channel or op differs from the
# old one, a regenerated list differs from the old list), so each rate of change below
# equals its configured probability.
def mutate_many(rates: G.MutationRates, count: int = 4000, seed: int = 7, space: G.Space = G.Space()):
    parents = random_genomes(count, seed=seed, space=space)
    rng = random.Random(seed + 1)
    return [(parent, G.mutate(parent, rng, rates, space)) for parent in parents]


def test_channel_mutation_rate():
    pairs = mutate_many(G.MutationRates(p_channel=0.3, p_op=0.5, p_action_list=0.0))
    changed = [c[0] != p[0] for parent, child in pairs for p, c in zip(parent[1:], child[1:])]
    assert_rate(sum(changed), len(changed), 0.3)
    assert all(child[0][0] == "." for _, child in pairs)
    assert all(all(c[1] == p[1] for p, c in zip(parent, child)) for parent, child in pairs)  # blocks kept


def test_op_mutation_rate_and_identity_kept():
    pairs = mutate_many(G.MutationRates(p_channel=0.3, p_op=0.5, p_action_list=0.0))
    changed = []
    for parent, child in pairs:
        for p, c in zip(parent, child):
            assert len(c[2]) == len(p[2])
            assert G.has_identity(c[2]) == G.has_identity(p[2])
            changed += [po != co for po, co in zip(p[2], c[2]) if po != G.IDENTITY]
    assert_rate(sum(changed), len(changed), 0.5)


def test_action_list_mutation_rate():
    pairs = mutate_many(G.MutationRates(p_channel=0.0, p_op=0.0, p_action_list=0.2))
    changed = [c[2] != p[2] for parent, child in pairs for p, c in zip(parent, child)]
    assert_rate(sum(changed), len(changed), 0.2)
    assert all(c[0] == p[0] for parent, child in pairs for p, c in zip(parent, child))


def test_zero_rates_leave_the_genome_unchanged():
    pairs = mutate_many(G.MutationRates(0.0, 0.0, 0.0), count=500)
    assert all(parent == child for parent, child in pairs)


def test_depth_ramp_formula():
    flat = G.MutationRates(0.3, 0.5, 0.2, depth_ramp=False)
    ramp = G.MutationRates(0.3, 0.5, 0.2, depth_ramp=True)
    for i in range(G.N_CELLS):
        assert flat.for_cell(i) == (0.3, 0.5, 0.2)
        # The authors' code: base 0.1 + 0.05 * i/4, times 3, 5 and 2 (= the paper's rates at i=0).
        authors = tuple(k * (0.1 + 0.05 * i / 4) for k in (3, 5, 2))
        assert ramp.for_cell(i) == pytest.approx(authors, abs=1e-12)
    assert ramp.for_cell(4) == pytest.approx((0.45, 0.75, 0.3))
    assert G.MutationRates(0.95, 0.9, 0.95, True).for_cell(4) == (1.0, 1.0, 1.0)


def test_depth_ramp_rates_per_cell():
    rates = G.MutationRates(p_channel=0.3, p_op=0.5, p_action_list=0.2, depth_ramp=True)
    pairs = mutate_many(rates, count=4000)
    for i in range(G.N_CELLS):
        p_channel, p_op, p_action_list = rates.for_cell(i)
        if i > 0:
            assert_rate(sum(child[i][0] != parent[i][0] for parent, child in pairs), len(pairs), p_channel)
        # A list changes when regenerated, or else when any of its k non-identity ops mutates.
        probs = []
        for parent, _ in pairs:
            k = sum(op != G.IDENTITY for op in parent[i][2])
            probs.append(p_action_list + (1 - p_action_list) * (1 - (1 - p_op) ** k))
        assert_count(sum(child[i][2] != parent[i][2] for parent, child in pairs), probs)


def test_crossover_takes_each_cell_from_either_parent_with_probability_one_half():
    space = G.Space(channels=(24, 40))
    a = [[".", 1, ["3*3 conv", "3*3 conv"]]] + [[24, 1, ["3*3 conv", "5*5 conv"]] for _ in range(4)]
    b = [[".", 1, ["identity", "5*5 dconv", "5*5 dconv"]]] + [[40, 1, ["3*3 maxpool", "3*3 avgpool"]] for _ in range(4)]
    G.parse(a, space)
    G.parse(b, space)
    rng = random.Random(13)
    from_a = [0] * G.N_CELLS
    trials = 4000
    for _ in range(trials):
        child = G.crossover(a, b, rng)
        for i, cell in enumerate(child):
            assert cell in (a[i], b[i])
            from_a[i] += cell == a[i]
    for count in from_a:
        assert_rate(count, trials, 0.5)
    assert_rate(sum(from_a), trials * G.N_CELLS, 0.5)


def test_softmax_weights_and_parent_picks():
    weights = G.softmax_weights([0.5, 0.4, 0.1], temperature=1.0)
    exps = [math.exp(f) for f in (0.5, 0.4, 0.1)]
    assert weights == pytest.approx([e / sum(exps) for e in exps])
    assert G.softmax_weights([1000.0, 999.0], 1.0) == pytest.approx([1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))])
    sharp = G.softmax_weights([0.5, 0.4], temperature=0.01)
    assert sharp[0] > 0.9999
    rng = random.Random(5)
    picks = [index for _ in range(3000) for index in G.pick_parents(rng, weights)]
    for index, w in enumerate(weights):
        assert_rate(picks.count(index), len(picks), w)


def test_the_op_order_that_random_draws_index_is_pinned():
    # Reordering these tuples changes every random genome and mutation of a seed.
    assert G.INPUT_OPS == ("3*3 conv", "3*3 dconv", "5*5 conv", "5*5 dconv")
    assert G.NORMAL_OPS == ("1*7-7*1 conv", "3*3 dconv", "3*3 dil conv", "5*5 dconv", "3*3 maxpool",
                            "3*3 conv", "3*3 avgpool", "5*5 conv")
