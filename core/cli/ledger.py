"""``unstuck ledger``: the ledger (台賬) database, kept by its projector (docs/ledger.md).

``run`` projects the stream into it until stopped, ``rebuild`` empties it and projects the whole
stream again, ``check`` compares every case row with the case replayed from the stream (exit 1 on any
difference), ``status`` shows the position against the stream and the row counts. Exit codes: 0 fine;
1 differences found; 2 a bad argument or setting; 3 no server or no such stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats.js.errors
from nats.aio.client import Client

from unstuck.connection import Connection, data_dir
from unstuck.ledger import DEFAULT_NAME, Ledger, LedgerError, Projector, check
from unstuck.replay import ReplayError, replay

from .common import CliError, config_from
from .replay import EXIT_FINDINGS, EXIT_UNAVAILABLE, server_url

T = TypeVar("T")


def register(sub: Any) -> None:
    p = sub.add_parser("ledger", help="the ledger database: run its projector, rebuild, check, status")
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    actions = (
        ("run", "project the case stream into the ledger until stopped (Ctrl-C, SIGTERM)", run_projector),
        ("rebuild", "empty the ledger and project the whole stream again", run_rebuild),
        ("check", "compare every case row with the case replayed from the stream", run_check),
        ("status", "the ledger's position against the stream, and its row counts", run_status),
    )
    for name, text, func in actions:
        a = lsub.add_parser(name, help=text, description=text)
        add_ledger_args(a)
        if name in ("run", "rebuild"):
            a.add_argument(
                "--batch", type=batch_arg, default=256, help="messages per transaction (default 256)"
            )
        if name == "status":
            a.add_argument("--json", action="store_true", help="the figures as JSON")
        a.set_defaults(func=func)


def batch_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10000:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of messages from 1 to 10000")
    return int(text)


def add_ledger_args(p: Any) -> None:
    p.add_argument(
        "--url", help="the ledger database (default [ledger] url, or ledger.sqlite in the data dir)"
    )
    p.add_argument("--stream", help="the case stream (default [broker] stream)")
    p.add_argument(
        "--name", default=DEFAULT_NAME, help=f"the projection and its consumer (default {DEFAULT_NAME})"
    )
    p.add_argument("--nats", metavar="URL", help="NATS server (default $NATS_URL or the embedded one here)")
    p.add_argument(
        "--data-dir", help="where the embedded server and the ledger keep their data (default .unstuck)"
    )
    p.add_argument(
        "--config", type=Path, help="configuration file (default unstuck.toml, or $UNSTUCK_CONFIG)"
    )


def with_ledger(args: Any, work: Callable[[Client, Ledger, str], Awaitable[T]]) -> T:
    """Open the ledger (migrating it), connect to NATS, run ``work(nc, ledger, stream)``, close both."""
    config = config_from(args)
    settings = config.ledger
    if args.url:
        settings = settings.model_copy(update={"url": args.url})
    stream = args.stream or config.broker.stream
    url = server_url(args)
    try:
        ledger = Ledger.from_config(settings, data_dir(args.data_dir))
    except LedgerError as exc:
        raise CliError(str(exc)) from exc

    async def run() -> T:
        conn = Connection(url=url)
        try:
            nc = await conn.connect("unstuck-ledger", max_reconnect_attempts=-1, allow_reconnect=True)
        except Exception as exc:
            raise CliError(f"cannot connect to NATS at {url}: {exc}", exit_code=EXIT_UNAVAILABLE) from exc
        try:
            try:
                await nc.jetstream().stream_info(stream)
            except nats.js.errors.NotFoundError as exc:
                raise CliError(
                    f"stream {stream} not found: check --stream, [broker] stream and the server",
                    exit_code=EXIT_UNAVAILABLE,
                ) from exc
            return await work(nc, ledger, stream)
        except ReplayError as exc:
            raise CliError(str(exc), exit_code=EXIT_UNAVAILABLE) from exc
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    finally:
        ledger.close()


def run_projector(args: Any) -> int:
    async def work(nc: Client, ledger: Ledger, stream: str) -> None:
        projector = Projector(nc.jetstream(), stream, ledger, args.name, batch=args.batch)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, projector.stop)
        await projector.run()

    with_ledger(args, work)
    return 0


def run_rebuild(args: Any) -> int:
    async def work(nc: Client, ledger: Ledger, stream: str) -> str:
        started = time.perf_counter()
        await ledger.reset(args.name)
        projector = Projector(nc.jetstream(), stream, ledger, args.name, batch=args.batch)
        position = await projector.catch_up()
        seconds = time.perf_counter() - started
        rows = await ledger.row_counts()
        rate = projector.messages / seconds if seconds else 0.0
        rejected = f", {projector.rejected} event(s) not applied (run `unstuck replay --verify`)"
        return (
            f"rebuilt the ledger from {stream} up to message {position}: {projector.messages} message(s), "
            f"{projector.events} event(s), {rows['cases']} case(s), {rows['coordinations']} coordination(s), "
            f"{rows['accountability']} accountability record(s), {rows['ratings']} rating(s) "
            f"in {seconds:.2f}s ({rate:,.0f} messages/s)" + (rejected if projector.rejected else "")
        )

    print(with_ledger(args, work))
    return 0


def run_check(args: Any) -> int:
    async def work(nc: Client, ledger: Ledger, stream: str) -> tuple[list[check.Difference], int, int, int]:
        report = await replay(nc, stream, jobs=1)
        position = await ledger.position(args.name)
        upto = min(position, report.last_stream_seq)
        held = await ledger.run(check.snapshot)
        replayed = {c: t.state for c, t in report.cases.items() if t.last_stream_seq <= upto}
        rows = {c: r for c, r in held.items() if r["last_stream_seq"] <= upto}
        return check.compare(rows, replayed), len(replayed), position, report.last_stream_seq

    differences, compared, position, last = with_ledger(args, work)
    if position < last:
        print(f"the ledger is at message {position} of {last}: cases changed since are not compared")
    for d in differences:
        print(d)
    if differences:
        print(f"{len(differences)} difference(s) between the ledger and the replay of {compared} case(s)")
        return EXIT_FINDINGS
    print(f"the ledger matches the replay: {compared} case(s) compared")
    return 0


def run_status(args: Any) -> int:
    async def work(nc: Client, ledger: Ledger, stream: str) -> dict[str, Any]:
        info = await nc.jetstream().stream_info(stream)
        position = await ledger.position(args.name)
        last = int(info.state.last_seq)
        return {
            "stream": stream,
            "projection": args.name,
            "position": position,
            "stream_last_seq": last,
            "lag": max(last - position, 0),
            "rows": await ledger.row_counts(),
            "totals": await ledger.totals(),
        }

    status = with_ledger(args, work)
    if args.json:
        print(json.dumps(status, ensure_ascii=False, sort_keys=True))
        return 0
    rows = ", ".join(f"{name} {n}" for name, n in status["rows"].items())
    print(
        f"ledger {status['projection']} at message {status['position']} of {status['stream_last_seq']} "
        f"in {status['stream']} (lag {status['lag']})\nrows: {rows}\n"
        f"open cases {status['totals']['open_cases']}, overdue {status['totals']['overdue_cases']}"
    )
    return 0
