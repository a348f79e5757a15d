"""Working days: the published schedules, the local override file, and the statutory-only computation of
a year not published yet."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import date

import pytest

from unstuck.workcalendar import CalendarConfigError, WorkingCalendar


def test_national_day_2026_with_the_10_october_make_up_working_day():
    cal = WorkingCalendar()
    assert not cal.is_working_day(date(2026, 10, 5))
    assert cal.is_working_day(date(2026, 10, 10))  # Saturday, 調休
    assert cal.add_working_days(date(2026, 9, 30), 5) == date(2026, 10, 13)


def test_an_unpublished_year_counts_its_statutory_holidays_with_a_warning_and_a_callback(caplog):
    seen: list[int] = []
    cal = WorkingCalendar(on_unknown_year=seen.append)
    with caplog.at_level(logging.WARNING):
        # Friday 3 January 2031 + 1: Monday the 6th (New Year's Day, Wednesday the 1st, is behind it)
        assert cal.add_working_days(date(2031, 1, 3), 1) == date(2031, 1, 6)
        assert not cal.is_working_day(date(2031, 1, 1))  # statutory: New Year's Day
    assert "no published schedule for 2031" in caplog.text
    assert seen and set(seen) == {2031}
    assert not cal.knows(2031)


def test_the_override_file_supplies_a_year_the_library_lacks(tmp_path):
    override = tmp_path / "calendar.toml"
    override.write_text(
        '[2031]\nholidays = ["2031-01-01", "2031-01-02", "2031-01-03"]\nworkdays = ["2031-01-04"]\n'
    )
    seen: list[int] = []
    cal = WorkingCalendar(override, on_unknown_year=seen.append)
    assert cal.knows(2031)
    assert cal.is_working_day(date(2031, 1, 4))  # Saturday make-up day
    assert not cal.is_working_day(date(2031, 1, 2))
    assert cal.add_working_days(date(2030, 12, 31), 1) == date(2031, 1, 4)
    assert seen == []


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ('[2031]\nholidays = ["31 Jan"]\n', "write YYYY-MM-DD"),
        ('[2031]\nholidays = ["2030-01-01"]\n', "not in 2031"),
        ("[twenty]\nholidays = []\n", "must be a year"),
        ("[abcd]\nholidays = []\n", "must be a year"),  # four characters, not digits
        ("[20311]\nholidays = []\n", "must be a year"),  # digits, not four
        ("[2031]\nholiday = []\n", "use holidays and workdays"),
    ],
)
def test_a_bad_override_file_is_an_error_naming_the_fix(tmp_path, text, fix):
    override = tmp_path / "calendar.toml"
    override.write_text(text)
    with pytest.raises(CalendarConfigError, match=fix):
        WorkingCalendar(override)


def test_calendar_deadline_command_prints_the_due_date_cases_get():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "unstuck.cli",
            "calendar",
            "deadline",
            "--from",
            "2026-09-30",
            "--working-days",
            "5",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "2026-10-13"


def test_calendar_deadline_command_refuses_a_bad_date_naming_the_flag():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "unstuck.cli",
            "calendar",
            "deadline",
            "--from",
            "30/09/2026",
            "--working-days",
            "5",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "--from" in out.stderr and "YYYY-MM-DD" in out.stderr


# --- working_days_between: working days in (start, end], counted by hand ---------------------------


@pytest.mark.parametrize(
    ("start", "end", "count"),
    [
        (date(2026, 11, 10), date(2026, 11, 10), 0),  # the same day
        (date(2026, 11, 10), date(2026, 11, 11), 1),  # Tue → Wed: Wednesday only, not Tuesday
        (date(2026, 11, 13), date(2026, 11, 15), 0),  # Fri → Sun: the weekend holds no working day
        (date(2026, 11, 13), date(2026, 11, 16), 1),  # Fri → Mon: Monday
        (date(2026, 11, 10), date(2026, 11, 17), 5),  # Wed Thu Fri Mon Tue
        (date(2026, 9, 30), date(2026, 10, 7), 0),  # National Day: 1-7 Oct off
        (date(2026, 9, 30), date(2026, 10, 10), 3),  # 8, 9 and the make-up Saturday 10 Oct
        (date(2026, 2, 13), date(2026, 2, 24), 2),  # the make-up Saturday 14 Feb, then 24 Feb
        (date(2026, 11, 17), date(2026, 11, 10), -5),  # backwards: the same days, negative
        (date(2026, 10, 10), date(2026, 9, 30), -3),
    ],
)
def test_working_days_between_counts_the_working_days_after_start_up_to_end(start, end, count):
    assert WorkingCalendar().working_days_between(start, end) == count


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (date(2026, 11, 10), 0, date(2026, 11, 10)),  # zero days: the start itself
        (date(2026, 11, 13), 1, date(2026, 11, 16)),  # Fri + 1 → Mon
        (date(2026, 11, 14), 1, date(2026, 11, 16)),  # from a Saturday (not a make-up day) → Mon
        (date(2026, 2, 13), 2, date(2026, 2, 24)),  # 14 Feb make-up day, then the festival, 24 Feb
    ],
)
def test_add_working_days_from_hand_counted_starts(start, days, due):
    assert WorkingCalendar().add_working_days(start, days) == due


def test_add_working_days_refuses_a_negative_count():
    with pytest.raises(ValueError, match=r"^working_days must be 0 or more$"):
        WorkingCalendar().add_working_days(date(2026, 11, 10), -1)


def test_a_year_the_library_knows_is_known_and_counts_its_holidays():
    cal = WorkingCalendar()
    assert cal.knows(2026)
    assert not cal.is_working_day(date(2026, 2, 17))  # Spring Festival, a Tuesday
    assert cal.is_working_day(date(2026, 2, 28))  # make-up Saturday


def test_the_override_file_can_declare_only_holidays_or_only_workdays(tmp_path):
    override = tmp_path / "calendar.toml"
    override.write_text('[2031]\nholidays = ["2031-01-01"]\n\n[2032]\nworkdays = ["2032-01-03"]\n')
    seen: list[int] = []
    cal = WorkingCalendar(override, on_unknown_year=seen.append)
    assert cal.knows(2031) and cal.knows(2032)
    assert not cal.is_working_day(date(2031, 1, 1))  # Wednesday, declared a holiday
    assert cal.is_working_day(date(2031, 1, 2))  # Thursday: an ordinary weekday
    assert not cal.is_working_day(date(2031, 1, 4))  # Saturday, not declared a workday
    assert cal.is_working_day(date(2032, 1, 3))  # Saturday declared a workday
    assert not cal.is_working_day(date(2032, 1, 4))  # Sunday
    assert cal.is_working_day(date(2032, 1, 5))  # Monday
    assert seen == []


def test_an_unknown_year_warns_once_but_calls_back_every_time(caplog):
    seen: list[int] = []
    cal = WorkingCalendar(on_unknown_year=seen.append)
    with caplog.at_level(logging.WARNING):
        assert cal.is_working_day(date(2031, 3, 3))  # Monday
        assert not cal.is_working_day(date(2031, 3, 8))  # Saturday
    assert [r.getMessage() for r in caplog.records] == [
        "calendar: no published schedule for 2031; counting its statutory holidays only (provisional). "
        "Add [2031] with holidays and workdays to the calendar override file, or upgrade python-holidays."
    ]
    assert seen == [2031, 2031]


def test_an_unreadable_override_file_is_an_error_naming_the_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(CalendarConfigError, match=r"nope\.toml"):
        WorkingCalendar(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[2031\n")
    with pytest.raises(CalendarConfigError, match=r"broken\.toml"):
        WorkingCalendar(broken)


def test_an_unknown_key_in_a_year_is_named_with_the_keys_to_use(tmp_path):
    override = tmp_path / "calendar.toml"
    override.write_text("[2031]\nholidays = []\nhoilday = []\n")
    with pytest.raises(CalendarConfigError) as exc:
        WorkingCalendar(override)
    assert (
        str(exc.value)
        == f"calendar override {override}: [2031] has unknown keys ['hoilday']; use holidays and workdays"
    )
