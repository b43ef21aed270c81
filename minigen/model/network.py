"""Build a PyTorch network from a genome, and measure its size from the same description."""

from __future__ import annotations

import copy

import torch
from torch import nn

from minigen.space import genome as G
from minigen.model.ops import STRIDE2_PAD, Fp32Conv2d, build_op

INPUT_CHANNELS = (3, 32, 64)  # the input cell's fixed channel flow
NUM_CLASSES = 10
IMAGE_SIZE = 32


class Block(nn.Module):
    """An action list as a chain; a leading identity makes it ReLU(chain(x) + skip(x))."""

    def __init__(self, chain: nn.Sequential, skip: nn.Module | None):
        super().__init__()
        self.chain = chain
        self.skip = skip
        self.relu = nn.ReLU(inplace=True) if skip is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.chain(x)
        if self.skip is not None:
            out = self.relu(out + self.skip(x))
        return out


def input_cell(actions: list[str]) -> Block:
    residual = G.has_identity(actions)
    ops = actions[1:] if residual else actions
    chain = nn.Sequential(
        *(build_op(op, c_in, c_out, stride=2) for op, c_in, c_out in zip(ops, INPUT_CHANNELS, INPUT_CHANNELS[1:]))
    )
    skip = None
    if residual:
        # The stride-2 identity is a 1x1 conv (no BN), padded to keep 32x32.
        skip = Fp32Conv2d(INPUT_CHANNELS[0], INPUT_CHANNELS[-1], 1, stride=2, padding=STRIDE2_PAD, bias=True)
    return Block(chain, skip)


def normal_block(actions: list[str], channels: int) -> Block:
    residual = G.has_identity(actions)
    ops = actions[1:] if residual else actions
    chain = nn.Sequential(*(build_op(op, channels, channels) for op in ops))
    return Block(chain, nn.Identity() if residual else None)


class MiniGenNet(nn.Module):
    def __init__(self, genome: G.Genome):
        super().__init__()
        genome = G.parse(genome)
        cells: list[nn.Module] = [input_cell(genome[0][2])]
        c_prev = INPUT_CHANNELS[-1]
        for channels, blocks, actions in genome[1:]:
            # Each normal cell opens with a 1x1 conv to its width (bias, no BN/ReLU).
            layers = [nn.Conv2d(c_prev, channels, 1, bias=True)]
            layers += [normal_block(actions, channels) for _ in range(blocks)]
            cells.append(nn.Sequential(*layers))
            c_prev = channels
        self.cells = nn.Sequential(*cells)
        self.classifier = nn.Linear(c_prev, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cells(x)
        # Global average pool as a mean: AdaptiveAvgPool2d's CUDA backward is not deterministic.
        return self.classifier(x.mean((2, 3)))


def build(genome: G.Genome) -> MiniGenNet:
    return MiniGenNet(genome)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module) -> int:
    """Forward FLOPs for one 32x32 image (2 per multiply-add), by torch's FLOP counter.

    The counter needs shapes only, so it runs a copy on the meta device: no arithmetic,
    and `model` (its device, mode and BatchNorm statistics) stays untouched.
    """
    from torch.utils.flop_counter import FlopCounterMode

    shadow = copy.deepcopy(model).to("meta").eval()
    x = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        shadow(x)
    return int(counter.get_total_flops())


def _shape_only(genome: G.Genome) -> MiniGenNet:
    """The network on the meta device: sizes without memory or initialisation."""
    with torch.device("meta"):
        return build(genome)


def complexity(genome: G.Genome) -> dict:
    """Parameters and forward FLOPs of a genome, computed from its shapes alone."""
    model = _shape_only(genome)
    return {"params": count_params(model), "flops": count_flops(model)}


def cell_summary(genome: G.Genome) -> list[dict]:
    """Per cell: channels, blocks, ops and its share of the parameters."""
    model = _shape_only(genome)
    rows = []
    for index, (cell, module) in enumerate(zip(G.parse(genome), model.cells)):
        channels = INPUT_CHANNELS[-1] if index == 0 else cell[0]
        rows.append(
            {
                "cell": index,
                "channels": channels,
                "blocks": cell[1],
                "actions": cell[2],
                "params": count_params(module),
            }
        )
    rows.append({"cell": "head", "channels": NUM_CLASSES, "blocks": 0, "actions": ["linear"],
                 "params": count_params(model.classifier)})
    return rows
