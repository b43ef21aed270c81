"""`minigen retrain INDEX`: train one collected genome on the full data set."""

from __future__ import annotations

import argparse

from minigen.commands import add_folder_option, add_params_option


def register(sub) -> None:
    parser = sub.add_parser(
        "retrain",
        help="train results/genomes/genome_{INDEX}.json on the full training split",
        description="Train one collected genome for retrain.epochs, with one seed of "
        "retrain.seeds, on every training image of the raw data and score it on every test "
        "image, and on the test images the search never saw (all but the mini set's). "
        "retrain.recipe picks the settings: "
        "'paper' (Adam, lr retrain.lr, batch retrain.batch_size, no augmentation) or 'modern' "
        "(SGD + Nesterov, warm-up then cosine, weight decay, label smoothing, random crop + "
        "flip, bf16 autocast on a GPU). Writes OUT/genome_{INDEX}/seed_{SEED}/metrics.json, curve.csv (also "
        "in dvclive's layout, dvclive/), model.safetensors and cost.json (seconds, where it ran). "
        "Logs one line per epoch with an ETA. Each epoch is checkpointed in the user cache "
        "(MINIGEN_CACHE_DIR); "
        "running the same command again after a crash resumes where it stopped, with the same "
        "final weights.",
    )
    parser.add_argument("index", type=int, metavar="INDEX", help="which genome_{INDEX}.json to train")
    # A job's coordinates, as INDEX: which of retrain.seeds (the setting is in params.yaml).
    parser.add_argument("seed", type=int, nargs="?", default=None, metavar="SEED",
                        help="one of retrain.seeds (default: the first): initial weights, shuffles, augmentation")
    add_params_option(parser)
    add_folder_option(parser, "--genomes", "results/genomes", "output of `minigen collect`")
    add_folder_option(parser, "--raw", "data/raw", "CIFAR-10 python batches, from `minigen download`")
    add_folder_option(parser, "--mini", "data/mini", "the frozen mini set, from `minigen sample`: its test "
                      "images are left out of clean_test_accuracy")
    add_folder_option(parser, "--out", "results/retrain",
                      "output folder; the genome's results go to OUT/genome_{INDEX}/seed_{SEED}")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minigen import settings as P
    from minigen.stages import retrain
    from minigen.store import formats
    from minigen.errors import UserError

    if args.index < 0:
        raise UserError(f"INDEX must be >= 0, got {args.index}")
    metrics = retrain.retrain(P.load(args.params), args.index, args.genomes, args.raw, args.out,
                              seed=args.seed, mini_dir=args.mini)
    clean = metrics["clean_test_accuracy"]
    print(f"retrain: genome {args.index} seed {metrics['seed']} test accuracy {metrics['test_accuracy']:.2%} "
          f"({'—' if clean is None else f'{clean:.2%}'} on the {metrics['clean_test_images']:,} unseen) after "
          f"{metrics['epochs']} epochs ({metrics['recipe']} recipe, {metrics['seconds']:.0f} s) "
          f"-> {formats.retrain_dir(args.out, args.index, metrics['seed'])}")
    return 0
