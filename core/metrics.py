"""Prometheus metrics of the broker, and the HTTP server for ``/metrics`` and ``/healthz``.

Labels come only from bounded sets (department code, outcome, category, event type, API verb);
never a case id or a person. Every known label set starts at zero. docs/operations.md is the
catalogue.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from unstuck.schemas import EVENT_TYPES

log = logging.getLogger(__name__)

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
API_ERROR_REASONS = (
    "invalid_json",
    "invalid_request",
    "payload_too_large",
    "not_found",
    "not_allowed",
    "conflict",
    "unavailable",
    "rate_limited",
    "internal",
)
REPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
ESCALATION_ROLES = ("clerk", "section_head", "leader_in_charge", "director")


class Metrics:
    """One registry per broker, so several brokers (and tests) can live in one process."""

    def __init__(self, departments: Iterable[str], api_verbs: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
            buckets=REPLY_BUCKETS,
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
        self.oldest_pending = Gauge(
            "unstuck_coordination_oldest_pending_seconds",
            "Age of the oldest coordination still waiting for this department",
            ["department"],
            registry=r,
        )
        self.stalled = Gauge(
            "unstuck_department_stalled",
            "1 while the department has a stalled coordination",
            ["department"],
            registry=r,
        )
        self.last_good_reply = Gauge(
            "unstuck_department_last_good_reply_timestamp_seconds",
            "Unix time of the department's last valid reply",
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
        self.calendar_fallback = Counter(
            "unstuck_calendar_fallback", "Working-day lookups that fell back to weekends-only", registry=r
        )
        self.calendar_year_unknown = Gauge(
            "unstuck_calendar_year_unknown", "The latest year the calendar had to guess (0: none)", registry=r
        )
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

    def add_department(self, dept: str) -> None:
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
            self.oldest_pending,
            self.stalled,
            self.last_good_reply,
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
