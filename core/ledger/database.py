"""``Ledger``: the ledger's database. Opening it migrates it; writes come from the projector, one
transaction per batch with the projection's position; queries run in worker threads so the event loop
never waits on the database.

SQLite (the default: ``ledger.sqlite`` in the data directory) runs in WAL mode, so reads go on while a
batch is written; PostgreSQL is given as ``[ledger] url = "postgresql+psycopg://user@host/db"``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from unstuck.clock import WALL
from unstuck.connection import data_dir
from unstuck.schemas import api

from . import migrate, queries
from .applicants import KEY_FILE_NAME, load_key
from .errors import LedgerConfigError, LedgerError
from .tables import CASE_TABLES, accountability, cases, coordinations, position, ratings

T = TypeVar("T")
DB_FILE = "ledger.sqlite"
URL_FIX = "use sqlite:///path/to/ledger.sqlite or postgresql+psycopg://user:password@host:5432/db"


class PositionMoved(LedgerError):
    """Another projector wrote this projection's position first: nothing of the batch was kept."""


@dataclass
class Batch:
    """What one batch of stream messages changes: each touched case's rows (rewritten whole), the
    ratings added, and the position the projection reaches."""

    projection: str
    stream: str
    from_seq: int  # the position before the batch
    to_seq: int  # the position after it
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    coordinations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    accountability: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ratings: list[dict[str, Any]] = field(default_factory=list)


def default_url(directory: Path) -> str:
    return f"sqlite:///{directory / DB_FILE}"


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Ledger:
    """The ledger database: see the module docstring. Build it with ``Ledger.open``."""

    def __init__(self, engine: Engine, key: bytes, personal_data: bool = False) -> None:
        self.engine = engine
        self.key = key
        self.personal_data = personal_data
        # an in-memory SQLite database is one connection: one worker, so transactions never interleave
        workers = 1 if _in_memory(engine.url) else 4
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unstuck-ledger")

    @classmethod
    def open(
        cls,
        url: str,
        *,
        key_file: Path | None = None,
        personal_data: bool = False,
        key: bytes | None = None,
    ) -> Ledger:
        """Connect to ``url``, migrate the database to the newest schema and load the applicant key
        (``key``, else ``key_file``, else the file beside the database, made on first use).
        LedgerConfigError, naming the setting and the fix, when any of it fails."""
        engine = _engine(url)
        try:
            with engine.begin() as conn:
                migrate.upgrade(conn)
        except SQLAlchemyError as exc:
            engine.dispose()
            shown = engine.url.render_as_string(hide_password=True)
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise LedgerConfigError(
                f"[ledger] url {shown}: cannot open the database: {reason}; check that the server runs "
                "and the URL names it (user, password, host, port, database)"
            ) from exc
        if key is None:
            key = load_key(key_file or _key_beside(engine.url), create=key_file is None)
        return cls(engine, key, personal_data)

    @classmethod
    def from_config(cls, settings: Any, directory: Path) -> Ledger:
        """The ledger of a ``[ledger]`` section (``unstuck.config.LedgerConfig``), its SQLite file in
        ``directory`` unless the section gives a URL."""
        return cls.open(
            settings.url or default_url(directory),
            key_file=settings.applicant_key_file,
            personal_data=settings.personal_data,
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` in a worker thread, inside one transaction."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._in_transaction, work))

    def _in_transaction(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return work(conn)

    async def list_cases(self, req: api.ListCases, *, now: datetime) -> dict[str, Any]:
        """``case.list`` answered from the database (see ``queries.list_cases``)."""
        return await self.run(lambda conn: queries.list_cases(conn, req, self.key, now))

    async def list_accountability(self, req: api.ListAccountability) -> dict[str, Any]:
        """``accountability.list`` answered from the database."""
        return await self.run(lambda conn: queries.list_accountability(conn, req))

    async def totals(self, *, now: datetime | None = None) -> dict[str, Any]:
        """Case counts for the status report (``queries.totals``)."""
        return await self.run(lambda conn: queries.totals(conn, now))

    async def row_counts(self) -> dict[str, int]:
        return await self.run(queries.row_counts)

    async def position(self, projection: str) -> int:
        """The last stream sequence ``projection`` has written (0: nothing yet)."""
        return await self.run(lambda conn: self.position_in(conn, projection))

    @staticmethod
    def position_in(conn: Connection, projection: str) -> int:
        seq = conn.execute(select(position.c.last_seq).where(position.c.projection == projection)).scalar()
        return int(seq or 0)

    async def write(self, batch: Batch) -> None:
        """Write ``batch`` and move the position in one transaction; PositionMoved (and nothing
        written) when the stored position is not ``batch.from_seq``."""
        await self.run(lambda conn: self.write_in(conn, batch))

    def write_in(self, conn: Connection, batch: Batch) -> None:
        ids = list(batch.cases)
        for chunk in _chunks(ids):
            for table in (coordinations, accountability, cases):
                conn.execute(delete(table).where(table.c.case_id.in_(chunk)))
        for table, rows in (
            (cases, list(batch.cases.values())),
            (coordinations, [r for rs in batch.coordinations.values() for r in rs]),
            (accountability, [r for rs in batch.accountability.values() for r in rs]),
            (ratings, batch.ratings),
        ):
            if rows:
                conn.execute(insert(table), rows)
        self._move(conn, batch)

    def _move(self, conn: Connection, batch: Batch) -> None:
        now = WALL.now()
        moved = conn.execute(
            update(position)
            .where(position.c.projection == batch.projection, position.c.last_seq == batch.from_seq)
            .values(last_seq=batch.to_seq, stream=batch.stream, updated_at=now)
        ).rowcount
        if moved == 1:
            return
        if batch.from_seq == 0 and self.position_in(conn, batch.projection) == 0:
            # a first batch; a concurrent first insert fails on the key and rolls this one back
            conn.execute(
                insert(position).values(
                    projection=batch.projection, stream=batch.stream, last_seq=batch.to_seq, updated_at=now
                )
            )
            return
        raise PositionMoved(
            f"projection {batch.projection} is no longer at {batch.from_seq}: another projector writes "
            "this ledger; run one projector per ledger database"
        )

    async def reset(self, projection: str) -> None:
        """Empty every case table and forget the projection's position (``unstuck ledger rebuild``)."""

        def work(conn: Connection) -> None:
            for table in CASE_TABLES:
                conn.execute(delete(table))
            conn.execute(delete(position).where(position.c.projection == projection))

        await self.run(work)


def _engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite: WAL, waits for a lock instead of failing, the folder made)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise LedgerConfigError(f"[ledger] url {url!r} is not a database URL: {URL_FIX}") from None
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if not _in_memory(parsed):
            Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        else:  # one database only lives as long as its connection: keep that one connection
            options["poolclass"] = StaticPool
        options["connect_args"] = {"check_same_thread": False, "timeout": 30}
    try:
        engine = create_engine(parsed, **options)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise LedgerConfigError(
            f"[ledger] url {parsed.render_as_string(hide_password=True)}: {exc}; {URL_FIX}"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _in_memory(url: URL) -> bool:
    """An in-memory SQLite database (``sqlite://``): a broker built without a ledger uses one."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _key_beside(url: URL) -> Path:
    """Where the applicant key is kept by default: beside a SQLite file, else in the data directory."""
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).parent / KEY_FILE_NAME
    return data_dir() / KEY_FILE_NAME
