"""``unstuck notify``: deliver the stored notifications by email and SMS (docs/notifications.md)."""

from __future__ import annotations

from typing import Any

from unstuck.connection import NoServer, data_dir

from .common import CliError, add_connection_args, config_from


def register(sub: Any) -> None:
    p = sub.add_parser(
        "notify",
        help="deliver the notifications by email and SMS (docs/notifications.md)",
        description="Deliver the notifications stored in UNSTUCK_NOTIFY, as the notifier principal: "
        "email through [notify] smtp_*, SMS through an unstuck_send_sms plugin. At least once: a "
        "notification is acknowledged only after its delivery.",
    )
    add_connection_args(p)
    p.set_defaults(func=run)


def run(args: Any) -> int:
    from unstuck.notify.service import serve

    config = config_from(args)
    try:
        return serve(config, data_dir(args.data_dir))
    except NoServer as exc:
        raise CliError(str(exc), exit_code=3) from exc
    except OSError as exc:
        raise CliError(f"cannot start: {exc.strerror or exc}", exit_code=3) from exc
