"""The applicant in the ledger: a masked display, and a keyed hash to find cases by id number.

The ledger holds no unmasked personal data unless ``[ledger] personal_data = true``. To still find an
applicant's cases, the row keeps ``applicant_key``: HMAC-SHA256 of the normalised id number under a
secret key of this deployment, and a search hashes the number it is given the same way. Without the
key the hash cannot be reversed by trying the (few, structured) id numbers there are.

The key comes from ``[ledger] applicant_key_file`` or, by default, from a file generated once beside
the database with mode 0600. Every process that writes or searches one ledger must use the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unstuck.schemas import mask_personal
from unstuck.schemas.identifiers import normalised_identifier

from .errors import LedgerConfigError

KEY_FILE_NAME = "ledger-applicant.key"
KEY_BYTES = 32


def applicant_key(key: bytes, id_number: str) -> str:
    """The keyed hash under which cases are found by the applicant's id number (hex)."""
    return hmac.new(key, normalised_identifier(id_number).encode("utf-8"), hashlib.sha256).hexdigest()


def display(applicant: Mapping[str, Any]) -> str:
    """The applicant as the ledger shows it: masked name and id number (as ``case.list`` shows it)."""
    masked = mask_personal(dict(applicant))
    return f"{masked.get('name', '')} {masked.get('id_number', '')}".strip()


def load_key(path: Path, create: bool) -> bytes:
    """The secret key in ``path``; generated there (mode 0600) when missing and ``create`` is set."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if not create:
            raise LedgerConfigError(
                f"[ledger] applicant_key_file: {path} does not exist; give the file the ledger was "
                "built with, or remove the setting to use the one beside the database"
            ) from None
        return _create_key(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerConfigError(
            f"[ledger] applicant_key_file: cannot read {path}: {exc}; fix its permissions or path"
        ) from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise LedgerConfigError(
            f"[ledger] applicant_key_file: {path} does not hold a key of 32 hex digits or more; "
            f"write one with `python -c 'import secrets; print(secrets.token_hex(32))' > {path}`"
        )
    return key


def _create_key(path: Path) -> bytes:
    """A new random key written to ``path`` readable by its owner only (never replaced: O_EXCL)."""
    key = secrets.token_bytes(KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return load_key(path, create=False)
    except OSError as exc:
        raise LedgerConfigError(
            f"[ledger] applicant_key_file: cannot create {path}: {exc.strerror}; "
            "set applicant_key_file to a writable place"
        ) from exc
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key.hex() + "\n")
    return key
