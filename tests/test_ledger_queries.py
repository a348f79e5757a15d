"""The ledger's queries on SQLite and on PostgreSQL: four cases written into the stream as the broker
writes them, projected, then listed with every filter. Expected answers are worked out by hand below.

    A  DD-20261001-0001  opened 1 Oct 09:00 (China)   李建國 210602198805123456  renshe  hard     asks renshe
       养老 matter pension_transfer 養老保險關係轉移, due 15 Oct, coordinating
    B  DD-20261002-0001  opened 2 Oct 07:30 (China) = 1 Oct 23:30 UTC   王芳 21060519900101002x  chengguan
       cannot, asks chengguan and scjg, matter shop_sign 二樓門頭招牌設置, due 9 Oct; answered, closed, rated good;
       opened with client_ref window-3-0417 (the only case with one)
    C  DD-20261003-0001  opened 3 Oct 10:00   李建國 again  renshe  refused  asks renshe, matter
       unemployment_benefit 失業保險金申領, due 5 Oct, case.overdue recorded, one accountability record
    D  DD-20261005-0001  opened 5 Oct 09:00   an enterprise 92210603MA0KC8QX2K  scjg  hard  asks renshe,
       matter business_licence 營業執照變更, due 5 Oct, no case.overdue recorded (the watcher has not ticked)

The lists are asked on 6 October at noon: D is past its due date, so it counts as overdue.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from ledger_support import KEY, CaseWriter, intake
from pydantic import ValidationError
from sqlalchemy import select

from unstuck.clock import CHINA
from unstuck.eventstore import EventStore, ExpectedHead
from unstuck.ledger import InvalidFilter, Ledger, LedgerConfigError, Projector
from unstuck.ledger.tables import accountability, cases, coordinations, ratings
from unstuck.schemas import api

A, B, C, D = "DD-20261001-0001", "DD-20261002-0001", "DD-20261003-0001", "DD-20261005-0001"
NOW = datetime(2026, 10, 6, 12, 0, tzinfo=CHINA)


def china(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CHINA)


async def write_four_cases(writer: CaseWriter) -> None:
    await writer.open(A, china(10, 1, 9), intake(), "hard", date(2026, 10, 15), ["renshe"])
    b_intake = intake(
        applicant={"kind": "citizen", "name": "王芳", "id_number": "21060519900101002x"},
        matter="shop_sign",
        matter_title="二樓門頭招牌設置",
        window="城管局戶外廣告審批窗口",
        department="chengguan",
        client_ref="window-3-0417",
    )
    await writer.open(B, china(10, 2, 7, 30), b_intake, "cannot", date(2026, 10, 9), ["chengguan", "scjg"])
    c_intake = intake(matter="unemployment_benefit", matter_title="失業保險金申領")
    await writer.open(C, china(10, 3, 10), c_intake, "refused", date(2026, 10, 5), ["renshe"])
    await writer.answer(B, china(10, 3, 11), "chengguan", 1)
    await writer.answer(B, china(10, 3, 12), "scjg", 2)
    await writer.close(B, china(10, 3, 15))
    await writer.evaluate(B, china(10, 3, 16), "good")
    await writer.accountability(
        C, china(10, 4, 10), "renshe-clerk-07", "申請人身份證210602198805123456未核驗"
    )
    d_intake = intake(
        applicant={"kind": "enterprise", "name": "丹東某商貿有限公司", "id_number": "92210603MA0KC8QX2K"},
        matter="business_licence",
        matter_title="營業執照變更",
        window="市場監管窗口",
        department="scjg",
    )
    await writer.open(D, china(10, 5, 9), d_intake, "hard", date(2026, 10, 5), ["renshe"])
    await writer.overdue(C, china(10, 6, 0, 5), date(2026, 10, 5))


@pytest.fixture
async def projected(nats_client: Any, ledger_url: str) -> Any:
    js = nats_client.jetstream()
    store = EventStore(js)
    await store.ensure()
    await write_four_cases(CaseWriter(store))
    ledger = Ledger.open(ledger_url, key=KEY)
    projector = Projector(js, store.stream, ledger)
    await projector.catch_up()
    yield ledger, projector, CaseWriter(store)
    ledger.close()


async def ids(ledger: Ledger, **filters: Any) -> list[str]:
    answer = await ledger.list_cases(api.ListCases.model_validate(filters), now=NOW)
    assert answer["count"] == len(answer["cases"])
    return [row["case_id"] for row in answer["cases"]]


async def test_every_filter_of_the_case_list(projected):
    ledger, _, _ = projected
    expected = {
        "all": ({}, [A, B, C, D]),
        "coordinating": ({"state": "coordinating"}, [A, C, D]),
        "evaluated": ({"state": "evaluated"}, [B]),
        "hard": ({"category": "hard"}, [A, D]),
        "refused": ({"category": "refused"}, [C]),
        "renshe (intake or asked)": ({"department": "renshe"}, [A, C, D]),
        "scjg (asked in B, intake of D)": ({"department": "scjg"}, [B, D]),
        "chengguan": ({"department": "chengguan"}, [B]),
        "overdue": ({"overdue": True}, [C, D]),
        "not overdue": ({"overdue": False}, [A, B]),
        "applicant 李建國": ({"applicant_id_number": "210602198805123456"}, [A, C]),
        "applicant 王芳, upper-case X": ({"applicant_id_number": " 21060519900101002X "}, [B]),
        "applicant unknown": ({"applicant_id_number": "210618200001010000"}, []),
        "matter code": ({"matter": "shop_sign"}, [B]),
        "matter title part": ({"matter": "保險"}, [A, C]),
        "matter title 營業執照": ({"matter": "營業執照"}, [D]),
        "matter wildcard is literal": ({"matter": "%"}, []),
        "client_ref of B": ({"client_ref": "window-3-0417"}, [B]),
        "client_ref is matched whole": ({"client_ref": "window-3"}, []),
        "opened from 2 Oct (B is 1 Oct in UTC)": ({"opened_from": "2026-10-02"}, [B, C, D]),
        "opened to 1 Oct": ({"opened_to": "2026-10-01"}, [A]),
        "opened on 2 Oct": ({"opened_from": "2026-10-02", "opened_to": "2026-10-02"}, [B]),
        "opened 3-5 Oct": ({"opened_from": "2026-10-03", "opened_to": "2026-10-05"}, [C, D]),
        "renshe and overdue": ({"department": "renshe", "overdue": True}, [C, D]),
        "limit": ({"limit": 2}, [A, B]),
    }
    got = {name: await ids(ledger, **filters) for name, (filters, _) in expected.items()}
    assert got == {name: want for name, (_, want) in expected.items()}


async def test_a_row_has_ledger_rows_keys_and_the_masked_applicant(projected):
    ledger, _, _ = projected
    rows = (await ledger.list_cases(api.ListCases(), now=NOW))["cases"]
    assert all(set(r) == set(rows[1]) for r in rows)  # every row has the keys spelled out below
    assert rows[1] == {
        "case_id": B,
        "opened_at": "2026-10-01T23:30:00+00:00",
        "state": "evaluated",
        "category": "cannot",
        "category_label": "不能辦",
        "department": "chengguan",
        "departments": ["chengguan", "scjg"],
        "owner": "w-zhang",
        "matter_title": "二樓門頭招牌設置",
        "applicant": "王芳 2106**********002x",
        "due_date": "2026-10-09",
        "overdue": False,
        "on_time": True,
        "escalation_level": 0,
    }
    assert rows[3]["applicant"] == "丹東某商貿有限公司 9221**********QX2K"


async def test_accountability_list_and_totals(projected):
    ledger, _, _ = projected
    record = {
        "case_id": C,
        "department": "renshe",
        "staff": "renshe-clerk-07",
        "section": "養老保險科",
        "leader_in_charge": "分管副局長",
        "finding": "申請人身份證2106**********3456未核驗",
        "measures": ["interview"],
        "fault_tolerance": False,
        "at": "2026-10-04T02:00:00+00:00",
    }
    assert await ledger.list_accountability(api.ListAccountability()) == {"records": [record], "count": 1}
    assert (await ledger.list_accountability(api.ListAccountability(staff="renshe-clerk-07")))["count"] == 1
    assert (await ledger.list_accountability(api.ListAccountability(department="scjg")))["count"] == 0
    assert await ledger.totals() == {
        "cases": 4,
        "open_cases": 3,
        "overdue_cases": 1,
        "overdue_by_category": {"refused": 1},
    }
    assert (await ledger.totals(now=NOW))["overdue_by_category"] == {"hard": 1, "refused": 1}


async def test_the_database_holds_no_unmasked_id_number_and_finds_by_the_keyed_hash(projected):
    ledger, projector, _ = projected
    with ledger.engine.connect() as conn:
        stored = [
            [dict(r._mapping) for r in conn.execute(select(t))]
            for t in (cases, coordinations, accountability, ratings)
        ]
        keys = dict(conn.execute(select(cases.c.case_id, cases.c.applicant_key)).all())
    text = json.dumps(stored, default=str, ensure_ascii=False)
    for number in ("210602198805123456", "21060519900101002x", "92210603MA0KC8QX2K"):
        assert number not in text
    assert keys[A] == keys[C] == hmac.new(KEY, b"210602198805123456", hashlib.sha256).hexdigest()
    assert keys[B] == hmac.new(KEY, b"21060519900101002X", hashlib.sha256).hexdigest()
    assert [r["rating"] for r in stored[3]] == ["good"]
    assert len(stored[1]) == 5  # A 1, B 2, C 1, D 1
    assert sorted(projector.states) == [A, C, D]  # B is evaluated: not kept in memory
    # 10 decisions: 4 openings (3 + 4 + 3 + 3 events), 2 answers of B (2 each), close, rating,
    # accountability, overdue (1 each)
    assert (projector.messages, projector.events, projector.rejected) == (10, 21, 0)


async def test_a_late_event_of_a_closed_case_is_projected_once_from_its_own_subject(projected, nats_client):
    ledger, projector, writer = projected
    writer.heads.update(await _heads(writer, B))
    seq = await writer.accountability(B, china(10, 7, 9), "cg-clerk-02", "態度生硬")
    fresh = Projector(nats_client.jetstream(), projector.stream, ledger)  # a restart: nothing in memory
    assert await fresh.catch_up() == seq
    with ledger.engine.connect() as conn:
        assert conn.execute(
            select(accountability.c.staff).where(accountability.c.case_id == B)
        ).scalars().all() == ["cg-clerk-02"]
        assert len(conn.execute(select(ratings)).all()) == 1
        assert conn.execute(select(cases.c.state).where(cases.c.case_id == B)).scalar() == "evaluated"
    assert B not in fresh.states


async def _heads(writer: CaseWriter, case_id: str) -> dict[str, Any]:
    events = await writer.store.read_case(case_id)
    return {case_id: ExpectedHead(events[-1].seq, events[-1].hash, events[-1].stream_seq)}


async def test_wait_for_returns_once_the_ledger_has_the_message(projected, nats_client):
    ledger, projector, writer = projected
    runner = Projector(nats_client.jetstream(), projector.stream, ledger)
    task = asyncio.create_task(runner.run())
    try:
        seq = await writer.open(
            "DD-20261006-0001", china(10, 6, 9), intake(), "hard", date(2026, 10, 20), ["renshe"]
        )
        assert await runner.wait_for(seq, timeout=10)
        assert "DD-20261006-0001" in await ids(ledger)
        assert not await runner.wait_for(seq + 100, timeout=0.2)
    finally:
        runner.stop()
        await task


async def test_bad_filters_name_the_field(projected):
    ledger, _, _ = projected
    with pytest.raises(InvalidFilter) as unknown:
        await ledger.list_cases(api.ListCases(state="finished"), now=NOW)
    assert unknown.value.field == "state"
    assert "unknown state 'finished'" in str(unknown.value)
    assert "intake, guiding, coordinating, answered, closed, evaluated" in unknown.value.fix
    for body, where in (
        ({"opened_from": "2026-10-05", "opened_to": "2026-10-01"}, "opened_to"),
        ({"opened_from": "5 Oct"}, "opened_from"),
        ({"applicant_id_number": ""}, "applicant_id_number"),
        ({"matter": ""}, "matter"),
    ):
        with pytest.raises(ValidationError) as bad:
            api.ListCases.model_validate(body)
        assert bad.value.errors()[0]["loc"] == (where,)


def test_bad_ledger_settings_are_one_line_naming_the_setting(tmp_path: Path):
    for url, words in (
        ("not a url", "is not a database URL"),
        ("nosuchdb://x/y", "[ledger] url nosuchdb://x/y"),
        ("postgresql+psycopg://nobody:secret@127.0.0.1:1/none", "cannot open the database"),
    ):
        with pytest.raises(LedgerConfigError) as bad:
            Ledger.open(url, key=KEY)
        message = str(bad.value)
        assert "[ledger] url" in message and words in message and "\n" not in message
        assert "secret" not in message
    with pytest.raises(LedgerConfigError, match=r"\[ledger\] applicant_key_file: .* does not exist"):
        Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite'}", key_file=tmp_path / "missing.key")


def test_the_key_is_made_once_beside_the_database_readable_by_its_owner_only(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    first = Ledger.open(url)
    second = Ledger.open(url)
    key_file = tmp_path / "ledger-applicant.key"
    assert first.key == second.key and len(first.key) == 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    first.close()
    second.close()


def test_the_migrations_create_exactly_the_tables_of_the_metadata(ledger_url: str):
    """A migrated database compared with ``tables.metadata`` by Alembic: nothing missing, nothing extra."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from unstuck.ledger import migrate
    from unstuck.ledger.tables import metadata

    ledger = Ledger.open(ledger_url, key=KEY)
    try:
        with ledger.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
            assert migrate.current(conn) == migrate.head() == migrate.LATEST == "0002"
            assert migrate.stored_revision(conn) == "0002"
    finally:
        ledger.close()


