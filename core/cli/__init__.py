"""The ``unstuck`` command line: one module per group of commands, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from unstuck import __version__

from . import adapters, audit, calendar, case, ledger, replay, schemas, security, serve, status
from .common import CliError

MODULES = [serve, replay, audit, case, adapters, status, ledger, calendar, schemas, security]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unstuck",
        description="Coordination bus for the 辦不成事 window: cases, departments, deadlines, audit.",
    )
    parser.add_argument("--version", action="version", version=f"unstuck {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"unstuck: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
