"""The ``unstuck`` command line: one module per group of commands, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from unstuck import __version__

from . import (
    adapters,
    audit,
    calendar,
    case,
    console,
    ledger,
    notify,
    portal,
    replay,
    reset,
    schemas,
    security,
    serve,
    status,
)
from .common import ApiCallError, CliError
from .display import add_display_args, language

MODULES = [
    serve,
    replay,
    audit,
    case,
    adapters,
    status,
    ledger,
    calendar,
    schemas,
    security,
    reset,
    console,
    notify,
    portal,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unstuck",
        description="Coordination bus for the 辦不成事 window: cases, departments, deadlines, audit.",
    )
    parser.add_argument("--version", action="version", version=f"unstuck {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    add_display_args(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in MODULES:
        module.register(sub)
    for command in leaves(parser):  # so `unstuck case show X --lang en` works as well
        add_display_args(command)
    return parser


def leaves(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of the commands that run something (those without commands of their own)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        return [parser]
    found: dict[int, argparse.ArgumentParser] = {}
    for group in groups:
        for child in group.choices.values():
            for leaf in leaves(child):
                found.setdefault(id(leaf), leaf)
    return list(found.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    lang = "zh"
    try:
        lang = language(args)
        return int(args.func(args) or 0)
    except ApiCallError as exc:
        print(exc.text(lang), file=sys.stderr)
        return exc.exit_code
    except CliError as exc:
        print(f"unstuck: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `unstuck case list | head`: the reader has gone, nothing more to say
        sys.stderr.close()
        return 0
    except Exception as exc:  # never a traceback for the user; -vv logs it for whoever debugs
        logging.getLogger("unstuck.cli").debug("unexpected failure", exc_info=exc)
        print(unexpected(exc), file=sys.stderr)
        return 3 if _is_connection_trouble(exc) else 2


def _is_connection_trouble(exc: BaseException) -> bool:
    import nats.errors

    return isinstance(exc, nats.errors.Error | OSError | TimeoutError)


def unexpected(exc: BaseException) -> str:
    """One line for a failure no command expected: what it was, and how to see more."""
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if "permissions violation" in text.lower() or "authorization" in text.lower():
        hint = "these credentials may not do this (see docs/security.md for what each principal may do)"
    elif _is_connection_trouble(exc):
        hint = "NATS or the broker did not answer as expected: check `unstuck status`"
    else:
        hint = "check the command's arguments (`--help`); -vv logs the details"
    return f"unstuck: {what}; {hint}"


if __name__ == "__main__":
    sys.exit(main())
