"""``unstuck portal``: serve the applicant's online channel; ``unstuck portal qr``: its address as a QR code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unstuck.connection import NoServer, data_dir

from .common import CliError, add_connection_args, config_from


def register(sub: Any) -> None:
    p = sub.add_parser(
        "portal",
        help="the applicant's online channel: report, look up, rate (docs/portal.md)",
        description="Serve the applicant's portal, acting on the bus as the NATS user portal (portal.env).",
    )
    add_connection_args(p)
    p.add_argument("--address", help="host:port to listen on (default 127.0.0.1:8490)")
    p.add_argument(
        "--secure-cookies",
        action="store_true",
        help="send the form cookie over HTTPS only (behind a TLS-terminating proxy)",
    )
    p.set_defaults(func=run)
    s = p.add_subparsers(dest="portal_command", metavar="ACTION")
    qr = s.add_parser("qr", help="write the portal's address as a QR code (SVG) for a poster")
    qr.add_argument(
        "--url", required=True, help="the portal's public address, e.g. https://portal.example.gov.cn/"
    )
    qr.add_argument("--out", required=True, type=Path, help="the SVG file to write")
    qr.set_defaults(func=write_qr)


def run(args: Any) -> int:
    from unstuck.portal import serve
    from unstuck.portal.server import PortalStartError

    config = config_from(args)
    try:
        return serve(config, data_dir(args.data_dir), args.address, secure_cookies=args.secure_cookies)
    except NoServer as exc:
        raise CliError(str(exc), exit_code=3) from exc
    except PortalStartError as exc:
        raise CliError(str(exc), exit_code=3) from exc
    except OSError as exc:
        raise CliError(f"cannot listen on {args.address or '127.0.0.1:8490'}: {exc.strerror or exc}") from exc


def write_qr(args: Any) -> int:
    from unstuck.portal.qr import write_qr as write

    url = args.url.strip()
    if not url.startswith(("https://", "http://")):
        raise CliError(f"--url {url!r}: give the portal's full address, starting with https://")
    try:
        write(url, args.out)
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(f"QR code of {url} written to {args.out}")
    return 0
