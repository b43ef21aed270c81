"""`minigen collect`: the search's genomes to retrain, one file each."""

from __future__ import annotations

import argparse

from minigen.commands import add_folder_option, add_params_option


def register(sub) -> None:
    parser = sub.add_parser(
        "collect",
        help="pick collect.top_k genomes from the search for retraining",
        description="Write genome_{i}.json for i < collect.top_k: the search's winners in the "
        "order found, then, if there are fewer, the best other evaluated genomes by mini-set "
        "accuracy (failed evaluations excluded; ties go to the one evaluated first). Each file "
        "says its source ('winner' or 'best_other') and holds the genome's search record. "
        "Stale genome_{j}.json with j >= top_k are removed.",
    )
    add_params_option(parser)
    add_folder_option(parser, "--search", "results/search", "output of `minigen search`")
    add_folder_option(parser, "--out", "results/genomes", "output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minigen.stages import collect
    from minigen import settings as P

    picks = collect.collect(P.load(args.params)["collect"]["top_k"], args.search, args.out)
    winners = sum(1 for p in picks if p["source"] == collect.WINNER)
    print(f"collect: {len(picks)} genomes ({winners} winners, {len(picks) - winners} best others) -> {args.out}")
    return 0
