"""`minigen study search|retrain|report`: the paper's claims measured over arms x seeds."""

from __future__ import annotations

import argparse

from minigen.commands import add_action_group, add_folder_option, add_params_option

ARMS_ROOT = "results/study/arms"


def _arm_and_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arm", metavar="ARM", help="an arm of study.arms")
    parser.add_argument("seed", type=int, metavar="SEED", help="a seed of study.seeds")
    add_params_option(parser)


def register(sub) -> None:
    actions = add_action_group(
        sub, "study", help="arms x seeds of searches and retrains, and a report comparing them",
        description="The study in params.yaml's `study` section: for each arm (overrides of the "
        "space, search and retrain settings) and each seed, a search on the mini set and a retrain of "
        "its best genome for study.retrain_epochs; then a report of every arm against "
        "study.reference (mean +- std over seeds, Mann-Whitney U tests). `snakemake study` or "
        "`dvc repro study/dvc.yaml` runs it all.")
    search = actions.add_parser(
        "search", help="one arm x seed's search, and its best genome",
        description="Search with arm ARM's settings and seed SEED: writes OUT/ARM/seed_SEED/search/ "
        "(as `minigen search`, resumable, sharing the evaluation cache) and genomes/genome_0.json, "
        "the genome with the best mini-set accuracy. A random arm without search.budget evaluates as "
        "many networks as the reference arm's search of the same seed, which must have run.")
    _arm_and_seed(search)
    add_folder_option(search, "--mini", "data/mini", "the frozen mini set from `minigen sample`")
    add_folder_option(search, "--out", ARMS_ROOT, "the arms' folder")
    search.set_defaults(func=run_search)
    retrain = actions.add_parser(
        "retrain", help="retrain one arm x seed's best genome on the full data",
        description="Retrain OUT/ARM/seed_SEED/genomes/genome_0.json for study.retrain_epochs with "
        "retrain.recipe (the arm's overrides applied) and seed SEED, into "
        "OUT/ARM/seed_SEED/retrain/genome_0/seed_SEED/ (as `minigen retrain`, resumable per epoch).")
    _arm_and_seed(retrain)
    add_folder_option(retrain, "--raw", "data/raw", "CIFAR-10 python batches, from `minigen download`")
    add_folder_option(retrain, "--mini", "data/mini", "the frozen mini set: its test images are left out of "
                      "clean_test_accuracy")
    add_folder_option(retrain, "--out", ARMS_ROOT, "the arms' folder")
    retrain.set_defaults(func=run_retrain)
    report = actions.add_parser(
        "report", help="compare the arms: table, figures, metrics",
        description="Read every arm x seed under ARMS and write OUT/table.md, table.csv, runs.csv, "
        "curves.csv, fig3_generations.png, accuracy_by_arm.png and metrics.json.")
    add_params_option(report)
    add_folder_option(report, "--arms", ARMS_ROOT, "the arms' folder")
    add_folder_option(report, "--out", "results/study/report", "output folder")
    report.set_defaults(func=run_report)


def run_search(args: argparse.Namespace) -> int:
    from minigen import settings as P
    from minigen.stages import study

    done = study.search(P.load(args.params), args.arm, args.seed, args.mini, args.out)
    print(f"study search: {args.arm} seed {args.seed}: {done['evaluations']} networks evaluated "
          f"({done['trained']} trained here), best mini-set accuracy {done['best_accuracy']:.2%} -> {args.out}")
    return 0


def run_retrain(args: argparse.Namespace) -> int:
    from minigen import settings as P
    from minigen.stages import study

    done = study.retrain(P.load(args.params), args.arm, args.seed, args.raw, args.out, args.mini)
    print(f"study retrain: {args.arm} seed {args.seed}: test accuracy {done['test_accuracy']:.2%} "
          f"after {done['epochs']} epochs -> {args.out}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from minigen import settings as P
    from minigen.stages import study_report

    metrics = study_report.report(P.load(args.params), args.arms, args.out)
    print(f"study report: {len(metrics['arms'])} arms x {metrics['seeds']} seeds -> {args.out}")
    return 0
