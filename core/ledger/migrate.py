"""The ledger's schema migrations (Alembic), run in code: ``upgrade(connection)`` brings a database to
the newest revision. The scripts live in ``migrations/`` inside the package, so an installed unstuck
carries them; the revision is kept in the table ``ledger_alembic_version``.

A database already at ``LATEST`` is recognised with one query, without importing Alembic (some
10 MB a broker would otherwise keep for nothing); a test holds ``LATEST`` to Alembic's own head.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPTS = Path(__file__).with_name("migrations")
VERSION_TABLE = "ledger_alembic_version"
LATEST = "0002"
"""The newest revision in ``migrations/versions`` (``head()`` computes it with Alembic)."""


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    """Migrate the database behind ``connection`` to the head revision (a no-op when it is there)."""
    if stored_revision(connection) == LATEST:
        return
    from alembic import command

    command.upgrade(_config(connection), "head")


def stored_revision(connection: Connection) -> str | None:
    """The revision recorded in the database, read with plain SQL (None before the first migration)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def head() -> str | None:
    """The newest revision the scripts know."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current(connection: Connection) -> str | None:
    """The revision the database is at (None before the first migration), as Alembic reads it."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
