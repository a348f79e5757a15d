"""What the benchmarks send: a case body, simple department adapters, and the payloads of the baselines.

The bus and both baselines carry the same bytes: the baselines send the coordination request the
broker builds for the benchmark case and answer with the reply the benchmark adapter gives.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from unstuck.adapters.hookspecs import adapter_hookimpl
from unstuck.adapters.registry import LoadedAdapter, wrap_adapter
from unstuck.config import Config, DepartmentConfig, RetryPolicy
from unstuck.schemas import CoordinationReply, CoordinationRequest, Department, Outcome
from unstuck.testing import resident_id

BENCH_DEPARTMENTS = ("renshe", "scjg", "chengguan")


def department_codes(count: int) -> list[str]:
    """``count`` department codes: the three real ones first, then ``bureau04`` ... ``bureauNN``."""
    codes = list(BENCH_DEPARTMENTS[:count])
    codes += [f"bureau{i:02d}" for i in range(len(codes) + 1, count + 1)]
    return codes


def case_body(n: int, department: str) -> dict[str, Any]:
    """An ``unstuck.api.case.open`` body with a category, so the broker classifies and coordinates at once."""
    return {
        "channel": "window",
        "applicant": {"kind": "citizen", "name": "張三", "id_number": resident_id(n)},
        "matter": "bench_matter",
        "matter_title": "基準測試事項",
        "facts": {"n": n},
        "window": "綜合受理窗口",
        "department": department,
        "description": "申請人在常規窗口辦理時遇到政策空白，窗口未能辦理，轉辦不成事窗口協調。",
        "category": "hard",
        "owner": "w-bench",
    }


class BenchAdapter:
    """A department that answers every request ``resolved`` at once: the cost measured is the bus's own."""

    def __init__(self, code: str) -> None:
        self.code = code

    @adapter_hookimpl
    def unstuck_department(self) -> Department:
        return Department(code=self.code, name=f"{self.code} bureau")

    @adapter_hookimpl
    def unstuck_coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        return CoordinationReply(
            request_id=request.request_id,
            department=self.code,
            outcome=Outcome.RESOLVED,
            message="已按申請辦結",
            handler="經辦人",
        )


def bench_adapters(codes: list[str]) -> list[LoadedAdapter]:
    out = []
    for code in codes:
        loaded = wrap_adapter(f"bench-{code}", BenchAdapter(code))
        assert loaded is not None
        out.append(loaded)
    return out


def bench_config(codes: list[str]) -> Config:
    """Defaults, with every benchmark department configured and a reply timeout no load here reaches."""
    config = Config()
    config.retry = RetryPolicy(timeout_seconds=30.0, attempts=3, backoff_initial_seconds=0.1)
    config.broker.metrics_address = "127.0.0.1:0"
    config.broker.tick_seconds = 3600.0
    config.departments = {code: DepartmentConfig(name=f"{code} bureau") for code in codes}
    limits = getattr(config, "limits", None)
    if limits is not None:  # one benchmark client stands for a whole service centre: limits on, far away
        limits.api_requests_per_second = 100_000.0
        limits.api_burst = 1_000_000
        limits.cases_per_applicant_per_day = 10_000
    return config


def bench_config_toml(codes: list[str]) -> str:
    """``bench_config(codes)`` as an unstuck.toml, for a broker started as ``unstuck serve``."""
    config = bench_config(codes)
    sections: dict[str, dict[str, Any]] = {
        "broker": config.broker.model_dump(mode="json"),
        "retry": config.retry.model_dump(mode="json"),
        "limits": config.limits.model_dump(mode="json"),
    }
    for code, dept in config.departments.items():
        sections[f"departments.{code}"] = dept.model_dump(mode="json")
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            if value is not None and not isinstance(value, dict | list):
                lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")  # JSON scalars are TOML
        lines.append("")
    return "\n".join(lines)


def request_payload(department: str = "renshe") -> bytes:
    """The coordination request the broker sends for a benchmark case, as bytes."""
    return (
        CoordinationRequest(
            request_id="DD-20261127-0001-c1",
            case_id="DD-20261127-0001",
            department=department,
            category="hard",
            matter="bench_matter",
            matter_title="基準測試事項",
            facts={"n": 1},
            question="[hard] 基準測試事項: 申請人在常規窗口辦理時遇到政策空白，窗口未能辦理，轉辦不成事窗口協調。",
            deadline=date(2026, 12, 4),
            reply_by=datetime.now(UTC) + timedelta(days=1),
            attempt=1,
        )
        .model_dump_json()
        .encode()
    )


def reply_payload(department: str = "renshe") -> bytes:
    """The reply the benchmark adapter gives, as bytes."""
    return (
        CoordinationReply(
            request_id="DD-20261127-0001-c1",
            department=department,
            outcome=Outcome.RESOLVED,
            message="已按申請辦結",
            handler="經辦人",
        )
        .model_dump_json()
        .encode()
    )
