"""The torch-free complexity (space/complexity.py) equals what torch counts on the built network."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from minigen.model import network as N
from minigen.model import ops
from minigen.space import complexity as C
from minigen.space import genome as G

DEEP_SPACE = G.Space(channels=(8, 24, 40), blocks=(2, 3, 1, 4), p_identity=0.5)


def assert_same(genome) -> None:
    assert C.complexity(genome) == N.complexity(genome), genome


def test_registry_and_constants_match_the_model():
    assert set(C.OPS) == set(ops.OPS)
    assert (C.INPUT_CHANNELS, C.NUM_CLASSES, C.IMAGE_SIZE) == (N.INPUT_CHANNELS, N.NUM_CLASSES, N.IMAGE_SIZE)


def test_published_genomes(published):
    for entry in published:
        assert_same(entry["genome"])
        assert C.cell_summary(entry["genome"]) == N.cell_summary(entry["genome"])


# torch's counter takes about 0.3 s a genome on a CPU core: 300 genomes take this test a minute or two.
@pytest.mark.parametrize("space, count, seed", [(G.Space(), 200, 0), (DEEP_SPACE, 100, 1)])
def test_random_genomes(space, count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        assert_same(G.random_genome(rng, space))


def test_every_op_in_both_cells():
    # Each op at every position, so no op hides behind the random draws.
    for op in G.NORMAL_OPS:
        assert_same([[".", 1, ["identity", "3*3 dconv", "5*5 conv"]], [24, 2, [op, op]], [40, 1, ["identity", op]],
                     [64, 1, [op, "3*3 conv", op]], [128, 3, ["identity", op, op, op]]])
    for first in G.INPUT_OPS:
        for second in G.INPUT_OPS:
            for actions in ([first, second], ["identity", first, second]):
                assert_same([[".", 1, actions], [24, 1, ["3*3 conv", "3*3 maxpool"]], [40, 1, ["3*3 avgpool", "3*3 conv"]],
                             [64, 1, ["5*5 conv", "3*3 conv"]], [80, 1, ["3*3 conv", "3*3 conv"]]])


def test_refuses_what_the_network_refuses():
    with pytest.raises(ValueError):
        C.op_layers("3*3 maxpool", 8, 16)
    with pytest.raises(ValueError):
        C.op_layers(G.IDENTITY, 8, 8)
    with pytest.raises(G.GenomeError):
        C.complexity([[".", 1, ["3*3 conv"]]])


def test_pricing_imports_no_torch():
    code = ("import sys, json; from minigen.training import cost; from minigen.space import complexity; "
            "cost.mflop(json.loads(open(cost.PUBLISHED).read())['genomes'][1]['genome']); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
