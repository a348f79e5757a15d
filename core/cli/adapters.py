"""``unstuck adapters run|list|check|new``: serve installed department adapters, see what is installed
and live, check a running adapter from outside, and scaffold a new adapter package."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import nats.errors

from unstuck.adapters.host import AdapterHost
from unstuck.adapters.registry import discover
from unstuck.connection import Connection, NoServer, data_dir, require_server
from unstuck.natsconfig import credential_from_env, department_principal, local_credential
from unstuck.plugins.loading import LoadReport
from unstuck.texttable import table

from .common import CliError, add_connection_args, config_from, print_json


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
    c = s.add_parser(
        "check", help="conformance check of a running adapter, from outside (exit 1 on any failure)"
    )
    c.add_argument("code", metavar="CODE", help="the department code the adapter answers for")
    c.add_argument("--nats", help="NATS URL (default $NATS_URL or the embedded server here)")
    c.add_argument(
        "--timeout",
        type=float,
        help="reply timeout in seconds (default the department's retry policy in the configuration)",
    )
    c.add_argument("--json", action="store_true")
    add_connection_args(c)
    c.set_defaults(func=run_check)
    n = s.add_parser("new", help="write an installable adapter package for a new department")
    n.add_argument("code", metavar="CODE", help="department code: lowercase ASCII, e.g. zhujian")
    n.add_argument("--name", required=True, help="the department's name, e.g. 住房和城鄉建設局")
    n.add_argument("--dir", type=Path, help="where to write the package (default ./unstuck-adapter-CODE)")
    n.add_argument(
        "--force",
        action="store_true",
        help="write even when the code is answered by an installed adapter, the package name is "
        "installed or the directory is not empty",
    )
    n.set_defaults(func=run_new)


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

    # credentials: the environment's for all, else each department's own from the data directory
    given = credential_from_env()
    directory = data_dir(args.data_dir)
    own = {
        a.department.code: local_credential(directory, department_principal(a.department.code), None)
        for a in chosen
    }

    async def serve() -> None:
        conn = Connection(url=url)
        hosts = []
        if given is None and all(own.values()):  # a bus with authorisation: one connection per department
            for adapter in chosen:
                code = adapter.department.code
                nc = await conn.connect(f"unstuck-adapter-{code}", auth=own[code])
                hosts.append(AdapterHost(nc, [adapter], concurrency=args.concurrency))
        else:
            nc = await conn.connect("unstuck-adapters", auth=given)
            hosts.append(AdapterHost(nc, chosen, concurrency=args.concurrency))
        for host in hosts:
            await host.start()
        print(f"serving {', '.join(a.department.code for a in chosen)} on {url}; Ctrl-C stops", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for host in hosts:
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
            if not msg.data:  # the server's 503 "no responders" status: nobody serves $SRV
                continue
            try:
                stats = json.loads(msg.data)
            except ValueError:
                continue
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
                # error replies: NATS micro counts them itself in some clients (nats.js), in others
                # only the adapter's own counters do (the Python host); never count one twice
                own = int(data.get("failed", 0)) + int(data.get("malformed", 0))
                row["errors"] += max(int(ep.get("num_errors", 0)), own)
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


def run_check(args: Any) -> int:
    import re

    from unstuck.conformance import check_adapter, render
    from unstuck.schemas.common import DEPARTMENT_CODE_PATTERN

    if not re.match(DEPARTMENT_CODE_PATTERN, args.code):
        raise CliError(f"CODE {args.code!r} is not a department code: use lowercase ASCII such as zhujian")
    timeout = (
        args.timeout
        if args.timeout is not None
        else config_from(args).retry_policy(args.code).timeout_seconds
    )
    url = _url(args)

    async def check() -> Any:
        conn = Connection(url=url)
        try:
            nc = await conn.connect("unstuck-adapters-check", allow_reconnect=False)
        except Exception as exc:
            raise CliError(f"cannot connect to NATS at {url}: {exc}", exit_code=3) from exc
        try:
            return await check_adapter(nc, args.code, timeout, url)
        finally:
            await conn.close()

    report = asyncio.run(check())
    if args.json:
        print_json(report.as_dict())
    else:
        print(render(report))
    return 0 if report.passed else 1


def run_new(args: Any) -> int:
    from unstuck.scaffold import ScaffoldError, write_package

    target = args.dir or Path(f"unstuck-adapter-{args.code}")
    try:
        written = write_package(args.code, args.name, target, force=args.force)
    except ScaffoldError as exc:
        raise CliError(str(exc)) from exc
    for conflict in written.overridden:
        print(f"warning: written anyway (--force): {conflict}", file=sys.stderr)
    print(f"wrote {len(written.files)} files to {target}/ for {args.name} ({args.code}). Next:")
    print(f"  pip install -e {target}")
    print(f"  python -m pytest {target}")
    print(f"  unstuck adapters run {args.code}        # then, in another shell:")
    print(f"  unstuck adapters check {args.code}")
    return 0
