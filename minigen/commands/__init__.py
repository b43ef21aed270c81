"""Subcommands of the `minigen` CLI; each module has `register(subparsers)`."""

from __future__ import annotations

import argparse


def add_params_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params",
        default="params.yaml",
        metavar="PATH",
        help="settings file (default: params.yaml in the working directory)",
    )
