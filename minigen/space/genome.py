"""The MiniGen genome: encoding, validation, canonical form, id, sampling, evolution operators.

A genome is 5 cells in the authors' JSON format::

    [[".", 1, al0], [c1, b1, al1], [c2, b2, al2], [c3, b3, al3], [c4, b4, al4]]

Pure Python (no torch), so it is cheap to import and easy to test. Every random choice
takes an explicit `random.Random`, whose stream is fixed across Python versions.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from dataclasses import dataclass
from typing import Any, Sequence

from minigen import settings
from minigen.errors import UserError

IDENTITY = "identity"
# The order of these tuples is part of every result: random genomes and mutations draw an
# index into them. tests/test_genome.py pins it; model/ops.py builds the same names.
INPUT_OPS = ("3*3 conv", "3*3 dconv", "5*5 conv", "5*5 dconv")
NORMAL_OPS = (
    "1*7-7*1 conv",
    "3*3 dconv",
    "3*3 dil conv",
    "5*5 dconv",
    "3*3 maxpool",
    "3*3 conv",
    "3*3 avgpool",
    "5*5 conv",
)
ALL_OPS = (IDENTITY,) + NORMAL_OPS
N_CELLS = 5
# Sane sizes, far above the paper's (256 channels, 1 block, ~1e6 weights): beyond them a
# genome would only exhaust memory or hang while its network is built.
MAX_CHANNELS = 2048
MAX_BLOCKS = 64
MAX_WEIGHT_BOUND = 5 * 10**8
NORMAL_LENGTHS = (2, 3, 4)  # action-list length of a normal cell, a leading identity counted
INPUT_CELL_CHANNEL = "."
# What the authors wrote for the fixed input cell's channel; all mean "not a setting".
INPUT_CELL_CHANNEL_SPELLINGS = (".", None, "inf")

Genome = list  # [[".", 1, [...]], [c, b, [...]], ...] in canonical form


class GenomeError(UserError):
    """A genome that is not in the search space."""


@dataclass(frozen=True)
class Space:
    """The search space: `params.yaml`'s `space` section (the paper's by default)."""

    channels: tuple[int, ...] = tuple(settings.PAPER.space.channels)
    blocks: tuple[int, ...] = tuple(settings.PAPER.space.blocks)
    p_identity: float = settings.PAPER.space.p_identity

    @classmethod
    def from_settings(cls, space: settings.Space) -> "Space":
        return cls(tuple(space.channels), tuple(space.blocks), float(space.p_identity))


@dataclass(frozen=True)
class MutationRates:
    """The `search` section's mutation rates (the paper's by default)."""

    p_channel: float = settings.PAPER.search.p_channel
    p_op: float = settings.PAPER.search.p_op
    p_action_list: float = settings.PAPER.search.p_action_list
    depth_ramp: bool = settings.PAPER.search.depth_ramp

    @classmethod
    def from_settings(cls, search: settings.Search) -> "MutationRates":
        return cls(float(search.p_channel), float(search.p_op), float(search.p_action_list), search.depth_ramp)

    def for_cell(self, index: int) -> tuple[float, float, float]:
        """(p_channel, p_op, p_action_list) for cell `index`.

        The authors' code raised each rate with depth by 0.05 * i/4, times 3, 5 and 2.
        """
        if not self.depth_ramp:
            return self.p_channel, self.p_op, self.p_action_list
        ramp = 0.05 * index / (N_CELLS - 1)
        return (
            min(1.0, self.p_channel + 3 * ramp),
            min(1.0, self.p_op + 5 * ramp),
            min(1.0, self.p_action_list + 2 * ramp),
        )


# ---------------------------------------------------------------- parsing and validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_action_list(index: int, actions: Any) -> list[str]:
    where = f"cell {index}"
    if not isinstance(actions, (list, tuple)) or not all(isinstance(a, str) for a in actions):
        raise GenomeError(f"{where}: the action list must be a list of op names")
    for position, op in enumerate(actions):
        if op not in ALL_OPS:
            raise GenomeError(f"{where}: unknown op {op!r} (known: {', '.join(ALL_OPS)})")
        if op == IDENTITY and position > 0:
            raise GenomeError(f"{where}: 'identity' may only stand first in an action list")
    has_identity = bool(actions) and actions[0] == IDENTITY
    if index == 0:
        wanted = 3 if has_identity else 2
        if len(actions) != wanted:
            raise GenomeError(
                f"cell 0: the input cell's action list has {wanted} entries "
                f"({'identity + 2 ops' if has_identity else '2 ops'}), got {len(actions)}"
            )
        for op in actions[1:] if has_identity else actions:
            if op not in INPUT_OPS:
                raise GenomeError(
                    f"cell 0: op {op!r} is not allowed in the input cell "
                    f"(allowed: identity first, then {', '.join(INPUT_OPS)})"
                )
    elif len(actions) not in NORMAL_LENGTHS:
        raise GenomeError(
            f"{where}: an action list holds 2 to 4 entries (identity counted), got {len(actions)}"
        )
    return list(actions)


def parse(obj: Any, space: Space | None = None) -> Genome:
    """Validate a genome in the authors' format and return its canonical form.

    With `space`, channels must also come from `space.channels` and blocks from
    `space.blocks`. Sizes are bounded either way (`MAX_CHANNELS`, `MAX_BLOCKS`,
    `MAX_WEIGHT_BOUND`), so a hostile genome is refused here, instantly.
    """
    if isinstance(obj, dict) and "genome" in obj:
        obj = obj["genome"]
    if not isinstance(obj, (list, tuple)):
        raise GenomeError("a genome is a list of 5 cells [channels, blocks, action_list]")
    if len(obj) != N_CELLS:
        raise GenomeError(f"a genome has {N_CELLS} cells, got {len(obj)}")
    cells = []
    for index, cell in enumerate(obj):
        if not isinstance(cell, (list, tuple)) or len(cell) != 3:
            raise GenomeError(f"cell {index}: expected [channels, blocks, action_list]")
        channels, blocks, actions = cell
        if index == 0:
            ok = channels in INPUT_CELL_CHANNEL_SPELLINGS or (
                isinstance(channels, (int, float)) and not isinstance(channels, bool)
            )
            if not ok:
                raise GenomeError(f"cell 0: channel must be '.', null, 'inf' or a number, got {channels!r}")
            if blocks != 1 or not _is_int(blocks):
                raise GenomeError(f"cell 0: the input cell has exactly 1 block, got {blocks!r}")
            channels = INPUT_CELL_CHANNEL
        else:
            _check_size(index, channels, blocks, space)
        cells.append([channels, blocks, _check_action_list(index, actions)])
    bound = weight_bound(cells)
    if bound > MAX_WEIGHT_BOUND:
        raise GenomeError(f"the genome is too large to build: up to {bound:.2g} weights "
                          f"(limit {MAX_WEIGHT_BOUND:.0g}; the paper's genomes have about 1e6)")
    return cells


def _check_size(index: int, channels: Any, blocks: Any, space: Space | None) -> None:
    """A normal cell's channels and blocks: positive, sane, and with `space`, in it."""
    if not _is_int(channels) or channels <= 0:
        raise GenomeError(f"cell {index}: channels must be a positive integer, got {channels!r}")
    if channels > MAX_CHANNELS:
        raise GenomeError(f"cell {index}: channels {channels} is beyond the sane maximum of {MAX_CHANNELS}")
    if space is not None and channels not in space.channels:
        raise GenomeError(f"cell {index}: channels {channels} not in the search space {list(space.channels)}")
    if not _is_int(blocks) or blocks <= 0:
        raise GenomeError(f"cell {index}: blocks must be a positive integer, got {blocks!r}")
    if blocks > MAX_BLOCKS:
        raise GenomeError(f"cell {index}: blocks {blocks} is beyond the sane maximum of {MAX_BLOCKS}")
    if space is not None and blocks != space.blocks[index - 1]:
        raise GenomeError(f"cell {index}: blocks {blocks} not in the search space "
                          f"(space.blocks gives cell {index} {space.blocks[index - 1]})")


