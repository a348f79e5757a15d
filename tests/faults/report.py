"""Write the figures of the latest fault and fuzz runs into docs/reliability.md.

    .venv/bin/python -m pytest -q tests/faults      # writes reliability-results/faults.json
    make fuzz                                       # writes reliability-results/fuzz.json
    .venv/bin/python tests/faults/report.py         # replaces the tables between the markers

Only figures from those files are written: nothing here is typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "reliability-results"
DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"

SCENARIOS = [
    (
        "nats_server_killed",
        "nats-server SIGKILLed mid-load, restarted after 1 s",
        "first case acknowledged after the restart",
    ),
    (
        "broker_killed",
        "broker SIGKILLed mid-load, started again at once",
        "kill to first case acknowledged by the new broker",
    ),
    ("departments", "five misbehaving departments beside three healthy ones", None),
    ("two_replicas", "two brokers on one stream, 4 concurrent writers per case", None),
    (
        "out_of_storage",
        "JetStream out of storage mid-load, limit raised by a reload",
        "first case acknowledged after the reload",
    ),
    (
        "network_cut",
        "broker's link to NATS reset and refused for 2 s",
        "first case acknowledged after the link came back",
    ),
]


def _seconds(value: Any) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _errors(figures: dict[str, Any]) -> str:
    errors = figures.get("api_errors") or {}
    codes = figures.get("api_error_codes") or {}
    parts = [f"{k} {v}" for k, v in sorted(errors.items()) if k != "refused"]
    parts += [f"{k} {v}" for k, v in sorted(codes.items())]
    return ", ".join(parts) or "none"


def scenario_table(scenarios: dict[str, Any]) -> list[str]:
    lines = [
        "| scenario | fault | cases in (acknowledged) | events verified | lost | duplicated | findings | recovery | client errors retried |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, fault, _ in SCENARIOS:
        f = scenarios.get(key)
        if f is None:
            lines.append(f"| `{key}` | {fault} | not run | | | | | | |")
            continue
        lines.append(
            f"| `{key}` | {fault} | {f['cases_in']} | {f['events_verified']} | {f['lost']} | {f['duplicated']} "
            f"| {f['findings']} | {_seconds(f.get('recovery_seconds'))} | {_errors(f)} |"
        )
    return lines


def details(scenarios: dict[str, Any]) -> list[str]:
    out: list[str] = []
    b = scenarios.get("broker_killed")
    if b:
        out.append(
            f"- `broker_killed`: {b['pending_at_kill']} coordinations were in flight at the kill; "
            f"{b['resumed_after_restart']} were answered after the restart under the same request_id "
            f"({b['requests_repeated_to_departments']} requests repeated to the departments, answered from "
            f"their dedup memory); the new broker was ready {b['restart_seconds']:.2f} s after the kill."
        )
    r = scenarios.get("two_replicas")
    if r:
        out.append(
            f"- `two_replicas`: {r['concurrent_escalations']} concurrent escalations, "
            f"{r['escalations_refused']} refused; append conflicts detected and decided again: "
            + ", ".join(f"{k} {v}" for k, v in sorted(r["append_conflicts"].items()))
            + "."
        )
    s = scenarios.get("out_of_storage")
    if s:
        out.append(
            f"- `out_of_storage`: {s['accepted_before_fault']} cases fitted; the API then answered "
            f"`unavailable` {s['unavailable_answers']} times, and "
            f'`unstuck_api_errors_total{{reason="unavailable"}}` read {s["unavailable_metric_while_full"]} '
            f"while storage was full; half-written decisions left: {s['half_written']}."
        )
    n = scenarios.get("network_cut")
    if n:
        out.append(
            f"- `network_cut`: {n['proxy_connections']} connections through the proxy (the broker's and its "
            "adapters', each made again by the client itself after the cut)."
        )
    return out


def department_table(scenarios: dict[str, Any]) -> list[str]:
    d = (scenarios.get("departments") or {}).get("per_department")
    if not d:
        return []
    lines = [
        "| department | behaviour | cases | resolved | stalled and escalated | replies recorded | timeouts | no responders | invalid replies | retries | stalls |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    behaviour = {
        "renshe": "healthy (built-in)",
        "scjg": "healthy (built-in)",
        "chengguan": "healthy (built-in)",
        "hangs": "never answers",
        "crashes": "process SIGKILLed mid-load, started again later",
        "garbage": "answers garbage",
        "twice": "answers every request twice, differently",
        "late": "answers after its timeout",
    }
    for code, row in d.items():
        lines.append(
            f"| `{code}` | {behaviour.get(code, '')} | {row['cases']} | {row['resolved']} | {row['stalled_and_escalated']} "
            f"| {row['replies_recorded']} | {row['timeouts']} | {row['no_responders']} | {row['invalid_replies']} "
            f"| {row['retries']} | {row['stalls']} |"
        )
    return lines


def fuzz_table(fuzz: dict[str, Any]) -> list[str]:
    if not fuzz:
        return ["No full fuzz run recorded yet: run `make fuzz`."]
    names = {
        "api": "API requests over NATS to the running broker (`unstuck.api.<verb>`)",
        "replies": "department replies (`replyjudge.judge_reply`, then `decide`)",
        "stream_messages": "stream messages (the broker's follower)",
        "console": "the window console's forms and pages over HTTP ({endpoints} endpoints, {per} examples each)",
    }
    lines = [
        "| entry point | examples | crashes | invalid data accepted | accepted | refused | seconds |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for key, f in fuzz.items():
        refused = ", ".join(f"{k} {v}" for k, v in sorted((f.get("refused") or {}).items())) or "—"
        lines.append(
            f"| {names.get(key, key).format(endpoints=f.get('endpoints'), per=f.get('per_endpoint'))} | {f['examples']} | {f['crashes']} | {f['invalid_accepted']} "
            f"| {f.get('accepted', '—')} | {refused} | {f['seconds']} |"
        )
    api = fuzz.get("api")
    if api and "events_verified" in api:
        lines.append("")
        lines.append(
            f"After the API run `verify_stream` checked the {api['events_verified']} events the fuzzed "
            "requests stored: no finding."
        )
    return lines


def render() -> str:
    faults = json.loads((RESULTS / "faults.json").read_text(encoding="utf-8"))
    fuzz_path = RESULTS / "fuzz.json"
    fuzz = json.loads(fuzz_path.read_text(encoding="utf-8")) if fuzz_path.exists() else {}
    scenarios = faults.get("scenarios", {})
    machine = faults.get("machine", {})
    stamps = sorted(f["recorded_at"] for f in scenarios.values() if "recorded_at" in f)
    lines = [
        START,
        f"Latest run: {stamps[-1] if stamps else 'none'}, {machine.get('cpus', '?')} CPUs, "
        f"Python {machine.get('python', '?')}.",
        "",
        *scenario_table(scenarios),
        "",
        *details(scenarios),
        "",
        "Departments scenario, per department (from the stream and the broker's /metrics):",
        "",
        *department_table(scenarios),
        "",
        "Fuzzing (`make fuzz`):",
        "",
        *fuzz_table(fuzz),
        END,
    ]
    return "\n".join(lines)


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{DOC} has no {START} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + render() + tail, encoding="utf-8")
    print(f"figures written to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
