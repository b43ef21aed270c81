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


def add_folder_option(parser: argparse.ArgumentParser, flag: str, default: str, what: str) -> None:
    """A folder argument (`--out`, `--raw`, ... or a positional name) whose help ends in its default."""
    optional = {} if flag.startswith("-") else {"nargs": "?"}  # a positional folder may be left out
    parser.add_argument(flag, default=default, metavar="DIR", help=f"{what} (default: {default})", **optional)


def add_action_group(sub, name: str, help: str, description: str) -> argparse._SubParsersAction:
    """`minigen NAME ACTION ...`: a command whose ACTION is required."""
    parser = sub.add_parser(name, help=help, description=description)
    actions = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION")
    actions.required = True
    return actions
