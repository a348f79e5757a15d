"""Fuzzing the bus's entry points with hypothesis: API requests, department replies, stream messages.

1. API requests travel over NATS to the running broker's API subjects (``unstuck.api.<verb>``), as a
   front end sends them: schema-valid bodies (from schemas/json), bodies with one thing wrong (a field
   dropped, of the wrong type, null or unknown), random JSON and random bytes. Every request gets a
   well-formed reply; a refusal is never "internal" and, for bad input, names the field and the fix;
   an accepted request validates against its model; every event an accepted request reported stored
   is in the stream afterwards, the stream verifies clean, and the broker still serves a good request.
2. Department replies are judged by ``judge_reply`` (a pure function) and decided by the lifecycle:
   only a valid answer to the request from that department is taken, and what the lifecycle makes of
   it is valid event data.
3. Stream messages: events correctly sealed (``canonical.seal``: the hash matches the content) but
   wrong in one respect (seq, prev_hash, type, payload, version, timestamp, actor, event id, case id),
   or valid ones whose bytes were changed after sealing, are written into the case stream, each onto
   a case the broker has just opened. The broker's follower must not apply those that break the seal,
   the chain or the schema of their type, and ``unstuck replay --verify`` (of the case, and of the
   whole stream) must report each with exactly the findings its defect calls for.

``make test`` runs a small, reproducible number of examples per entry point; ``make fuzz`` sets
UNSTUCK_FUZZ_EXAMPLES (10,000 or more) and explores at random.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
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
from ulid import ULID

from conftest import sample
from unstuck.adapters.host import AdapterHost
from unstuck.adapters.registry import discover, installed_departments
from unstuck.broker import API_VERBS, Broker
from unstuck.canonical import canonical_json, seal
from unstuck.clock import SimulatedClock
from unstuck.embedded import EmbeddedNats
from unstuck.lifecycle import CaseState, RecordReply, Refused, decide
from unstuck.replay import verify_stream
from unstuck.replyjudge import SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER, judge_reply
from unstuck.schemas import CURRENT_VERSIONS, EVENT_TYPES, CoordinationReply, CoordinationRequest, api
from unstuck.schemas.events import parse_payload
from unstuck.testing import DEFAULT_START, fast_config, resident_id, wait_for

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


def json_of(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """JSON values: these scalars, in lists and objects."""
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=12,
    )


random_json = json_of(json_scalars)


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
    client: Client  # a front end's connection of its own
    case_ids: list[str]
    outcomes: Counter[str] = field(default_factory=Counter)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def request(self, verb: str, data: bytes) -> api.ApiReply:
        """One API request over NATS; the reply must be a well-formed ApiReply."""
        msg = await self.client.request(f"unstuck.api.{verb}", data, timeout=10)
        return api.ApiReply.model_validate_json(msg.data)

    async def open_case(self, name: str) -> str:
        reply = await self.request("case.open", encode(sample(name)))
        assert reply.ok, reply.error
        return str(reply.result["case_id"])


@pytest.fixture(scope="module")
def fuzz_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzBus]:
    """A real nats-server, a broker serving its API subjects and the built-in adapters, on an event
    loop of the module's own (hypothesis drives it one example at a time)."""
    loop = asyncio.new_event_loop()
    server = EmbeddedNats(tmp_path_factory.mktemp("fuzz")).start()
    nc = loop.run_until_complete(nats.connect(server.url))
    adapters_nc = loop.run_until_complete(nats.connect(server.url))
    client = loop.run_until_complete(nats.connect(server.url))
    config = fast_config()
    config.staff.update({"w-li": "clerk"})
    config.limits.api_requests_per_second = 0  # the fuzzer is one client sending as fast as it can
    config.limits.cases_per_applicant_per_day = 0
    broker = Broker(nc, config, SimulatedClock(DEFAULT_START), departments=installed_departments())
    host = AdapterHost(adapters_nc, list(discover().values()))
    loop.run_until_complete(broker.start())
    loop.run_until_complete(host.start())
    bus = FuzzBus(loop, broker, client, [])
    for name in ("01", "02", "03", "05", "07", "11"):
        bus.case_ids.append(bus.run(bus.open_case(name)))
    yield bus
    loop.run_until_complete(host.stop())
    loop.run_until_complete(broker.stop())
    for conn in (client, adapters_nc, nc):
        loop.run_until_complete(conn.close())
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
        "id_number": st.integers(0, 10**7).map(resident_id),
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


