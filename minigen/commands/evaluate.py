"""`minigen evaluate`: score one genome on the frozen mini set with the search's settings."""

from __future__ import annotations

import argparse
import json

from minigen.commands import add_folder_option, add_params_option


def register(sub) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="train and score one genome on the frozen mini set, as the search would",
        description="Train one genome on the frozen mini train set with the search's settings "
        "(params.yaml: seed, search.epochs, batch_size, lr, precision, device) and print its "
        "accuracy on the mini test set. Goes through the search's evaluation cache (user "
        "cache, MINIGEN_CACHE_DIR moves it): a genome already evaluated with the same settings "
        "is not trained again.",
    )
    parser.add_argument("genome", metavar="GENOME_JSON",
                        help="genome file: a list of 5 cells in the authors' format, or an object with a 'genome' key")
    add_params_option(parser)
    add_folder_option(parser, "--mini", "data/mini", "the frozen mini set from `minigen sample`")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (genome_id, accuracy, error, cached, seconds, device)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minigen.training import device as D
    from minigen.space import genome as G
    from minigen.data import mini as M
    from minigen import settings as P
    from minigen.store import atomic, paths
    from minigen.training.evaluator import Evaluator, search_recipe

    params = P.read(args.params)
    genome = G.load(args.genome, G.Space.from_settings(params.space))
    atomic.check_writable(paths.evaluations_dir(), "the evaluation cache")  # before training, not after
    device = D.resolve(params.search.device)
    mini = M.load(args.mini, device)
    with Evaluator(mini, search_recipe(params), device) as evaluator:
        (result,) = evaluator.evaluate([genome])
    if args.json:
        out = {
            "genome_id": result.genome_id, "accuracy": result.accuracy, "error": result.error,
            "cached": result.cached, "seconds": round(result.seconds, 3), "device": D.kind(device),
        }
        print(json.dumps(out, indent=2))
        return 0
    source = "from the cache" if result.cached else f"trained in {result.seconds:.1f} s on {D.kind(device)}"
    print(f"genome {result.genome_id}: accuracy {result.accuracy:.4f} ({source})")
    if result.error is not None:
        print(f"training failed: {result.error}")
    return 0
