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
    if result.get("scale"):
        rows += scale_rows(result["scale"])
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


TARGET_STARTUP_S = 10.0  # the scale benchmark: the broker answers within this after its process starts
TARGET_STARTUP_RSS_MB = 100.0  # ... and holds at most this once started
TARGET_QUERY_P95_MS = 50.0  # case list --overdue and a 7-day date-range search, p95
TARGET_SOAK_DRIFT = 0.10  # the soak's last window within 10% of its first


def _startup_rows(s: dict[str, Any]) -> list[str]:
    rows: list[str] = []
    size = f"{s['cases']:,} cases ({s['closed']:,} closed, {s['open']:,} open)"
    runs = {r["label"]: r for r in s["runs"]}
    cold = runs.get("cold", {})
    for label in ("cold", "warm"):
        r = runs.get(label)
        if r is None:
            rows.append(_row(f"broker start-up, {label}, {size} (s)", "not run", "", None,
                             f"<= {TARGET_STARTUP_S:g} s", "not measured: the cold start did not finish"))
            continue
        baseline = f"cold {cold['ready_s']:.1f}" if label == "warm" and cold.get("ready_s") else ""
        if r["ready_s"] is None:
            rows.append(_row(f"broker start-up, {label}, {size} (s)",
                             f"no answer within {r['timeout_s']:.0f}", "", None,
                             f"<= {TARGET_STARTUP_S:g} s", False))
            rows.append(_row(f"broker RSS, {label} start, {size} (MB)",
                             f"{r['rss_mb']:,.0f} when given up", "", None,
                             f"<= {TARGET_STARTUP_RSS_MB:g} MB", False))
            continue
        rows.append(_row(f"broker start-up, {label}, {size}: until the API answers (s)", f"{r['ready_s']:.1f}",
                         baseline, None, f"<= {TARGET_STARTUP_S:g} s", r["ready_s"] <= TARGET_STARTUP_S))
        rows.append(_row(f"broker RSS after the {label} start, {size} (MB)", f"{r['rss_mb']:,.0f}",
                         f"peak {r['peak_rss_mb']:,.0f}", None, f"<= {TARGET_STARTUP_RSS_MB:g} MB",
                         r["rss_mb"] <= TARGET_STARTUP_RSS_MB))
    return rows


def _query_rows(where: str, queries: dict[str, Any], size: str) -> list[str]:
    rows = []
    names = {"overdue": "case list --overdue (limit 200)", "date_range": "7-day date-range search (limit 200)"}
    for key, name in names.items():
        q = queries.get(key)
        if q is None:
            continue
        if not q.get("available"):
            rows.append(_row(f"{where}: {name}, p95 (ms), {size}", "not available", "", None,
                             f"<= {TARGET_QUERY_P95_MS:g} ms", f"not measured: {q.get('error', '')[:120]}"))
            continue
        rows.append(_row(f"{where}: {name}, p95 (ms), {size}, {q['repeats']} repetitions", f"{q['p95_ms']:.1f}",
                         f"p50 {q['p50_ms']:.1f}", None, f"<= {TARGET_QUERY_P95_MS:g} ms",
                         q["p95_ms"] <= TARGET_QUERY_P95_MS))
    return rows


def scale_rows(sc: dict[str, Any]) -> list[str]:
    rows: list[str] = []
    for key in ("startup", "startup_small"):
        s = sc.get(key)
        if s:
            rows += _startup_rows(s)
            if s.get("api_queries"):
                rows += _query_rows("broker API", s["api_queries"], f"{s['cases']:,} cases")
    led = sc.get("ledger")
    if led is not None:
        cases = sc.get("fixture", {}).get("cases", 0)
        if not led.get("available"):
            rows.append(_row("ledger queries, p95 (ms)", "not available", "", None,
                             f"<= {TARGET_QUERY_P95_MS:g} ms", f"not measured: {led.get('reason', '')}"))
        else:
            rows += _query_rows("ledger", led, f"{cases:,} cases")
    soak = sc.get("soak")
    if soak:
        first, last = soak["windows"][0], soak["windows"][-1]
        rows.append(_row(
            f"soak, {soak['cases']:,} cases: last window against the first (cases/s)",
            f"{last['cases_per_s']:.1f}", f"first {first['cases_per_s']:.1f}",
            last["cases_per_s"] / first["cases_per_s"], f">= {1 - TARGET_SOAK_DRIFT:g}", soak["flat"],
        ))
    return rows


def scale_notes(sc: dict[str, Any]) -> list[str]:
    out: list[str] = []
    fx = sc.get("fixture")
    if fx:
        how = "found in the cache, generated" if fx.get("cached") else "generated"
        out.append(
            f"Scale fixture: {fx['cases']:,} cases ({fx['by_state']}; {fx['overdue']:,} open cases overdue), "
            f"{fx['messages']:,} messages, {fx['events']:,} events, {fx['store_mb']:,.0f} MB of store; {how} "
            f"in {fx['seconds']:.0f}s ({fx['cases'] / fx['seconds']:,.0f} cases/s, "
            f"{fx['messages'] / fx['seconds']:,.0f} messages/s) by {fx['jobs']} processes."
        )
    led = sc.get("ledger")
    if led and led.get("available") and led.get("catch_up"):
        c = led["catch_up"]
        out.append(f"Ledger catch-up over the fixture: {c['seconds']:.1f}s, {c['messages_per_s']:,.0f} messages/s, "
                   f"{c['cases_per_s']:,.0f} cases/s.")
    soak = sc.get("soak")
    if soak:
        parts = [f"{w['cases_per_s']:.0f}/s {w['broker']['rss_mb']:.0f} MB" for w in soak["windows"]]
        out.append(
            f"Soak: {soak['cases']:,} cases in {soak['seconds']:.0f}s ({soak['cases_per_s']:.1f} cases/s), "
            f"{soak['in_flight']} in flight; per window of {soak['window']:,} (throughput, broker RSS): "
            + ", ".join(parts) + f"; broker RSS grew {soak['rss_growth_mb']:+.0f} MB from the first window to the last."
        )
    return out


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
    out: list[str] = scale_notes(result["scale"]) if result.get("scale") else []
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
