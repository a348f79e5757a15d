"""The Markdown tables of a benchmark result: the targets, the reference lines, the CPU of each process.

Every row shows the figure, its baseline, the ratio, the target and whether it holds.
"""

from __future__ import annotations

from typing import Any

TARGET_CASES_PER_S = 1_000.0  # coordinations/s at 100 in flight, processes as deployed
TARGET_P50_MS = 4.0  # p50 latency at 1 in flight, processes as deployed
TARGET_RAW_RATIO = 0.25  # bus / raw floor (one message per decision), 100 in flight, same layout
TARGET_REPLAY_EVENTS_PER_S = 40_000.0
TARGET_REPLAY_RATIO = 0.5  # replay --verify / ordered consumer
TARGET_REPLAY_RSS_MB = 300.0
TARGET_BROKER_RSS_MB = 200.0  # broker peak RSS with 100,000 open cases
FULL_REPLAY_EVENTS = 1_000_000
FULL_OPEN_CASES = 100_000
HEADER = ["| measure | unstuck | baseline | ratio | target | holds |", "|---|---|---|---|---|---|"]


def _row(
    measure: str, bus: str, baseline: str, ratio: float | None, target: str, holds: bool | str | None
) -> str:
    shown = "" if ratio is None else f"{ratio:.2f}"
    verdict = holds if isinstance(holds, str) else "" if holds is None else ("yes" if holds else "**no**")
    return f"| {measure} | {bus} | {baseline} | {shown} | {target} | {verdict} |"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Benchmark {result['at']}{' (quick)' if result.get('quick') else ''}: {m['cpu']}, {m['cores']} cores, "
        f"Python {m['python']}, {m['nats_server']}, nats-py {m['nats_py']}, FastStream {m['faststream']}; "
        f"load average {m['load_average_start'][0]:.2f} at start, {m.get('load_average_end', [0])[0]:.2f} at end.",
        "",
        "Medians over the rounds; a ratio is the median of the per-round ratios.",
        "",
    ]
    for title, rows in (("The targets", target_rows(result)), ("Reference lines", reference_rows(result))):
        if rows:
            lines += [f"**{title}**", "", *HEADER, *rows, ""]
    if result.get("deployed"):
        lines += ["**Processes as deployed: CPU per coordination (ms) and messages into the server**", ""]
        lines += [*process_rows(result["deployed"]), ""]
    lines += notes(result)
    return "\n".join(lines) + "\n"


def target_rows(result: dict[str, Any]) -> list[str]:
    rows: list[str] = []
    p = result.get("deployed")
    if p:
        one, many = p["in_flight_1"], p["in_flight_100"]
        bus, raw = many["bus"]["cases_per_s"], many["raw"]["cases_per_s"]
        rows += [
            _row(
                "coordinations/s, 100 in flight, processes as deployed",
                f"{bus:,.1f}",
                f"raw floor {raw:,.1f}",
                many["ratio_bus_raw"],
                f">= {TARGET_CASES_PER_S:,.0f}/s",
                bus >= TARGET_CASES_PER_S,
            ),
            _row(
                "latency p50, 1 in flight, processes as deployed (ms)",
                f"{one['bus']['p50_ms']:.2f}",
                f"raw floor {one['raw']['p50_ms']:.2f}",
                one["ratio_p50_bus_raw"],
                f"<= {TARGET_P50_MS:g} ms",
                one["bus"]["p50_ms"] <= TARGET_P50_MS,
            ),
            _row(
                "bus / raw floor (one message per decision), 100 in flight, same layout",
                f"{bus:,.1f}",
                f"raw floor {raw:,.1f}",
                many["ratio_bus_raw"],
                f">= {TARGET_RAW_RATIO:g}",
                many["ratio_bus_raw"] >= TARGET_RAW_RATIO,
            ),
            _row(
                "bus / FastStream with its JetStream records, 100 in flight",
                f"{bus:,.1f}",
                f"FastStream + JetStream {many['faststream-js']['cases_per_s']:,.1f}",
                many["ratio_bus_faststream_js"],
                "> 1",
                many["ratio_bus_faststream_js"] > 1,
            ),
        ]
    r = result.get("replay")
    if r:
        rows += replay_rows(r)
    mem = result.get("memory")
    if mem:
        rows.append(memory_row(mem))
    return rows


