"""The ledger (台賬) as a read model in a real database: the case stream projected into tables that
answer ``case.list``, ``accountability.list`` and the status report's counts.

``Ledger`` is the database (SQLite by default, PostgreSQL by URL; migrated with Alembic when opened),
``Projector`` keeps it up to date from the stream with a durable JetStream consumer, idempotent by
stream sequence. ``check`` compares the rows with states replayed from the stream. docs/ledger.md
explains the tables, the personal data rule and the projection.
"""

from . import check
from .applicants import applicant_key
from .check import Difference, compare
from .database import Batch, Ledger, PositionMoved, default_url
from .errors import InvalidFilter, LedgerConfigError, LedgerError
from .projector import DEFAULT_NAME, Projector

__all__ = [
    "DEFAULT_NAME",
    "Batch",
    "Difference",
    "InvalidFilter",
    "Ledger",
    "LedgerConfigError",
    "LedgerError",
    "PositionMoved",
    "Projector",
    "applicant_key",
    "check",
    "compare",
    "default_url",
]
