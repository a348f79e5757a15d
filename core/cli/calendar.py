"""``unstuck calendar deadline``: the due date a case would get (the same computation the broker does)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from unstuck.workcalendar import CalendarConfigError, WorkingCalendar

from .common import CliError, config_from, print_json


def register(sub: Any) -> None:
    p = sub.add_parser("calendar", help="working days on the statutory calendar")
    s = p.add_subparsers(dest="calendar_command", metavar="ACTION", required=True)
    d = s.add_parser("deadline", help="the due date N working days after a date")
    d.add_argument(
        "--from", dest="start", required=True, help="start date, YYYY-MM-DD (the day the case opened)"
    )
    d.add_argument("--working-days", type=int, required=True, help="working days allowed (1, 3, 5 ...)")
    d.add_argument(
        "--override", type=Path, help="calendar override TOML (default: deadlines.calendar_override)"
    )
    d.add_argument("--config", type=Path, help="configuration file")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run_deadline)


def run_deadline(args: Any) -> int:
    try:
        start = date.fromisoformat(args.start)
    except ValueError as exc:
        raise CliError(f"--from {args.start!r} is not a date; write YYYY-MM-DD, e.g. 2026-09-30") from exc
    if args.working_days < 0:
        raise CliError("--working-days must be 0 or more")
    override = args.override or config_from(args).deadlines.calendar_override
    try:
        calendar = WorkingCalendar(override)
    except CalendarConfigError as exc:
        raise CliError(str(exc)) from exc
    due = calendar.add_working_days(start, args.working_days)
    guessed = sorted({y for y in range(start.year, due.year + 1) if not calendar.knows(y)})
    if args.json:
        print_json(
            {
                "from": start.isoformat(),
                "working_days": args.working_days,
                "due": due.isoformat(),
                "weekends_only_years": guessed,
            }
        )
    else:
        print(due.isoformat())
        if guessed:
            print(
                f"warning: no statutory calendar for {', '.join(map(str, guessed))}: counted weekends only",
                file=__import__("sys").stderr,
            )
    return 0
