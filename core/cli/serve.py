"""``unstuck serve`` and ``unstuck demo``."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from unstuck.bus import Bus
from unstuck.clock import SystemClock
from unstuck.connection import data_dir
from unstuck.embedded import NatsStartError
from unstuck.natsconfig import SecurityConfigError, secure_hint

from .common import CliError, add_connection_args, config_from

SECURE_HELP = (
    "NATS users and permissions: generate <data dir>/nats-server.conf and credentials if missing, "
    "run the embedded server with them, each component on its own credentials (docs/security.md)"
)


def register(sub: Any) -> None:
    d = sub.add_parser(
        "demo", help="the main job: embedded NATS, broker, three departments, 13 scripted cases"
    )
    d.add_argument(
        "--keep-running", action="store_true", help="keep the bus up after the script until Ctrl-C"
    )
    d.add_argument("--metrics-address", help="HOST:PORT for /metrics (default broker.metrics_address)")
    d.add_argument("--secure", action="store_true", help=SECURE_HELP)
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
    s.add_argument("--secure", action="store_true", help=SECURE_HELP)
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
            demo(config, directory, args.metrics_address, args.keep_running, secure=args.secure)
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
            secure=args.secure,
        )
        await bus.start()
        if args.secure:
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
