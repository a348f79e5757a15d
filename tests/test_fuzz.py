"""Fuzzing the bus's entry points with hypothesis: API requests, department replies, stream messages.

Inputs come from the JSON Schemas of the contract (schemas/json), mutated (a field dropped, a field of
the wrong type, an unknown field) and from beyond them (random JSON, random bytes). Properties:
nothing crashes (the API never answers "internal"), and nothing invalid is accepted: an accepted
request validates against its model, an accepted reply is a valid answer to that request from that
department, and the stream verifies clean after every example.

``make test`` runs a small, reproducible number of examples per entry point; ``make fuzz`` sets
UNSTUCK_FUZZ_EXAMPLES (10,000 or more) and explores at random.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from conftest import sample
from unstuck.adapters.host import AdapterHost
from unstuck.adapters.registry import discover, installed_departments
from unstuck.broker import API_VERBS, Broker
from unstuck.clock import SimulatedClock
from unstuck.embedded import EmbeddedNats
from unstuck.lifecycle import CaseState, Refused, Reply, decide
from unstuck.replay import verify_stream
from unstuck.replyjudge import SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER, judge_reply
from unstuck.schemas import CoordinationReply, CoordinationRequest, api
from unstuck.schemas.events import parse_payload
from unstuck.testing import DEFAULT_START, fast_config

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "json"
EXAMPLES = int(os.environ.get("UNSTUCK_FUZZ_EXAMPLES", "200"))
FULL_RUN = "UNSTUCK_FUZZ_EXAMPLES" in os.environ
RESULTS = Path(__file__).resolve().parents[1] / "reliability-results" / "fuzz.json"

fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not FULL_RUN,  # make test: the same examples every run; make fuzz: new ones
    database=None,
    suppress_health_check=list(HealthCheck),
)

VERB_MODELS: dict[str, type[Any]] = {verb: m for verb, m in api.API_REQUESTS.items() if m is not None}

# --- strategies from JSON Schema --------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
random_json = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def from_schema(
    schema: dict[str, Any], defs: dict[str, Any], hints: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    """Values valid under ``schema`` (the subset of JSON Schema pydantic exports), with field hints."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[1]], defs, hints)
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(s, defs, hints) for s in schema.get("anyOf", schema.get("oneOf", []))])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "date":
            return st.dates(date(2020, 1, 1), date(2035, 12, 31)).map(date.isoformat)
        if schema.get("format") == "date-time":
            return st.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC)).map(
                datetime.isoformat
            )
        low, high = schema.get("minLength", 0), schema.get("maxLength", 60)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: low <= len(s) <= high)
        return st.text(min_size=low, max_size=min(high, 60)).filter(lambda s: len(s.strip()) >= low)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs, hints)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", []))
        fields = {
            name: hints.get(name, from_schema(sub, defs, hints)) for name, sub in schema["properties"].items()
        }
        optional = [name for name in fields if name not in required]
        return st.fixed_dictionaries(
            {name: fields[name] for name in required}, optional={name: fields[name] for name in optional}
        )
    if kind == "object":
        keys = st.from_regex(next(iter(schema.get("patternProperties", {})), r"^[a-z]{1,8}$"), fullmatch=True)
        return st.dictionaries(keys, st.text(max_size=10) | st.integers() | st.booleans(), max_size=3)
    return random_json


