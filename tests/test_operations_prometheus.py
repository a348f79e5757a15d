"""Alert rules checked and unit-tested by promtool, a real Prometheus scraping a live broker, and the Grafana
dashboard naming only metrics of the catalogue."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from conftest import require_tool, sample
from unstuck.broker import API_VERBS, Broker
from unstuck.config import Config, DepartmentConfig
from unstuck.embedded import free_port
from unstuck.metrics import Metrics, MetricsServer
from unstuck.testing import api_call, fast_config

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "examples" / "prometheus"
DASHBOARD = ROOT / "examples" / "grafana" / "unstuck.json"
OPERATIONS = ROOT / "docs" / "operations.md"
INSTALL_HINT = "install Debian's prometheus package (apt-get install prometheus), which ships {tool}"
# names Prometheus itself gives every scrape target
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
PROMQL_WORDS |= {"bool", "offset", "inf", "nan", "Inf", "NaN"}


def tool(name: str) -> str:
    return require_tool(name, INSTALL_HINT.format(tool=name))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )


# --- PromQL names ---------------------------------------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and durations dropped)."""
    label_values = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_]+\s*\)\s*", expr)
    if label_values:  # Grafana's variable query: label_values(<selector>, <label>)
        expr = label_values.group(1)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if m.start() > 0 and (expr[m.start() - 1].isdigit() or expr[m.start() - 1] in "$."):
            continue  # a duration unit, an exponent or a Grafana variable
        if expr[m.end() :].lstrip().startswith("(") or m.group() in PROMQL_WORDS:
            continue
        names.add(m.group())
    return names


def exposed_names() -> set[str]:
    """Every sample name the broker's registry exposes (counters with _total, histograms with
    _bucket, _sum and _count)."""
    metrics = Metrics(["renshe"], API_VERBS)
    return {s.name for family in metrics.registry.collect() for s in family.samples}


