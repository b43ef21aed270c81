"""`minigen report`: the paper's Table III and figures from the search and the retrains."""

from __future__ import annotations

import argparse

from minigen.commands import add_folder_option, add_params_option


def register(sub) -> None:
    parser = sub.add_parser(
        "report",
        help="table (md, html, csv), figures (png) and summary metrics of the run",
        description="Join the search, the collected genomes and their retrains (every "
        "genome_{i}, i < collect.top_k, retrained with every seed of retrain.seeds) into OUT/table.md, "
        "table.html and table.csv (the paper's Table III: test accuracy on all test images and on those "
        "the search never saw, mean ± std over seeds, true parameters, FLOPs, accuracy-to-parameter "
        "ratios, mini-set accuracy, sorted by the ratio; the paper's figures beside ours for its "
        "published genomes), OUT/checklist.md (the NAS best-practices checklist, answered by the run), "
        "fig4_generations.png (paper Fig. 4), search_curve.png, "
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
    seeds = f" over {metrics['retrain_seeds']} seeds" if metrics["retrain_seeds"] > 1 else ""
    print(f"report: {metrics['genomes']} genomes, best test accuracy {metrics['best_test_accuracy']:.2%}{seeds} "
          f"(genome {metrics['best_index']}), mean {metrics['mean_test_accuracy']:.2%}, Kendall's tau "
          f"{'n/a' if tau is None else f'{tau:.3f}'} -> {args.out}")
    return 0