def schema_of(name: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8")))


def valid_body(name: str, hints: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    schema = schema_of(name)
    return from_schema(schema, schema.get("$defs", {}), hints)


@st.composite
def mutated(draw: st.DrawFn, bodies: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A schema-valid body with one thing wrong: a field dropped, of the wrong type, or unknown."""
    body = dict(draw(bodies))
    how = draw(st.sampled_from(["drop", "wrong_type", "unknown", "null"]))
    if how == "unknown" or not body:
        body[draw(st.text(min_size=1, max_size=12))] = draw(random_json)
        return body
    key = draw(st.sampled_from(sorted(body)))
    if how == "drop":
        del body[key]
    elif how == "null":
        body[key] = None
    else:
        body[key] = draw(random_json.filter(lambda v, old=body[key]: type(v) is not type(old)))
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


# --- the bus under fuzz ------------------------------------------------------------------------


@dataclass
class FuzzBus:
    loop: asyncio.AbstractEventLoop
    broker: Broker
    nc: Client
    case_ids: list[str]
    outcomes: Counter[str] = field(default_factory=Counter)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def fuzz_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzBus]:
    """A real nats-server, a broker and the built-in adapters on an event loop of the module's own."""
    loop = asyncio.new_event_loop()
    server = EmbeddedNats(tmp_path_factory.mktemp("fuzz")).start()
    nc = loop.run_until_complete(nats.connect(server.url))
    adapters_nc = loop.run_until_complete(nats.connect(server.url))
    config = fast_config()
    config.staff.update({"w-li": "clerk"})
    broker = Broker(nc, config, SimulatedClock(DEFAULT_START), departments=installed_departments())
    host = AdapterHost(adapters_nc, list(discover().values()))
    loop.run_until_complete(broker.start(serve_api=False))
    loop.run_until_complete(host.start())
    case_ids = []
    for name in ("01", "02", "03", "05", "07", "11"):
        reply = json.loads(loop.run_until_complete(broker.handle("case.open", encode(sample(name)))))
        case_ids.append(reply["result"]["case_id"])
    bus = FuzzBus(loop, broker, nc, case_ids)
    yield bus
    loop.run_until_complete(host.stop())
    loop.run_until_complete(broker.stop())
    loop.run_until_complete(adapters_nc.close())
    loop.run_until_complete(nc.close())
    server.stop()
    loop.close()


def _hints(bus: FuzzBus) -> dict[str, st.SearchStrategy[Any]]:
    """Steer some fields to values that exist, so the fuzz reaches past "not found"."""
    known = sorted(bus.broker.departments)
    return {
        "case_id": st.sampled_from(bus.case_ids)
        | st.from_regex(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,20}$", fullmatch=True),
        "department": st.sampled_from(known) | st.from_regex(r"^[a-z][a-z0-9_]{0,8}$", fullmatch=True),
        "actor": st.sampled_from(["w-li", "leader-gao", "director-ma", "head-sun", "w-zhang"]),
        "departments": st.lists(st.sampled_from(known), min_size=1, max_size=2, unique=True),
        "id_number": st.from_regex(r"^[0-9]{17}[0-9X]$", fullmatch=True),
    }


def _record_figures(
    entry_point: str, examples: int, crashes: int, accepted_invalid: int, seconds: float, **more: Any
) -> None:
    if not FULL_RUN:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    data[entry_point] = {
        "examples": examples,
        "crashes": crashes,
        "invalid_accepted": accepted_invalid,
        "seconds": round(seconds, 1),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **more,
    }
    RESULTS.write_text(
        json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


# --- entry point 1: the API ----------------------------------------------------------------------


def test_fuzzed_api_requests_never_crash_the_broker_and_only_valid_ones_are_accepted(
    fuzz_bus: FuzzBus,
) -> None:
    hints = _hints(fuzz_bus)
    by_verb = {verb: valid_body(f"api.{model.__name__}", hints) for verb, model in VERB_MODELS.items()}
    verbs = st.sampled_from([*API_VERBS, "case.delete", "case.get.extra"])
    stats: Counter[str] = Counter()
    started = time.perf_counter()

    @st.composite
    def requests(draw: st.DrawFn) -> tuple[str, bytes]:
        verb = draw(verbs)
        schema_body = by_verb.get(verb, st.just({}))
        kind = draw(st.sampled_from(["valid", "mutated", "random_json", "random_bytes"]))
        if kind == "valid":
            return verb, encode(draw(schema_body))
        if kind == "mutated":
            return verb, encode(draw(mutated(schema_body)))
        if kind == "random_json":
            return verb, encode(draw(random_json))
        return verb, draw(st.binary(max_size=200))

    @fuzz_settings
    @given(requests())
    def check(request: tuple[str, bytes]) -> None:
        verb, data = request
        stats["examples"] += 1
        raw = fuzz_bus.run(fuzz_bus.broker.handle(verb, data))
        reply = api.ApiReply.model_validate_json(raw)  # always a well-formed reply
        if not reply.ok:
            assert reply.error is not None
            assert reply.error.code != "internal", (verb, data, reply.error)
            stats[f"refused:{reply.error.code}"] += 1
            return
        stats[f"accepted:{verb}"] += 1
        model = VERB_MODELS.get(verb)
        if model is not None:
            model.model_validate(json.loads(data) if data.strip() else {})  # nothing invalid accepted

    try:
        check()
    except Exception:
        stats["crashes"] += 1
        raise
    finally:
        fuzz_bus.outcomes.update(stats)
    report = fuzz_bus.run(verify_stream(fuzz_bus.nc))
    _record_figures(
        "api",
        stats["examples"],
        stats["crashes"],
        len(report.findings),
        time.perf_counter() - started,
        accepted=sum(v for k, v in stats.items() if k.startswith("accepted:")),
        refused={k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("refused:")},
        events_verified=report.events,
    )
    assert report.ok, [str(f) for f in report.findings[:5]]  # every stored event valid, every chain whole


# --- entry point 2: department replies ---------------------------------------------------------------


REQUEST = CoordinationRequest(
    request_id="DD-20260928-0001-c1",
    case_id="DD-20260928-0001",
    department="renshe",
    category="hard",
    matter="pension_transfer",
    matter_title="養老保險轉移",
    facts={},
    question="請答覆",
    deadline=date(2026, 10, 9),
    reply_by=datetime(2026, 9, 28, 2, 0, tzinfo=UTC) + timedelta(seconds=30),
    attempt=1,
)


def _coordinating_state() -> CaseState:
    from unstuck.lifecycle import COORDINATING, Coordination

    c = Coordination(
        request_id=REQUEST.request_id, department="renshe", round=1, question="q", deadline=date(2026, 10, 9)
    )
    return CaseState(
        case_id=REQUEST.case_id,
        seq=3,
        head_hash="a" * 64,
        state=COORDINATING,
        category="hard",
        due_date=date(2026, 10, 9),
        coordinations={c.request_id: c},
    )


def test_fuzzed_department_replies_never_crash_and_only_a_valid_answer_to_the_request_is_taken() -> None:
    hints = {
        "request_id": st.just(REQUEST.request_id) | st.from_regex(r"^[A-Za-z0-9_-]{8,64}$", fullmatch=True),
        "department": st.sampled_from(["renshe", "renshe", "scjg", "chengguan"]),
    }
    replies = valid_body("coordination-reply", hints)
    headers = (
        st.none() | st.just({}) | st.just({SERVICE_ERROR_CODE_HEADER: "500", SERVICE_ERROR_HEADER: "boom"})
    )
    state = _coordinating_state()
    stats: Counter[str] = Counter()
    started = time.perf_counter()

    @st.composite
    def answers(draw: st.DrawFn) -> tuple[bytes, dict[str, str] | None]:
        kind = draw(st.sampled_from(["valid", "mutated", "random_json", "random_bytes"]))
        if kind == "valid":
            data = encode(draw(replies))
        elif kind == "mutated":
            data = encode(draw(mutated(replies)))
        elif kind == "random_json":
            data = encode(draw(random_json))
        else:
            data = draw(st.binary(max_size=300))
        return data, draw(headers)

    @fuzz_settings
    @given(answers())
    def check(answer: tuple[bytes, dict[str, str] | None]) -> None:
        data, hdrs = answer
        stats["examples"] += 1
        reason, reply, detail = judge_reply(REQUEST, "renshe", data, hdrs)
        if reply is None:
            assert reason in ("error", "invalid_reply") and detail
            stats[f"refused:{reason}"] += 1
            return
        # taken: a valid answer to this very request from this very department
        assert not hdrs
        assert CoordinationReply.model_validate_json(data) == reply
        assert reply.request_id == REQUEST.request_id and reply.department == "renshe"
        assert reason == reply.outcome.value
        stats[f"accepted:{reason}"] += 1
        # and what the lifecycle makes of it is valid event data
        command = Reply(
            reply=reply,
            attempt=1,
            today=date(2026, 9, 28),
            review_notify_by=date(2026, 10, 9),
            higher_department="省人力資源和社會保障廳",
            max_bounces=2,
            known_departments=frozenset({"renshe", "scjg", "chengguan"}),
        )
        try:
            events = decide(state, command)
        except Refused:
            return
        for event in events:
            parse_payload(event.type, event.data.model_dump(mode="json"))

    try:
        check()
    except Exception:
        stats["crashes"] += 1
        raise
    _record_figures(
        "replies",
        stats["examples"],
        stats["crashes"],
        0,
        time.perf_counter() - started,
        accepted=sum(v for k, v in stats.items() if k.startswith("accepted:")),
        refused={k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("refused:")},
    )


# --- entry point 3: stream messages the broker did not write -------------------------------------------


def test_fuzzed_stream_messages_never_crash_the_follower_and_never_reach_a_case(fuzz_bus: FuzzBus) -> None:
    """Whatever lands on a case subject, the follower applies only events sealed into their chain."""
    broker = fuzz_bus.broker
    stats: Counter[str] = Counter()
    started = time.perf_counter()
    envelope = st.fixed_dictionaries(
        {
            "event_id": st.from_regex(r"^[0-9A-Z]{26}$", fullmatch=True),
            "case_id": st.sampled_from(fuzz_bus.case_ids),
            "seq": st.integers(0, 40),
            "type": st.sampled_from(["case.closed", "coordination.replied", "case.escalated", "no.such"]),
            "at": st.just("2026-09-28T01:00:00Z"),
            "actor": st.text(min_size=1, max_size=10),
            "data": random_json,
            "prev_hash": st.text(max_size=64),
            "hash": st.from_regex(r"^[0-9a-f]{64}$", fullmatch=True),
            "v": st.integers(0, 3),
        }
    )
    bodies = envelope.map(encode) | random_json.map(encode) | st.binary(max_size=200)

    @fuzz_settings
    @given(bodies)
    def check(body: bytes) -> None:
        stats["examples"] += 1
        heads = {c: broker.state_of(c).seq for c in fuzz_bus.case_ids}
        follow = broker._on_stored(10**9, body)
        try:  # the follower does not await: run it to its end right here, nothing else interleaves
            follow.send(None)
        except StopIteration:
            pass
        else:
            raise AssertionError("the follower awaited")
        assert {c: broker.state_of(c).seq for c in fuzz_bus.case_ids} == heads

    try:
        check()
    except Exception:
        stats["crashes"] += 1
        raise
    _record_figures("stream_messages", stats["examples"], stats["crashes"], 0, time.perf_counter() - started)
