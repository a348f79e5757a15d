"""What the console keeps in ``<data dir>/console/``: staff passwords, the session secret, the ticket
queue (叫號) and the record of sign-in attempts. Secrets are written mode 0600 in a 0700 folder."""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from unstuck.clock import CHINA
from unstuck.natsconfig import write_secret

CONSOLE_DIR = "console"
PASSWORDS_FILE = "passwords.json"
SECRET_FILE = "secret"
TICKETS_FILE = "tickets.json"
LOGINS_FILE = "logins.jsonl"
MIN_PASSWORD_LENGTH = 10


def console_dir(data_dir: Path) -> Path:
    """``<data dir>/console``, created mode 0700."""
    path = Path(data_dir) / CONSOLE_DIR
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def session_secret(data_dir: Path) -> str:
    """The key that signs session cookies: made once (256 random bits), kept in ``console/secret``."""
    path = console_dir(data_dir) / SECRET_FILE
    if path.exists():
        text = path.read_text(encoding="utf-8").strip()
        if len(text) >= 32:
            return text
    text = secrets.token_urlsafe(32)
    write_secret(path, text + "\n")
    return text


class PasswordError(ValueError):
    """A password that cannot be set; the message (Chinese and English) says why."""


class PasswordStore:
    """Staff passwords as argon2id hashes (argon2-cffi's defaults, RFC 9106's second choice), one per staff id."""

    def __init__(self, data_dir: Path) -> None:
        self.path = console_dir(data_dir) / PASSWORDS_FILE
        self.hasher = PasswordHasher()
        self._lock = threading.Lock()
        # a hash to verify against for an unknown account, so its answer takes as long as a known one's
        self._decoy = self.hasher.hash(secrets.token_urlsafe(16))

    def _load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def set(self, staff_id: str, password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise PasswordError(
                f"密码至少 {MIN_PASSWORD_LENGTH} 个字符 / the password needs at least {MIN_PASSWORD_LENGTH} characters"
            )
        with self._lock:
            hashes = self._load()
            hashes[staff_id] = self.hasher.hash(password)
            write_secret(self.path, json.dumps(hashes, ensure_ascii=False, indent=1, sort_keys=True) + "\n")

    def has(self, staff_id: str) -> bool:
        return staff_id in self._load()

    def verify(self, staff_id: str, password: str) -> bool:
        stored = self._load().get(staff_id)
        try:
            self.hasher.verify(stored or self._decoy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        if stored is None:
            return False
        if self.hasher.check_needs_rehash(stored):  # parameters raised since: store the stronger hash
            self.set(staff_id, password)
        return True


@dataclass
class Ticket:
    number: str  # A001, the number the applicant holds
    day: str  # the local date it was taken on
    taken_at: str
    status: str = "waiting"  # waiting | called | done
    called_by: str | None = None
    case_id: str | None = None

    @property
    def ref(self) -> str:
        """The client_ref its case is opened with: opening twice from one ticket gives one case."""
        return f"ticket-{self.day}-{self.number}"


class TicketQueue:
    """The window's numbers (叫號): taken in order each day, called by a clerk, done once the case is open."""

    def __init__(self, data_dir: Path) -> None:
        self.path = console_dir(data_dir) / TICKETS_FILE
        self._lock = threading.Lock()

    def _load(self) -> list[Ticket]:
        if not self.path.exists():
            return []
        return [Ticket(**t) for t in json.loads(self.path.read_text(encoding="utf-8") or "[]")]

    def _save(self, tickets: list[Ticket]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(
            json.dumps([asdict(t) for t in tickets], ensure_ascii=False, indent=1), encoding="utf-8"
        )
        os.replace(tmp, self.path)

    @staticmethod
    def _today() -> str:
        return datetime.now(CHINA).date().isoformat()

    def today(self) -> list[Ticket]:
        day = self._today()
        return [t for t in self._load() if t.day == day]

    def take(self) -> Ticket:
        with self._lock:
            day = self._today()
            tickets = [t for t in self._load() if t.day >= day]  # yesterday's numbers are gone
            number = f"A{sum(1 for t in tickets if t.day == day) + 1:03d}"
            ticket = Ticket(number, day, datetime.now(CHINA).isoformat(timespec="seconds"))
            tickets.append(ticket)
            self._save(tickets)
            return ticket

    def call_next(self, staff_id: str) -> Ticket | None:
        with self._lock:
            tickets = self._load()
            day = self._today()
            for ticket in tickets:
                if ticket.day == day and ticket.status == "waiting":
                    ticket.status, ticket.called_by = "called", staff_id
                    self._save(tickets)
                    return ticket
            return None

    def find(self, number: str) -> Ticket | None:
        day = self._today()
        return next((t for t in self._load() if t.day == day and t.number == number), None)

    def done(self, number: str, case_id: str) -> None:
        with self._lock:
            tickets = self._load()
            day = self._today()
            for ticket in tickets:
                if ticket.day == day and ticket.number == number:
                    ticket.status, ticket.case_id = "done", case_id
            self._save(tickets)


class LoginLog:
    """Each sign-in attempt as one JSON line (``console/logins.jsonl``): when, who, from where, the outcome."""

    def __init__(self, data_dir: Path) -> None:
        self.path = console_dir(data_dir) / LOGINS_FILE
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(line)

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line]
