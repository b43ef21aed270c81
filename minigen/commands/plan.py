"""`minigen plan [--gpus N]`: what the current params cost in GPU-hours and wall time."""

from __future__ import annotations

import argparse
import json

from minigen.commands import add_folder_option, add_params_option

ALWAYS = (1, 10)  # card counts every plan shows, besides --gpus


def register(sub) -> None:
    parser = sub.add_parser(
        "plan",
        help="estimate each stage's GPU-hours and the wall time on 1, N and 10 GPUs",
        description="Estimate, before spending them, the GPU-hours of the search and of each "
        "retrain under params.yaml, and the pipeline's wall time on 1, N (--gpus) and 10 cards. "
        "The figures are an NVIDIA H200's, measured in BENCHMARKS.md; a network's time grows "
        "with its FLOPs. The search is priced at its generation 0's networks for one round "
        "(its worst case, all search.max_rounds, is shown too) and spreads over "
        "min(cards, search.workers) cards; retrains run one per card, priced at their collected "
        "genomes when these exist (--genomes), else like the search's networks.",
    )
    parser.add_argument("--gpus", type=int, default=4, metavar="N", help="a card count to plan for (default: 4)")
    add_params_option(parser)
    add_folder_option(parser, "--genomes", "results/genomes", "collected genomes, priced when present")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _duration(seconds: float) -> str:
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(plan: dict, params: dict, gpus: int) -> str:
    search, retrain = plan["search"], plan["retrain"]
    on_gpu = plan["devices"]["retrain"] == "cuda"
    unit, cards = ("GPU-h", "GPUs") if on_gpu else ("core-h", "cores")
    basis = (f"the {retrain['collected']} collected genomes" if retrain["collected"] == retrain["genomes"]
             else f"not collected yet: priced as the search's networks, ~{search['mflop']:,.0f} MFLOP")
    if retrain["seeds"] > 1:
        basis += f", {retrain['seeds']} seeds each"
    lines = [
        f"stage    jobs  {unit:>7}  per job  basis",
        f"search  {1:>5}  {search['hours']:7.1f}  {_duration(search['hours'] * 3600):>7}  "
        f"{search['evaluations']} networks of ~{search['mflop']:,.0f} MFLOP, {search['eval_seconds']:.1f} s each "
        f"(1 round; all {search['rounds']} rounds: {search['worst_hours']:.1f} {unit})",
        f"retrain {retrain['jobs']:>5}  {retrain['hours']:7.1f}  "
        f"{_duration(max(retrain['per_job'], default=0)):>7}  {basis}",
        f"total   {'':>5}  {plan['total_hours']:7.1f}",
        "download, sample, collect and report run on the CPU in minutes and are left out.",
        "",
        f"{cards:>5}  wall time  search  retrains",
    ]
    for n, wall in plan["wall"].items():
        lines.append(f"{n:5d}  {_duration(wall['total']):>9}  {_duration(wall['search']):>6}  "
                     f"{_duration(wall['retrain']):>8}")
    workers = params["search"]["workers"]
    if workers < gpus:
        lines.append(f"search.workers is {workers}, so the search runs on {workers} of the {cards}; "
                     f"search.workers: {gpus} spreads it over {gpus}.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from minigen import settings as P
    from minigen.errors import UserError
    from minigen.training import cost

    if args.gpus < 1:
        raise UserError(f"--gpus must be >= 1, got {args.gpus}")
    params = P.load(args.params)
    gpus = sorted({1, args.gpus, *ALWAYS})
    plan = cost.plan(params, args.genomes, gpus)
    if args.json:
        print(json.dumps(plan, indent=2))
    else:
        print(render(plan, params, args.gpus))
    return 0