# --- entry point 1: the API, over NATS ------------------------------------------------------------

# refusals of bad input: the error names the field and says how to fix it
BAD_INPUT_CODES = {"invalid_json", "invalid_request", "payload_too_large", "not_found"}


def test_fuzzed_api_requests_over_nats_are_answered_and_nothing_accepted_is_lost(fuzz_bus: FuzzBus) -> None:
    hints = _hints(fuzz_bus)
    by_verb = {verb: valid_body(f"api.{model.__name__}", hints) for verb, model in VERB_MODELS.items()}
    verbs = st.sampled_from([*API_VERBS, "case.delete", "case.get.extra"])
    stats: Counter[str] = Counter()
    stored: dict[str, dict[int, tuple[str, str]]] = {}  # case -> seq -> (type, hash) the replies reported
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
        reply = fuzz_bus.run(fuzz_bus.request(verb, data))  # a reply, and a well-formed one
        if not reply.ok:
            error = reply.error
            assert error is not None and error.message, (verb, data, reply)
            assert error.code not in ("internal", "unavailable", "conflict"), (verb, data, error)
            if error.code in BAD_INPUT_CODES:
                assert error.field and error.fix, (verb, data, error)
            model = VERB_MODELS.get(verb)
            if error.code == "invalid_request" and model is not None and error.field != "body":
                # the field named is one of the request's or one the request sent
                sent = json.loads(data) if data.strip() else {}
                top = error.field.split(".")[0]  # a nested field, or a key sent that holds dots
                assert top in model.model_fields or top in sent or error.field in sent, (verb, data, error)
            stats[f"refused:{error.code}"] += 1
            return
        stats[f"accepted:{verb}"] += 1
        model = VERB_MODELS.get(verb)
        if model is not None:
            model.model_validate(json.loads(data) if data.strip() else {})  # nothing invalid accepted
        result = reply.result
        if isinstance(result, dict) and isinstance(result.get("events"), list) and result.get("case_id"):
            for event in result["events"]:
                stored.setdefault(result["case_id"], {})[event["seq"]] = (event["type"], event["hash"])

    try:
        check()
    except Exception:
        stats["crashes"] += 1
        raise
    finally:
        fuzz_bus.outcomes.update(stats)

    # nothing an accepted request reported stored is missing from the stream
    lost = []
    for case_id, events in stored.items():
        in_stream = {e.seq: (e.type, e.hash) for e in fuzz_bus.run(fuzz_bus.broker.store.read_case(case_id))}
        lost += [(case_id, seq) for seq, event in events.items() if in_stream.get(seq) != event]
    assert lost == []
    report = fuzz_bus.run(verify_stream(fuzz_bus.client))
    assert report.ok, [str(f) for f in report.findings[:5]]  # every stored event valid, every chain whole

    # and the broker still serves a good request
    case_id = fuzz_bus.run(fuzz_bus.open_case("02"))
    got = fuzz_bus.run(fuzz_bus.request("case.get", encode({"case_id": case_id})))
    assert got.ok and got.result["state"]["case_id"] == case_id
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
        command = RecordReply(
            reply=reply,
            attempt=1,
            today=date(2026, 9, 28),
            review_notify_by=date(2026, 10, 9),
            review_due_date=date(2026, 10, 12),
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


# --- entry point 3: sealed but hostile events in the stream -------------------------------------------

HEX64 = re.compile(r"[0-9a-f]{64}")
OWNER = "w-wang"  # the owner of sample 05, whose case the window opens and guides
AT = "2026-09-28T01:00:00Z"
REASON = "換人跟進"
# what a sealed event can hold: RFC 8785, the canonical form, writes no integer beyond +-(2^53-1), no
# NaN or Infinity (seal refuses them)
sealable_ints = st.integers(-(2**53 - 1), 2**53 - 1)
sealable_json = json_of(
    st.none()
    | st.booleans()
    | sealable_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
NOT_JSON_OBJECTS = (
    st.none() | st.booleans() | sealable_ints | st.text(max_size=20) | st.lists(sealable_ints, max_size=3)
)
# characters an actor (a staff id, a subject-safe token) may not hold
FORBIDDEN_IN_ACTOR = st.sampled_from([" ", "\t", "\n", ".", "*", ">"])
safe_text = st.text(alphabet="abcxyz-_0189", max_size=8)


@dataclass(frozen=True)
class Hostile:
    """One sealed event that is wrong in one respect: ``kind`` says which, ``value`` what it holds."""

    kind: str
    value: Any = None


# the follower must not apply these: they break the seal, the chain or the schema of their type
REFUSED_BY_THE_FOLLOWER = {
    # a valid next event, sealed, then its stored bytes changed: another reason, or spaces added
    "edited_after_sealing": st.text(min_size=1, max_size=20).filter(lambda t: t != REASON),
    "respaced_after_sealing": st.none(),
    "seq_ahead": st.integers(1, 40),  # seq head+1+n: events missing before it
    "seq_repeat": st.integers(-3, 2),  # a seq the case has (or none may have)
    "prev_hash": st.from_regex(HEX64, fullmatch=True) | st.just(""),
    "prev_hash_malformed": st.text(min_size=1, max_size=70).filter(lambda t: not HEX64.fullmatch(t))
    | sealable_ints
    | st.none()
    | st.lists(st.text(max_size=4), max_size=2),
    "type": st.text(max_size=30).filter(lambda t: t not in EVENT_TYPES) | sealable_ints | st.none(),
    "data": st.tuples(
        st.sampled_from(sorted(EVENT_TYPES)),
        NOT_JSON_OBJECTS
        | st.builds(
            lambda extra, rest: {**rest, f"zz_unknown_{extra}": 1},  # unknown fields are refused
            safe_text,
            st.dictionaries(
                st.sampled_from(["owner", "reason", "category", "outcome"]), sealable_json, max_size=2
            ),
        ),
    ),
    # no such version of case.owner_assigned: none below 1, none newer than the code knows
    "version": st.integers(-(2**53 - 1), 0)
    | st.integers(CURRENT_VERSIONS["case.owner_assigned"] + 1, 2**53 - 1),
    "at_unparseable": st.sampled_from(["", "yesterday", "2026-13-45T99:00:00Z", "28/09/2026 09:00"])
    | sealable_ints
    | st.none(),
}
# the envelope and the subject: the follower refuses these too, and replay --verify reports them
REPORTED_BY_THE_AUDITOR = {
    "at_naive": st.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1)).map(datetime.isoformat),
    "actor": st.builds(lambda a, bad, b: a + bad + b, safe_text, FORBIDDEN_IN_ACTOR, safe_text)
    | st.just("")
    | st.text(alphabet="abc", min_size=65, max_size=80)
    | sealable_ints
    | st.none(),
    "event_id": st.text(alphabet="ABC012", min_size=1, max_size=8)  # too short (made unique below)
    | st.builds(lambda a: f"{a}.{ULID()}", safe_text)  # a character outside the id alphabet
    | sealable_ints
    | st.none(),
    # (3.0 is no case: it is the number 3, which the canonical form writes 3)
    "seq_not_int": st.sampled_from(["3", 3.5, None, "three", [3]]),
    "v_not_int": st.sampled_from(["1", 1.5, None, True, [1]]),
    "other_case": st.none(),  # a valid next event of another case, stored on this case's subject
    "bad_case_id": st.builds(
        lambda a, bad: f"{a}{bad}", safe_text, st.sampled_from([".", " ", "*", ">", "é"])
    ),
}
hostile_events = st.one_of(
    [st.builds(Hostile, st.just(kind), values) for kind, values in REFUSED_BY_THE_FOLLOWER.items()]
    + [st.builds(Hostile, st.just(kind), values) for kind, values in REPORTED_BY_THE_AUDITOR.items()]
)


