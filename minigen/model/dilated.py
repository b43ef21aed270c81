"""A faster CPU backward for the dilated depthwise conv (the `3*3 dil conv` op's first layer).

oneDNN's own backward of a depthwise conv with dilation 2 takes 6x its forward on the CPU
(torch 2.14.1, one thread, 64 x 256 x 32 x 32: 374 ms against 58 ms; BENCHMARKS.md),
while the same arithmetic posed as a forward conv or an undilated conv runs at forward
speed. With stride 1 and padding d * (k // 2) on both sides:

- the input gradient is the forward conv of the output gradient with the kernel flipped;
- the weight gradient is the undilated conv's weight gradient over the d x d phase images
  ("space to batch"): an output pixel of phase (i, j) reads only input pixels of that phase.

Both are the same sums of the same products as oneDNN's backward; only the order of the
float additions differs. The GPU keeps the native backward (not measured there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def phases(x: torch.Tensor, d: int) -> torch.Tensor:
    """(N, C, H, W) -> (d * d * N, C, H / d, W / d), phase (i, j) being x[..., i::d, j::d].

    One copy, done on the channels-last view so that whole pixels (C floats) move at once;
    the result is channels_last.
    """
    n, c, h, w = x.shape
    pixels = x.permute(0, 2, 3, 1).reshape(n, h // d, d, w // d, d, c)
    grouped = pixels.permute(2, 4, 0, 1, 3, 5).contiguous()
    return grouped.reshape(d * d * n, h // d, w // d, c).permute(0, 3, 1, 2)


def has_fast_backward(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether `conv` on `x` is a stride-1, same-padded, dilated depthwise conv on the CPU."""
    d = conv.dilation[0]
    k = conv.kernel_size[0]
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and x.dim() == 4
        and d > 1
        and conv.dilation == (d, d)
        and conv.kernel_size == (k, k)
        and k % 2 == 1
        and conv.stride == (1, 1)
        and conv.padding == (d * (k // 2), d * (k // 2))
        and conv.padding_mode == "zeros"
        and conv.groups == conv.in_channels == conv.out_channels
        and x.shape[2] % d == 0
        and x.shape[3] % d == 0
    )


class DilatedDepthwiseConv(torch.autograd.Function):
    """conv2d(x, weight, bias, stride 1, padding d * (k // 2), dilation d, groups C)."""

    @staticmethod
    def forward(ctx, x, weight, bias, dilation: int):
        ctx.save_for_backward(x, weight)
        ctx.dilation = dilation
        k = weight.shape[-1]
        return F.conv2d(x, weight, bias, 1, dilation * (k // 2), dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        d = ctx.dilation
        channels, k = x.shape[1], weight.shape[-1]
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            # Weight gradient first: its phase copies are freed before grad_x is allocated.
            _, grad_weight, _ = torch.ops.aten.convolution_backward(
                phases(grad, d), phases(x, d), weight, None,
                [1, 1], [k // 2, k // 2], [1, 1], False, [0, 0], channels, [False, True, False],
            )
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight.flip(2, 3), None, 1, d * (k // 2), d, channels)
        if ctx.needs_input_grad[2]:  # False when there is no bias
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias, None
