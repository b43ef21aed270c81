"""The CPU backward of the dilated depthwise conv (minigen.model.dilated) against PyTorch's own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from minigen.model import dilated
from minigen.model.ops import DepthwiseConv2d, build_op


def native_and_fast(x, weight, bias, d, grad):
    """Output and (x, weight, bias) gradients of the native conv and of DilatedDepthwiseConv."""
    results = []
    for fast in (False, True):
        leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
        if fast:
            y = dilated.DilatedDepthwiseConv.apply(*leaves, d)
        else:
            y = F.conv2d(leaves[0], leaves[1], leaves[2], 1, d * (weight.shape[-1] // 2), d, x.shape[1])
        y.backward(grad)
        results.append([y.detach()] + [leaf.grad for leaf in leaves])
    return results


@pytest.mark.parametrize("kernel, d, size", [(3, 2, 8), (5, 2, 12), (3, 3, 9), (3, 2, 32)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_same_output_and_gradients_as_the_native_conv(kernel, d, size, memory_format):
    gen = torch.Generator().manual_seed(kernel * 100 + d * 10 + size)
    channels = 6
    x = torch.randn(3, channels, size, size, generator=gen, dtype=torch.float64).contiguous(memory_format=memory_format)
    weight = torch.randn(channels, 1, kernel, kernel, generator=gen, dtype=torch.float64)
    bias = torch.randn(channels, generator=gen, dtype=torch.float64)
    grad = torch.randn(3, channels, size, size, generator=gen, dtype=torch.float64).contiguous(memory_format=memory_format)
    native, fast = native_and_fast(x, weight, bias, d, grad)
    for name, a, b in zip(("output", "grad x", "grad weight", "grad bias"), native, fast):
        assert a.shape == b.shape, name
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12, msg=name)


def test_gradcheck():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 1, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: dilated.DilatedDepthwiseConv.apply(*t, 2), (x, weight, bias))


def test_phases_hold_the_strided_sub_images():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6).contiguous(memory_format=torch.channels_last)
    p = dilated.phases(x, 2)
    assert p.shape == (8, 3, 2, 3) and p.is_contiguous(memory_format=torch.channels_last)
    for i in range(2):
        for j in range(2):
            assert torch.equal(p[(i * 2 + j) * 2 : (i * 2 + j + 1) * 2], x[:, :, i::2, j::2])


def test_dil_conv_op_takes_the_fast_backward_on_the_cpu_only_where_it_applies():
    torch.manual_seed(0)
    op = build_op("3*3 dil conv", 8, 16)
    depthwise = op[0]
    assert isinstance(depthwise, DepthwiseConv2d) and depthwise.dilation == (2, 2)
    assert type(depthwise(torch.randn(2, 8, 8, 8)).grad_fn).__name__ == "DilatedDepthwiseConvBackward"
    # An odd map cannot be split into 2 x 2 phases; undilated depthwise convs never need it.
    assert type(depthwise(torch.randn(2, 8, 9, 9)).grad_fn).__name__ == "ConvolutionBackward0"
    undilated = build_op("3*3 dconv", 8, 16)[0]
    assert type(undilated(torch.randn(2, 8, 8, 8)).grad_fn).__name__ == "ConvolutionBackward0"


def test_fast_backward_trains_the_op_like_the_native_one():
    """One fp32 training step of the whole op: same loss, gradients equal to float rounding."""
    grads = []
    for fast in (True, False):
        torch.manual_seed(0)
        op = build_op("3*3 dil conv", 8, 8).to(memory_format=torch.channels_last)
        x = torch.randn(4, 8, 16, 16).contiguous(memory_format=torch.channels_last)
        if not fast:
            op[0]._conv_forward = lambda inp, w, b, conv=op[0]: torch.nn.Conv2d._conv_forward(conv, inp, w, b)
        op(x).square().mean().backward()
        grads.append([p.grad for p in op.parameters()])
    for fast_grad, native_grad in zip(*grads):
        torch.testing.assert_close(fast_grad, native_grad, rtol=1e-4, atol=1e-6)
