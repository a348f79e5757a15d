"""``unstuck calendar``: the due date a case would get (the same computation the broker does), and a
year's holidays and 調休 make-up working days with where they come from."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

from unstuck.workcalendar import CalendarConfigError, WorkingCalendar

from .common import CliError, config_from, print_json

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def register(sub: Any) -> None:
    p = sub.add_parser("calendar", help="working days on the statutory calendar")
    s = p.add_subparsers(dest="calendar_command", metavar="ACTION", required=True)
    d = s.add_parser("deadline", help="the due date N working days after a date")
    d.add_argument(
        "--from", dest="start", required=True, help="start date, YYYY-MM-DD (the day the case opened)"
    )
    d.add_argument("--working-days", type=int, required=True, help="working days allowed (1, 3, 5 ...)")
    _calendar_args(d)
    d.set_defaults(func=run_deadline)
    show = s.add_parser("show", help="a year's holidays and 調休 make-up working days, and their source")
    show.add_argument("year", metavar="YEAR", help="the year, e.g. 2027")
    _calendar_args(show)
    show.set_defaults(func=run_show)


def _calendar_args(p: Any) -> None:
    p.add_argument(
        "--override", type=Path, help="calendar override TOML (default: deadlines.calendar_override)"
    )
    p.add_argument("--config", type=Path, help="configuration file")
    p.add_argument("--json", action="store_true")


def _calendar(args: Any) -> WorkingCalendar:
    override = args.override or config_from(args).deadlines.calendar_override
    try:
        return WorkingCalendar(override)
    except CalendarConfigError as exc:
        raise CliError(str(exc)) from exc


def _provisional_note(years: list[int]) -> str:
    named = ", ".join(map(str, years))
    return (
        f"provisional: no published schedule for {named}; counted on the statutory holidays only, "
        "no 調休 make-up days known"
    )


def run_deadline(args: Any) -> int:
    try:
        start = date.fromisoformat(args.start)
    except ValueError as exc:
        raise CliError(f"--from {args.start!r} is not a date; write YYYY-MM-DD, e.g. 2026-09-30") from exc
    if args.working_days < 0:
        raise CliError("--working-days must be 0 or more")
    calendar = _calendar(args)
    due = calendar.add_working_days(start, args.working_days)
    unpublished = calendar.unpublished_between(start, due)
    if args.json:
        print_json(
            {
                "from": start.isoformat(),
                "working_days": args.working_days,
                "due": due.isoformat(),
                "provisional": bool(unpublished),
                "unpublished_years": unpublished,
            }
        )
    elif unpublished:
        print(f"{due.isoformat()} ({_provisional_note(unpublished)})")
    else:
        print(due.isoformat())
    return 0


def run_show(args: Any) -> int:
    text = str(args.year).strip()
    if not (text.isdigit() and len(text) == 4 and 1950 <= int(text) <= 2099):
        raise CliError(f"YEAR {args.year!r} is not a year from 1950 to 2099; write four digits, e.g. 2027")
    year = int(text)
    calendar = _calendar(args)
    schedule = calendar.schedule(year)
    holidays = [
        {
            "date": h.day.isoformat(),
            "weekday": WEEKDAYS[h.day.weekday()],
            "name": h.name,
            "name_zh": h.name_zh,
        }
        for h in schedule.days_off.values()
    ]
    workdays = [{"date": d.isoformat(), "weekday": WEEKDAYS[d.weekday()]} for d in sorted(schedule.workdays)]
    if args.json:
        print_json(
            {
                "year": year,
                "source": schedule.source,
                "published": schedule.published,
                "provisional": not schedule.published,
                "holidays": holidays,
                "workdays": workdays,
            }
        )
        return 0
    print(f"{year}   source: {schedule.source}")
    if schedule.published:
        print(f"published: the State Council's schedule for {year}, holidays and 調休 make-up working days")
    else:
        print(
            f"provisional: no published schedule for {year} is known here; only the statutory holidays "
            "are counted (with 補假 for one on a weekend), no 調休 make-up working day"
        )
    print("\ndays off:")
    for h in holidays:
        print(f"  {h['date']} {h['weekday']}  {h['name']}" + (f"  {h['name_zh']}" if h["name_zh"] else ""))
    if not holidays:
        print("  (none named)")
    print("\n調休 make-up working days:")
    for w in workdays:
        print(f"  {w['date']} {w['weekday']}")
    if not workdays:
        print("  (none known)" if not schedule.published else "  (none)")
    if not schedule.published:
        print(
            f"\nto publish {year}: add [{year}] with its holidays and workdays to the calendar override "
            "file ([deadlines] calendar_override), or upgrade python-holidays",
            file=sys.stderr,
        )
    return 0
