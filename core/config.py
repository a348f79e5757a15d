"""Configuration: one TOML file (``unstuck.toml`` or ``$UNSTUCK_CONFIG``), every default in this module.

Unknown keys are errors that name the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from datetime import time, tzinfo
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from unstuck.clock import CHINA
from unstuck.schemas.common import Category
from unstuck.schemas.department import LEVEL_NAMES, Level
from unstuck.workcalendar import CalendarConfigError, WorkingCalendar


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryPolicy(Section):
    """How the broker asks one department: per-attempt timeout, attempts, backoff, then the slow schedule."""

    timeout_seconds: float = Field(default=2.0, gt=0, le=300)
    attempts: int = Field(default=3, ge=1, le=20)
    backoff_initial_seconds: float = Field(default=0.5, ge=0, le=600)
    backoff_max_seconds: float = Field(default=5.0, ge=0, le=3600)
    jitter_seconds: float = Field(default=0.25, ge=0, le=60)
    stalled_retry_seconds: float = Field(default=60.0, gt=0, le=86400)
    concurrency: int = Field(default=64, ge=1, le=10000)


class DepartmentConfig(Section):
    name: str | None = None
    higher: str | None = Field(default=None, description="the higher department that reviews a `cannot`")
    chain: dict[str, str] = Field(default_factory=dict)
    retry: dict[str, Any] = Field(
        default_factory=dict, description="overrides of [retry] for this department"
    )


class WindowConfig(Section):
    duty_leader: str = "duty-leader"
    chain: dict[str, str] = Field(
        default_factory=lambda: {
            "clerk": "窗口經辦人",
            "section_head": "窗口負責人",
            "leader_in_charge": "值班領導",
            "director": "政務服務中心主任",
        }
    )


class DeadlineConfig(Section):
    working_days: dict[Category, Annotated[int, Field(ge=1, le=60)]] = Field(
        default_factory=dict,
        description="overrides of the 1-3-5 rule by category; the rule itself is plugins.rules.ONE_THREE_FIVE",
    )
    warn_at: list[int] = Field(
        default_factory=lambda: [1, 0], description="warn when this many working days are left"
    )
    intake_working_days: int = Field(
        default=0,
        ge=0,
        le=10,
        description="an unclassified case is classified by the end of this working day after opening "
        "(0: the working day it opened, or the next one when it opened on a day off)",
    )
    escalation_working_hours: float = Field(
        default=8.0,
        gt=0,
        le=80,
        description="office hours on working days between two levels of 督辦 (8: one working day)",
    )
    office_hours: str = Field(
        default="09:00-17:00",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="the window's office hours, HH:MM-HH:MM local time: the working hours escalation counts",
    )
    review_working_days: int = Field(
        default=5, ge=1, le=20, description="working days the higher department has to review a `cannot`"
    )
    # at most 10: a committee decision may take up to 10 working days, and case.extended records no more
    max_extension_days: int = Field(default=10, ge=1, le=10)
    max_bounces: int = Field(default=2, ge=1, le=10)
    review_notify_days: int = Field(default=3, ge=1, le=10)
    follow_up_working_days: int = Field(
        default=15, ge=1, le=60, description="working days for a bad rating's 回訪 and 整改 (follow-up)"
    )
    invite_rating_days: int = Field(
        default=3,
        ge=0,
        le=30,
        description="days after 銷號 an applicant who has not rated is invited once (0: never)",
    )
    calendar_override: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "escalation_period_hours" in data:
            raise ValueError(
                "escalation_period_hours was replaced by escalation_working_hours: working hours "
                "within office_hours on working days (8 = one working day)"
            )
        return data

    @field_validator("office_hours")
    @classmethod
    def _opens_before_closing(cls, value: str) -> str:
        opens, closes = value.split("-")
        if opens >= closes:
            raise ValueError(f"office_hours {value!r} must open before it closes, e.g. 09:00-17:00")
        return value

    def office(self) -> tuple[time, time]:
        opens, closes = self.office_hours.split("-")
        return time.fromisoformat(opens), time.fromisoformat(closes)


class BrokerConfig(Section):
    case_prefix: str = Field(default="DD", pattern=r"^[A-Z]{1,8}$")
    metrics_address: str = "127.0.0.1:9464"
    max_payload_bytes: int = Field(default=64 * 1024, ge=1024, le=8 * 1024 * 1024)
    api_concurrency: int = Field(default=256, ge=1, le=100000)
    tick_seconds: float = Field(default=60.0, gt=0)
    require_identity: bool = Field(
        default=False,
        description="refuse anonymous requests that act on a case: who acts must be proven (always under --secure)",
    )
    discovery_seconds: float = Field(
        default=10.0,
        ge=0.5,
        le=3600,
        description="how often the broker asks $SRV.INFO which departments' adapters answer on the bus",
    )
    stream: str = "UNSTUCK_CASES"
    replicas: int = Field(default=1, ge=1, le=5)
    snapshot_seconds: float = Field(
        default=300.0,
        ge=1,
        le=86400,
        description="how often the open cases are snapshotted while they change",
    )
    online_owner: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="the staff member who answers for cases reported online (首問負責): "
        "without one the portal cannot open cases",
    )


class LimitsConfig(Section):
    """Abuse limits of the API (0 turns a limit off); each refusal is an error with code rate_limited."""

    api_requests_per_second: float = Field(
        default=100.0,
        ge=0,
        le=100000,
        description="per proven principal (all anonymous requests share one bucket)",
    )
    api_burst: int = Field(default=200, ge=1, le=1000000, description="requests a client may send at once")
    cases_per_applicant_per_day: int = Field(
        default=20, ge=0, le=10000, description="cases opened for one applicant id number per local day"
    )


class LedgerConfig(Section):
    """The ledger (台賬) read model in a database (docs/ledger.md)."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db; "
        "default a SQLite file ledger.sqlite in the data directory",
    )
    applicant_key_file: Path | None = Field(
        default=None,
        description="the secret key that hashes applicant id numbers; default a file generated once "
        "beside the database (mode 0600)",
    )
    personal_data: bool = Field(
        default=False,
        description="also store the applicant's unmasked name and id number in the case row (never by default)",
    )
    in_broker: bool = Field(
        default=True,
        description="run the ledger's projector inside the broker; false: run `unstuck ledger run` beside it",
    )