async def test_a_ledger_made_at_revision_0001_keeps_its_rows_and_gains_client_ref(ledger_url: str):
    """A database from before ``client_ref``: opening it migrates to 0002; the old row is still
    listed, with no client_ref until its case changes again."""
    from alembic import command
    from sqlalchemy import create_engine, insert

    from unstuck.ledger import migrate

    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        command.upgrade(migrate._config(conn), "0001")
        assert migrate.stored_revision(conn) == "0001"
        conn.execute(
            insert(cases).values(
                case_id=A,
                opened_at=china(10, 1, 9),
                opened_day=date(2026, 10, 1),
                state="coordinating",
                departments="[]",
                applicant="李建國 2106**********3456",
                overdue=False,
                escalation_level=0,
                last_stream_seq=3,
            )
        )
    engine.dispose()
    ledger = Ledger.open(ledger_url, key=KEY)
    try:
        with ledger.engine.connect() as conn:
            assert migrate.stored_revision(conn) == "0002"
        assert await ids(ledger) == [A]
        assert await ids(ledger, client_ref="window-3-0417") == []
    finally:
        ledger.close()


def test_the_ledger_section_of_the_configuration(tmp_path: Path):
    from unstuck.config import Config, ConfigError, load_config

    assert Config().ledger.model_dump() == {
        "url": None,
        "applicant_key_file": None,
        "personal_data": False,
        "in_broker": True,
    }
    path = tmp_path / "unstuck.toml"
    path.write_text(
        '[ledger]\nurl = "postgresql+psycopg://u@db/x"\napplicant_key_file = "keys/ledger.key"\npersonal_data = true\n'
        "in_broker = false\n",
        encoding="utf-8",
    )
    settings = load_config(path).ledger
    assert (settings.url, settings.applicant_key_file, settings.personal_data, settings.in_broker) == (
        "postgresql+psycopg://u@db/x",
        tmp_path / "keys" / "ledger.key",
        True,
        False,
    )
    path.write_text('[ledger]\nurll = "sqlite:///x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ledger\.urll: Extra inputs are not permitted"):
        load_config(path)


async def test_personal_data_when_configured_keeps_the_unmasked_applicant(nats_client, tmp_path: Path):
    js = nats_client.jetstream()
    store = EventStore(js)
    await store.ensure()
    await CaseWriter(store).open(A, china(10, 1, 9), intake(), "hard", date(2026, 10, 15), ["renshe"])
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite'}", key=KEY, personal_data=True)
    try:
        await Projector(js, store.stream, ledger).catch_up()
        with ledger.engine.connect() as conn:
            row = conn.execute(select(cases).where(cases.c.case_id == A)).one()
        assert (row.applicant, row.applicant_name, row.applicant_id_number) == (
            "李建國 2106**********3456",
            "李建國",
            "210602198805123456",
        )
    finally:
        ledger.close()
