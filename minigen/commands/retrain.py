"""`minigen retrain INDEX`: train one collected genome on the full data set."""

from __future__ import annotations

import argparse

from . import add_params_option


def register(sub) -> None:
    parser = sub.add_parser(
        "retrain",
        help="train results/genomes/genome_{INDEX}.json on the full training split",
        description="Train one collected genome for retrain.epochs on every training image of "
        "the raw data and score it on every test image. retrain.recipe picks the settings: "
        "'paper' (Adam, lr retrain.lr, batch retrain.batch_size, no augmentation) or 'modern' "
        "(SGD + Nesterov, warm-up then cosine, weight decay, label smoothing, random crop + "
        "flip, bf16 autocast on a GPU). Writes OUT/genome_{INDEX}/metrics.json, curve.csv and "
        "model.safetensors. Each epoch is checkpointed in the user cache (MINIGEN_CACHE_DIR); "
        "running the same command again after a crash resumes where it stopped, with the same "
        "final weights.",
    )
    parser.add_argument("index", type=int, metavar="INDEX", help="which genome_{INDEX}.json to train")
    add_params_option(parser)
    parser.add_argument("--genomes", default="results/genomes", metavar="DIR",
                        help="output of `minigen collect` (default: results/genomes)")
    parser.add_argument("--raw", default="data/raw", metavar="DIR",
                        help="CIFAR-10 python batches, from `minigen download` (default: data/raw)")
    parser.add_argument("--out", default="results/retrain", metavar="DIR",
                        help="output folder; the genome's results go to OUT/genome_{INDEX} "
                        "(default: results/retrain)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import params as P
    from .. import retrain
    from ..errors import UserError

    if args.index < 0:
        raise UserError(f"INDEX must be >= 0, got {args.index}")
    metrics = retrain.retrain(P.load(args.params), args.index, args.genomes, args.raw, args.out)
    print(f"retrain: genome {args.index} test accuracy {metrics['test_accuracy']:.2%} after "
          f"{metrics['epochs']} epochs ({metrics['recipe']} recipe, {metrics['seconds']:.0f} s) "
          f"-> {retrain.output_dir(args.out, args.index)}")
    return 0