def weight_bound(cells: Genome) -> int:
    """An upper bound on a canonical genome's weights, as if every op were a 5x5 conv: cheap
    enough to refuse an absurd genome before torch spends minutes and gigabytes building it."""
    total, previous = 0, 64  # the input cell ends at 64 channels
    for channels, blocks, actions in cells[1:]:
        total += previous * channels + blocks * len(actions) * 25 * channels * channels
        previous = channels
    return total


def loads(text: str, space: Space | None = None) -> Genome:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenomeError(f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise GenomeError("nested too deeply to be a genome (a list of 5 cells)") from None
    return parse(obj, space)


def load(path: str, space: Space | None = None) -> Genome:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise GenomeError(f"genome file not found: {path}") from None
    except UnicodeDecodeError:
        raise GenomeError(f"cannot read genome file {path}: not UTF-8 text (save it as UTF-8 JSON)") from None
    except OSError as exc:
        raise GenomeError(f"cannot read genome file {path}: {exc.strerror or exc}") from None
    try:
        return loads(text, space)
    except GenomeError as exc:
        raise GenomeError(f"{path}: {exc}") from None


def canonical_json(genome: Genome) -> str:
    """Compact, key-free JSON of the canonical genome: the bytes the id hashes."""
    return json.dumps(parse(genome), separators=(",", ":"), ensure_ascii=True)


def genome_id(genome: Genome) -> str:
    """A stable content id (sha256 of the canonical JSON, 16 hex digits)."""
    return hashlib.sha256(canonical_json(genome).encode("ascii")).hexdigest()[:16]


def format_authors(genome: Genome) -> str:
    """One cell per line, as the authors printed genomes."""
    lines = [json.dumps(cell) for cell in parse(genome)]
    return "[\n  " + ",\n  ".join(lines) + "\n]"


def has_identity(actions: Sequence[str]) -> bool:
    return bool(actions) and actions[0] == IDENTITY


# ---------------------------------------------------------------- random sampling


def random_action_list(rng: random.Random, index: int, space: Space) -> list[str]:
    identity = rng.random() < space.p_identity
    if index == 0:
        ops = [rng.choice(INPUT_OPS) for _ in range(2)]
    else:
        lengths = [n - 1 for n in NORMAL_LENGTHS] if identity else list(NORMAL_LENGTHS)
        ops = [rng.choice(NORMAL_OPS) for _ in range(rng.choice(lengths))]
    return [IDENTITY] + ops if identity else ops


def random_cell(rng: random.Random, index: int, space: Space) -> list:
    if index == 0:
        return [INPUT_CELL_CHANNEL, 1, random_action_list(rng, 0, space)]
    channels = rng.choice(space.channels)
    return [channels, space.blocks[index - 1], random_action_list(rng, index, space)]


def random_genome(rng: random.Random, space: Space = Space()) -> Genome:
    return [random_cell(rng, index, space) for index in range(N_CELLS)]


# ---------------------------------------------------------------- evolution operators


def crossover(a: Genome, b: Genome, rng: random.Random) -> Genome:
    """Each cell copied whole from either parent with probability 1/2."""
    return [copy.deepcopy(ca if rng.random() < 0.5 else cb) for ca, cb in zip(a, b)]


def _other(rng: random.Random, options: Sequence, current) -> Any:
    """A uniform choice among the options other than `current`: a mutation always changes."""
    others = [o for o in options if o != current]
    return rng.choice(others) if others else current


def mutate(genome: Genome, rng: random.Random, rates: MutationRates, space: Space = Space()) -> Genome:
    """Per cell: the channel with p_channel, then the whole action list with p_action_list,
    else each op with p_op. A leading identity stays unless the list is regenerated."""
    child = copy.deepcopy(genome)
    for index, cell in enumerate(child):
        p_channel, p_op, p_action_list = rates.for_cell(index)
        if index > 0 and rng.random() < p_channel:
            cell[0] = _other(rng, space.channels, cell[0])
        if rng.random() < p_action_list:
            old = cell[2]
            new = random_action_list(rng, index, space)
            while new == old:  # regenerate until it differs, so the rate is what changes
                new = random_action_list(rng, index, space)
            cell[2] = new
            continue
        options = INPUT_OPS if index == 0 else NORMAL_OPS
        for position, op in enumerate(cell[2]):
            if op != IDENTITY and rng.random() < p_op:
                cell[2][position] = _other(rng, options, op)
    return child


def softmax_weights(fitness: Sequence[float], temperature: float) -> list[float]:
    """softmax(fitness / temperature), computed stably."""
    scaled = [f / temperature for f in fitness]
    top = max(scaled)
    exps = [math.exp(s - top) for s in scaled]
    total = sum(exps)
    return [e / total for e in exps]


def pick_parents(rng: random.Random, weights: Sequence[float]) -> tuple[int, int]:
    """Two parent indices drawn independently with the given weights."""
    first = rng.choices(range(len(weights)), weights=weights)[0]
    second = rng.choices(range(len(weights)), weights=weights)[0]
    return first, second