class DisplayConfig(Section):
    """What the command line shows window staff."""

    timezone: str = Field(
        default="Asia/Shanghai",
        description="the time zone (IANA name) the command line prints times in; stored times stay UTC",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        display_zone(value)
        return value


class ConsoleConfig(Section):
    """The window console (``unstuck console``, docs/console.md)."""

    address: str = Field(
        default="127.0.0.1:8480", pattern=r"^[^\s:]*:[0-9]{1,5}$", description="host:port it listens on"
    )
    identity_provider: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="module:callable taking (username, password) and returning a staff id or None, "
        "asked before the console's own passwords",
    )
    session_minutes: int = Field(default=480, ge=5, le=7 * 24 * 60, description="a sign-in lasts this long")
    secure_cookies: bool = Field(
        default=False, description="send the session cookie over HTTPS only (set it behind a TLS proxy)"
    )
    login_attempts_per_account: int = Field(
        default=5, ge=1, le=1000, description="failed sign-ins per account within login_window_minutes"
    )
    login_attempts_per_address: int = Field(
        default=20, ge=1, le=10000, description="failed sign-ins per client address within the window"
    )
    login_window_minutes: int = Field(default=15, ge=1, le=1440)


class NotifyConfig(Section):
    """``unstuck notify``: where notifications are mailed from and to (docs/notifications.md)."""

    smtp_host: str = Field(default="localhost", description="the SMTP server that relays the mail")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="unstuck@localhost", description="the From address of every notification")
    smtp_starttls: bool = Field(default=False, description="upgrade the connection with STARTTLS")
    smtp_username: str | None = Field(default=None, description="sign in to the SMTP server as this user")
    smtp_password_file: Path | None = Field(
        default=None, description="a file holding the SMTP password (one line, mode 0600), with smtp_username"
    )
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    staff_email: dict[str, str] = Field(
        default_factory=dict, description='staff id -> email address, e.g. "w-li" = "li@example.gov.cn"'
    )
    redelivery_seconds: list[Annotated[float, Field(gt=0, le=86400)]] = Field(
        default_factory=lambda: [5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0],
        min_length=1,
        max_length=9,
        description="waits before the 2nd, 3rd, ... delivery of a notification that failed",
    )
    max_deliver: int = Field(default=10, ge=2, le=100, description="deliveries before a notification is dead")
    ack_wait_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="a delivery not acknowledged within this is redelivered"
    )
    metrics_address: str | None = Field(
        default="127.0.0.1:9465", description="host:port of its /metrics (unset: none)"
    )


