"""Where the GPU time of one evaluation goes: the published index-1 genome trained on
1000 random images with the search's loop, under memory format x precision x
deterministic kernels. Prints one JSON line per variant (seconds per epoch, after a
warm-up epoch) so the defaults can be chosen from measurement.

    PYTHONPATH=. python3 bench/gpu_variants.py [--epochs 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from minigen.training import benchmark as B
from minigen.training import device as D
from minigen.reporting import paper_facts
from minigen.training import loop as T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--genome", type=int, default=1, help="published genome index")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    genome = paper_facts.published()[args.genome]["genome"]
    device = D.resolve(args.device)
    train, test = B.random_splits(args.images, 100, seed=0)
    train, test = train.to(device), test.to(device)
    deterministic_setup = D.make_deterministic
    for fmt_name, fmt in (("channels_last", torch.channels_last), ("nchw", torch.contiguous_format)):
        for deterministic in (True, False):
            for precision in ("fp32", "tf32", "bf16"):
                T.MEMORY_FORMAT = fmt

                def setup(prec, deterministic=deterministic):
                    deterministic_setup(prec)
                    if not deterministic:
                        torch.use_deterministic_algorithms(False)
                        torch.backends.cudnn.deterministic = False
                        torch.backends.cudnn.benchmark = True

                D.make_deterministic = setup
                T.train_genome(genome, train, test, T.Recipe(epochs=1, precision=precision))  # warm-up
                B.sync(device)
                start = time.perf_counter()
                result = T.train_genome(genome, train, test, T.Recipe(epochs=args.epochs, precision=precision))
                seconds = time.perf_counter() - start
                print(json.dumps({
                    "genome": args.genome, "format": fmt_name, "deterministic": deterministic,
                    "precision": precision, "seconds_per_epoch": round(seconds / args.epochs, 4),
                    "projected_20_epochs": round(20 * seconds / args.epochs, 2),
                    "accuracy": result.test_accuracy, "device": D.kind(device),
                }), flush=True)
    D.make_deterministic = deterministic_setup


if __name__ == "__main__":
    main()