def catalogue_names() -> set[str]:
    """Sample names of the metrics documented in docs/operations.md."""
    names = set()
    for line in OPERATIONS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(unstuck_[a-z0-9_]+)` \| (counter|gauge|histogram) \|", line)
        if m and m.group(2) == "histogram":
            names |= {m.group(1) + suffix for suffix in ("_bucket", "_sum", "_count")}
        elif m:
            names.add(m.group(1))
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


def alert_expressions() -> dict[str, str]:
    """alertname → expr, read from alerts.yml (plain or folded `>-` scalars)."""
    rules: dict[str, str] = {}
    lines = (PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8").splitlines()
    name = None
    for i, line in enumerate(lines):
        if m := re.match(r"\s*- alert: (\S+)", line):
            name = m.group(1)
        elif (m := re.match(r"(\s*)expr: (.*)", line)) and name:
            if m.group(2).strip() in (">-", ">", "|", "|-"):
                indent = len(m.group(1))
                block = []
                for follow in lines[i + 1 :]:
                    if follow.strip() and len(follow) - len(follow.lstrip()) <= indent:
                        break
                    block.append(follow.strip())
                rules[name] = " ".join(block)
            else:
                rules[name] = m.group(2)
    return rules


def test_grafana_dashboard_names_only_metrics_of_the_catalogue() -> None:
    exposed, documented = exposed_names(), catalogue_names()
    used: set[str] = set()
    for expr in dashboard_expressions():
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert names - SYNTHETIC <= exposed, f"{expr!r} names metrics the broker does not expose"
        assert names - SYNTHETIC <= documented, f"{expr!r} names metrics missing from docs/operations.md"
        used |= names
    for needed in (
        "unstuck_coordination_reply_seconds_bucket",  # per-department latency
        "unstuck_coordination_pending",
        "unstuck_coordination_oldest_pending_seconds",
        "unstuck_department_stalled",
        "unstuck_coordination_retries_total",
        "unstuck_cases_overdue",
    ):
        assert needed in used, f"the dashboard shows no {needed}"


def test_alert_rules_name_only_metrics_of_the_catalogue() -> None:
    rules = alert_expressions()
    assert set(rules) == {
        "UnstuckDepartmentStalled",
        "UnstuckDepartmentSlow",
        "UnstuckDepartmentErroring",
        "UnstuckCasesOverdue",
        "UnstuckBrokerDown",
        "UnstuckCalendarYearUnknown",
    }
    for name, expr in rules.items():
        names = metric_names(expr) - SYNTHETIC
        assert names, f"{name}: no metric in {expr!r}"
        assert names <= exposed_names() & catalogue_names(), f"{name}: unknown metrics in {expr!r}"


def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_in_promtool_unit_tests() -> None:
    tests = (PROMETHEUS_DIR / "alerts_test.yml").read_text(encoding="utf-8")
    tested = set(re.findall(r"alertname: (\S+)", tests))
    assert tested == set(alert_expressions()), "every alert needs a unit test in alerts_test.yml"
    for name in tested:
        blocks = re.findall(rf"alertname: {name}\n\s+eval_time: \S+\n\s+exp_alerts:(.*)", tests)
        assert "[]" in [b.strip() for b in blocks], f"{name}: no case where it stays quiet"
        assert "" in [b.strip() for b in blocks], f"{name}: no case where it fires"
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_example_prometheus_config_passes_promtool_check() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


# --- a real Prometheus ------------------------------------------------------------------------------


@pytest.fixture
def unstuck_config() -> Config:
    config = fast_config()
    config.departments["zhujian"] = DepartmentConfig(
        name="住房和城鄉建設局", retry={"attempts": 2, "timeout_seconds": 0.2}
    )
    return config


@pytest_asyncio.fixture
async def metrics_server(broker: Broker) -> AsyncIterator[MetricsServer]:
    server = MetricsServer(broker.metrics, "127.0.0.1:0", broker.health).start()
    yield server
    server.stop()


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # still starting (plain text), or a PromQL error (JSON)
            body = exc.read()
            try:
                return json.loads(body)
            except ValueError:
                return {"status": "error", "error": body.decode(errors="replace")}

    async def until(self, check: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Poll ``check`` (in a thread) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                result = await asyncio.to_thread(check)
            except (OSError, KeyError):  # not listening yet, or an answer without data while starting
                result = None
            if result:
                return result
            await asyncio.sleep(0.25)
        raise AssertionError(
            f"Prometheus never got there; its log: {self.log.read_text(errors='replace')[-2000:]}"
        )


@pytest.fixture
def prometheus(metrics_server: MetricsServer, tmp_path: Path) -> Iterator[Prometheus]:
    """Debian's prometheus on a free loopback port, scraping the broker every second with the example
    configuration and alert rules."""
    binary = tool("prometheus")
    example = (PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8")
    config = (
        example.replace("127.0.0.1:9464", metrics_server.address)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
    )
    assert metrics_server.address in config and "scrape_interval: 1s" in config
    (tmp_path / "prometheus.yml").write_text(config, encoding="utf-8")
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp_path / "alerts.yml")
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield Prometheus(f"http://127.0.0.1:{port}", process, log)
    finally:
        process.kill()
        process.wait(timeout=30)


async def test_real_prometheus_reads_the_stalled_department_as_1_and_the_others_as_0(
    broker: Broker, builtin_adapters, nats_client, prometheus: Prometheus
) -> None:
    await api_call(nats_client, "case.open", sample("02", department="zhujian"))  # nobody serves zhujian
    await api_call(nats_client, "case.open", sample("02"))

    def stalled_flags() -> dict[str, float] | None:
        answer = prometheus.get("/api/v1/query", query="unstuck_department_stalled")
        if answer.get("status") != "success":
            return None
        flags = {r["metric"]["department"]: float(r["value"][1]) for r in answer["data"]["result"]}
        return flags if flags.get("zhujian") == 1 else None

    flags = await prometheus.until(stalled_flags)
    assert flags == {"zhujian": 1.0, "renshe": 0.0, "scjg": 0.0, "chengguan": 0.0}

    target = prometheus.get("/api/v1/targets")["data"]["activeTargets"][0]
    assert target["labels"]["job"] == "unstuck"
    assert target["health"] == "up"

    def rules_evaluated() -> list[dict[str, Any]] | None:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]  # KeyError while starting: retried
        rules = [rule for group in groups for rule in group["rules"]]
        stalled = [r for r in rules if r["name"] == "UnstuckDepartmentStalled" and r["alerts"]]
        return rules if len(rules) == 6 and all(r["health"] == "ok" for r in rules) and stalled else None

    rules = await prometheus.until(rules_evaluated)  # every rule evaluates against the live series
    stalled_rule = next(r for r in rules if r["name"] == "UnstuckDepartmentStalled")
    assert [a["labels"]["department"] for a in stalled_rule["alerts"]] == ["zhujian"]
    assert stalled_rule["alerts"][0]["state"] == "pending"  # it pages after 5 minutes

    for expr in dashboard_expressions():
        if expr.startswith("label_values("):
            continue
        promql = expr.replace("$department", ".*").replace("$__rate_interval", "1m")
        answer = await asyncio.to_thread(prometheus.get, "/api/v1/query", query=promql)
        assert answer["status"] == "success", f"{promql}: {answer.get('error')}"
