"""The authors' training loop, rebuilt from the paper and DESIGN.md, as a speed baseline.

What makes it the authors' loop (and slow): the whole training set as one NCHW float
tensor, a fresh `DataLoader(TensorDataset, shuffle=True, batch_size=64)` and a fresh
Adam every epoch, a head of AdaptiveAvgPool2d -> Linear -> Softmax fed to
CrossEntropyLoss, a `loss.item()` host sync every step, and the default
(non-deterministic, unfilled) PyTorch settings, and plain `nn.Conv2d` convs (native
backward). The network is otherwise minigen's.
It is a timing baseline only: the squashed-softmax head is a known deviation we do not
train with.

    python bench/original_loop.py --genome G.json --train-images 200 --epochs 2 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from minigen import settings as P  # noqa: E402
from minigen.training import benchmark as B  # noqa: E402
from minigen.space import genome as G  # noqa: E402
from minigen.model import network  # noqa: E402


def plain_convs(module: nn.Module) -> nn.Module:
    """The authors' convs are all plain `nn.Conv2d`: drop minigen's conv subclasses (fp32
    under autocast, `minigen.model.dilated`'s CPU backward); the parameters stay as they are."""
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d):
            conv.__class__ = nn.Conv2d
    return module


class AuthorsNet(nn.Module):
    """minigen's cells (plain convs), then the authors' AdaptiveAvgPool2d -> Linear -> Softmax."""

    def __init__(self, genome):
        super().__init__()
        body = network.build(genome)
        self.cells = plain_convs(body.cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(body.classifier, nn.Softmax(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.cells(x)), 1))


def to_float_nchw(x_uint8: torch.Tensor) -> torch.Tensor:
    """ToTensor() + Normalize((0.5,)*3, (0.5,)*3), done once for the whole set."""
    return (x_uint8.float() / 255.0 - 0.5) / 0.5


def train_authors(genome, train_x, train_y, test_x, test_y, epochs: int,
                  batch_size: int = P.PAPER.search.batch_size, lr: float = P.PAPER.search.lr,
                  seed: int = P.PAPER.seed) -> float:
    torch.manual_seed(seed)
    net = AuthorsNet(genome)
    criterion = nn.CrossEntropyLoss()
    dataset = TensorDataset(to_float_nchw(train_x), train_y)
    for _ in range(epochs):
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)  # rebuilt every epoch
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)  # so is Adam
        net.train()
        running_loss = 0.0
        for inputs, labels in loader:
            optimizer.zero_grad()
            loss = criterion(net(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    net.eval()
    correct = 0
    with torch.no_grad():
        loader = DataLoader(TensorDataset(to_float_nchw(test_x), test_y), batch_size=batch_size)
        for inputs, labels in loader:
            correct += (net(inputs).argmax(1) == labels).sum().item()
    return correct / len(test_y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time the authors' training loop (baseline for `minigen bench eval`).")
    parser.add_argument("--genome", required=True, help="genome JSON file")
    parser.add_argument("--train-images", type=int, default=200)
    parser.add_argument("--test-images", type=int, default=B.DEFAULT_TEST_IMAGES)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=P.PAPER.seed)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    genome = G.load(args.genome)
    train, test = B.random_splits(args.train_images, args.test_images, args.seed)
    started = time.perf_counter()
    accuracy = train_authors(genome, train.x, train.y, test.x, test.y, args.epochs, args.batch_size, seed=args.seed)
    seconds = time.perf_counter() - started
    result = {
        "loop": "original",
        **B.throughput(genome, args.train_images, args.epochs, seconds),
        "test_accuracy": accuracy,
        "device": B.device_name(torch.device("cpu")),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(B.format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
