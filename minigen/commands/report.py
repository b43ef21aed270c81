"""`minigen report`: the paper's Table III and figures from the search and the retrains."""

from __future__ import annotations

import argparse

from minigen.commands import add_folder_option, add_params_option


def register(sub) -> None:
    parser = sub.add_parser(
        "report",
        help="table (md, html, csv), figures (png) and summary metrics of the run",
        description="Join the search, the collected genomes and their retrains (every "
        "genome_{i}, i < collect.top_k, must be retrained) into OUT/table.md, table.html and table.csv "
        "(the paper's Table III: test accuracy, true parameters, FLOPs, accuracy-to-parameter "
        "ratio, mini-set accuracy, sorted by the ratio; the paper's figures beside ours for its "
        "published genomes), OUT/fig4_generations.png (paper Fig. 4), search_curve.png, "
        "mini_vs_full.png (with Kendall's tau; its data in mini_vs_full.csv), retrain_curves.png, "
        "metrics.json (mean and best test accuracy, Kendall's tau "
        "between mini-set and full accuracy) and best_model.safetensors (the best genome's weights).",
    )
    add_params_option(parser)
    add_folder_option(parser, "--search", "results/search", "output of `minigen search`")
    add_folder_option(parser, "--genomes", "results/genomes", "output of `minigen collect`")
    add_folder_option(parser, "--retrain", "results/retrain", "outputs of `minigen retrain`")
    add_folder_option(parser, "--out", "results/report", "output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minigen import settings as P
    from minigen.stages import report

    metrics = report.report(P.load(args.params), args.search, args.genomes, args.retrain, args.out)
    tau = metrics["kendall_tau"]
    print(f"report: {metrics['genomes']} genomes, best test accuracy {metrics['best_test_accuracy']:.2%} "
          f"(genome {metrics['best_index']}), mean {metrics['mean_test_accuracy']:.2%}, Kendall's tau "
          f"{'n/a' if tau is None else f'{tau:.3f}'} -> {args.out}")
    return 0
