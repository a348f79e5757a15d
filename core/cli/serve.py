"""``unstuck serve`` and ``unstuck demo``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from unstuck.bus import Bus
from unstuck.clock import SystemClock
from unstuck.connection import data_dir
from unstuck.embedded import NatsStartError
from unstuck.natsconfig import SecurityConfigError, secure_hint

from .common import CliError, add_connection_args, config_from

SECURE_HELP = (
    "require NATS users and permissions, also from a server given by NATS_URL (the default for the "
    "embedded server: <data dir>/nats-server.conf and credentials generated if missing; docs/security.md)"
)
INSECURE_HELP = "run the embedded server with no authentication: anyone on this machine may read and act"
INSECURE_WARNING = (
    "unstuck: WARNING: --insecure: the embedded NATS server has no users; anyone who can reach it reads "
    "every case (id and phone numbers included) and acts under any name (auth: claimed in the record)"
)


def add_security_args(parser: Any) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--secure", action="store_true", help=SECURE_HELP)
    group.add_argument("--insecure", action="store_true", help=INSECURE_HELP)


def secure_mode(args: Any) -> bool:
    """Authorisation on unless ``--insecure``; with NATS_URL (an outside server, which brings its own
    users) only when ``--secure`` asks for it. ``--insecure`` says so loudly."""
    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr, flush=True)
        return False
    return bool(args.secure or not os.environ.get("NATS_URL"))


def register(sub: Any) -> None:
    d = sub.add_parser(
        "demo", help="the main job: embedded NATS, broker, three departments, 13 scripted cases"
    )
    d.add_argument(
        "--keep-running", action="store_true", help="keep the bus up after the script until Ctrl-C"
    )
    d.add_argument("--metrics-address", help="HOST:PORT for /metrics (default broker.metrics_address)")
    add_security_args(d)
    add_connection_args(
        d,
        data_dir_help="the demo's own data directory, cleared at the start of every run "
        "(default .unstuck-demo; never the one `unstuck serve` uses)",
    )
    d.set_defaults(func=run_demo)
    s = sub.add_parser("serve", help="run the broker (and the embedded NATS server unless NATS_URL is set)")
    s.add_argument(
        "--adapters", nargs="*", metavar="CODE", help="also serve these installed adapters (none: all)"
    )
    s.add_argument("--metrics-address", help="HOST:PORT for /metrics (default broker.metrics_address)")
    add_security_args(s)
    add_connection_args(s)
    s.set_defaults(func=run_serve)


def run_demo(args: Any) -> int:
    from unstuck.demo import DEMO_DATA_DIR, DemoDirectoryError
    from unstuck.demo import run_demo as demo
    from unstuck.ledger import LedgerConfigError

    config = config_from(args)
    directory = Path(args.data_dir) if args.data_dir else DEMO_DATA_DIR  # never $UNSTUCK_DATA_DIR: serve's
    try:
        return asyncio.run(
            demo(config, directory, args.metrics_address, args.keep_running, secure=secure_mode(args))
        )
    except DemoDirectoryError as exc:
        raise CliError(str(exc), exit_code=1) from exc
    except (NatsStartError, SecurityConfigError) as exc:
        raise CliError(str(exc), exit_code=3) from exc
    except LedgerConfigError as exc:
        raise CliError(str(exc), exit_code=2) from exc


def run_serve(args: Any) -> int:
    from unstuck.adapters.registry import discover
    from unstuck.ledger import LedgerConfigError

    config = config_from(args)
    secure = secure_mode(args)
    adapters = []
    if args.adapters is not None:
        found = discover()
        adapters = [a for code, a in sorted(found.items()) if not args.adapters or code in args.adapters]

    async def serve() -> None:
        bus = Bus(
            config,
            SystemClock(),
            data_dir(args.data_dir),
            args.metrics_address,
            adapters=adapters,
            secure=secure,
        )
        await bus.start()
        if secure:
            print(secure_hint(data_dir(args.data_dir)), flush=True)
        print(
            f"unstuck broker on {bus.url}; metrics http://{bus.metrics_server.address}/metrics"
            f"{'; adapters ' + ', '.join(a.department.code for a in adapters) if adapters else ''}; Ctrl-C stops",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await bus.stop()

    try:
        asyncio.run(serve())
    except (NatsStartError, SecurityConfigError) as exc:
        raise CliError(str(exc), exit_code=3) from exc
    except LedgerConfigError as exc:
        raise CliError(str(exc), exit_code=2) from exc
    return 0
