"""`minigen genome info|random`: inspect a genome, or draw one from the search space."""

from __future__ import annotations

import argparse
import json
import os
import random

from minigen.space import complexity
from minigen.space import genome as G
from minigen import settings as P
from minigen.commands import add_action_group, add_params_option


def register(sub) -> None:
    actions = add_action_group(sub, "genome", "inspect or sample genomes", "Inspect or sample genomes.")

    info = actions.add_parser(
        "info",
        help="parameters, FLOPs and a per-cell summary of a genome file",
        description="Print the true parameter count, the forward FLOPs per 32x32 image "
        "(2 per multiply-add) and a per-cell summary of a genome in the authors' JSON format.",
    )
    info.add_argument("file", help="genome JSON: a list of 5 cells, or an object with a 'genome' key")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=run_info)

    rand = actions.add_parser(
        "random",
        help="print a random genome from the search space",
        description="Print a random genome from params.yaml's `space` section, in the authors' format.",
    )
    rand.add_argument("--seed", type=int, default=None, help="seed (default: params.yaml's seed)")
    add_params_option(rand)
    rand.set_defaults(func=run_random)


def run_info(args: argparse.Namespace) -> int:
    genome = G.load(args.file)
    # Counted from the description (no torch); tests/test_complexity.py holds it equal to torch's count.
    size = complexity.complexity(genome)
    cells = complexity.cell_summary(genome)
    if args.json:
        out = {"genome": genome, "genome_id": G.genome_id(genome), **size, "cells": cells}
        print(json.dumps(out, indent=2))
        return 0
    print(f"genome {G.genome_id(genome)}")
    print(f"parameters  {size['params']:,}")
    print(f"FLOPs       {size['flops']:,} per 32x32 image (forward, 2 per multiply-add)")
    for row in cells:
        print(f"  cell {row['cell']!s:>4}  c={row['channels']:<4} b={row['blocks']}  "
              f"params={row['params']:>9,}  {', '.join(row['actions'])}")
    return 0


def run_random(args: argparse.Namespace) -> int:
    # Outside a project (no params.yaml here) the paper's search space applies.
    use_defaults = args.params == "params.yaml" and not os.path.exists(args.params)
    params = P.read(None if use_defaults else args.params)
    seed = params.seed if args.seed is None else args.seed
    print(G.format_authors(G.random_genome(random.Random(seed), G.Space.from_settings(params.space))))
    return 0
