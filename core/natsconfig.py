"""nats-server authentication and authorisation for the bus, generated from the department registry.

NATS itself enforces who may do what; this module only writes its configuration. There is one
NATS user per *principal*: the broker, the window's CLI/front end, the auditor, and each
department (``dept-<code>``). Each principal's password lives in its own credentials file
(``credentials/<principal>.env``, mode 0600) that a component reads through
``UNSTUCK_NATS_AUTH_FILE`` (or ``UNSTUCK_NATS_USER``/``UNSTUCK_NATS_PASSWORD``). The server
configuration holds bcrypt hashes when this Python can make them, otherwise the plain passwords;
it is written with mode 0600 either way.

Private inboxes: a principal that makes requests (broker, CLI, auditor) may subscribe only to
``_INBOX.<user>.>``; the clients use that inbox prefix (``connection.Connection`` sets it from the
user name). Without this, anyone allowed ``_INBOX.>`` could read every reply on the bus, and
every case event the broker's ordered consumer receives.

Two accounts: the auditor lives in its own (``AUDIT``) and reaches the bus account only through
read-only JetStream services imported under ``JS.UNSTUCK.API``. In one account, any request can
name its reply subject, and a JetStream API answer sent to ``unstuck.case.X`` is stored in the
case stream: an auditor that may call the API at all could write the record. Across accounts,
answers go back to the asking account only.

Rotation without stopping the bus: ``rotate`` adds a second generation of a principal's user
(``<principal>-r<n>``) next to the current one and rewrites its credentials file; after the
server reloads its configuration both work, so components restart one by one with the new
file; ``retire`` then drops the old user and, on the next reload, the server disconnects anyone
still using it. See docs/security.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unstuck.schemas.subjects import (
    ACTING_VIAS,
    API_PREFIX,
    APPLICANT,
    CASE_PREFIX,
    DEPARTMENT_PREFIX,
    HEADS_BUCKET,
    IDS_BUCKET,
    LEDGER_CONSUMER,
    NOTIFY_CONSUMER,
    NOTIFY_PREFIX,
    NOTIFY_STREAM,
    PORTAL,
    PORTAL_VERBS,
    SERVICE_PREFIX,
    SNAPSHOTS_BUCKET,
    STAFF_PREFIX,
    VIA_NATS,
    VIA_WEB,
)

CONFIG_FILE = "nats-server.conf"
SETTINGS_FILE = "nats-config.json"
CREDENTIALS_DIR = "credentials"
RETIRING_SUFFIX = ".retiring"
USER_ENV = "UNSTUCK_NATS_USER"
PASSWORD_ENV = "UNSTUCK_NATS_PASSWORD"
AUTH_FILE_ENV = "UNSTUCK_NATS_AUTH_FILE"
BCRYPT_ROUNDS = (
    2**11
)  # nats-server checks the hash on every connect; cost 11 is what `nats server passwd` uses

BROKER = "broker"
CLI = "cli"
AUDITOR = "auditor"
NOTIFIER = "notifier"  # delivers the notifications: reads UNSTUCK_NOTIFY through its consumer, nothing else
CONSOLE = "console"  # the window console: acts for the staff member signed in, on unstuck.api.web.<staff>.>
# PORTAL (schemas.subjects): the online channel, acting for applicants on its own verbs only
JS_API_PREFIX_ENV = "UNSTUCK_NATS_JS_API_PREFIX"
BUS_ACCOUNT = "UNSTUCK"
AUDIT_ACCOUNT = "AUDIT"
AUDIT_JS_PREFIX = "JS.UNSTUCK.API"  # where the auditor's account sees the bus's read-only JetStream calls

_PRINCIPAL = re.compile(
    r"^(broker|cli|auditor|notifier|console|portal|dept-[a-z][a-z0-9_]{0,31}|staff-[A-Za-z0-9_-]{1,58})$"
)
_GENERATION = re.compile(r"^(?P<principal>.+?)-r(?P<n>[0-9]+)$")


class SecurityConfigError(ValueError):
    """A security configuration that cannot be generated or used; the message says what to do."""


@dataclass(frozen=True)
class Principal:
    """Who connects to NATS: the broker, the CLI/front end, the auditor, or one department."""

    name: str
    role: str
    department: str | None = None
    staff: tuple[str, ...] = ()  # staff: its own id; the console: every staff id it may act for

    @property
    def account(self) -> str:
        return AUDIT_ACCOUNT if self.role == "auditor" else BUS_ACCOUNT


def department_principal(code: str) -> str:
    return f"{DEPARTMENT_PREFIX}{code}"


def staff_principal(staff_id: str) -> str:
    return f"{STAFF_PREFIX}{staff_id}"


def principals(departments: Iterable[str], staff: Iterable[str] = ()) -> list[Principal]:
    """Every principal of a bus with these departments and staff members (``[staff]``)."""
    staff = tuple(sorted(set(staff)))
    codes = sorted(set(departments))
    out = [
        Principal(BROKER, "broker"),
        Principal(CLI, "cli"),
        Principal(AUDITOR, "auditor"),
        Principal(NOTIFIER, "notifier"),
        Principal(CONSOLE, "console", staff=staff),
        Principal(PORTAL, "portal"),
    ]
    for code in codes:
        name = department_principal(code)
        if not _PRINCIPAL.match(name):
            raise SecurityConfigError(
                f"department code {code!r} cannot be a NATS user: use a lowercase ASCII token like renshe"
            )
        out.append(Principal(name, "department", code))
    for staff_id in staff:
        name = staff_principal(staff_id)
        # a staff member acts under their id, a department under its code: the same name would let
        # the staff member record that department's answer (case.record)
        if not _PRINCIPAL.match(name) or staff_id == APPLICANT or staff_id in codes:
            raise SecurityConfigError(
                f"[staff] {staff_id!r} cannot be a NATS user: use letters, digits, '-' and '_' (e.g. w-zhang), "
                f"and neither {APPLICANT!r} nor a department's code"
            )
        out.append(Principal(name, "staff", staff=(staff_id,)))
    return out


def registry_departments(config: Any, installed: Iterable[str] = ()) -> list[str]:
    """The department registry: configured departments plus installed adapters."""
    return sorted(set(config.department_codes()) | set(installed))


# --- permissions --------------------------------------------------------------------------------


def _js(*parts: str) -> str:
    return "$JS.API." + ".".join(parts)


def inbox_prefix(user: str) -> str:
    """The private inbox prefix of a user: only this user may subscribe below it."""
    return f"_INBOX.{user}"


STREAMED = "stream"  # a service export whose one request gets many response messages


def audit_api(stream: str) -> dict[str, str | None]:
    """The JetStream API calls (after ``$JS.API.``) the auditor's account imports, with their response type.

    Reads only: stream info and message gets, batched direct gets included (many answers to one
    request). No consumer at all: a push consumer delivers wherever its creator says, so an auditor
    could route the record to a department; a get answers only the asker. No stream or KV
    management, no publishing, no purge.
    """
    out: dict[str, str | None] = {}
    for s in (stream, f"KV_{HEADS_BUCKET}"):
        out |= {
            f"STREAM.INFO.{s}": None,
            f"STREAM.MSG.GET.{s}": None,
            f"DIRECT.GET.{s}": STREAMED,
            f"DIRECT.GET.{s}.>": None,
        }
    return out


def _api_client_permissions(principal: Principal, inbox: str) -> dict[str, Any]:
    """The callers of the API: who may publish on which API subjects (the subject proves who acts)."""
    if principal.role == "cli":
        return {
            # anonymous: the broker answers it only what needs no identity (it acts as no one)
            # not $SRV.*: departments answer those, so a CLI could aim their answers at unstuck.case.X
            "publish": {
                "allow": [f"{API_PREFIX}.>"],
                "deny": [f"{API_PREFIX}.{via}.>" for via in ACTING_VIAS],
            },
            "subscribe": {"allow": [inbox]},
        }
    if principal.role == "staff":
        # one staff member: requests only on its own subject, so the broker knows who acts
        allowed = [f"{API_PREFIX}.{VIA_NATS}.{principal.name}.>"]
    else:
        # the console: for each staff member it signs in, and the applicant's evaluation screen
        allowed = [
            *[f"{API_PREFIX}.{VIA_WEB}.{staff_id}.>" for staff_id in principal.staff],
            f"{API_PREFIX}.{VIA_WEB}.{APPLICANT}.case.evaluate",
        ]
    return {"publish": {"allow": allowed}, "subscribe": {"allow": [inbox]}}


def _notifier_permissions(inbox: str) -> dict[str, Any]:
    """``unstuck notify``: the notifications the broker stored, through its own durable pull consumer,
    acknowledged after delivery. Nothing else: no core subscription to ``unstuck.notify.>``, no
    stream or consumer management, no publishing."""
    return {
        "publish": {
            "allow": [
                _js("CONSUMER", "INFO", NOTIFY_STREAM, NOTIFY_CONSUMER),
                _js("CONSUMER", "DURABLE", "CREATE", NOTIFY_STREAM, NOTIFY_CONSUMER),
                _js("CONSUMER", "MSG", "NEXT", NOTIFY_STREAM, NOTIFY_CONSUMER),
                f"$JS.ACK.{NOTIFY_STREAM}.{NOTIFY_CONSUMER}.>",
            ]
        },
        "subscribe": {"allow": [inbox]},
    }


def permissions(principal: Principal, user: str, stream: str) -> dict[str, Any]:
    """The nats-server permissions block of one user of ``principal``.

    The JetStream API subjects are the exact ones nats-py sends for what each role does
    (tests/test_security_permissions.py exercises each of them against a real server).
    """
    heads, ids, snapshots = f"KV_{HEADS_BUCKET}", f"KV_{IDS_BUCKET}", f"OBJ_{SNAPSHOTS_BUCKET}"
    inbox = f"{inbox_prefix(user)}.>"
    if principal.role == "broker":
        streams = (stream, heads, ids, snapshots)
        return {
            "publish": {
                "allow": [
                    f"{CASE_PREFIX}.>",  # appends to the case record
                    f"$KV.{HEADS_BUCKET}.>",  # the heads written outside the stream
                    f"$KV.{IDS_BUCKET}.>",  # case id allocation
                    f"$O.{SNAPSHOTS_BUCKET}.>",  # the snapshot of the open cases
                    _js("STREAM", "PURGE", snapshots),  # a new snapshot drops the old one's chunks
                    # the ledger's projector: its own durable consumer on the case stream, acknowledged
                    _js("CONSUMER", "DURABLE", "CREATE", stream, LEDGER_CONSUMER),
                    *[_js("CONSUMER", op, stream, LEDGER_CONSUMER) for op in ("INFO", "DELETE")],
                    _js("CONSUMER", "MSG", "NEXT", stream, LEDGER_CONSUMER),
                    f"$JS.ACK.{stream}.{LEDGER_CONSUMER}.>",
                    "unstuck.dept.*.coordinate",
                    "$SRV.INFO",  # which departments' adapters answer (the replies come to its inbox)
                    "$SRV.INFO.*",
                    f"{NOTIFY_PREFIX}.>",  # the notifications, stored in UNSTUCK_NOTIFY
                    *[_js("STREAM", op, NOTIFY_STREAM) for op in ("INFO", "CREATE")],
                    _js("INFO"),
                    _js("STREAM", "NAMES"),
                    *[_js("STREAM", "INFO", s) for s in streams],
                    *[_js("STREAM", "CREATE", s) for s in streams],
                    # no STREAM.UPDATE: an update may shrink the limits (max_msgs 1), and the server then
                    # drops the record's oldest messages whatever deny_delete and deny_purge say
                    *[_js("STREAM", "MSG", "GET", s) for s in streams],
                    *[_js("DIRECT", "GET", s) for s in streams],
                    *[_js("DIRECT", "GET", s, ">") for s in streams],
                    *[_js("CONSUMER", "CREATE", s) for s in (stream, heads, snapshots)],
                    *[_js("CONSUMER", "CREATE", s, ">") for s in (stream, heads, snapshots)],
                ]
            },
            "subscribe": {"allow": [f"{API_PREFIX}.>", inbox]},
            # API replies and the flow-control answers of its ordered consumer
            "allow_responses": True,
        }
    if principal.role in ("cli", "staff", "console"):
        return _api_client_permissions(principal, inbox)
    if principal.role == "portal":
        # the public portal: its own verbs only (report, look up by receipt code, rate), as itself
        verbs = [f"{API_PREFIX}.{VIA_NATS}.{PORTAL}.{verb}" for verb in PORTAL_VERBS]
        return {"publish": {"allow": verbs}, "subscribe": {"allow": [inbox]}}
    if principal.role == "notifier":
        return _notifier_permissions(inbox)
    if principal.role == "auditor":
        # in its own account: it can call only the read-only services the bus account exports
        return {
            "publish": {"allow": [f"{AUDIT_JS_PREFIX}.{api}" for api in audit_api(stream)]},
            "subscribe": {"allow": [inbox]},
        }
    code = principal.department
    service = f"{SERVICE_PREFIX}{code}"
    return {
        # answers to the requests it received, and its own answer recorded by hand (case.record)
        "publish": {"allow": [f"{API_PREFIX}.{VIA_NATS}.{principal.name}.case.record"]},
        "subscribe": {
            "allow": [
                inbox,
                f"unstuck.dept.{code}.>",
                "$SRV.PING",
                "$SRV.INFO",
                "$SRV.STATS",
                f"$SRV.*.{service}",
                f"$SRV.*.{service}.*",
            ]
        },
        "allow_responses": True,
    }


# --- credentials --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    """One NATS user of a principal. ``repr`` never shows the password."""

    principal: str
    user: str
    password: str = field(repr=False)
    js_api_prefix: str | None = None

    @property
    def generation(self) -> int:
        m = _GENERATION.match(self.user)
        return int(m["n"]) if m and m["principal"] == self.principal else 1

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        return {"user": self.user, "password": self.password, "inbox_prefix": inbox_prefix(self.user)}

    def text(self) -> str:
        prefix = f"{JS_API_PREFIX_ENV}={self.js_api_prefix}\n" if self.js_api_prefix else ""
        return (
            f"# NATS credentials of unstuck principal {self.principal!r}. Secret: keep mode 0600, never share.\n"
            f"# Use: {AUTH_FILE_ENV}=<this file>, or export it as an environment file.\n"
            f"{USER_ENV}={self.user}\n"
            f"{PASSWORD_ENV}={self.password}\n"
            f"{prefix}"
        )


def local_credential(directory: Path, principal: str, fallback: str | None = CLI) -> Credential | None:
    """The credentials a command run in the data directory finds on its own (the environment's come
    first): ``principal``'s file under ``<dir>/credentials/``, else ``fallback``'s, else None (a bus
    without authorisation). Whoever can read the file is that principal: the files are mode 0600."""
    store = CredentialStore(directory)
    for name in (principal, fallback):
        if name and store.file(name).is_file():
            return store.get(name)
    return None


def acting_principal(credential: Credential | None) -> str | None:
    """The principal whose own API subjects these credentials may use (a staff member or a department),
    whatever the generation of the user (``staff-w-zhang-r2`` acts as ``staff-w-zhang``); None otherwise."""
    if credential is None:
        return None
    name = credential.principal
    m = _GENERATION.match(name)
    if m and m["principal"].startswith((STAFF_PREFIX, DEPARTMENT_PREFIX)):
        name = m["principal"]
    return name if name.startswith((STAFF_PREFIX, DEPARTMENT_PREFIX)) else None


def _js_api_prefix_of(principal: str) -> str | None:
    return AUDIT_JS_PREFIX if principal == AUDITOR else None


def credential_from_env(environ: dict[str, str] | None = None) -> Credential | None:
    """The credential a component was given: ``UNSTUCK_NATS_AUTH_FILE``, else user and password variables."""
    env = os.environ if environ is None else environ
    path = env.get(AUTH_FILE_ENV)
    if path:
        return read_credential_file(Path(path))
    user, password = env.get(USER_ENV), env.get(PASSWORD_ENV)
    if user and password:
        return Credential(user, user, password, env.get(JS_API_PREFIX_ENV) or None)
    return None


def new_password() -> str:
    return secrets.token_urlsafe(32)


def read_credential_file(path: Path, principal: str | None = None) -> Credential:
    """Parse a credentials file (``KEY=VALUE`` lines, ``#`` comments); never echoes its content."""
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SecurityConfigError(
            f"credentials file {path}: {exc.strerror}; generate it with `unstuck nats-config`"
        ) from exc
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("\"'")
    user, password = values.get(USER_ENV), values.get(PASSWORD_ENV)
    if not user or not password:
        raise SecurityConfigError(
            f"credentials file {path} lacks {USER_ENV} or {PASSWORD_ENV}; regenerate it with "
            "`unstuck nats-config --rotate <principal>`"
        )
    if principal is None:
        principal = Path(path).name.removesuffix(".env").removesuffix(RETIRING_SUFFIX)
    prefix = values.get(JS_API_PREFIX_ENV) or None
    return Credential(principal=principal, user=user, password=password, js_api_prefix=prefix)


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (a reloading server never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            f.write(text)
        os.replace(tmp, path)
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class CredentialStore:
    """The credentials files of one bus: ``<dir>/credentials/<principal>.env`` (+ ``.retiring.env``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / CREDENTIALS_DIR

    def file(self, principal: str, retiring: bool = False) -> Path:
        if not _PRINCIPAL.match(principal):
            raise SecurityConfigError(
                f"unknown principal {principal!r}: use broker, cli, auditor or dept-<code>"
            )
        return self.path / f"{principal}{RETIRING_SUFFIX if retiring else ''}.env"

    def _ensure_dir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)

    def get(self, principal: str) -> Credential:
        return read_credential_file(self.file(principal), principal)

    def retiring(self, principal: str) -> Credential | None:
        path = self.file(principal, retiring=True)
        return read_credential_file(path, principal) if path.exists() else None

    def ensure(self, principal: str) -> tuple[Credential, bool]:
        """The principal's credential, created if missing; returns (credential, created)."""
        path = self.file(principal)
        if path.exists():
            return self.get(principal), False
        self._ensure_dir()
        credential = Credential(principal, principal, new_password(), _js_api_prefix_of(principal))
        write_secret(path, credential.text())
        return credential, True

    def rotate(self, principal: str) -> Credential:
        """Start a rotation: the current user becomes *retiring*, a new generation becomes current."""
        if self.file(principal, retiring=True).exists():
            raise SecurityConfigError(
                f"{principal} is already being rotated; finish with `unstuck nats-config --retire {principal}` first"
            )
        current, _ = self.ensure(principal)
        self._ensure_dir()
        write_secret(self.file(principal, retiring=True), current.text())
        fresh = Credential(
            principal, f"{principal}-r{current.generation + 1}", new_password(), _js_api_prefix_of(principal)
        )
        write_secret(self.file(principal), fresh.text())
        return fresh

    def retire(self, principal: str) -> Credential | None:
        """Finish a rotation: forget the retiring user; returns it (None if there was none)."""
        old = self.retiring(principal)
        if old is not None:
            self.file(principal, retiring=True).unlink()
        return old

    def known(self) -> list[str]:
        """Principals that have a credentials file here."""
        if not self.path.is_dir():
            return []
        return sorted(
            p.name.removesuffix(".env")
            for p in self.path.glob("*.env")
            if not p.name.endswith(f"{RETIRING_SUFFIX}.env")
        )


# --- the server configuration -------------------------------------------------------------------


def bcrypt_hash(password: str) -> str | None:
    """A bcrypt hash nats-server accepts, if this Python's ``crypt`` can make one; else None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # deprecated since 3.11, gone in 3.13: then the config holds plain passwords
        except ImportError:
            return None
    method = getattr(crypt, "METHOD_BLOWFISH", None)
    if method is None or method not in crypt.methods:
        return None
    hashed = crypt.crypt(password, crypt.mksalt(method, rounds=BCRYPT_ROUNDS))
    return hashed if hashed and hashed.startswith("$2") else None


@dataclass
class Tls:
    cert: str
    key: str
    ca: str | None = None
    verify: bool = False

    def block(self) -> dict[str, Any]:
        for label, path in (("--tls-cert", self.cert), ("--tls-key", self.key), ("--tls-ca", self.ca)):
            if path is not None and not Path(path).is_file():
                raise SecurityConfigError(f"{label} {path}: no such file")
        if self.verify and self.ca is None:
            raise SecurityConfigError(
                "--tls-verify needs --tls-ca: the CA that signed the client certificates"
            )
        out: dict[str, Any] = {"cert_file": self.cert, "key_file": self.key, "timeout": 2}
        if self.ca is not None:
            out["ca_file"] = self.ca
        if self.verify:
            out["verify"] = True
        return out


@dataclass
class ServerSettings:
    """What the configuration says besides users; kept beside it (``nats-config.json``, no secrets)
    so that a rotation regenerates the same server."""

    stream: str = "UNSTUCK_CASES"
    listen: str = "127.0.0.1:4222"
    store_dir: str | None = None  # None: the embedded server passes its own (-sd)
    max_payload: int = 1024 * 1024
    tls: Tls | None = None

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, directory: Path) -> ServerSettings | None:
        path = Path(directory) / SETTINGS_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tls = data.pop("tls", None)
            return cls(**data, tls=Tls(**tls) if tls else None)
        except (ValueError, TypeError) as exc:
            raise SecurityConfigError(
                f"{path}: {exc}; delete it and run `unstuck nats-config` again"
            ) from exc


@dataclass
class Generated:
    """What ``generate`` wrote; passwords are not in it."""

    config_file: Path
    credentials: dict[str, Path]
    created: list[str]
    users: list[str]
    hashed: bool
    stale: list[str]
    settings: ServerSettings


# streams, consumers, and the unacknowledged messages any one consumer may hold (its max_ack_pending);
# no storage bound: an account limit above the disk's free space keeps JetStream off for the account,
# so storage is left to the server's own max_file_store
ACCOUNT_JETSTREAM_LIMITS = {"max_streams": 16, "max_consumers": 512, "max_ack_pending": 10_000}
MAX_CONNECTIONS = 2_000  # clients of one server: staff, adapters, brokers, console, with room
MAX_SUBSCRIPTIONS = 10_000  # per connection: a client subscribing without end is cut off


def render(users: dict[str, list[dict[str, Any]]], settings: ServerSettings) -> str:
    """The configuration text (JSON values are valid nats-server configuration syntax).

    Two accounts: the bus (JetStream, every principal but the auditor) and the auditor's, which
    imports a few read-only JetStream services under ``JS.UNSTUCK.API``. Accounts are NATS's own
    isolation: nothing the auditor publishes, and no reply it asks for, lands in the bus account.
    """
    jetstream = {"store_dir": settings.store_dir} if settings.store_dir else {}
    apis = audit_api(settings.stream)
    bus = {
        # the bus needs 4 streams (cases, heads, ids, snapshots) and a handful of consumers; these bound
        # what a compromised principal could make the server keep (push or durable consumers by the
        # thousand, streams of its own)
        "jetstream": json.dumps(ACCOUNT_JETSTREAM_LIMITS),
        "users": users.get(BUS_ACCOUNT, []),
        "exports": [
            {"service": f"$JS.API.{api}", "accounts": [AUDIT_ACCOUNT]}
            | ({"response_type": kind, "response_threshold": "60s"} if kind else {})
            for api, kind in apis.items()
        ],
    }
    audit = {
        "users": users.get(AUDIT_ACCOUNT, []),
        "imports": [
            {
                "service": {"account": BUS_ACCOUNT, "subject": f"$JS.API.{api}"},
                "to": f"{AUDIT_JS_PREFIX}.{api}",
            }
            for api in apis
        ],
    }
    lines = [
        "# nats-server configuration of an unstuck bus, generated by `unstuck nats-config`.",
        "# It holds password hashes (or passwords): keep it mode 0600. Regenerate rather than edit;",
        "# apply changes without a restart: nats-server --signal reload=<pid file>. See docs/security.md.",
        f"listen: {json.dumps(settings.listen)}",
        f"max_payload: {settings.max_payload}",
        f"max_connections: {MAX_CONNECTIONS}",
        f"max_subscriptions: {MAX_SUBSCRIPTIONS}",
        f"jetstream: {json.dumps(jetstream)}",
    ]
    if settings.tls is not None:
        lines.append(f"tls: {json.dumps(settings.tls.block())}")
    lines.append("accounts: {")
    for name, account in ((BUS_ACCOUNT, bus), (AUDIT_ACCOUNT, audit)):
        lines.append(f"  {name}: {{")
        for key, value in account.items():
            if isinstance(value, list):
                lines.append(f"    {key}: [")
                lines += [f"      {json.dumps(item, ensure_ascii=False)}" for item in value]
                lines.append("    ]")
            else:
                lines.append(f"    {key}: {value}")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate(
    directory: Path,
    departments: Iterable[str],
    settings: ServerSettings | None = None,
    hash_passwords: bool = True,
    staff: Iterable[str] = (),
) -> Generated:
    """Write ``<directory>/nats-server.conf`` and any missing credentials files; keep existing passwords.

    ``settings`` default to the ones saved by the previous run (else the defaults), so a rotation
    keeps the listen address, TLS and store directory.
    """
    directory = Path(directory)
    settings = settings or ServerSettings.load(directory) or ServerSettings()
    store = CredentialStore(directory)
    all_principals = principals(departments, staff)
    users: dict[str, list[dict[str, Any]]] = {BUS_ACCOUNT: [], AUDIT_ACCOUNT: []}
    created: list[str] = []
    files: dict[str, Path] = {}
    hashed = hash_passwords
    for principal in all_principals:
        current, was_created = store.ensure(principal.name)
        if was_created:
            created.append(principal.name)
        files[principal.name] = store.file(principal.name)
        for credential in (store.retiring(principal.name), current):
            if credential is None:
                continue
            password = bcrypt_hash(credential.password) if hash_passwords else None
            if password is None:
                hashed = False
                password = credential.password
            users[principal.account].append(
                {
                    "user": credential.user,
                    "password": password,
                    "permissions": permissions(principal, credential.user, settings.stream),
                }
            )
    names = {p.name for p in all_principals}
    stale = [p for p in store.known() if p not in names]
    text = render(users, settings)
    config_file = directory / CONFIG_FILE
    write_secret(config_file, text)
    (directory / SETTINGS_FILE).write_text(settings.to_json(), encoding="utf-8")
    return Generated(
        config_file=config_file,
        credentials=files,
        created=created,
        users=[u["user"] for account in users.values() for u in account],
        hashed=hashed,
        stale=stale,
        settings=settings,
    )


def prepare_embedded(
    directory: Path, departments: Iterable[str], stream: str = "UNSTUCK_CASES", staff: Iterable[str] = ()
) -> Generated:
    """The configuration ``serve --secure`` starts the embedded server with: generated (or refreshed) here."""
    saved = ServerSettings.load(directory)
    if saved is not None and saved.store_dir:
        raise SecurityConfigError(
            f"{Path(directory) / CONFIG_FILE} was generated for a standalone server (--store-dir); the embedded "
            "server keeps its own store: generate the standalone configuration with --out elsewhere, or delete "
            f"{Path(directory) / SETTINGS_FILE} to start over"
        )
    settings = saved or ServerSettings()
    if settings.stream != stream:
        settings = ServerSettings(**{**vars(settings), "stream": stream})
    return generate(directory, departments, settings, staff=staff)


def secure_hint(directory: Path) -> str:
    """What to tell the operator after a secure start: where each component's credentials are (no secrets)."""
    path = CredentialStore(directory).path
    return (
        f"NATS authorisation on: each component has its own user; credentials in {path}/ (mode 0600), "
        "found there by commands run with this data directory. Elsewhere, window staff use their own "
        f"({AUTH_FILE_ENV}={path}/staff-<id>.env), auditors {AUTH_FILE_ENV}={path}/auditor.env"
    )


def reload_server(pid_file: Path) -> int:
    """Ask the nats-server whose pid is in ``pid_file`` to reload its configuration (SIGHUP)."""
    try:
        pid = int(Path(pid_file).read_text().strip())
    except (OSError, ValueError) as exc:
        raise SecurityConfigError(
            f"no running nats-server recorded in {pid_file}; reload yourself: nats-server --signal reload=<pid>"
        ) from exc
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError as exc:
        raise SecurityConfigError(f"nats-server pid {pid} from {pid_file} is not running") from exc
    return pid


# --- the permissions table (docs and `unstuck nats-config --table`) ----------------------------


def _summary(subjects: list[str]) -> str:
    """Subjects for people: JetStream API calls folded into 'JS API <calls> on <streams>'."""
    plain, calls, streams = [], [], []
    for subject in subjects:
        for prefix in ("$JS.API.", f"{AUDIT_JS_PREFIX}."):
            if subject.startswith(prefix):
                tokens = [t for t in subject[len(prefix) :].split(".") if t not in (">", "*")]
                names = [t for t in tokens if t.isupper() and (t.startswith("KV_") or "_" in t)]
                call = ".".join(t for t in tokens if t not in names)
                calls += [call] if call not in calls else []
                streams += [n for n in names if n not in streams]
                break
        else:
            plain.append(subject)
    if calls:
        via = " (imported into account AUDIT)" if any(s.startswith(AUDIT_JS_PREFIX) for s in subjects) else ""
        plain.append(f"JS API {', '.join(calls)} on {', '.join(streams) or 'the account'}{via}")
    return "; ".join(plain) if plain else "nothing"


def permissions_table(
    departments: Iterable[str], stream: str = "UNSTUCK_CASES", staff: Iterable[str] = ()
) -> list[tuple[str, str, str]]:
    """(user, may publish, may subscribe) per principal, summarised for people."""
    rows = []
    for principal in principals(departments, staff):
        perms = permissions(principal, principal.name, stream)
        publish = _summary(perms["publish"].get("allow") or [])
        if perms.get("allow_responses"):
            publish = ("" if publish == "nothing" else publish + "; ") + "replies to requests it received"
        rows.append((principal.name, publish, _summary(perms["subscribe"]["allow"])))
    return rows