def expected_findings(hostile: Hostile) -> list[str]:
    """The findings ``replay --verify`` must report on the case whose subject got the event, by hand
    (the case holds seq 1-2 and its head is recorded at seq 2)."""
    match hostile.kind:
        case "seq_ahead":
            return ["seq_gap", "untracked_tail"]
        case "seq_repeat":
            return ["schema_invalid", "seq_repeat"] if hostile.value < 1 else ["seq_repeat"]
        case "prev_hash":
            return ["prev_hash_mismatch", "untracked_tail"]
        case "prev_hash_malformed":
            return ["prev_hash_mismatch", "schema_invalid", "untracked_tail"]
        case "seq_not_int":  # no seq to chain: only the envelope is wrong
            return ["schema_invalid"]
        case "edited_after_sealing":
            return ["hash_mismatch", "untracked_tail"]
        case "respaced_after_sealing":
            return ["not_canonical", "untracked_tail"]
        case "other_case" | "bad_case_id":  # the body names another case: judged on the whole stream
            return []
        case _:
            return ["schema_invalid", "untracked_tail"]


def hostile_fields(hostile: Hostile, case: dict[str, Any], n: int) -> dict[str, Any]:
    """The next event of ``case`` (a valid handover, as the window could record it), then made wrong."""
    fields: dict[str, Any] = {
        "event_id": str(ULID()),
        "case_id": case["case_id"],
        "seq": case["seq"] + 1,
        "type": "case.owner_assigned",
        "at": AT,
        "actor": "w-li",
        "data": {"owner": "w-zhao", "previous_owner": OWNER, "reason": REASON},
        "prev_hash": case["hash"],
        "v": 1,
    }
    value = hostile.value
    match hostile.kind:
        case "seq_ahead":
            fields["seq"] = case["seq"] + 1 + value
        case "seq_repeat" | "seq_not_int":
            fields["seq"] = value
        case "prev_hash" | "prev_hash_malformed":
            fields["prev_hash"] = value
        case "type":
            fields["type"] = value
        case "data":
            fields["type"], fields["data"] = value
            fields["v"] = CURRENT_VERSIONS[value[0]]
        case "version" | "v_not_int":
            fields["v"] = value
        case "at_unparseable" | "at_naive":
            fields["at"] = value
        case "actor":
            fields["actor"] = value
        case "event_id":
            fields["event_id"] = f"{value}{n}" if isinstance(value, str) else value
        case "bad_case_id":
            fields.update(case_id=f"{value}{n}", seq=1, prev_hash="")
        case "other_case":
            pass  # the caller passes the other case as ``case``
    return fields


