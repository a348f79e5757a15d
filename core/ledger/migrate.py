"""The ledger's schema migrations (Alembic), run in code: ``upgrade(connection)`` brings a database to
the newest revision. The scripts live in ``migrations/`` inside the package, so an installed unstuck
carries them; the revision is kept in the table ``ledger_alembic_version``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

SCRIPTS = Path(__file__).with_name("migrations")
VERSION_TABLE = "ledger_alembic_version"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    """Migrate the database behind ``connection`` to the head revision (a no-op when it is there)."""
    command.upgrade(_config(connection), "head")


def head() -> str | None:
    """The newest revision the scripts know."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(connection: Connection) -> str | None:
    """The revision the database is at (None before the first migration)."""
    return MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
