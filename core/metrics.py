"""Prometheus metrics of the broker, and the HTTP server for ``/metrics`` and ``/healthz``.

Labels come only from bounded sets (department code, outcome, category, event type, API verb);
never a case id or a person. Every known label set starts at zero. docs/operations.md is the
catalogue.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from unstuck.schemas import EVENT_TYPES
from unstuck.schemas.api import API_ERROR_CODES

from .clock import WALL
from .config import Config

log = logging.getLogger(__name__)

# The ``*_created`` companion series double the series count and no dashboard or alert reads them.
disable_created_metrics()

REQUEST_OUTCOMES = (
    "resolved",
    "accepted",
    "cannot",
    "not_ours",
    "need_materials",
    "error",
    "timeout",
    "no_responders",
    "invalid_reply",
)
CATEGORIES = ("unclassified", "cannot", "hard", "refused", "guided")
API_ERROR_REASONS = API_ERROR_CODES
REPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Fractions of each department's reply timeout that get a bucket boundary: a valid reply is never
# slower than the timeout, so the interesting resolution is just below it.
TIMEOUT_FRACTIONS = (0.25, 0.5, 0.75, 0.9, 1.0)
ESCALATION_ROLES = ("clerk", "section_head", "leader_in_charge", "director")
# unstuck_notifications_total: the broker counts stored/failed, `unstuck notify` the rest
BROKER_NOTIFICATION_OUTCOMES = ("stored", "failed")
DELIVERY_OUTCOMES = ("delivered", "retried", "undeliverable", "dead")


def notification_counter(registry: CollectorRegistry, outcomes: Iterable[str]) -> Counter:
    """``unstuck_notifications_total{outcome}``, every outcome at zero: the broker's (stored, failed) and
    the notifier's (delivered, retried, undeliverable, dead) in their own registries."""
    counter = Counter(
        "unstuck_notifications",
        "Notifications by outcome (stored by the broker, delivered by `unstuck notify`)",
        ["outcome"],
        registry=registry,
    )
    for outcome in outcomes:
        counter.labels(outcome)
    return counter


class DepartmentPolicy(Protocol):
    """The part of a department's retry policy the metrics show (config.RetryPolicy has it)."""

    timeout_seconds: float
    concurrency: int


def reply_buckets(timeouts: Iterable[float]) -> tuple[float, ...]:
    """Histogram boundaries: a fixed ladder plus points around every configured reply timeout."""
    points = set(REPLY_BUCKETS)
    for timeout in timeouts:
        points.update(round(timeout * f, 4) for f in TIMEOUT_FRACTIONS)
    return tuple(sorted(p for p in points if p > 0))


class PendingCoordinations:
    """Per department: which coordinations wait for an answer and since when.

    The broker updates it event by event; a scrape reads the oldest entry of a heap (stale entries are
    dropped lazily), so the cost does not grow with the number of cases. A lock guards it because the
    metrics server reads it from its own thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[str, tuple[str, float]] = {}
        self._heaps: dict[str, list[tuple[float, str]]] = {}
        self._counts: dict[str, int] = {}

    def track(self, department: str, request_id: str, since: float) -> None:
        """Record that ``request_id`` waits for ``department`` since the unix time ``since``."""
        with self._lock:
            current = self._since.get(request_id)
            if current == (department, since):
                return
            if current is not None:
                self._counts[current[0]] -= 1
            self._since[request_id] = (department, since)
            self._counts[department] = self._counts.get(department, 0) + 1
            heap = self._heaps.setdefault(department, [])
            heapq.heappush(heap, (since, request_id))
            if len(heap) > 64 + 2 * self._counts[department]:
                self._compact(department)

    def forget(self, request_id: str) -> None:
        """The coordination no longer waits (answered, bounced, or its case closed)."""
        with self._lock:
            current = self._since.pop(request_id, None)
            if current is not None:
                self._counts[current[0]] -= 1

    def count(self, department: str) -> int:
        with self._lock:
            return self._counts.get(department, 0)

    def oldest(self, department: str) -> float | None:
        """Unix time since which the department's oldest pending coordination waits (None: none)."""
        with self._lock:
            heap = self._heaps.get(department)
            while heap:
                since, request_id = heap[0]
                if self._since.get(request_id) == (department, since):
                    return since
                heapq.heappop(heap)
            return None

    def _compact(self, department: str) -> None:
        heap = [(since, rid) for rid, (dept, since) in self._since.items() if dept == department]
        heapq.heapify(heap)
        self._heaps[department] = heap