def stored_body(hostile: Hostile, fields: dict[str, Any]) -> bytes:
    """The bytes written into the stream: the sealed event, or its bytes changed after sealing."""
    body, _ = seal(fields)
    if hostile.kind == "edited_after_sealing":
        edited = json.loads(body)
        edited["data"]["reason"] = hostile.value
        return canonical_json(edited)
    if hostile.kind == "respaced_after_sealing":
        return json.dumps(json.loads(body), ensure_ascii=False, sort_keys=True).encode()
    return body


def test_fuzzed_sealed_events_are_refused_by_the_follower_and_reported_by_replay(fuzz_bus: FuzzBus) -> None:
    """Whatever correctly sealed event lands on a case subject, the follower applies only events that
    continue their chain with a valid payload, and ``replay --verify`` names what is wrong with it."""
    broker = fuzz_bus.broker
    js = fuzz_bus.client.jetstream()
    stats: Counter[str] = Counter()
    expected: Counter[tuple[str, str]] = Counter()  # (case, finding) over the whole stream
    started = time.perf_counter()

    def rejected() -> float:
        return broker.metrics.registry.get_sample_value("unstuck_stream_rejected_events_total") or 0.0

    async def fresh_case() -> dict[str, Any]:
        """A case the window opens and guides at once (opened, classified): nothing else happens to it."""
        case_id = await fuzz_bus.open_case("05")
        state = broker.state_of(case_id)
        assert (state.seq, state.state, state.owner) == (2, "guiding", OWNER)
        return {"case_id": case_id, "seq": state.seq, "hash": state.head_hash}

    async def write(hostile: Hostile) -> None:
        target = await fresh_case()
        named = await fresh_case() if hostile.kind == "other_case" else target
        fields = hostile_fields(hostile, named, stats["examples"])
        body = stored_body(hostile, fields)
        cases_before = set(broker.states)
        heads_before = {
            c: (broker.state_of(c).seq, broker.state_of(c).head_hash)
            for c in {target["case_id"], named["case_id"]}
        }
        rejected_before = rejected()
        await broker.store.heads.flush()  # the broker has recorded its heads: the fresh cases' are set
        ack = await js.publish(f"unstuck.case.{target['case_id']}", body)
        await wait_for(lambda: broker.applied_seq >= ack.seq, 20, "the follower took the message")
        after = {c: (broker.state_of(c).seq, broker.state_of(c).head_hash) for c in heads_before}
        stats["applied by the follower"] += after != heads_before or set(broker.states) != cases_before
        if True:  # the follower applies nothing `unstuck replay --verify` would report
            assert after == heads_before, f"the follower applied {hostile}"
            assert set(broker.states) == cases_before
            if hostile.kind != "seq_repeat":  # a repeat is skipped as the broker's own events are
                assert rejected() == rejected_before + 1
        findings = expected_findings(hostile)
        if hostile.kind == "other_case":
            # `replay --verify --case TARGET` reports the foreign event stored under the target's subject
            report = await verify_stream(fuzz_bus.client, case_id=target["case_id"], head_lag=0)
            assert [(f.case_id, f.code) for f in report.findings] == [(named["case_id"], "subject_mismatch")]
            expected.update(
                {(named["case_id"], "subject_mismatch"): 1, (named["case_id"], "untracked_tail"): 1}
            )
        elif hostile.kind == "bad_case_id":
            expected.update(
                (fields["case_id"], code) for code in ("head_missing", "schema_invalid", "subject_mismatch")
            )
        else:  # `unstuck replay --verify --case ID`
            report = await verify_stream(fuzz_bus.client, case_id=target["case_id"], head_lag=0)
            assert sorted(f.code for f in report.findings) == findings, (
                hostile,
                [str(f) for f in report.findings],
            )
            expected.update((target["case_id"], code) for code in findings)
        stats[hostile.kind] += 1

    @fuzz_settings
    @given(hostile_events)
    def check(hostile: Hostile) -> None:
        stats["examples"] += 1
        fuzz_bus.run(write(hostile))

    try:
        check()
    except Exception:
        stats["crashes"] += 1
        raise
    # `unstuck replay --verify` over the whole stream: exactly the findings the hostile events call for
    fuzz_bus.run(broker.store.heads.flush())
    report = fuzz_bus.run(verify_stream(fuzz_bus.client, head_lag=0))
    found = Counter((f.case_id, f.code) for f in report.findings)
    assert found == expected, (sorted((found - expected).items())[:5], sorted((expected - found).items())[:5])
    # and the broker still serves a good request
    assert broker.health()["ready"]
    fuzz_bus.run(fuzz_bus.open_case("02"))
    _record_figures(
        "stream_messages",
        stats["examples"],
        stats["crashes"],
        stats["applied by the follower"],
        time.perf_counter() - started,
        refused={k: v for k, v in stats.items() if k in REFUSED_BY_THE_FOLLOWER},
        reported={k: v for k, v in stats.items() if k in REPORTED_BY_THE_AUDITOR},
    )