def replay_rows(r: dict[str, Any]) -> list[str]:
    events, rate = r["stream"]["events"], r["replay_verify"]["events_per_s"]
    findings = r["replay_verify"]["findings"]
    invalid = None
    if findings is None:
        invalid = "not measured: no replay report"
    elif findings:
        invalid = f"not measured: {findings:,} findings"
    short = "" if events >= FULL_REPLAY_EVENTS else f" (target on {FULL_REPLAY_EVENTS:,})"
    holds = rate >= TARGET_REPLAY_EVENTS_PER_S and r["ratio"] >= TARGET_REPLAY_RATIO
    peak = r["replay_verify"]["peak_rss_mb"]
    return [
        _row(
            f"replay --verify, {events:,} events{short} (events/s)",
            f"{rate:,.0f}",
            f"ordered consumer {r['raw']['events_per_s']:,.0f}",
            r["ratio"],
            f">= {TARGET_REPLAY_EVENTS_PER_S:,.0f}/s and >= {TARGET_REPLAY_RATIO:g}",
            invalid or holds,
        ),
        _row(
            f"replay --verify peak RSS, {events:,} events{short} (MB)",
            f"{peak:.0f}",
            f"ordered consumer {r['raw']['peak_rss_mb']:.0f}",
            peak / r["raw"]["peak_rss_mb"],
            f"<= {TARGET_REPLAY_RSS_MB:.0f} MB",
            invalid or peak <= TARGET_REPLAY_RSS_MB,
        ),
    ]


def memory_row(mem: dict[str, Any]) -> str:
    cases, peak = mem["loaded"]["cases"], mem["loaded"]["peak_rss_mb"]
    at_full = mem["empty"]["peak_rss_mb"] + mem["bytes_per_case"] * FULL_OPEN_CASES / (1024 * 1024)
    measured = cases >= FULL_OPEN_CASES
    generated = mem["stream"]["cases"]
    invalid = f"not measured: {cases:,} of {generated:,} cases rebuilt" if cases != generated else None
    return _row(
        f"broker peak RSS, {cases:,} open cases (MB)",
        f"{peak:.0f}" + ("" if measured or invalid else f" (→ {at_full:.0f} at {FULL_OPEN_CASES:,})"),
        f"empty broker {mem['empty']['peak_rss_mb']:.0f}",
        peak / mem["empty"]["peak_rss_mb"],
        f"<= {TARGET_BROKER_RSS_MB:.0f} MB at {FULL_OPEN_CASES:,}",
        invalid or (peak if measured else at_full) <= TARGET_BROKER_RSS_MB,
    )


def reference_rows(result: dict[str, Any]) -> list[str]:
    rows: list[str] = []
    p = result.get("deployed")
    if p:
        one, many = p["in_flight_1"], p["in_flight_100"]
        if "faststream-js-concurrent" in many:
            rows.append(
                _row(
                    "deployed: against FastStream with its records, handling 100 at once (max_workers), "
                    "100 in flight (cases/s)",
                    f"{many['bus']['cases_per_s']:,.1f}",
                    f"FastStream + JetStream {many['faststream-js-concurrent']['cases_per_s']:,.1f}",
                    many["ratio_bus_faststream_js_concurrent"],
                    "",
                    None,
                )
            )
        rows += [
            _row(
                "deployed: coordinations/s, 1 in flight",
                f"{one['bus']['cases_per_s']:,.1f}",
                f"raw floor {one['raw']['cases_per_s']:,.1f}",
                one["ratio_bus_raw"],
                "",
                None,
            ),
            _row(
                "deployed: latency p99, 1 in flight (ms)",
                f"{one['bus']['p99_ms']:.2f}",
                f"raw floor {one['raw']['p99_ms']:.2f}",
                one["ratio_p99_bus_raw"],
                "",
                None,
            ),
            _row(
                "deployed: against FastStream with its JetStream records, 1 in flight (cases/s)",
                f"{one['bus']['cases_per_s']:,.1f}",
                f"FastStream + JetStream {one['faststream-js']['cases_per_s']:,.1f}",
                one["ratio_bus_faststream_js"],
                "",
                None,
            ),
        ]
    c = result.get("coordination")
    if c:
        rows += one_process_rows(c)
    d = result.get("departments")
    if d:
        rows.append(
            _row(
                "one process: 30 departments, 100 in flight (cases/s)",
                f"{d['departments_30']['cases_per_s']:.1f}",
                f"3 departments {d['departments_3']['cases_per_s']:.1f}",
                d["ratio_30_3"],
                ">= 0.9",
                d["ratio_30_3"] >= 0.9,
            )
        )
    return rows


