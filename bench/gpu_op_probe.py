"""Which parts of the search space train under bf16 autocast with deterministic kernels?

Runs one forward and backward pass of every op (stride 1, and stride 2 where the input
cell has it) and of the residual input cell (whose skip is a 1x1 stride-2 conv from 3
channels), in channels_last under `make_deterministic("bf16")`: once with the convs that
minigen keeps in fp32 (`minigen.model.ops.Fp32Conv2d`), once with them in bf16 like any other.
Prints one JSON line per case.

    PYTHONPATH=. python3 bench/gpu_op_probe.py [--device cuda] [--channels 40] [--batch 64]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from minigen.training import device as D
from minigen.space import genome as G
from minigen.model import network
from minigen.model import ops


def cases(channels: int):
    """(name, stride, module, input channels) for every op and the residual input cell."""
    for name in G.NORMAL_OPS:
        for stride in (1, 2) if name in G.INPUT_OPS else (1,):
            yield name, stride, ops.build_op(name, channels, channels, stride), channels
    yield "input cell, identity + 3*3 conv x2", 2, network.input_cell([G.IDENTITY, "3*3 conv", "3*3 conv"]), 3


def probe(module: nn.Module, c_in: int, batch: int, device: torch.device) -> str:
    module = module.to(device, memory_format=torch.channels_last)
    x = torch.randn(batch, c_in, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()  # so the pools, which have no weights, have a backward pass too
    try:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            out = module(x)
        out.float().square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return "ok"
    except RuntimeError as exc:
        return f"error: {str(exc).splitlines()[0][:120]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    device = D.resolve(args.device)
    D.make_deterministic("bf16")
    kept_fp32 = ops.Fp32Conv2d.forward
    try:
        for mode in ("minigen (some convs fp32)", "all convs bf16"):
            ops.Fp32Conv2d.forward = kept_fp32 if mode.startswith("minigen") else nn.Conv2d.forward
            for name, stride, module, c_in in cases(args.channels):
                print(json.dumps({"case": name, "stride": stride, "mode": mode, "device": D.kind(device),
                                  "torch": torch.__version__, "result": probe(module, c_in, args.batch, device)}),
                      flush=True)
    finally:
        ops.Fp32Conv2d.forward = kept_fp32


if __name__ == "__main__":
    main()
