"""``unstuck status``: which department stalls, since when, how badly.

The broker answers ``unstuck.api.status`` with departments already ranked worst first; this module
only draws them. docs/operations.md explains every column.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from unstuck.texttable import seconds, table

from .common import CliError, add_connection_args, call, print_json, with_client
from .display import display

HEADERS = (
    "department",
    "name",
    "stalled",
    "pending",
    "oldest",
    "p95",
    "retries",
    "timeouts",
    "errors",
    "last good reply",
)
# ANSI: cursor home, erase to the end of the line, erase to the end of the screen, clear the screen
HOME, ERASE_LINE, ERASE_BELOW, CLEAR = "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[2J"


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="departments ranked worst first, from the live broker")
    p.add_argument("--json", action="store_true", help="the broker's answer as JSON (one line per refresh)")
    p.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="refresh in place every SECONDS (default 2) until Ctrl-C",
    )
    p.add_argument("-n", "--iterations", type=int, metavar="N", help="with --watch: stop after N refreshes")
    add_connection_args(p)
    p.set_defaults(func=run_status)


def render(status: dict[str, Any]) -> str:
    """The departments table and the case counts, as the operator reads them."""
    rows = []
    for d in status["departments"]:
        ago = d["last_good_reply_seconds_ago"]
        rows.append(
            [
                d["department"],
                d["name"],
                f"STALLED {d['stalled']}" if d["stalled"] else "",
                d["pending"],
                seconds(d["oldest_pending_seconds"]),
                seconds(d["p95_seconds"]),
                f"{d['retry_rate'] * 100:.0f}%",
                d["timeouts"],
                d["errors"],
                "never" if ago is None else f"{seconds(ago)} ago",
            ]
        )
    out = table(HEADERS, rows, right=[3, 4, 5, 6, 7, 8, 9])
    by_category = status.get("overdue_by_category") or {}
    detail = f" ({', '.join(f'{c} {n}' for c, n in by_category.items())})" if by_category else ""
    warnings = "".join(f"\nwarning: {w}" for w in status.get("warnings") or [])
    return f"{out}\n\nopen cases {status['open_cases']}   overdue cases {status['overdue_cases']}{detail}{warnings}"


def frame(text: str, first: bool) -> str:
    """One refresh for a terminal: overwrite the previous one in place instead of scrolling."""
    lines = text.split("\n")
    return (CLEAR if first else "") + HOME + "".join(line + ERASE_LINE + "\n" for line in lines) + ERASE_BELOW


def run_status(args: Any) -> int:
    if args.iterations is not None and args.iterations < 1:
        raise CliError(f"--iterations {args.iterations}: give a number of refreshes of 1 or more")
    if args.watch is not None and args.watch <= 0:
        raise CliError(f"--watch {args.watch}: give a refresh interval in seconds above 0, e.g. --watch 2")
    if args.watch is None:
        status = with_client(args, lambda nc: call(nc, "status", {}))
        if args.json:
            print_json(status)
        else:
            print(render(status))
        return 0
    try:
        when = display(args).time
        with_client(args, lambda nc: watch(nc, args.watch, args.json, args.iterations, sys.stdout, when))
    except KeyboardInterrupt:
        pass
    return 0


async def watch(
    nc: Any,
    interval: float,
    as_json: bool,
    iterations: int | None,
    out: TextIO,
    when: Callable[[Any], str] = str,
) -> None:
    """Ask the broker every ``interval`` seconds; a terminal sees one table refreshed in place, headed
    by the broker's time as ``when`` writes it."""
    in_place = out.isatty() and not as_json
    shown = 0
    while iterations is None or shown < iterations:
        try:
            status = await call(nc, "status", {})
            if as_json:
                text = json.dumps(status, ensure_ascii=False, sort_keys=True)
            else:
                text = f"unstuck status   {when(status['at'])}   every {interval:g}s, Ctrl-C stops\n\n{render(status)}"
        except CliError as exc:
            if as_json:
                raise
            text = f"unstuck status   the broker does not answer: {exc}"
        if in_place:
            out.write(frame(text, first=shown == 0))
        else:
            out.write(text + ("\n" if as_json else "\n\n"))
        out.flush()
        shown += 1
        if iterations is None or shown < iterations:
            await asyncio.sleep(interval)