def display_zone(name: str) -> tzinfo:
    """The zone ``name`` (IANA, e.g. Asia/Shanghai); ValueError naming it when there is no such zone.
    Asia/Shanghai is known even without the time zone database (China keeps UTC+8 all year)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        if name == "Asia/Shanghai":
            return CHINA
        raise ValueError(f"unknown time zone {name!r}: give an IANA name such as Asia/Shanghai") from None


DEFAULT_DEPARTMENTS: dict[str, dict[str, Any]] = {
    "renshe": {"name": "人力資源和社會保障局", "higher": "省人力資源和社會保障廳"},
    "scjg": {"name": "市場監督管理局", "higher": "省市場監督管理局"},
    "chengguan": {"name": "城市管理局", "higher": "市城市管理委員會"},
}


class Config(Section):
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    deadlines: DeadlineConfig = Field(default_factory=DeadlineConfig)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    display: DisplayConfig = Field(default_factory=DisplayConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    departments: dict[str, DepartmentConfig] = Field(default_factory=dict)
    staff: dict[str, str] = Field(
        default_factory=dict, description="staff id → clerk | section_head | leader_in_charge | director"
    )
    source: Path | None = None

    def department_codes(self) -> list[str]:
        return sorted(set(DEFAULT_DEPARTMENTS) | set(self.departments))

    def department(self, code: str) -> DepartmentConfig:
        base = DEFAULT_DEPARTMENTS.get(code, {})
        own = self.departments.get(code)
        merged = {**base, **(own.model_dump(exclude_unset=True) if own else {})}
        return DepartmentConfig(**merged)

    def escalation_chains(self) -> dict[str, dict[str, str]]:
        """Every department's escalation chain, and the window's own (for the built-in escalation rule)."""
        return {
            **{code: self.department(code).chain for code in self.department_codes()},
            "window": dict(self.window.chain),
        }

    def retry_policy(self, code: str) -> RetryPolicy:
        overrides = self.department(code).retry
        try:
            return RetryPolicy(**{**self.retry.model_dump(), **overrides})
        except ValidationError as exc:
            raise ConfigError(f"[departments.{code}.retry]: {_first(exc)}") from exc

    def rank(self, staff_id: str) -> int:
        """The rank of a staff member on the chain; the window's duty leader counts as a leader."""
        if staff_id == self.window.duty_leader:
            return int(Level.LEADER_IN_CHARGE)
        role = self.staff.get(staff_id, "clerk")
        for level, name in LEVEL_NAMES.items():
            if name == role:
                return int(level)
        return 0


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the key and the fix."""


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"


def load_config(path: Path | None = None) -> Config:
    """Read the configuration file, or the defaults when there is none."""
    if path is None:
        env = os.environ.get("UNSTUCK_CONFIG")
        path = Path(env) if env else Path("unstuck.toml")
        if not env and not path.exists():
            return Config()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"configuration {path}: {exc.strerror}; pass an existing file or unset UNSTUCK_CONFIG"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration {path}: {exc}") from exc
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"configuration {path}: {_first(exc)}") from exc
    for code, dept in config.departments.items():
        config.retry_policy(code)
        for role in dept.chain:
            if role not in LEVEL_NAMES.values():
                raise ConfigError(
                    f"configuration {path}: [departments.{code}.chain] has {role!r}; "
                    f"use {', '.join(LEVEL_NAMES.values())}"
                )
    roles = ", ".join(LEVEL_NAMES.values())
    for role in config.window.chain:
        if role not in LEVEL_NAMES.values():
            raise ConfigError(f"configuration {path}: [window.chain] has {role!r}; use {roles}")
    for staff_id, role in config.staff.items():
        # a misspelt role would silently make a leader a clerk
        if role not in LEVEL_NAMES.values():
            raise ConfigError(f"configuration {path}: [staff] {staff_id!r} = {role!r}; use one of {roles}")
    override = config.deadlines.calendar_override
    if override is not None and not override.is_absolute():
        config.deadlines.calendar_override = Path(path).parent / override
    key_file = config.ledger.applicant_key_file
    if key_file is not None and not key_file.is_absolute():
        config.ledger.applicant_key_file = Path(path).parent / key_file
    if config.deadlines.calendar_override is not None:
        try:  # read it now: a bad file found by the broker would stop it after NATS has started
            WorkingCalendar(config.deadlines.calendar_override)
        except CalendarConfigError as exc:
            raise ConfigError(f"configuration {path}: [deadlines] calendar_override: {exc}") from exc
    return config.model_copy(update={"source": Path(path)})
