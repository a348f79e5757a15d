"""Working days: the statutory calendar, the local override file, and the weekends-only fallback."""

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


def test_an_unknown_year_falls_back_to_weekends_only_with_a_warning_and_a_callback(caplog):
    seen: list[int] = []
    cal = WorkingCalendar(on_unknown_year=seen.append)
    with caplog.at_level(logging.WARNING):
        assert cal.add_working_days(date(2031, 1, 3), 1) == date(2031, 1, 6)
    assert "no statutory calendar for 2031" in caplog.text
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
    assert out.stdout.strip() == WorkingCalendar().add_working_days(date(2026, 9, 30), 5).isoformat()


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
