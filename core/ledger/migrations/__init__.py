"""Alembic scripts of the ledger's schema (run by ``unstuck.ledger.migrate``)."""
