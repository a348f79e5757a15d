"""The ledger's tables (SQLAlchemy Core): one row per case, its coordinations, accountability and
ratings, and the projection's position in the stream.

Every column a query filters or orders by has an index; ``migrations/`` creates exactly these tables
(a test compares the migrated database with this metadata). Times are stored as naive UTC and read
back as aware UTC (``UtcDateTime``), so SQLite and PostgreSQL hold the same values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

PREFIX = "ledger_"


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime, stored as naive UTC (the one form both databases keep alike)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: the ledger stores UTC instants")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

cases = Table(
    f"{PREFIX}cases",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("opened_day", Date, nullable=False, comment="local date (Asia/Shanghai) of the opening"),
    Column("state", String(16), nullable=False),
    Column("category", String(16)),
    Column("department", String(64), comment="the department of the window where the matter failed"),
    Column("departments", Text, nullable=False, comment="JSON list of the departments asked"),
    Column("owner", String(64)),
    Column("matter_title", String(200)),
    Column("matter", String(64), comment="the matter's code"),
    Column("applicant", String(300), nullable=False, comment="masked name and id number"),
    Column("applicant_key", String(64), comment="HMAC-SHA256 of the normalised id number"),
    Column("applicant_name", String(200), comment="unmasked: only with [ledger] personal_data = true"),
    Column("applicant_id_number", String(64), comment="unmasked: only with [ledger] personal_data = true"),
    Column("due_date", Date),
    Column("overdue", Boolean, nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("closed_at", UtcDateTime),
    Column("outcome", String(32), comment="the outcome recorded at 銷號"),
    Column("rating", String(8), comment="the latest 好差評"),
    Column("last_stream_seq", BigInteger, nullable=False),
    Column("client_ref", String(80), comment="the caller's idempotency key of case.open"),
    Index(f"ix_{PREFIX}cases_state_opened_at", "state", "opened_at"),  # a state's cases in opening order
    Index(f"ix_{PREFIX}cases_state_due_date", "state", "due_date"),  # open cases past their due date
    Index(f"ix_{PREFIX}cases_overdue_opened_at", "overdue", "opened_at"),  # cases recorded overdue
    Index(f"ix_{PREFIX}cases_opened_at", "opened_at", "case_id"),
    Index(f"ix_{PREFIX}cases_opened_day", "opened_day"),
    Index(f"ix_{PREFIX}cases_department", "department"),
    Index(f"ix_{PREFIX}cases_category", "category"),
    Index(f"ix_{PREFIX}cases_applicant_key", "applicant_key"),
    Index(f"ix_{PREFIX}cases_matter_title", "matter_title"),
    Index(f"ix_{PREFIX}cases_matter", "matter"),
    Index(f"ix_{PREFIX}cases_client_ref", "client_ref"),
)

coordinations = Table(
    f"{PREFIX}coordinations",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("request_id", String(96), primary_key=True),
    Column("department", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("outcome", String(32)),
    Column("attempts", Integer, nullable=False),
    Column("requested_at", UtcDateTime),
    Column("deadline", Date, nullable=False),
    Column("rerouted_from", String(64)),
    Index(f"ix_{PREFIX}coordinations_department", "department", "case_id"),
)

accountability = Table(
    f"{PREFIX}accountability",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("ordinal", Integer, primary_key=True, comment="1, 2 ... within the case"),
    Column("department", String(64), comment="the case's intake department"),
    Column("staff", String(64), nullable=False),
    Column("section", String(200), nullable=False),
    Column("leader_in_charge", String(200), nullable=False),
    Column("finding", Text, nullable=False),
    Column("measures", Text, nullable=False, comment="JSON list"),
    Column("fault_tolerance", Boolean, nullable=False),
    Column("at", String(40), nullable=False, comment="ISO 8601 instant of the record, as the state gives it"),
    Index(f"ix_{PREFIX}accountability_department", "department"),
    Index(f"ix_{PREFIX}accountability_staff", "staff"),
)

ratings = Table(
    f"{PREFIX}ratings",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("event_seq", Integer, primary_key=True, comment="the case.evaluated event's seq in its case"),
    Column("rating", String(8), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("department_at_fault", String(64)),
    Index(f"ix_{PREFIX}ratings_at", "at"),
)

position = Table(
    f"{PREFIX}position",
    metadata,
    Column("projection", String(64), primary_key=True),
    Column("stream", String(64), nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

CASE_TABLES = (coordinations, accountability, ratings, cases)
"""The tables of case rows (children first): what a rebuild empties."""
