"""Where each year's working days come from: the override file, then python-holidays, then
chinese-calendar, then the statutory holidays alone for a year whose schedule is not published (its due
dates provisional). Expected dates are the State Council's notices and the lunar calendar, by hand."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest

from unstuck.workcalendar import (
    CHINESE_CALENDAR,
    OVERRIDE,
    PYTHON_HOLIDAYS,
    STATUTORY_ONLY,
    WorkingCalendar,
)

# The days on which python-holidays and chinese-calendar disagree over 2004-2026, and which is right.
# Saturday 31 December 2005: the State Council's notice for 2006 (国办发明电〔2005〕35号) gives New
# Year's Day 1-3 January 2006 and says "12月31日（星期六）上班": a working day, as python-holidays has
# it; chinese-calendar counts it a weekend rest day. Value: (python-holidays, chinese-calendar, right).
KNOWN_DIFFERENCES = {date(2005, 12, 31): (True, False, True)}


def every_day(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_the_two_libraries_agree_on_every_day_of_2004_to_2026_but_the_known_ones():
    ours = WorkingCalendar(libraries=(PYTHON_HOLIDAYS,))
    theirs = WorkingCalendar(libraries=(CHINESE_CALENDAR,))
    both = WorkingCalendar()
    days = every_day(date(2004, 1, 1), date(2026, 12, 31))
    assert len(days) == 8401  # 23 years, six of them leap years
    differ = {}
    for day in days:
        a, b = ours.is_working_day(day), theirs.is_working_day(day)
        if a != b:
            differ[day] = (a, b, both.is_working_day(day))
    assert differ == KNOWN_DIFFERENCES
    for year in range(2004, 2027):  # each library answered from its own published schedule
        assert (ours.source(year), theirs.source(year), both.source(year)) == (
            PYTHON_HOLIDAYS,
            CHINESE_CALENDAR,
            PYTHON_HOLIDAYS,
        )


def test_the_2006_new_year_schedule_as_the_notice_gives_it():
    cal = WorkingCalendar()
    assert cal.is_working_day(date(2005, 12, 31))  # Saturday, worked
    assert [cal.is_working_day(date(2006, 1, d)) for d in (1, 2, 3, 4)] == [False, False, False, True]
    assert date(2005, 12, 31) in cal.schedule(2005).workdays


def test_published_years_have_their_make_up_days_and_a_far_year_is_statutory_only():
    cal = WorkingCalendar()
    schedule = cal.schedule(2026)
    assert (schedule.source, schedule.published) == (PYTHON_HOLIDAYS, True)
    # the State Council's notice for 2026: worked 4 Jan (Sun), 14 and 28 Feb, 9 May, 20 Sep (Sun), 10 Oct
    assert sorted(schedule.workdays) == [
        date(2026, 1, 4),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 5, 9),
        date(2026, 9, 20),
        date(2026, 10, 10),
    ]
    assert schedule.days_off[date(2026, 10, 1)].name == "National Day"
    assert schedule.days_off[date(2026, 10, 1)].name_zh == "國慶節"
    assert cal.source(2099) == STATUTORY_ONLY and not cal.published(2099) and not cal.knows(2099)


def test_chinese_calendar_answers_a_year_python_holidays_is_not_asked_for():
    cal = WorkingCalendar(libraries=(CHINESE_CALENDAR,))
    schedule = cal.schedule(2026)
    assert schedule.source == CHINESE_CALENDAR
    assert date(2026, 10, 10) in schedule.workdays
    assert schedule.days_off[date(2026, 10, 1)].name_zh == "国庆节"
    assert WorkingCalendar(libraries=()).source(2026) == STATUTORY_ONLY


def test_a_year_not_published_counts_the_statutory_holidays_and_their_weekend_補假_only():
    # 2026 as if its notice were not out: the statutory holidays of 2026 on the lunar calendar (Spring
    # Festival 17 February, a Tuesday, with its eve; Qingming 5 April, a Sunday; Dragon Boat 19 June;
    # Mid-Autumn 25 September) and a 補假 on the next working day for each on a weekend; no 調休.
    cal = WorkingCalendar(unpublished_years={2026})
    schedule = cal.schedule(2026)
    assert (schedule.source, schedule.published, schedule.workdays) == (STATUTORY_ONLY, False, frozenset())
    assert sorted(schedule.days_off) == [
        date(2026, 1, 1),
        date(2026, 2, 16),  # eve
        date(2026, 2, 17),
        date(2026, 2, 18),
        date(2026, 2, 19),
        date(2026, 4, 5),  # Sunday
        date(2026, 4, 6),  # its 補假
        date(2026, 5, 1),
        date(2026, 5, 2),  # Saturday
        date(2026, 5, 4),  # its 補假
        date(2026, 6, 19),
        date(2026, 9, 25),
        date(2026, 10, 1),
        date(2026, 10, 2),
        date(2026, 10, 3),  # Saturday
        date(2026, 10, 5),  # its 補假
    ]
    assert cal.is_working_day(date(2026, 10, 6))  # a day off by the notice, not by the law
    assert not cal.is_working_day(date(2026, 10, 10))  # Saturday: no make-up day known


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        # New Year's Day 2027 is a Friday: Thursday 31 December + 1 is Monday 4 January
        (date(2026, 12, 31), 1, date(2027, 1, 4)),
        # Spring Festival 2027 is Saturday 6 February: the eve (Fri 5), days 1-3 (Sat 6, Sun 7, Mon 8)
        # and the 補假 of the weekend two (Tue 9, Wed 10) are off; then 11, 12, 15, 16, 17 February
        (date(2027, 2, 4), 5, date(2027, 2, 17)),
        # National Day 2027: Fri 1, Sat 2, Sun 3 October, the 補假 Mon 4 and Tue 5; then 6, 7, 8 October
        (date(2027, 9, 30), 3, date(2027, 10, 8)),
    ],
)
def test_2027_due_dates_count_its_statutory_holidays_and_are_provisional(start, days, due):
    cal = WorkingCalendar(unpublished_years={2027})  # 2027 not published, whatever the library knows
    assert cal.add_working_days(start, days) == due
    assert cal.due_date(start, days) == (due, True)
    assert cal.is_provisional(start, days)
    assert cal.unpublished_between(start, due) == [2027]


def test_a_due_date_within_published_years_is_not_provisional():
    cal = WorkingCalendar()
    assert cal.due_date(date(2026, 9, 30), 5) == (date(2026, 10, 13), False)
    assert not cal.is_provisional(date(2026, 9, 30), 5)
    assert cal.unpublished_between(date(2026, 12, 1), date(2026, 12, 31)) == []


def test_the_override_file_wins_over_the_libraries_and_publishes_a_year(tmp_path):
    override = tmp_path / "calendar.toml"
    # a made-up schedule for 2026: only 11 November off and Sunday 15 November worked
    override.write_text('[2026]\nholidays = ["2026-11-11"]\nworkdays = ["2026-11-15"]\n')
    cal = WorkingCalendar(override)
    assert (cal.source(2026), cal.published(2026)) == (OVERRIDE, True)
    assert not cal.is_working_day(date(2026, 11, 11))
    assert cal.is_working_day(date(2026, 11, 15))
    assert cal.is_working_day(date(2026, 10, 6))  # the library's day off no longer counts
    assert not cal.is_working_day(date(2026, 10, 10))  # nor its make-up Saturday
    assert cal.schedule(2026).days_off[date(2026, 11, 11)].name == "day off"
    hidden = WorkingCalendar(override, unpublished_years={2026})  # a year hidden from the libraries only
    assert hidden.source(2026) == OVERRIDE


def test_an_override_holiday_that_is_a_statutory_one_keeps_its_name(tmp_path):
    override = tmp_path / "calendar.toml"
    override.write_text('[2031]\nholidays = ["2031-10-01", "2031-10-06"]\n')
    schedule = WorkingCalendar(override).schedule(2031)
    assert schedule.days_off[date(2031, 10, 1)].name_zh == "中秋節; 國慶節"  # both fall on 1 October 2031
    assert schedule.days_off[date(2031, 10, 6)].name == "day off"


def test_refresh_reads_a_changed_override_file_and_says_whether_its_years_changed(tmp_path, caplog):
    override = tmp_path / "calendar.toml"
    override.write_text('[2031]\nholidays = ["2031-01-01"]\n')
    cal = WorkingCalendar(override, unpublished_years={2027})
    assert (cal.refresh(), cal.generation, cal.published(2027)) == (False, 0, False)
    assert cal.is_working_day(date(2027, 1, 4))
    override.write_text('[2031]\nholidays = ["2031-01-01"]\n\n[2027]\nholidays = ["2027-01-04"]\n')
    assert (cal.refresh(), cal.generation, cal.source(2027)) == (True, 1, OVERRIDE)
    assert not cal.is_working_day(date(2027, 1, 4))  # the answers of before are forgotten
    assert cal.refresh() is False  # unchanged on disk: not read again
    override.write_text("[2027\n")
    with caplog.at_level(logging.ERROR):
        assert cal.refresh() is False
    assert "keeping the schedules read before" in caplog.text
    assert cal.source(2027) == OVERRIDE and cal.generation == 1


@pytest.mark.parametrize(
    ("today", "years"),
    [
        (date(2026, 10, 31), []),  # 2027 not published, but before 1 November
        (date(2026, 11, 1), [2027]),
        (date(2026, 12, 31), [2027]),
        (date(2027, 3, 1), [2027]),  # the year under way itself
        (date(2026, 6, 1), []),
    ],
)
def test_schedule_warnings_name_the_unpublished_year_and_the_fix_from_1_november(today, years):
    cal = WorkingCalendar(unpublished_years={2027})
    warnings = cal.schedule_warnings(today)
    assert len(warnings) == len(years)
    for year, warning in zip(years, warnings, strict=True):
        assert f"for {year} is not published" in warning
        assert f"Add [{year}]" in warning and "calendar override file" in warning
        assert "upgrade python-holidays" in warning


def test_an_unknown_library_is_refused():
    with pytest.raises(ValueError, match="unknown calendar libraries"):
        WorkingCalendar(libraries=("lunar-magic",))


# --- the CLI: `unstuck calendar show` and the provisional mark of `calendar deadline` --------------------
# 2031 is far enough ahead that no library has its notice yet: counted on its statutory holidays.


def unstuck(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "UNSTUCK_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "unstuck", "calendar", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_calendar_show_lists_a_published_year_with_its_make_up_days(tmp_path):
    out = unstuck(tmp_path, "show", "2026")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "2026   source: python-holidays"
    assert lines[1].startswith("published:")
    assert "  2026-10-01 Thu  National Day  國慶節" in lines
    assert "  2026-10-10 Sat" in lines  # 調休
    assert "provisional" not in out.stdout


def test_calendar_show_json_marks_a_year_not_published_as_provisional(tmp_path):
    out = unstuck(tmp_path, "show", "2031", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert (shown["year"], shown["source"], shown["published"], shown["provisional"]) == (
        2031,
        "statutory only (provisional)",
        False,
        True,
    )
    assert shown["workdays"] == []
    days = {h["date"]: h for h in shown["holidays"]}
    # Mid-Autumn falls on National Day, Wednesday 1 October 2031; National Day runs to Friday the 3rd
    assert [d for d in days if d.startswith("2031-10")] == ["2031-10-01", "2031-10-02", "2031-10-03"]
    assert days["2031-01-01"] == {
        "date": "2031-01-01",
        "weekday": "Wed",
        "name": "New Year's Day",
        "name_zh": "元旦",
    }


def test_calendar_show_text_says_provisional_and_the_fix(tmp_path):
    out = unstuck(tmp_path, "show", "2031")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == [
        "2031   source: statutory only (provisional)",
        "provisional: no published schedule for 2031 is known here; only the statutory holidays are "
        "counted (with 補假 for one on a weekend), no 調休 make-up working day",
    ]
    assert "add [2031]" in out.stderr and "upgrade python-holidays" in out.stderr


@pytest.mark.parametrize("year", ["20x7", "27", "1949", "2100", ""])
def test_calendar_show_refuses_a_bad_year_naming_the_argument(tmp_path, year):
    out = unstuck(tmp_path, "show", year)
    assert out.returncode == 2
    assert f"YEAR {year!r} is not a year" in out.stderr and "e.g. 2027" in out.stderr


def test_calendar_deadline_marks_a_provisional_due_date(tmp_path):
    # Monday 29 September 2031: Tue 30 Sep (1); 1-3 October off; Mon 6 (2), 7 (3), 8 (4), Thu 9 (5)
    out = unstuck(tmp_path, "deadline", "--from", "2031-09-29", "--working-days", "5")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "2031-10-09 (provisional: no published schedule for 2031; counted on the statutory holidays "
        "only, no 調休 make-up days known)"
    )
    out = unstuck(tmp_path, "deadline", "--from", "2031-09-29", "--working-days", "5", "--json")
    assert json.loads(out.stdout) == {
        "from": "2031-09-29",
        "working_days": 5,
        "due": "2031-10-09",
        "provisional": True,
        "unpublished_years": [2031],
    }
    out = unstuck(tmp_path, "deadline", "--from", "2026-09-30", "--working-days", "5", "--json")
    assert json.loads(out.stdout)["provisional"] is False
