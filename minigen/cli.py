"""`minigen`: one subcommand per pipeline stage, plus tools around them.

Each `minigen/commands/<name>.py` adds its own subcommands through `register`, so a
stage's CLI lives next to nothing but itself. The one rule for failures: what a user
can cause and fix (a `UserError`, a full or read-only disk) ends as one line on stderr
and exit code 2; anything else is a bug of ours and ends in a traceback and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from minigen import __version__
from minigen import log as messages
from minigen.errors import UserError
from minigen.store import atomic

COMMAND_MODULES = ("genome", "data", "search", "evaluate", "collect", "retrain", "report", "study", "bench", "plan")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigen",
        description="Reproduce the MiniGen evolutionary architecture search on CIFAR-10: "
        "download -> sample -> search -> collect -> retrain -> report.",
    )
    parser.add_argument("--version", action="version", version=f"minigen {__version__}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="count", default=0, help="more detail in the messages on stderr")
    loudness.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module_name = f"minigen.commands.{name}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(sub)
    return parser


def one_line(message: str) -> str:
    """A refusal is one line, whatever a library put in the message."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; a `UserError` ends as one line and exit 2."""
    args = parser.parse_args(argv)
    messages.setup(-1 if getattr(args, "quiet", False) else getattr(args, "verbose", 0))
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader gone shows here, in the handler below, not at exit
        return code
    except BrokenPipeError:
        # `minigen genome random | head -2`: the reader stopped reading, which is no error.
        # Quiet, as `cat` is; stdout goes to /dev/null so the exit's flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command a closed pipe stopped
    except UserError as exc:

        print(f"minigen: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # the writers convert these; this catches any a reader or library let through
        if exc.errno not in atomic.USER_WRITE_ERRNOS:  # a full or read-only disk: the user's to fix
            raise  # a bug: traceback and exit 1
        print(f"minigen: error: {exc.filename or 'a file'}: {exc.strerror} "
              "(free space or fix permissions, then rerun)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minigen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
