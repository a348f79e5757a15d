"""Abuse limits of the API and personal data in its errors: each refusal is clear, counted and masks the person."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from prometheus_client import generate_latest

from conftest import sample
from unstuck.broker import Broker
from unstuck.clock import SimulatedClock
from unstuck.config import Config, LimitsConfig
from unstuck.embedded import EmbeddedNats
from unstuck.schemas import mask_identifier
from unstuck.schemas.subjects import api_subject
from unstuck.testing import ApiError, api_call, fast_config


@pytest.fixture
def limits(request: pytest.FixtureRequest) -> LimitsConfig:
    """The limits under test: a test picks its own with ``parametrize("limits", [...], indirect=True)``."""
    return getattr(request, "param", LimitsConfig(cases_per_applicant_per_day=2))


@pytest.fixture
def unstuck_config(limits: LimitsConfig) -> Config:
    config = fast_config()
    config.limits = limits
    config.broker.max_payload_bytes = 1024
    return config


# one token per thousand seconds: the fourth request in a row is over the limit, however fast the machine
SLOW_REFILL = LimitsConfig(api_requests_per_second=0.001, api_burst=3)


def scraped(broker: Broker) -> str:
    return generate_latest(broker.metrics.registry).decode()


async def request(
    nc: Client, verb: str, body: dict[str, Any], client: str | None = None, principal: str | None = None
) -> dict[str, Any]:
    headers = {"Unstuck-Client": client} if client else None
    subject = api_subject(verb, principal)
    msg = await nc.request(subject, json.dumps(body).encode(), timeout=10, headers=headers)
    return dict(json.loads(msg.data))


@pytest.mark.parametrize("limits", [SLOW_REFILL], indirect=True)
async def test_a_client_over_its_request_rate_is_refused_with_the_limit_and_the_fix(
    broker: Broker, nats_client: Client, nats_server: EmbeddedNats
) -> None:
    for _ in range(3):
        assert (await request(nats_client, "status", {}))["ok"]
    refused = await request(nats_client, "status", {})
    assert not refused["ok"]
    error = refused["error"]
    assert error["code"] == "rate_limited"
    assert "0.001 per second with bursts of 3" in error["message"]
    assert "retry after" in error["fix"] and "[limits] api_requests_per_second" in error["fix"]
    assert 'unstuck_api_errors_total{reason="rate_limited"} 1.0' in scraped(broker)
    # the limit is on the principal the subject proves: a new connection, a new inbox or a header the
    # caller picks does not dodge it (all anonymous requests share one bucket) ...
    other = await nats.connect(nats_server.url)
    try:
        assert (await request(other, "status", {}))["error"]["code"] == "rate_limited"
    finally:
        await other.close()
    assert (await request(nats_client, "status", {}, client="w-li"))["error"]["code"] == "rate_limited"
    # ... while another principal has a bucket of its own
    assert (await request(nats_client, "status", {}, principal="staff-w-li"))["ok"]


async def test_an_applicant_may_open_only_so_many_cases_a_day(
    broker: Broker, nats_client: Client, sim_clock: SimulatedClock
) -> None:
    many = sample("03", client_ref="window-ticket-1")
    id_number = many["applicant"]["id_number"]
    first = await api_call(nats_client, "case.open", many)
    await api_call(nats_client, "case.open", sample("03"))
    with pytest.raises(ApiError) as refused:
        await api_call(nats_client, "case.open", sample("03"))
    error = refused.value.error
    assert error["code"] == "rate_limited"
    assert error["field"] == "applicant.id_number"
    assert "the limit is 2 per applicant per day" in error["message"]
    assert first["case_id"] in error["message"] and "[limits] cases_per_applicant_per_day" in error["fix"]
    assert id_number not in json.dumps(error, ensure_ascii=False)
    assert mask_identifier(id_number) in error["message"]
    # a repeated open of a case already accepted is not a new case: it is answered, not refused
    again = await api_call(nats_client, "case.open", many)
    assert again["case_id"] == first["case_id"] and again["duplicate"]
    # other applicants are not affected, and the next day the applicant may come again
    await api_call(nats_client, "case.open", sample("04"))
    sim_clock.advance(timedelta(days=1))
    await api_call(nats_client, "case.open", sample("03"))


async def test_an_oversized_request_is_refused_and_nothing_is_stored(
    broker: Broker, nats_client: Client
) -> None:
    body = sample("02", description="說明" * 600)
    with pytest.raises(ApiError) as refused:
        await api_call(nats_client, "case.open", body)
    assert refused.value.error["code"] == "payload_too_large"
    assert "the maximum is 1024" in refused.value.error["message"]
    assert await broker.store.last_seq() == 0


@pytest.mark.parametrize("field", ["id_number", "phone"])
async def test_a_validation_error_never_echoes_an_id_or_phone_number(
    broker: Broker, nats_client: Client, field: str
) -> None:
    body = sample("04")
    value = body["applicant"][field]
    body["applicant"][field] = int(value)  # a number instead of a string: refused, and the value shown
    with pytest.raises(ApiError) as refused:
        await api_call(nats_client, "case.open", body)
    error = refused.value.error
    assert error["code"] == "invalid_request" and error["field"] == f"applicant.{field}"
    assert value not in json.dumps(error, ensure_ascii=False)
    assert mask_identifier(value) in error["message"]


async def test_a_deeply_nested_or_very_wide_body_is_refused_in_one_line_before_it_is_parsed(
    broker: Broker, nats_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # 5,000 levels: json.loads would raise RecursionError (and log a traceback) on this; 1 KiB max body
    # in this configuration, so the wide one is checked under the default size limit below
    deep = b'{"a":' * 300 + b"1" + b"}" * 300
    wide = json.dumps({"case_id": "DD-20260928-0001", "x": list(range(2_500))}).encode()
    broker.transport.config.broker.max_payload_bytes = 64 * 1024
    for body, problem in (
        (deep, "nested more than 16 levels deep"),
        (wide, "more than 2000 fields and elements"),
    ):
        msg = await nats_client.request("unstuck.api.case.get", body, timeout=10)
        error = json.loads(msg.data)["error"]
        assert (error["code"], error["field"]) == ("invalid_request", "body")
        assert problem in error["message"]
    # a quote or bracket inside a string is text, not structure
    fine = json.dumps({"case_id": "DD-20260928-0001", "reveal_reason": "{[" * 50}).encode()
    assert (
        json.loads((await nats_client.request("unstuck.api.case.get", fine, timeout=10)).data)["error"][
            "code"
        ]
        == "not_found"
    )
    assert not [r for r in caplog.records if r.exc_info]  # no traceback in the log
    assert 'unstuck_api_errors_total{reason="invalid_request"} 2.0' in scraped(broker)


async def test_the_daily_quota_is_not_dodged_by_full_width_digits_spaces_or_zero_width_characters(
    broker: Broker, nats_client: Client
) -> None:
    base = sample("03")
    plain = base["applicant"]["id_number"]  # 18 characters, digits (and perhaps X)
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in plain)
    disguised = [plain, f" {plain} ", full_width, plain[:6] + "\u200b" + plain[6:]]
    limit = broker.config.limits.cases_per_applicant_per_day
    accepted = refused = 0
    for n in range(limit + 1):
        body = {**base, "applicant": {**base["applicant"], "id_number": disguised[n % len(disguised)]}}
        try:
            await api_call(nats_client, "case.open", body)
            accepted += 1
        except ApiError as exc:
            assert exc.error["field"] == "applicant.id_number"
            refused += 1
    assert (accepted, refused) == (limit, 1)  # every spelling counted as the one applicant
