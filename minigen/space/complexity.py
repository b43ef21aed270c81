"""Parameters and forward FLOPs of a genome, from its description alone (no torch).

pycls style: a network's complexity comes from the plain description it is built from
(DESIGN.md section 2), so the cost model prices a genome in microseconds, without
importing torch. Each op is listed as its layers; tests/test_complexity.py holds the
totals equal to `minigen.model.network.complexity`, which counts the built modules.

FLOPs follow `torch.utils.flop_counter`, the reference: 2 per multiply-add of the
convolutions and the linear head; biases, BatchNorm, ReLU, pools, skip additions and the
final mean count nothing. Every feature map is 32x32, the stride-2 input cell's included
(its padding keeps the size), so stride and dilation change no count.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Union

from minigen.space import genome as G

IMAGE_SIZE = 32
INPUT_CHANNELS = (3, 32, 64)  # the input cell's fixed channel flow (as model/network.py)
NUM_CLASSES = 10


class Conv(NamedTuple):
    """A conv with a bias (every conv has one), its output 32x32."""

    c_in: int
    c_out: int
    kh: int
    kw: int
    groups: int = 1

    @property
    def params(self) -> int:
        return self.c_out * (self.c_in // self.groups) * self.kh * self.kw + self.c_out

    @property
    def flops(self) -> int:
        return 2 * (self.params - self.c_out) * IMAGE_SIZE * IMAGE_SIZE


class BatchNorm(NamedTuple):
    """Weight and bias per channel; the running statistics are buffers, not parameters."""

    channels: int

    @property
    def params(self) -> int:
        return 2 * self.channels

    @property
    def flops(self) -> int:
        return 0


class Linear(NamedTuple):
    """The head, on the pooled features: one multiply-add per weight."""

    c_in: int
    c_out: int

    @property
    def params(self) -> int:
        return self.c_in * self.c_out + self.c_out

    @property
    def flops(self) -> int:
        return 2 * self.c_in * self.c_out


Layer = Union[Conv, BatchNorm, Linear]


def _conv(kernel: int) -> Callable[[int, int], list[Layer]]:
    return lambda c_in, c_out: [Conv(c_in, c_out, kernel, kernel), BatchNorm(c_out)]


def _separable(kernel: int) -> Callable[[int, int], list[Layer]]:
    # Depthwise kxk (dilated or not: same weights) -> pointwise 1x1 -> BN.
    return lambda c_in, c_out: [Conv(c_in, c_in, kernel, kernel, groups=c_in), Conv(c_in, c_out, 1, 1),
                                BatchNorm(c_out)]


def _stacked(c_in: int, c_out: int) -> list[Layer]:
    return [Conv(c_in, c_out, 1, 7), BatchNorm(c_out), Conv(c_out, c_out, 7, 1), BatchNorm(c_out)]


def _pool(c_in: int, c_out: int) -> list[Layer]:
    if c_in != c_out:
        raise ValueError(f"a pool keeps the channel count, got {c_in} -> {c_out}")
    return []


# encoding -> layers(c_in, c_out): model/ops.py's OPS registry, counted. A test keeps the keys equal.
OPS: dict[str, Callable[[int, int], list[Layer]]] = {
    "3*3 conv": _conv(3),
    "5*5 conv": _conv(5),
    "3*3 dconv": _separable(3),
    "5*5 dconv": _separable(5),
    "1*7-7*1 conv": _stacked,
    "3*3 dil conv": _separable(3),
    "3*3 maxpool": _pool,
    "3*3 avgpool": _pool,
}


def op_layers(name: str, c_in: int, c_out: int) -> list[Layer]:
    """The layers of one op of an action list (not identity: that is the skip)."""
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}")
    return OPS[name](c_in, c_out)


def _chain(actions: list[str]) -> tuple[bool, list[str]]:
    residual = G.has_identity(actions)
    return residual, (actions[1:] if residual else actions)


def input_cell_layers(actions: list[str]) -> list[Layer]:
    residual, ops = _chain(actions)
    layers = [layer for op, c_in, c_out in zip(ops, INPUT_CHANNELS, INPUT_CHANNELS[1:])
              for layer in op_layers(op, c_in, c_out)]
    if residual:  # the stride-2 identity is a 1x1 conv 3 -> 64, no BN
        layers.append(Conv(INPUT_CHANNELS[0], INPUT_CHANNELS[-1], 1, 1))
    return layers


def normal_cell_layers(c_prev: int, channels: int, blocks: int, actions: list[str]) -> list[Layer]:
    # The opening 1x1 transition conv, then `blocks` copies of the chain (identity adds no layer).
    _, ops = _chain(actions)
    block = [layer for op in ops for layer in op_layers(op, channels, channels)]
    return [Conv(c_prev, channels, 1, 1)] + block * blocks


def cell_layers(genome: G.Genome) -> list[list[Layer]]:
    """The layers of each cell, then the head's: the network of model/network.py, listed."""
    genome = G.parse(genome)
    cells = [input_cell_layers(genome[0][2])]
    c_prev = INPUT_CHANNELS[-1]
    for channels, blocks, actions in genome[1:]:
        cells.append(normal_cell_layers(c_prev, channels, blocks, actions))
        c_prev = channels
    return cells + [[Linear(c_prev, NUM_CLASSES)]]


def params(layers: list[Layer]) -> int:
    return sum(layer.params for layer in layers)


def flops(layers: list[Layer]) -> int:
    return sum(layer.flops for layer in layers)


def complexity(genome: G.Genome) -> dict:
    """True parameter count and forward FLOPs per 32x32 image, as `network.complexity`."""
    layers = [layer for cell in cell_layers(genome) for layer in cell]
    return {"params": params(layers), "flops": flops(layers)}


def cell_summary(genome: G.Genome) -> list[dict]:
    """Per cell: channels, blocks, ops and its parameters, then the head: as `network.cell_summary`."""
    genome = G.parse(genome)
    *cells, head = cell_layers(genome)
    rows = []
    for index, ((channels, blocks, actions), layers) in enumerate(zip(genome, cells)):
        rows.append({"cell": index, "channels": INPUT_CHANNELS[-1] if index == 0 else channels,
                     "blocks": blocks, "actions": actions, "params": params(layers)})
    rows.append({"cell": "head", "channels": NUM_CLASSES, "blocks": 0, "actions": ["linear"],
                 "params": params(head)})
    return rows
