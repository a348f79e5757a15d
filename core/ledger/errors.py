"""What the ledger refuses: a configuration it cannot use, a filter it cannot apply."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of the ledger's own errors; the message is one line meant for an operator or a caller."""


class LedgerConfigError(LedgerError):
    """A ``[ledger]`` setting that cannot be used (bad URL, unreachable server, unreadable key file);
    the message names the setting and the fix."""


class InvalidFilter(LedgerError):
    """A query filter the ledger cannot apply: ``field`` names it, ``fix`` says what to give."""

    def __init__(self, field: str, message: str, fix: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.fix = fix
