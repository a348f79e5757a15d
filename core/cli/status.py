"""``unstuck status``: which department stalls, since when, how badly."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from .common import add_connection_args, call, print_json, seconds, table, with_client


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="departments ranked worst first, from the live broker")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", type=float, nargs="?", const=2.0, help="refresh every N seconds (default 2)")
    add_connection_args(p)
    p.set_defaults(func=run_status)


def render(status: dict[str, Any]) -> str:
    rows = []
    for d in status["departments"]:
        rows.append(
            [
                d["department"],
                d["name"],
                "STALLED" if d["stalled"] else "",
                d["pending"],
                seconds(d["oldest_pending_seconds"]),
                seconds(d["p95_seconds"]),
                f"{d['retry_rate'] * 100:.0f}%",
                d["timeouts"],
                d["errors"],
                seconds(d["last_good_reply_seconds_ago"])
                + (" ago" if d["last_good_reply_seconds_ago"] else ""),
            ]
        )
    out = table(
        [
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
        ],
        rows,
        right=[3, 4, 5, 6, 7, 8],
    )
    return out + f"\n\nopen cases {status['open_cases']}   overdue cases {status['overdue_cases']}"


def run_status(args: Any) -> int:
    if args.json and not args.watch:
        print_json(with_client(args, lambda nc: call(nc, "status", {})))
        return 0

    async def loop(nc: Any) -> None:
        while True:
            status = await call(nc, "status", {})
            text = render(status) if not args.json else json.dumps(status, ensure_ascii=False)
            if args.watch and sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            print(text, flush=True)
            if not args.watch:
                return
            await asyncio.sleep(args.watch)

    with_client(args, loop)
    return 0
