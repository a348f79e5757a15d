"""``unstuck reset``: delete a scratch data directory (its case stream, ledger, log and credentials)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from unstuck.connection import data_dir
from unstuck.embedded import PORT_FILE, URL_FILE, still_running
from unstuck.natsconfig import CREDENTIALS_DIR

from .common import CliError


def unstuck_entries() -> tuple[str, ...]:
    """What the embedded server, the ledger, ``nats-config`` and the demo write: a directory holding
    none of these was not made by unstuck, and reset leaves it alone."""
    from unstuck.demo import DEMO_MARKER
    from unstuck.ledger.database import DB_FILE

    return ("jetstream", "nats-server.log", URL_FILE, PORT_FILE, DB_FILE, CREDENTIALS_DIR, DEMO_MARKER)


def register(sub: Any) -> None:
    r = sub.add_parser(
        "reset",
        help="delete a scratch data directory: its cases, stream, ledger, log and credentials (asks first)",
    )
    r.add_argument("--data-dir", help="the data directory to delete (default .unstuck, or $UNSTUCK_DATA_DIR)")
    r.add_argument("--yes", action="store_true", help="delete without asking")
    r.set_defaults(func=run_reset)


def run_reset(args: Any) -> int:
    directory = data_dir(args.data_dir)
    if not directory.exists():
        print(f"nothing to delete: {directory} does not exist")
        return 0
    if directory.is_symlink() or not directory.is_dir():
        raise CliError(f"--data-dir {directory} is not a directory (a link or a file): not deleting it")
    _refuse_unless_scratch(directory)
    busy = still_running(directory)
    if busy:
        raise CliError(f"not deleting {directory}: {busy}", exit_code=1)
    entries = sorted(p.name for p in directory.iterdir())
    if not args.yes and not _confirmed(directory, entries):
        print(f"kept {directory}")
        return 1
    try:
        shutil.rmtree(directory)
    except OSError as exc:
        raise CliError(f"could not delete all of {directory}: {exc}", exit_code=1) from exc
    print(f"deleted {directory}")
    return 0


def _refuse_unless_scratch(directory: Path) -> None:
    """Refuse a directory that holds the working directory (or is home), or that unstuck did not make."""
    where = directory.resolve()
    here = Path.cwd().resolve()
    if where == here or where in here.parents or where == Path.home().resolve():
        raise CliError(
            f"--data-dir {directory} is {where}, which holds the working directory or is the home "
            "directory: reset deletes only a data directory (e.g. .unstuck)"
        )
    names = unstuck_entries()
    if not any((directory / name).exists() for name in names):
        raise CliError(
            f"{directory} does not look like an unstuck data directory (none of "
            f"{', '.join(names)} in it): not deleting it; remove it yourself if it is scratch",
            exit_code=1,
        )


def _confirmed(directory: Path, entries: list[str]) -> bool:
    shown = ", ".join(entries[:8]) + (f" and {len(entries) - 8} more" if len(entries) > 8 else "")
    prompt = (
        f"delete {directory} and everything in it ({shown}): every case, the stream, the ledger and "
        "any credentials there, for good? [y/N] "
    )
    print(prompt, end="", flush=True)
    answer = sys.stdin.readline()
    if not answer:
        print()
        print("no answer (stdin is closed): pass --yes to delete without asking")
        return False
    return answer.strip().lower() in ("y", "yes")
