"""``unstuck console``: serve the window console; ``unstuck console passwd STAFF_ID``: set a password."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from unstuck.connection import NoServer, data_dir

from .common import CliError, add_connection_args, config_from


def register(sub: Any) -> None:
    p = sub.add_parser(
        "console",
        help="the window staff's web console (docs/console.md)",
        description="Serve the window console, acting on the bus as the staff member signed in.",
    )
    add_connection_args(p)
    p.add_argument("--address", help="host:port to listen on (default [console] address, 127.0.0.1:8480)")
    p.set_defaults(func=run)
    s = p.add_subparsers(dest="console_command", metavar="ACTION")
    pw = s.add_parser("passwd", help="set a staff member's console password (read from stdin or a prompt)")
    pw.add_argument("staff_id", metavar="STAFF_ID", help="a staff id of [staff] in the configuration")
    add_connection_args(pw)
    pw.set_defaults(func=passwd)


def run(args: Any) -> int:
    from unstuck.console import serve
    from unstuck.console.auth import ProviderError
    from unstuck.console.server import ConsoleStartError

    config = config_from(args)
    if not config.staff:
        raise CliError(
            "no [staff] in the configuration: the console signs in only staff listed there "
            '(e.g. [staff] "w-zhang" = "clerk"); see docs/console.md'
        )
    try:
        return serve(config, data_dir(args.data_dir), args.address)
    except NoServer as exc:
        raise CliError(str(exc), exit_code=3) from exc
    except ProviderError as exc:
        raise CliError(str(exc)) from exc
    except ConsoleStartError as exc:
        raise CliError(str(exc), exit_code=3) from exc
    except OSError as exc:
        raise CliError(
            f"cannot listen on {args.address or config.console.address}: {exc.strerror or exc}"
        ) from exc


def passwd(args: Any) -> int:
    from unstuck.console import PasswordError, PasswordStore

    config = config_from(args)
    staff_id = args.staff_id
    if staff_id not in config.staff:
        known = ", ".join(sorted(config.staff)) or "none"
        raise CliError(
            f"{staff_id!r} is not in [staff] of the configuration (known: {known}); add it there first, "
            'e.g. [staff] "w-zhang" = "clerk"'
        )
    if sys.stdin.isatty():
        password = getpass.getpass(f"new console password for {staff_id}: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the two passwords differ; nothing was changed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        PasswordStore(data_dir(args.data_dir)).set(staff_id, password)
    except PasswordError as exc:
        raise CliError(str(exc)) from exc
    print(f"console password of {staff_id} set")
    return 0
