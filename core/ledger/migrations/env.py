"""Alembic's environment for the ledger: always run by ``unstuck.ledger.migrate`` on a connection it
hands over (``config.attributes["connection"]``); there is no alembic.ini and no offline mode."""

from __future__ import annotations

from alembic import context

from unstuck.ledger.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table="ledger_alembic_version")
with context.begin_transaction():
    context.run_migrations()
