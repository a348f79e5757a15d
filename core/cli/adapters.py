"""``unstuck adapters run|list``: serve installed department adapters, see what is installed and live."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import nats.errors

from unstuck.adapters.host import AdapterHost
from unstuck.adapters.registry import discover
from unstuck.plugins.loading import LoadReport
from unstuck.runtime import Connection, NoServer, data_dir, require_server

from .common import CliError, add_connection_args, print_json, table


def register(sub: Any) -> None:
    p = sub.add_parser("adapters", help="department adapters")
    s = p.add_subparsers(dest="adapters_command", metavar="ACTION", required=True)
    r = s.add_parser("run", help="serve installed adapters on the bus until Ctrl-C")
    r.add_argument(
        "codes", nargs="*", metavar="CODE", help="department codes (default: every installed adapter)"
    )
    r.add_argument("--concurrency", type=int, default=32, help="requests handled at once per department")
    r.add_argument("--nats", help="NATS URL (default $NATS_URL or the embedded server here)")
    add_connection_args(r)
    r.set_defaults(func=run_adapters)
    ls = s.add_parser("list", help="installed adapters; --live: departments answering on the bus")
    ls.add_argument("--live", action="store_true", help="ask $SRV.PING/$SRV.STATS on the bus")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--nats", help="NATS URL for --live")
    add_connection_args(ls)
    ls.set_defaults(func=run_list)


def _url(args: Any) -> str:
    if getattr(args, "nats", None):
        return str(args.nats)
    try:
        return require_server(data_dir(args.data_dir))
    except NoServer as exc:
        raise CliError(str(exc), exit_code=3) from exc


def select(codes: list[str], report: LoadReport) -> list[Any]:
    found = discover(report)
    if not codes:
        return list(found.values())
    missing = [c for c in codes if c not in found]
    if missing:
        broken = "; ".join(f"{k}: {v}" for k, v in report.broken.items())
        raise CliError(
            f"no installed adapter for {', '.join(missing)}; installed: {', '.join(sorted(found)) or 'none'}"
            + (f"; broken: {broken}" if broken else "")
        )
    return [found[c] for c in codes]


def run_adapters(args: Any) -> int:
    report = LoadReport()
    chosen = select(args.codes, report)
    for name, problem in report.broken.items():
        print(f"adapter {name} not loaded: {problem}")
    if not chosen:
        raise CliError("no adapters to serve")
    url = _url(args)

    async def serve() -> None:
        conn = Connection(url=url)
        nc = await conn.connect("unstuck-adapters")
        host = AdapterHost(nc, chosen, concurrency=args.concurrency)
        await host.start()
        print(f"serving {', '.join(a.department.code for a in chosen)} on {url}; Ctrl-C stops", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await host.stop()
        await conn.close()

    asyncio.run(serve())
    return 0


async def live(url: str) -> list[dict[str, Any]]:
    conn = Connection(url=url)
    nc = await conn.connect("unstuck-adapters-list", allow_reconnect=False)
    found: dict[str, dict[str, Any]] = {}
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$SRV.STATS", b"", reply=inbox)
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                break
            stats = json.loads(msg.data)
            if not str(stats.get("name", "")).startswith("unstuck-"):
                continue
            code = (stats.get("metadata") or {}).get("department", stats["name"].removeprefix("unstuck-"))
            row = found.setdefault(
                code,
                {
                    "department": code,
                    "instances": 0,
                    "requests": 0,
                    "errors": 0,
                    "name": (stats.get("metadata") or {}).get("name", ""),
                    "version": stats.get("version"),
                },
            )
            row["instances"] += 1
            for ep in stats.get("endpoints") or []:
                row["requests"] += int(ep.get("num_requests", 0))
                data = ep.get("data") or {}
                row["errors"] += (
                    int(ep.get("num_errors", 0)) + int(data.get("failed", 0)) + int(data.get("malformed", 0))
                )
    finally:
        await conn.close()
    return sorted(found.values(), key=lambda r: r["department"])


def run_list(args: Any) -> int:
    report = LoadReport()
    found = discover(report)
    installed = [
        {
            "department": code,
            "name": a.department.name,
            "entry_point": a.name,
            "matters": a.department.matters,
        }
        for code, a in sorted(found.items())
    ]
    result: dict[str, Any] = {"installed": installed, "broken": report.broken, "skipped": report.skipped}
    if args.live:
        result["live"] = asyncio.run(live(_url(args)))
    if args.json:
        print_json(result)
        return 0
    print(
        table(
            ["department", "name", "entry point", "matters"],
            [[r["department"], r["name"], r["entry_point"], ", ".join(r["matters"])] for r in installed],
        )
    )
    for name, problem in report.broken.items():
        print(f"broken: {name}: {problem}")
    if args.live:
        print()
        print(
            table(
                ["live department", "name", "instances", "requests", "errors", "version"],
                [
                    [r["department"], r["name"], r["instances"], r["requests"], r["errors"], r["version"]]
                    for r in result["live"]
                ],
                right=[2, 3, 4],
            )
            if result["live"]
            else "no department answers on the bus"
        )
    return 0