def test_the_follower_refuses_sealed_events_the_auditor_reports(fuzz_bus: FuzzBus) -> None:
    broker = fuzz_bus.broker
    js = fuzz_bus.client.jetstream()
    cases = [
        Hostile("actor", "w li"),
        Hostile("at_naive", "2026-09-28T09:00:00"),
        Hostile("event_id", "short"),
        Hostile("seq_not_int", "3"),
        Hostile("v_not_int", "1"),
        Hostile("other_case"),
        Hostile("bad_case_id", "bad.id"),
    ]

    async def write(n: int, hostile: Hostile) -> str | None:
        target = await fuzz_bus.open_case("05")
        named = await fuzz_bus.open_case("05") if hostile.kind == "other_case" else target
        state = broker.state_of(named)
        fields = hostile_fields(hostile, {"case_id": named, "seq": state.seq, "hash": state.head_hash}, n)
        body, _ = seal(fields)
        before = (set(broker.states), state.seq)
        ack = await js.publish(f"unstuck.case.{target}", body)
        await wait_for(lambda: broker.applied_seq >= ack.seq, 20, "the follower took the message")
        if (set(broker.states), broker.state_of(named).seq) != before:
            return hostile.kind
        return None

    applied = [kind for n, h in enumerate(cases) if (kind := fuzz_bus.run(write(n, h)))]
    assert applied == []
