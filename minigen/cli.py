"""`minigen`: one subcommand per pipeline stage, plus tools around them.

Each `minigen/commands/<name>.py` adds its own subcommands through `register`, so a
stage's CLI lives next to nothing but itself. Any `UserError` ends as one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from minigen import __version__
from minigen.errors import UserError

COMMAND_MODULES = ("genome", "data", "search", "evaluate", "collect", "retrain", "report", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigen",
        description="Reproduce the MiniGen evolutionary architecture search on CIFAR-10: "
        "download -> sample -> search -> collect -> retrain -> report.",
    )
    parser.add_argument("--version", action="version", version=f"minigen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module_name = f"minigen.commands.{name}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; a `UserError` ends as one line and exit 2."""
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"minigen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minigen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
