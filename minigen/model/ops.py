"""The nine ops of the paper's Table I as PyTorch modules (DESIGN.md section 2).

Every op but identity and the pools ends in BatchNorm + ReLU; every conv has a bias,
as in the authors' code. The ReLUs run in place: the same values, one activation less
held per op (BatchNorm's backward needs its input, not its output). `stride=2` builds
the input cell's variants, whose paddings keep the 32x32 feature map.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from minigen.model import dilated
from minigen.space.genome import IDENTITY, INPUT_OPS

# Stride-2 padding that keeps 32x32: out = floor((32 + 2p - k) / 2) + 1 = 32 for p = 16 + k//2.
STRIDE2_PAD = 16


def _pad(kernel: int, stride: int) -> int:
    return kernel // 2 + (STRIDE2_PAD if stride == 2 else 0)


def conv_bn_relu(c_in: int, c_out: int, kernel, stride: int = 1, padding=None) -> nn.Sequential:
    if padding is None:
        padding = _pad(kernel, stride)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=True),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Fp32Conv2d(nn.Conv2d):
    """A conv that stays fp32 under bf16 autocast, for convs whose bf16 kernels fail.

    Used for the depthwise convs (oneDNN's bf16 weight gradient of a dilated one reads
    uninitialised memory on the CPU; they are memory-bound, so fp32 costs little) and for
    the input cell's 1x1 stride-2 skip (cuDNN has no deterministic bf16 engine for its
    3-channel, 16-padded weight gradient: "unable to find an engine", torch 2.11, H200).
    The convs around them still run in bf16.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (FLOP counting runs on the meta device, which has no autocast to ask about.)
        if x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(device_type=x.device.type, enabled=False):
                return super().forward(x.float())
        return super().forward(x)


class DepthwiseConv2d(Fp32Conv2d):
    """The depthwise conv of the separable ops: fp32 under autocast, and when dilated,
    on the CPU, with `minigen.model.dilated`'s backward (oneDNN's is 6x slower than the forward)."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if dilated.has_fast_backward(self, x):
            return dilated.DilatedDepthwiseConv.apply(x, weight, bias, self.dilation[0])
        return super()._conv_forward(x, weight, bias)


def separable(c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Depthwise kxk (groups=c_in) -> pointwise 1x1 -> BN -> ReLU."""
    padding = dilation * (kernel // 2) + (STRIDE2_PAD if stride == 2 else 0)
    return nn.Sequential(
        DepthwiseConv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in, bias=True),
        nn.Conv2d(c_in, c_out, 1, bias=True),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _pool(pool: type[nn.Module], **options):
    def build(c_in: int, c_out: int, stride: int) -> nn.Module:
        if c_in != c_out:  # a pool keeps the channel count
            raise ValueError(f"a pool keeps the channel count, got {c_in} -> {c_out}")
        return pool(3, stride=1, padding=1, **options)
    return build


def _conv_1x7_7x1(c_in: int, c_out: int, stride: int) -> nn.Module:
    return nn.Sequential(
        conv_bn_relu(c_in, c_out, (1, 7), padding=(0, 3)),
        conv_bn_relu(c_out, c_out, (7, 1), padding=(3, 0)),
    )


# The op registry: encoding -> builder(c_in, c_out, stride). DESIGN.md section 2 in code;
# the genome space (space/genome.py) names the same ops, a test keeps the two equal.
OPS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "3*3 conv": lambda c_in, c_out, stride: conv_bn_relu(c_in, c_out, 3, stride),
    "5*5 conv": lambda c_in, c_out, stride: conv_bn_relu(c_in, c_out, 5, stride),
    "3*3 dconv": lambda c_in, c_out, stride: separable(c_in, c_out, 3, stride),
    "5*5 dconv": lambda c_in, c_out, stride: separable(c_in, c_out, 5, stride),
    "1*7-7*1 conv": _conv_1x7_7x1,
    "3*3 dil conv": lambda c_in, c_out, stride: separable(c_in, c_out, 3, dilation=2),
    "3*3 maxpool": _pool(nn.MaxPool2d),
    "3*3 avgpool": _pool(nn.AvgPool2d, count_include_pad=True),
}


def build_op(name: str, c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    """One op of the action list. Pools keep the channel count, so need c_in == c_out."""
    if name == IDENTITY:
        raise ValueError("identity is a skip connection, not an op of the chain")
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}")
    if stride != 1 and name not in INPUT_OPS:
        raise ValueError(f"op {name!r} has no stride-2 form (input cell ops: convs and dconvs)")
    return OPS[name](c_in, c_out, stride)