class _OldestPendingCollector:
    """``unstuck_coordination_oldest_pending_seconds``, computed when scraped."""

    name = "unstuck_coordination_oldest_pending_seconds"
    documentation = "Age of the oldest coordination still waiting for this department (0: none waits)"

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=["department"])

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=["department"])
        now = self.metrics.now()
        for dept in sorted(self.metrics.departments):
            since = self.metrics.waiting.oldest(dept)
            family.add_metric([dept], max(0.0, now - since) if since is not None else 0.0)
        yield family


class Metrics:
    """One registry per broker, so several brokers (and tests) can live in one process."""

    def __init__(
        self,
        departments: Iterable[str],
        api_verbs: Iterable[str] = (),
        policy: Callable[[str], DepartmentPolicy] | None = None,
    ) -> None:
        departments = list(departments)
        self.registry = CollectorRegistry(auto_describe=True)
        self.departments: set[str] = set()
        self.policy: Callable[[str], DepartmentPolicy] = policy or Config().retry_policy
        self.waiting = PendingCoordinations()
        self.now: Callable[[], float] = WALL.unix  # the broker sets the case clock (use_clock)
        timeouts = [self.policy(d).timeout_seconds for d in departments] or [Config().retry.timeout_seconds]
        r = self.registry
        self.requests = Counter(
            "unstuck_coordination_requests",
            "Coordination attempts by department and outcome",
            ["department", "outcome"],
            registry=r,
        )
        self.reply_seconds = Histogram(
            "unstuck_coordination_reply_seconds",
            "Time from sending a coordination request to a valid reply",
            ["department"],
            buckets=reply_buckets(timeouts),
            registry=r,
        )
        self.retries = Counter(
            "unstuck_coordination_retries",
            "Attempts that failed and were retried",
            ["department"],
            registry=r,
        )
        self.stalls = Counter(
            "unstuck_coordination_stalls",
            "Coordinations that exhausted their attempts",
            ["department"],
            registry=r,
        )
        self.invalid_replies = Counter(
            "unstuck_coordination_invalid_replies",
            "Replies that did not validate or came from the wrong department",
            ["department"],
            registry=r,
        )
        self.bounces = Counter(
            "unstuck_coordination_bounces",
            "not_ours answers (退單) by department",
            ["department"],
            registry=r,
        )
        self.in_flight = Gauge(
            "unstuck_coordination_in_flight", "Attempts sent and not yet answered", ["department"], registry=r
        )
        self.pending = Gauge(
            "unstuck_coordination_pending",
            "Coordinations waiting for the department's answer",
            ["department"],
            registry=r,
        )
        r.register(_OldestPendingCollector(self))
        self.stalled = Gauge(
            "unstuck_department_stalled",
            "1 while the department has a stalled coordination",
            ["department"],
            registry=r,
        )
        self.last_good_reply = Gauge(
            "unstuck_department_last_good_reply_timestamp_seconds",
            "Unix time of the department's last valid reply (0: none since the broker started)",
            ["department"],
            registry=r,
        )
        self.reply_timeout = Gauge(
            "unstuck_department_reply_timeout_seconds",
            "Configured time the broker waits for one reply from the department",
            ["department"],
            registry=r,
        )
        self.concurrency_limit = Gauge(
            "unstuck_department_concurrency_limit",
            "Configured maximum of attempts in flight to the department (its bulkhead)",
            ["department"],
            registry=r,
        )
        self.escalations = Counter(
            "unstuck_escalations",
            "Escalation steps by department and role",
            ["department", "role"],
            registry=r,
        )
        self.open_cases = Gauge("unstuck_cases_open", "Open cases by category", ["category"], registry=r)
        self.overdue_cases = Gauge(
            "unstuck_cases_overdue", "Open cases past their deadline", ["category"], registry=r
        )
        self.opened = Counter("unstuck_cases_opened", "Cases opened", ["category"], registry=r)
        self.closed = Counter(
            "unstuck_cases_closed", "Cases closed (銷號)", ["category", "on_time"], registry=r
        )
        self.days_to_close = Histogram(
            "unstuck_case_working_days_to_close",
            "Working days from opening to 銷號",
            ["category"],
            buckets=(0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 30),
            registry=r,
        )
        self.events = Counter(
            "unstuck_events_appended", "Events appended to the case stream", ["type"], registry=r
        )
        self.append_seconds = Histogram(
            "unstuck_append_seconds",
            "Time to append one decision to JetStream",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.append_conflicts = Counter(
            "unstuck_append_conflicts",
            "Appends refused because another writer extended the case first",
            registry=r,
        )
        self.api_requests = Counter("unstuck_api_requests", "API requests by verb", ["verb"], registry=r)
        self.api_errors = Counter(
            "unstuck_api_errors", "API requests refused, by reason", ["reason"], registry=r
        )
        self.nats_connected = Gauge(
            "unstuck_nats_connected", "1 while the broker is connected to NATS", registry=r
        )
        self.stream_ready = Gauge("unstuck_stream_ready", "1 while the case stream answers", registry=r)
        self.stream_rejected = Counter(
            "unstuck_stream_rejected_events",
            "Stream messages the broker did not apply: not sealed by a broker, out of order or invalid",
            registry=r,
        )
        self.calendar_fallback = Counter(
            "unstuck_calendar_fallback",
            "Working-day lookups in a year without a published schedule (statutory holidays only)",
            registry=r,
        )
        self.calendar_year_unknown = Gauge(
            "unstuck_calendar_year_unknown",
            "The latest year counted without a published schedule (0: none)",
            registry=r,
        )
        self.notifications = notification_counter(r, BROKER_NOTIFICATION_OUTCOMES)
        for dept in departments:
            self.add_department(dept)
        for cat in CATEGORIES:
            self.open_cases.labels(cat)
            self.overdue_cases.labels(cat)
            self.opened.labels(cat)
            self.days_to_close.labels(cat)
            for on_time in ("true", "false"):
                self.closed.labels(cat, on_time)
        for t in EVENT_TYPES:
            self.events.labels(t)
        for reason in API_ERROR_REASONS:
            self.api_errors.labels(reason)
        for verb in api_verbs:
            self.api_requests.labels(verb)
        self.escalations.labels("window", "section_head")

    def use_clock(self, now: Callable[[], float]) -> None:
        """Measure pending ages on the case clock (unix seconds), the clock that stamps the events."""
        self.now = now

    def add_department(self, dept: str) -> None:
        """Start every series of a department at zero (idempotent)."""
        self.departments.add(dept)
        policy = self.policy(dept)
        self.reply_timeout.labels(dept).set(policy.timeout_seconds)
        self.concurrency_limit.labels(dept).set(policy.concurrency)
        for outcome in REQUEST_OUTCOMES:
            self.requests.labels(dept, outcome)
        for m in (
            self.reply_seconds,
            self.retries,
            self.stalls,
            self.invalid_replies,
            self.bounces,
            self.in_flight,
            self.pending,
            self.stalled,
            self.last_good_reply,
            self.reply_timeout,
            self.concurrency_limit,
        ):
            m.labels(dept)
        for role in ESCALATION_ROLES:
            self.escalations.labels(dept, role)

    def on_unknown_year(self, year: int) -> None:
        self.calendar_fallback.inc()
        self.calendar_year_unknown.set(year)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``/metrics`` and ``/healthz`` on a background thread."""

    def __init__(
        self,
        metrics: Metrics,
        address: str,
        health: Callable[[], dict[str, object]],
        before_scrape: Callable[[], None] | None = None,
    ) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"metrics address {address!r} must be HOST:PORT, e.g. 127.0.0.1:9464")
        self.metrics = metrics
        self.health = health
        self.before_scrape = before_scrape
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    if server.before_scrape is not None:
                        server.before_scrape()
                    self._send(200, CONTENT_TYPE_LATEST, server.metrics.render())
                elif path in ("/healthz", "/readyz"):
                    status = server.health()
                    code = 200 if status.get("ready") else 503
                    self._send(code, "application/json", json.dumps(status).encode())
                else:
                    self._send(404, "text/plain", b"try /metrics or /healthz\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        try:
            self.httpd = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as exc:
            raise OSError(
                f"cannot serve metrics on {address}: {exc.strerror}; set broker.metrics_address "
                "or --metrics-address to a free HOST:PORT (port 0 picks one)"
            ) from exc
        self.httpd.daemon_threads = True
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="unstuck-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
