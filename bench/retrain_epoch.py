"""One retrain epoch on full-size random data, timed: what 340 epochs would cost.

Trains a genome (default: the paper's published index-1 genome) for one epoch on N random
(3, 32, 32) uint8 images with `minigen retrain`'s recipe and loop (`retrain.make_recipe`,
`train.fit` with the per-epoch test pass on 10,000 images), after an untimed warm-up on
two batches (CUDA start-up, kernel loading). Prints one JSON object.

    python bench/retrain_epoch.py --device cuda --images 50000 --recipe paper
    python bench/retrain_epoch.py --device cpu --images 500 --recipe modern
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

import torch  # noqa: E402

from minigen.training import benchmark as B  # noqa: E402
from minigen.training import device as D  # noqa: E402
from minigen.space import genome as G  # noqa: E402
from minigen.reporting import paper_facts  # noqa: E402
from minigen import settings as P  # noqa: E402
from minigen.stages import retrain as R  # noqa: E402
from minigen.training import loop as T  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--images", type=int, default=50_000, help="training images (default: 50000)")
    parser.add_argument("--test-images", type=int, default=10_000, help="test images (default: 10000)")
    parser.add_argument("--recipe", choices=R.RECIPES, default="paper")
    parser.add_argument("--genome", help="genome JSON (default: the paper's published index 1)")
    parser.add_argument("--project-epochs", type=int, default=340, help="epochs to project to (default: 340)")
    args = parser.parse_args()

    device = D.resolve(args.device)
    genome = G.load(args.genome) if args.genome else paper_facts.published()[1]["genome"]
    params = P.load(None)
    params["retrain"]["recipe"] = args.recipe
    recipe = R.make_recipe(params, device)
    train, test = B.random_splits(args.images, args.test_images, seed=0)
    train, test = train.to(device), test.to(device)

    warm = T.Split(train.x[: 2 * recipe.batch_size], train.y[: 2 * recipe.batch_size])
    T.fit(T.build_seeded(genome, recipe.seed, device), warm, warm, T.Recipe(**{**recipe.as_dict(), "epochs": 1}))

    model = T.build_seeded(genome, recipe.seed, device)
    epoch_seconds = []
    B.sync(device)
    started = time.perf_counter()

    def on_epoch(epoch: int, row: dict, state: dict) -> None:
        B.sync(device)
        epoch_seconds.append(time.perf_counter() - started)

    T.fit(model, train, test, T.Recipe(**{**recipe.as_dict(), "epochs": 1}), on_epoch=on_epoch)
    seconds = epoch_seconds[0]
    print(json.dumps({
        "genome_id": G.genome_id(genome),
        "recipe": args.recipe,
        "precision": recipe.precision,
        "batch_size": recipe.batch_size,
        "images": args.images,
        "test_images": args.test_images,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "seconds_per_epoch": round(seconds, 3),
        "images_per_second": round(args.images / seconds, 1),
        "projected_epochs": args.project_epochs,
        "projected_seconds": round(seconds * args.project_epochs, 1),
        "projected_hours": round(seconds * args.project_epochs / 3600, 2),
        "torch": str(torch.__version__),
        "date": datetime.date.today().isoformat(),
    }, indent=2))


if __name__ == "__main__":
    main()
