"""``unstuck nats-config``: the nats-server authorisation of the bus, generated from the department registry.

Writes ``nats-server.conf`` and one credentials file per principal (mode 0600) into the data
directory (or ``--out``); prints file paths and the permissions table, never a password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unstuck.connection import data_dir
from unstuck.embedded import PID_FILE
from unstuck.natsconfig import (
    AUTH_FILE_ENV,
    CredentialStore,
    SecurityConfigError,
    ServerSettings,
    Tls,
    department_principal,
    generate,
    permissions_table,
    registry_departments,
    reload_server,
    staff_principal,
)
from unstuck.texttable import table

from .common import CliError, add_connection_args, config_from, print_json


def register(sub: Any) -> None:
    p = sub.add_parser(
        "nats-config",
        help="generate the nats-server users and permissions (one per department, broker, CLI, auditor)",
        description="Write <dir>/nats-server.conf and <dir>/credentials/<principal>.env (mode 0600). "
        "Existing passwords are kept unless rotated. Passwords are never printed.",
    )
    p.add_argument("--out", type=Path, help="where to write (default: the data directory)")
    p.add_argument("--listen", help="HOST:PORT the server listens on (default 127.0.0.1:4222)")
    p.add_argument("--store-dir", help="JetStream directory for a standalone server (embedded: its own)")
    p.add_argument(
        "--max-payload", type=int, help="largest message the server accepts, bytes (default 1 MiB)"
    )
    p.add_argument("--tls-cert", help="server certificate (PEM); enables TLS with --tls-key")
    p.add_argument("--tls-key", help="the certificate's private key (PEM)")
    p.add_argument("--tls-ca", help="CA of client certificates (with --tls-verify)")
    p.add_argument("--tls-verify", action="store_true", help="require client certificates signed by --tls-ca")
    p.add_argument(
        "--department",
        action="append",
        default=[],
        metavar="CODE",
        help="a department beyond the configured and installed ones (repeat)",
    )
    p.add_argument(
        "--rotate",
        metavar="PRINCIPAL",
        help="new password for broker, cli, auditor or a department (code or dept-<code>); the old one "
        "keeps working until --retire",
    )
    p.add_argument("--retire", metavar="PRINCIPAL", help="finish a rotation: the old password stops working")
    p.add_argument(
        "--reload",
        action="store_true",
        help="make the embedded server running in the data directory reload the configuration (SIGHUP)",
    )
    p.add_argument(
        "--plain-passwords",
        action="store_true",
        help="write passwords, not bcrypt hashes, into the server configuration",
    )
    p.add_argument("--json", action="store_true", help="the result as JSON (paths, users; no secrets)")
    add_connection_args(p)
    p.set_defaults(func=run_nats_config)


def _principal(name: str, departments: list[str], staff: list[str]) -> str:
    if name in ("broker", "cli", "auditor", "notifier", "console") or name.startswith(("dept-", "staff-")):
        return name
    if name in departments:
        return department_principal(name)
    if name in staff:
        return staff_principal(name)
    raise CliError(
        f"unknown principal {name!r}: use broker, cli, auditor, console, a department code "
        f"({', '.join(departments)}) or a staff id from [staff] ({', '.join(staff) or 'none configured'})"
    )


def _settings(args: Any, out: Path, stream: str) -> ServerSettings | None:
    """New settings when any server flag is given, else None (keep what was generated before)."""
    flags = (args.listen, args.store_dir, args.max_payload, args.tls_cert, args.tls_key, args.tls_ca)
    if not any(v is not None for v in flags) and not args.tls_verify:
        saved = ServerSettings.load(out)
        return (
            None
            if saved is None or saved.stream == stream
            else ServerSettings(**{**vars(saved), "stream": stream})
        )
    base = ServerSettings.load(out) or ServerSettings()
    tls = base.tls
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise CliError("--tls-cert and --tls-key go together")
        tls = Tls(
            str(Path(args.tls_cert).resolve()),
            str(Path(args.tls_key).resolve()),
            str(Path(args.tls_ca).resolve()) if args.tls_ca else None,
            args.tls_verify,
        )
    elif args.tls_ca or args.tls_verify:
        raise CliError("--tls-ca and --tls-verify need --tls-cert and --tls-key")
    return ServerSettings(
        stream=stream,
        listen=args.listen or base.listen,
        store_dir=str(Path(args.store_dir).resolve()) if args.store_dir else base.store_dir,
        max_payload=args.max_payload or base.max_payload,
        tls=tls,
    )


def run_nats_config(args: Any) -> int:
    from unstuck.adapters.registry import discover

    config = config_from(args)
    directory = data_dir(args.data_dir)
    out = Path(args.out) if args.out else directory
    departments = registry_departments(config, [*discover(), *args.department])
    staff = sorted(config.staff)
    store = CredentialStore(out)
    notes: list[str] = []
    try:
        settings = _settings(args, out, config.broker.stream)
        if args.rotate:
            principal = _principal(args.rotate, departments, staff)
            fresh = store.rotate(principal)
            notes.append(
                f"rotating {principal}: new user {fresh.user} in {store.file(principal)}; the old user keeps "
                f"working until `unstuck nats-config --retire {args.rotate}` (restart its components first)"
            )
        if args.retire:
            principal = _principal(args.retire, departments, staff)
            old = store.retire(principal)
            notes.append(
                f"retired {old.user}: it is refused once the server reloads"
                if old
                else f"{principal} was not being rotated; nothing retired"
            )
        generated = generate(out, departments, settings, hash_passwords=not args.plain_passwords, staff=staff)
        if args.reload:
            pid = reload_server(directory / PID_FILE)
            notes.append(f"nats-server pid {pid} reloads {generated.config_file}")
    except SecurityConfigError as exc:
        raise CliError(str(exc)) from exc
    result = {
        "config_file": str(generated.config_file),
        "credentials": {k: str(v) for k, v in generated.credentials.items()},
        "created": generated.created,
        "users": generated.users,
        "passwords": "bcrypt" if generated.hashed else "plain (the file is mode 0600)",
        "tls": generated.settings.tls is not None,
        "stale": generated.stale,
        "notes": notes,
    }
    if args.json:
        print_json(result)
        return 0
    print(f"server configuration  {generated.config_file}  (mode 0600, passwords {result['passwords']})")
    print(
        f"credentials           {store.path}/<principal>.env  (mode 0600; give each component only its own)"
    )
    if generated.created:
        print(f"new credentials for   {', '.join(generated.created)}")
    for principal in generated.stale:
        print(f"warning: {principal} has credentials but is no longer in the registry; it has no user now")
    for note in notes:
        print(note)
    print()
    print(
        table(
            ["user", "may publish", "may subscribe"],
            permissions_table(departments, config.broker.stream, staff),
        )
    )
    print()
    print(
        f"Run: nats-server -c {generated.config_file}   (or `unstuck serve --secure` here); "
        f"components: {AUTH_FILE_ENV}={store.path}/<principal>.env"
    )
    return 0
