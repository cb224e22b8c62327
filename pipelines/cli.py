"""The `srgan` command: one CLI, one subcommand per job, each in pipelines/commands/."""

from __future__ import annotations

import argparse
import logging
import sys

from pipelines.commands import demo, evaluate, export, prepare, serve, submit, train, upscale
from srgan import UserError

# Errors that mean "the user's input is wrong": printed as one line, exit code 2.
USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, NotADirectoryError)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srgan", description="SRGAN super-resolution on Ray.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (demo, prepare, train, evaluate, export, serve, upscale, submit):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args) or 0
    except USER_ERRORS as e:
        if args.verbose:
            raise
        print(f"srgan {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