def one_process_rows(c: dict[str, Any]) -> list[str]:
    rows: list[str] = []
    one, many = c["in_flight_1"], c["in_flight_100"]
    for flight, entry in (("1", one), ("100", many)):
        bus = f"{entry['bus']['cases_per_s']:.1f}"
        rows += [
            _row(
                f"one process: coordinations/s, {flight} in flight",
                bus,
                f"raw floor {entry['raw']['cases_per_s']:.1f}",
                entry["ratio_bus_raw"],
                "",
                None,
            ),
            _row(
                f"one process: against the previous format's floor (atomic batches), {flight} in flight",
                bus,
                f"raw, atomic batches {entry['raw-batch']['cases_per_s']:.1f}",
                entry["ratio_bus_raw_batch"],
                "",
                None,
            ),
        ]
    rows += [
        _row(
            "one process: against plain FastStream request/reply (no record), 100 in flight",
            f"{many['bus']['cases_per_s']:.1f}",
            f"FastStream {many['faststream']['cases_per_s']:.1f}",
            many["ratio_bus_faststream"],
            "",
            None,
        ),
        _row(
            "one process: latency p50, 1 in flight (ms)",
            f"{one['bus']['p50_ms']:.2f}",
            f"raw floor {one['raw']['p50_ms']:.2f}",
            one["ratio_p50_bus_raw"],
            "",
            None,
        ),
        _row(
            "one process: CPU of the process per coordination, 1 in flight (ms)",
            f"{one['bus']['cpu_ms_per_case']:.2f}",
            f"raw floor {one['raw']['cpu_ms_per_case']:.2f}",
            one["ratio_cpu_bus_raw"],
            "",
            None,
        ),
    ]
    return rows


PROCESS_COLUMNS = (
    ("load generator", ("load generator",)),
    ("broker / responder / service", ("broker", "responder", "service")),
    ("adapter host", ("adapter host",)),
    ("nats-server", ("nats-server",)),
)
SYSTEM_NAMES = {
    "bus": "unstuck",
    "raw": "raw floor",
    "faststream-js": "FastStream + JetStream",
    "faststream-js-concurrent": "FastStream + JetStream, max_workers 100",
}


def process_rows(p: dict[str, Any]) -> list[str]:
    names = [label for label, _ in PROCESS_COLUMNS]
    rows = [
        f"| system | in flight | cases/s | messages per coordination | {' | '.join(names)} | all |",
        "|---|---|---|---|" + "---|" * (len(names) + 1),
    ]
    for flight in (1, 100):
        entry = p[f"in_flight_{flight}"]
        for system, label in SYSTEM_NAMES.items():
            if system not in entry:
                continue
            s = entry[system]
            by = s.get("cpu_ms_per_case_by_process", {})
            cells = []
            for _, keys in PROCESS_COLUMNS:
                found = [by[k] for k in keys if k in by]
                cells.append(f"{found[0]:.2f}" if found else "")
            rows.append(
                f"| {label} | {flight} | {s['cases_per_s']:,.1f} | {s['server_msgs_per_case']:.1f} | "
                f"{' | '.join(cells)} | {s['cpu_ms_per_case']:.2f} |"
            )
    return rows


def notes(result: dict[str, Any]) -> list[str]:
    out: list[str] = []
    c = result.get("coordination")
    if c:
        many = c["in_flight_100"]
        out.append(
            "One process, messages into the server per coordination: "
            f"unstuck {many['bus']['server_msgs_per_case']:.1f}, raw floor {many['raw']['server_msgs_per_case']:.1f}, "
            f"raw with atomic batches {many['raw-batch']['server_msgs_per_case']:.1f}, "
            f"FastStream {many['faststream']['server_msgs_per_case']:.1f}. The previous format's floor "
            f"(each decision an atomic batch) against one message per decision: "
            f"{c['in_flight_1']['ratio_raw_batch_raw']:.2f}x at 1 in flight, {many['ratio_raw_batch_raw']:.2f}x at 100."
        )
    mem = result.get("memory")
    if mem:
        stream, loaded = mem["stream"], mem["loaded"]
        rebuilt = (
            f"{mem['bytes_per_case']:,.0f} bytes per open case"
            if loaded["cases"] == stream["cases"]
            else f"but {loaded['cases']:,} of {stream['cases']:,} cases rebuilt: the broker could not read the stream"
        )
        out.append(
            f"Broker rebuild: {stream['events']:,} events ({stream['messages']:,} messages, storage format "
            f"{stream.get('format', 1)}) in {loaded['seconds']:.1f}s ({mem['rebuild_events_per_s']:,.0f} "
            f"events/s), {rebuilt}."
        )
    r = result.get("replay")
    if r:
        stream = r["stream"]
        out.append(
            f"replay --verify findings on the generated stream ({stream['messages']:,} messages, storage format "
            f"{stream.get('format', 1)}): {r['replay_verify']['findings'] or 0:,} (0 expected)."
        )
    return out
