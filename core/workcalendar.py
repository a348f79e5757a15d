"""Working days on the mainland statutory calendar (holidays and 調休 make-up days).

Each year's schedule comes from the first of these that has it:

1. the override file (``[deadlines] calendar_override``): a year the operator copied from the State
   Council's notice (``[2027] holidays = [...] workdays = [...]``);
2. python-holidays, for the years whose notice it carries: the days off and the 調休 make-up
   working days (its ``weekend_workdays``);
3. chinese-calendar, for a year it carries and python-holidays does not;
4. the statutory holidays alone, for a year whose notice no source has yet: the law's holidays
   (New Year's Day, the Spring Festival with its eve, Qingming, Labour Day, the Dragon Boat
   Festival, Mid-Autumn, National Day, the lunar ones on the lunar calendar) with the 補假 the law
   gives a holiday falling on a weekend (the next working day), computed by python-holidays. No
   調休 is known for such a year: its schedule is *provisional*, and so is every due date counted
   through it. The broker recounts those when the year's schedule becomes known
   (``case.due_date_revised``).

The two libraries agree on every day of 2004–2026 but one: Saturday 31 December 2005, a working day
by the State Council's notice for 2006 (国办发明电〔2005〕35号: "12月31日（星期六）上班"), which
python-holidays has and chinese-calendar 1.11 counts as a rest day. So python-holidays is asked first
for every year; chinese-calendar only answers for a year python-holidays has no notice for.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import chinese_calendar
from holidays.countries.china import China

log = logging.getLogger(__name__)

OVERRIDE = "override file"
PYTHON_HOLIDAYS = "python-holidays"
CHINESE_CALENDAR = "chinese-calendar"
STATUTORY_ONLY = "statutory only (provisional)"
LIBRARIES = (PYTHON_HOLIDAYS, CHINESE_CALENDAR)
"""The libraries asked for a year's published schedule, in this order."""

WARN_FROM = (11, 1)
"""From this day (month, day) on, a year whose next year's schedule is unknown is warned about: the
State Council publishes the next year's notice in November or December."""


class CalendarConfigError(ValueError):
    """The override file is unreadable or names a bad date."""


@dataclass(frozen=True, slots=True)
class Holiday:
    day: date
    name: str
    name_zh: str | None = None


@dataclass(frozen=True, slots=True)
class YearSchedule:
    """One year's days off and 調休 make-up working days, and where they come from."""

    year: int
    source: str
    days_off: Mapping[date, Holiday]  # named days off (weekend days among them are rest days anyway)
    workdays: frozenset[date]  # weekend days that are working days (調休)

    @property
    def published(self) -> bool:
        return self.source != STATUTORY_ONLY

    def is_working_day(self, day: date) -> bool:
        return day in self.workdays or (day.weekday() < 5 and day not in self.days_off)


class _StatutoryChina(China):
    """python-holidays' China without the State Council's yearly notices: the statutory holidays and
    their 補假 only (its special and substituted days are the notices)."""

    def _add_special_holidays(self, mapping_names: Any, *, observed: bool = False) -> None:
        return


def _names(year: int, cls: type[China] = China) -> tuple[Any, Any]:
    """python-holidays' China for ``year``, in English and in Chinese (traditional script)."""
    return cls(years=year, language="en_US"), cls(years=year, language="zh_TW")


def _named(english: Any, chinese: Any) -> dict[date, Holiday]:
    return {day: Holiday(day, name, chinese.get(day)) for day, name in sorted(english.items())}


def _days_of(year: int) -> Iterable[date]:
    day = date(year, 1, 1)
    while day.year == year:
        yield day
        day += timedelta(days=1)


def _from_python_holidays(year: int) -> YearSchedule | None:
    english, chinese = _names(year)
    if year not in getattr(english, "special_public_holidays", {}):
        return None  # no notice for this year: its days would be the statutory computation
    workdays = frozenset(d for d in english.weekend_workdays if d.year == year)
    return YearSchedule(year, PYTHON_HOLIDAYS, _named(english, chinese), workdays)


