"""The case row keeps the client_ref it was opened with, so ``case.list`` can find a case by it.

Rows written before this revision have no client_ref until their case changes again or the ledger
is rebuilt (``unstuck ledger rebuild``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "ledger_cases",
        sa.Column("client_ref", sa.String(80), comment="the caller's idempotency key of case.open"),
    )
    op.create_index("ix_ledger_cases_client_ref", "ledger_cases", ["client_ref"])


def downgrade() -> None:
    op.drop_index("ix_ledger_cases_client_ref", "ledger_cases")
    op.drop_column("ledger_cases", "client_ref")
