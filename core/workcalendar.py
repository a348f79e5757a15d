"""Working days on the mainland statutory calendar (holidays and 調休 make-up days).

chinese-calendar knows the years the State Council has published; a local TOML file adds years the
library does not know yet. A year known to neither falls back to weekends-only, with a warning and a
metric, never a crash.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar

log = logging.getLogger(__name__)


class CalendarConfigError(ValueError):
    """The override file is unreadable or names a bad date."""


class WorkingCalendar:
    """Answers "is this a working day" and counts working days, the same way for every caller."""

    def __init__(
        self,
        override_file: Path | None = None,
        on_unknown_year: Callable[[int], None] | None = None,
    ) -> None:
        self._holidays: dict[int, set[date]] = {}
        self._workdays: dict[int, set[date]] = {}
        self._warned: set[int] = set()
        self._statutory: dict[date, bool] = {}  # the library's answers, asked once per day
        self._on_unknown_year = on_unknown_year
        if override_file is not None:
            self._load_override(override_file)

    def _load_override(self, path: Path) -> None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CalendarConfigError(f"calendar override {path}: {exc}") from exc
        for year_text, table in data.items():
            if not (year_text.isdigit() and len(year_text) == 4):
                raise CalendarConfigError(
                    f"calendar override {path}: table [{year_text}] must be a year such as [2027]"
                )
            year = int(year_text)
            for key, target in (("holidays", self._holidays), ("workdays", self._workdays)):
                days = set()
                for text in table.get(key, []):
                    try:
                        day = date.fromisoformat(str(text))
                    except ValueError as exc:
                        raise CalendarConfigError(
                            f"calendar override {path}: [{year}].{key} has {text!r}; write YYYY-MM-DD"
                        ) from exc
                    if day.year != year:
                        raise CalendarConfigError(
                            f"calendar override {path}: [{year}].{key} has {day}, which is not in {year}"
                        )
                    days.add(day)
                target[year] = days
            unknown = set(table) - {"holidays", "workdays"}
            if unknown:
                raise CalendarConfigError(
                    f"calendar override {path}: [{year}] has unknown keys {sorted(unknown)}; "
                    "use holidays and workdays"
                )

    def knows(self, year: int) -> bool:
        """True when the library or the override file has this year's statutory calendar."""
        if year in self._holidays or year in self._workdays:
            return True
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            return False
        return True

    def is_working_day(self, day: date) -> bool:
        if day.year in self._holidays or day.year in self._workdays:
            if day in self._workdays.get(day.year, ()):
                return True
            if day in self._holidays.get(day.year, ()):
                return False
            return day.weekday() < 5
        known = self._statutory.get(day)
        if known is not None:
            return known
        try:
            known = self._statutory[day] = bool(chinese_calendar.is_workday(day))
            return known
        except NotImplementedError:
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning(
                    "calendar: no statutory calendar for %s; counting weekends only. "
                    "Add [%s] with holidays and workdays to the calendar override file.",
                    day.year,
                    day.year,
                )
            if self._on_unknown_year is not None:
                self._on_unknown_year(day.year)
            return day.weekday() < 5

    def add_working_days(self, start: date, working_days: int) -> date:
        """The ``working_days``-th working day after ``start`` (``start`` itself does not count)."""
        if working_days < 0:
            raise ValueError("working_days must be 0 or more")
        day = start
        left = working_days
        while left:
            day += timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when ``end`` is before ``start``."""
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count
