"""`minigen search`: the evolutionary search on the frozen mini set."""

from __future__ import annotations

import argparse

from minigen.commands import add_folder_option, add_params_option


def register(sub) -> None:
    parser = sub.add_parser(
        "search",
        help="run the MiniGen evolution on the frozen mini set",
        description="Evolve genomes on the frozen mini set (params.yaml: seed, space, search): "
        "each genome is trained for search.epochs on the mini train set and scored on the mini "
        "test set (search.strategy random: random search, same space, recipe and files). Writes "
        "history.jsonl, winners.json, generations.csv, evaluations.jsonl, "
        "metrics.json (what defines the result) and cost.json (what the run took). Logs one line "
        "per generation: generation of generations, evaluations, networks trained, an ETA for the "
        "round. Checkpoints after every generation (user cache, MINIGEN_CACHE_DIR moves "
        "it): rerunning after a crash resumes and ends with the same results. Evaluations are "
        "cached by content, so nothing is trained twice.",
    )
    add_params_option(parser)
    add_folder_option(parser, "--mini", "data/mini", "the frozen mini set from `minigen sample`")
    add_folder_option(parser, "--out", "results/search", "output folder, replaced as a whole when the search ends")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minigen import settings as P
    from minigen.stages import search

    metrics = search.run(P.load(args.params), args.mini, args.out)
    print(f"search: {metrics['winners']} winners in {metrics['rounds']} round(s), "
          f"{metrics['generations']} generations, {metrics['evaluations']} genomes evaluated "
          f"({metrics['trained']} trained here, {metrics['failed']} failed) -> {args.out}")
    return 0