def _from_chinese_calendar(year: int) -> YearSchedule | None:
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return None
    days_off: dict[date, Holiday] = {}
    workdays = set()
    for day in _days_of(year):
        working = chinese_calendar.is_workday(day)
        if working and day.weekday() >= 5:
            workdays.add(day)
        elif not working:
            _, name = chinese_calendar.get_holiday_detail(day)
            if name is not None:
                days_off[day] = Holiday(day, name, chinese_calendar.Holiday(name).chinese)
            elif day.weekday() < 5:
                days_off[day] = Holiday(day, "day off")
    return YearSchedule(year, CHINESE_CALENDAR, days_off, frozenset(workdays))


def _statutory(year: int) -> YearSchedule:
    return YearSchedule(year, STATUTORY_ONLY, _named(*_names(year, _StatutoryChina)), frozenset())


_LIBRARY_SCHEDULES: dict[str, Callable[[int], YearSchedule | None]] = {
    PYTHON_HOLIDAYS: _from_python_holidays,
    CHINESE_CALENDAR: _from_chinese_calendar,
}


def read_override(path: Path) -> dict[int, tuple[frozenset[date], frozenset[date]]]:
    """The override file's years: year -> (holidays, workdays)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CalendarConfigError(f"calendar override {path}: {exc}") from exc
    years: dict[int, tuple[frozenset[date], frozenset[date]]] = {}
    for year_text, table in data.items():
        if not (year_text.isdigit() and len(year_text) == 4):
            raise CalendarConfigError(
                f"calendar override {path}: table [{year_text}] must be a year such as [2027]"
            )
        year = int(year_text)
        unknown = set(table) - {"holidays", "workdays"}
        if unknown:
            raise CalendarConfigError(
                f"calendar override {path}: [{year}] has unknown keys {sorted(unknown)}; "
                "use holidays and workdays"
            )
        days = []
        for key in ("holidays", "workdays"):
            found = set()
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
                found.add(day)
            days.append(frozenset(found))
        years[year] = (days[0], days[1])
    return years


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


class WorkingCalendar:
    """Answers "is this a working day" and counts working days, the same way for every caller.

    ``libraries``: the libraries asked for a published schedule, in order (``LIBRARIES``);
    ``unpublished_years``: years whose schedule the libraries are not asked for, counted on the
    statutory holidays alone unless the override file has them (a test's "not yet published" year).
    """

    def __init__(
        self,
        override_file: Path | None = None,
        on_unknown_year: Callable[[int], None] | None = None,
        *,
        libraries: Iterable[str] = LIBRARIES,
        unpublished_years: Iterable[int] = (),
    ) -> None:
        self._libraries = tuple(libraries)
        unknown = set(self._libraries) - set(_LIBRARY_SCHEDULES)
        if unknown:
            raise ValueError(f"unknown calendar libraries {sorted(unknown)}; use {', '.join(LIBRARIES)}")
        self._unpublished = frozenset(unpublished_years)
        self._on_unknown_year = on_unknown_year
        self._override_file = override_file
        self._override: dict[int, tuple[frozenset[date], frozenset[date]]] = {}
        self._override_stamp: tuple[int, int] | None = None
        self._schedules: dict[int, YearSchedule] = {}
        self._days: dict[date, bool] = {}  # published years' answers, asked once per day
        self._warned: set[int] = set()
        self.generation = 0
        """Goes up each time the override file is read again with other contents (``refresh``)."""
        if override_file is not None:
            self._override_stamp = _stamp(override_file)
            self._override = read_override(override_file)

    # --- where each year comes from -----------------------------------------------------------------

    def schedule(self, year: int) -> YearSchedule:
        """The year's days off and make-up working days, from the first source that has the year."""
        found = self._schedules.get(year)
        if found is None:
            found = self._schedules[year] = self._find(year)
        return found

    def _find(self, year: int) -> YearSchedule:
        if year in self._override:
            holidays, workdays = self._override[year]
            statutory = _statutory(year).days_off
            named = {d: statutory.get(d) or Holiday(d, "day off") for d in sorted(holidays)}
            return YearSchedule(year, OVERRIDE, named, workdays)
        if year not in self._unpublished:
            for library in self._libraries:
                found = _LIBRARY_SCHEDULES[library](year)
                if found is not None:
                    return found
        return _statutory(year)

    def published(self, year: int) -> bool:
        """Whether the year's schedule (holidays and 調休) is known, not only its statutory holidays."""
        return self.schedule(year).published

    def source(self, year: int) -> str:
        """``override file``, ``python-holidays``, ``chinese-calendar`` or ``statutory only (provisional)``."""
        return self.schedule(year).source

    def knows(self, year: int) -> bool:
        """True when the override file or a library has this year's published schedule."""
        return self.published(year)

    def unpublished_between(self, start: date, end: date) -> list[int]:
        """The years from ``start``'s to ``end``'s (both included) without a published schedule."""
        first, last = sorted((start, end))
        return [y for y in range(first.year, last.year + 1) if not self.published(y)]

    def is_provisional(self, start: date, working_days: int) -> bool:
        """Whether the due date ``working_days`` after ``start`` is counted through a year whose
        schedule is not published: it may move when the schedule is known."""
        return bool(self.unpublished_between(start, self.add_working_days(start, working_days)))

    def due_date(self, start: date, working_days: int) -> tuple[date, bool]:
        """The due date ``working_days`` after ``start``, and whether it is provisional."""
        due = self.add_working_days(start, working_days)
        return due, bool(self.unpublished_between(start, due))

    def schedule_warnings(self, today: date) -> list[str]:
        """What operators must do about the calendar today: a year under way without a published
        schedule, and from 1 November the next year's, each named with the fix."""
        years = [today.year]
        if (today.month, today.day) >= WARN_FROM:
            years.append(today.year + 1)
        return [
            f"the working calendar for {year} is not published: due dates counted into {year} are "
            f"provisional (statutory holidays only, no 調休 make-up days). Add [{year}] with the State "
            "Council's holidays and workdays to the calendar override file ([deadlines] "
            "calendar_override), or upgrade python-holidays to a release that has "
            f"{year}"
            for year in years
            if not self.published(year)
        ]

    def refresh(self) -> bool:
        """Read the override file again if it changed on disk; True when its years changed. A file
        that no longer reads is logged and the schedules in use are kept."""
        if self._override_file is None:
            return False
        stamp = _stamp(self._override_file)
        if stamp == self._override_stamp:
            return False
        self._override_stamp = stamp
        try:
            years = read_override(self._override_file)
        except CalendarConfigError as exc:
            log.error("calendar: %s; keeping the schedules read before", exc)
            return False
        if years == self._override:
            return False
        self._override = years
        self._schedules.clear()
        self._days.clear()
        self._warned.clear()
        self.generation += 1
        log.info("calendar: override file read again; it has %s", sorted(years) or "no year")
        return True

    # --- working days --------------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        known = self._days.get(day)
        if known is not None:
            return known
        schedule = self.schedule(day.year)
        working = schedule.is_working_day(day)
        if schedule.published:
            self._days[day] = working
            return working
        if day.year not in self._warned:
            self._warned.add(day.year)
            log.warning(
                "calendar: no published schedule for %s; counting its statutory holidays only "
                "(provisional). Add [%s] with holidays and workdays to the calendar override file, "
                "or upgrade python-holidays.",
                day.year,
                day.year,
            )
        if self._on_unknown_year is not None:
            self._on_unknown_year(day.year)
        return working

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
