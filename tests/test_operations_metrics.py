"""The metrics catalogue: what the broker exposes, how it is named, and that the department figures are right."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from conftest import sample
from unstuck.broker import API_VERBS, Broker
from unstuck.clock import SimulatedClock
from unstuck.config import Config, DepartmentConfig
from unstuck.metrics import (
    API_ERROR_REASONS,
    CATEGORIES,
    REQUEST_OUTCOMES,
    Metrics,
    PendingCoordinations,
    reply_buckets,
)
from unstuck.schemas import EVENT_TYPES
from unstuck.testing import api_call, fast_config, wait_for
from unstuck.workcalendar import WorkingCalendar

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "docs" / "operations.md"
BOUNDED_LABELS = {"department", "outcome", "category", "on_time", "role", "type", "verb", "reason"}


@pytest.fixture
def unstuck_config() -> Config:
    """Three built-in departments plus 住建 (zhujian), which no adapter serves in these tests."""
    config = fast_config()
    config.departments["zhujian"] = DepartmentConfig(
        name="住房和城鄉建設局", retry={"attempts": 2, "timeout_seconds": 0.3}
    )
    return config


def families(metrics: Metrics) -> dict[str, tuple[str, set[str]]]:
    """Exposed metric name (with the _total suffix of counters) → (type, label names)."""
    out = {}
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for s in family.samples for k in s.labels} - {"le"}
        out[name] = (family.type, labels)
    return out


def documented() -> dict[str, tuple[str, set[str]]]:
    """Catalogue rows of docs/operations.md: | `name` | type | `label`, ... | meaning | example |."""
    rows = {}
    for line in OPERATIONS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(unstuck_[a-z0-9_]+)` \| (counter|gauge|histogram) \| ([^|]*) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2), set(re.findall(r"`([a-z_]+)`", m.group(3))))
    return rows


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_exposed_metric_is_in_the_operations_catalogue_with_its_type_and_labels() -> None:
    exposed = families(Metrics(["renshe", "scjg", "chengguan"], API_VERBS))
    docs = documented()
    assert set(exposed) - set(docs) == set(), "metrics missing from docs/operations.md"
    assert set(docs) - set(exposed) == set(), "docs/operations.md lists metrics the broker does not expose"
    for name, (kind, labels) in exposed.items():
        assert docs[name] == (kind, labels), f"{name}: docs say {docs[name]}, the broker has {(kind, labels)}"


def test_metric_names_follow_prometheus_conventions_and_labels_are_bounded() -> None:
    for name, (kind, labels) in families(Metrics(["renshe"], API_VERBS)).items():
        assert re.fullmatch(r"unstuck_[a-z0-9_]+", name), name
        assert name.endswith("_total") == (kind == "counter"), f"{name}: only counters end in _total"
        assert not re.search(r"_(ms|milliseconds|minutes|hours|days)$", name), f"{name}: use base units"
        assert labels <= BOUNDED_LABELS, f"{name} has unbounded labels {labels - BOUNDED_LABELS}"
        assert not labels & {"case_id", "request_id", "staff", "actor", "applicant", "owner"}


def test_every_known_label_set_starts_at_zero() -> None:
    metrics = Metrics(["renshe", "zhujian"], API_VERBS)
    for dept in ("renshe", "zhujian"):
        for outcome in REQUEST_OUTCOMES:
            assert (
                value(metrics, "unstuck_coordination_requests_total", department=dept, outcome=outcome) == 0
            )
        for name in (
            "unstuck_coordination_retries_total",
            "unstuck_coordination_stalls_total",
            "unstuck_coordination_invalid_replies_total",
            "unstuck_coordination_bounces_total",
            "unstuck_coordination_pending",
            "unstuck_coordination_oldest_pending_seconds",
            "unstuck_department_stalled",
            "unstuck_department_last_good_reply_timestamp_seconds",
            "unstuck_coordination_reply_seconds_count",
        ):
            assert value(metrics, name, department=dept) == 0, f"{name}{{department={dept}}}"
    for cat in CATEGORIES:
        assert value(metrics, "unstuck_cases_open", category=cat) == 0
        assert value(metrics, "unstuck_cases_overdue", category=cat) == 0
        assert value(metrics, "unstuck_case_working_days_to_close_count", category=cat) == 0
    for reason in API_ERROR_REASONS:
        assert value(metrics, "unstuck_api_errors_total", reason=reason) == 0
    for event_type in EVENT_TYPES:
        assert value(metrics, "unstuck_events_appended_total", type=event_type) == 0


def test_reply_histogram_has_buckets_just_below_each_department_reply_timeout() -> None:
    config = fast_config()
    config.departments["zhujian"] = DepartmentConfig(retry={"timeout_seconds": 7.0})
    metrics = Metrics(["renshe", "zhujian"], policy=config.retry_policy)
    bounds = {
        float(s.labels["le"])
        for f in metrics.registry.collect()
        if f.name == "unstuck_coordination_reply_seconds"
        for s in f.samples
        if s.name.endswith("_bucket") and s.labels["department"] == "renshe"
    }
    for timeout in (0.5, 7.0):
        assert {timeout * 0.5, timeout * 0.75, timeout * 0.9, timeout} <= bounds
    assert reply_buckets([2.0]) == tuple(sorted(reply_buckets([2.0])))
    assert value(metrics, "unstuck_department_reply_timeout_seconds", department="zhujian") == 7.0
    assert value(metrics, "unstuck_department_concurrency_limit", department="zhujian") == 64


def test_oldest_pending_follows_answers_and_keeps_its_heap_small() -> None:
    pending = PendingCoordinations()
    pending.track("renshe", "DD-1-c1", 100.0)
    pending.track("renshe", "DD-2-c1", 50.0)
    pending.track("scjg", "DD-3-c1", 10.0)
    assert pending.oldest("renshe") == 50.0
    assert pending.count("renshe") == 2
    pending.forget("DD-2-c1")
    assert pending.oldest("renshe") == 100.0
    pending.forget("DD-1-c1")
    assert pending.oldest("renshe") is None
    assert pending.count("renshe") == 0
    assert pending.oldest("scjg") == 10.0
    for n in range(10_000):  # one long-waiting request while many come and go
        pending.track("renshe", f"DD-{n}-c2", 1000.0 + n)
        pending.forget(f"DD-{n}-c2")
    pending.track("renshe", "DD-old-c1", 5.0)
    assert pending.oldest("renshe") == 5.0
    assert len(pending._heaps["renshe"]) < 200


async def test_department_nobody_answers_is_pending_stalled_and_ages_on_the_bus_clock(
    broker: Broker, builtin_adapters, nats_client, sim_clock: SimulatedClock
) -> None:
    m = broker.metrics
    opened = await api_call(nats_client, "case.open", sample("02", department="zhujian"))
    case_id = opened["case_id"]
    await api_call(nats_client, "case.open", sample("02"))
    await wait_for(lambda: value(m, "unstuck_department_stalled", department="zhujian") == 1)
    await wait_for(lambda: value(m, "unstuck_coordination_reply_seconds_count", department="scjg") == 1)
    sim_clock.advance(timedelta(hours=3))
    scraped = m.render().decode()
    assert 'unstuck_coordination_oldest_pending_seconds{department="zhujian"} 10800.0' in scraped
    assert 'unstuck_coordination_oldest_pending_seconds{department="scjg"} 0.0' in scraped
    assert value(m, "unstuck_coordination_pending", department="zhujian") == 1
    assert value(m, "unstuck_coordination_stalls_total", department="zhujian") == 1
    assert value(m, "unstuck_coordination_requests_total", department="zhujian", outcome="no_responders") >= 2
    assert value(m, "unstuck_department_last_good_reply_timestamp_seconds", department="zhujian") == 0
    assert value(m, "unstuck_department_stalled", department="scjg") == 0
    assert value(m, "unstuck_department_last_good_reply_timestamp_seconds", department="scjg") > 0
    assert value(m, "unstuck_coordination_reply_seconds_count", department="scjg") == 1

    await api_call(
        nats_client,
        "case.record",
        {
            "case_id": case_id,
            "actor": "zhujian",  # the department records its own answer
            "department": "zhujian",
            "outcome": "resolved",
            "message": "電話確認已辦結",
            "handler": "住建局審批科",
        },
    )
    assert value(m, "unstuck_department_stalled", department="zhujian") == 0
    assert value(m, "unstuck_coordination_pending", department="zhujian") == 0
    assert 'unstuck_coordination_oldest_pending_seconds{department="zhujian"} 0.0' in m.render().decode()


async def test_not_ours_answers_count_as_bounces_of_that_department(
    broker: Broker, serve_adapter, nats_client
):
    from unstuck.adapters.hookspecs import adapter_hookimpl
    from unstuck.schemas import CoordinationReply, Department

    class NotOurs:
        @adapter_hookimpl
        def unstuck_department(self) -> Department:
            return Department(code="zhujian", name="住房和城鄉建設局")

        @adapter_hookimpl
        def unstuck_coordinate(self, request):
            return CoordinationReply(
                request_id=request.request_id,
                department="zhujian",
                outcome="not_ours",
                message="此事項屬市場監管局職責",
                handler="住建局綜合科",
                belongs_to="scjg",
            )

    await serve_adapter(NotOurs())
    await api_call(nats_client, "case.open", sample("02", department="zhujian"))
    m = broker.metrics
    await wait_for(lambda: value(m, "unstuck_coordination_bounces_total", department="zhujian") == 1)
    assert value(m, "unstuck_coordination_requests_total", department="zhujian", outcome="not_ours") == 1


def test_a_year_the_calendar_does_not_know_is_flagged_with_its_number() -> None:
    metrics = Metrics(["renshe"])
    calendar = WorkingCalendar(on_unknown_year=metrics.on_unknown_year)
    assert value(metrics, "unstuck_calendar_year_unknown") == 0
    calendar.is_working_day(date(2099, 3, 2))
    assert value(metrics, "unstuck_calendar_year_unknown") == 2099
    assert value(metrics, "unstuck_calendar_fallback_total") >= 1
