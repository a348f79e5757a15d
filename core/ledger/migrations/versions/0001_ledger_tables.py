"""The ledger's first tables: cases, coordinations, accountability, ratings, position.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from unstuck.ledger.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _cases()
    _coordinations()
    _accountability()
    _ratings()
    _position()


def _cases() -> None:
    op.create_table(
        "ledger_cases",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column(
            "opened_day", sa.Date(), nullable=False, comment="local date (Asia/Shanghai) of the opening"
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("category", sa.String(16)),
        sa.Column(
            "department", sa.String(64), comment="the department of the window where the matter failed"
        ),
        sa.Column("departments", sa.Text(), nullable=False, comment="JSON list of the departments asked"),
        sa.Column("owner", sa.String(64)),
        sa.Column("matter_title", sa.String(200)),
        sa.Column("matter", sa.String(64), comment="the matter's code"),
        sa.Column("applicant", sa.String(300), nullable=False, comment="masked name and id number"),
        sa.Column("applicant_key", sa.String(64), comment="HMAC-SHA256 of the normalised id number"),
        sa.Column(
            "applicant_name", sa.String(200), comment="unmasked: only with [ledger] personal_data = true"
        ),
        sa.Column(
            "applicant_id_number", sa.String(64), comment="unmasked: only with [ledger] personal_data = true"
        ),
        sa.Column("due_date", sa.Date()),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("closed_at", UtcDateTime()),
        sa.Column("outcome", sa.String(32), comment="the outcome recorded at 銷號"),
        sa.Column("rating", sa.String(8), comment="the latest 好差評"),
        sa.Column("last_stream_seq", sa.BigInteger(), nullable=False),
    )
    for name, columns in (
        ("state_opened_at", ["state", "opened_at"]),  # a state's cases in opening order
        ("state_due_date", ["state", "due_date"]),  # open cases past their due date
        ("overdue_opened_at", ["overdue", "opened_at"]),  # cases recorded overdue
        ("opened_at", ["opened_at", "case_id"]),
        ("opened_day", ["opened_day"]),
        ("department", ["department"]),
        ("category", ["category"]),
        ("applicant_key", ["applicant_key"]),
        ("matter_title", ["matter_title"]),
        ("matter", ["matter"]),
    ):
        op.create_index(f"ix_ledger_cases_{name}", "ledger_cases", columns)


def _coordinations() -> None:
    op.create_table(
        "ledger_coordinations",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(96), primary_key=True),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("requested_at", UtcDateTime()),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("rerouted_from", sa.String(64)),
    )
    op.create_index("ix_ledger_coordinations_department", "ledger_coordinations", ["department", "case_id"])


def _accountability() -> None:
    op.create_table(
        "ledger_accountability",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("ordinal", sa.Integer(), primary_key=True, comment="1, 2 ... within the case"),
        sa.Column("department", sa.String(64), comment="the case's intake department"),
        sa.Column("staff", sa.String(64), nullable=False),
        sa.Column("section", sa.String(200), nullable=False),
        sa.Column("leader_in_charge", sa.String(200), nullable=False),
        sa.Column("finding", sa.Text(), nullable=False),
        sa.Column("measures", sa.Text(), nullable=False, comment="JSON list"),
        sa.Column("fault_tolerance", sa.Boolean(), nullable=False),
        sa.Column(
            "at",
            sa.String(40),
            nullable=False,
            comment="ISO 8601 instant of the record, as the state gives it",
        ),
    )
    op.create_index("ix_ledger_accountability_department", "ledger_accountability", ["department"])
    op.create_index("ix_ledger_accountability_staff", "ledger_accountability", ["staff"])


def _ratings() -> None:
    op.create_table(
        "ledger_ratings",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column(
            "event_seq", sa.Integer(), primary_key=True, comment="the case.evaluated event's seq in its case"
        ),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("department_at_fault", sa.String(64)),
    )
    op.create_index("ix_ledger_ratings_at", "ledger_ratings", ["at"])


def _position() -> None:
    op.create_table(
        "ledger_position",
        sa.Column("projection", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "ledger_position",
        "ledger_ratings",
        "ledger_accountability",
        "ledger_coordinations",
        "ledger_cases",
    ):
        op.drop_table(table)
