"""The Markdown table of a benchmark result: every figure beside its baseline, the ratio and the target."""

from __future__ import annotations

from typing import Any


def _row(measure: str, bus: str, baseline: str, ratio: float | None, target: str, holds: bool | None) -> str:
    shown = "" if ratio is None else f"{ratio:.2f}"
    verdict = "" if holds is None else ("yes" if holds else "**no**")
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
        "| measure | unstuck | baseline | ratio | target | holds |",
        "|---|---|---|---|---|---|",
    ]
    c = result.get("coordination")
    if c:
        one, many = c["in_flight_1"], c["in_flight_100"]
        lines += [
            _row(
                "coordination, 1 in flight (cases/s)",
                f"{one['bus']['cases_per_s']:.1f}",
                f"raw {one['raw']['cases_per_s']:.1f}",
                one["ratio_bus_raw"],
                "",
                None,
            ),
            _row(
                "coordination, 100 in flight (cases/s)",
                f"{many['bus']['cases_per_s']:.1f}",
                f"raw {many['raw']['cases_per_s']:.1f}",
                many["ratio_bus_raw"],
                ">= 0.7",
                many["ratio_bus_raw"] >= 0.7,
            ),
            _row(
                "coordination, 100 in flight, against FastStream (cases/s)",
                f"{many['bus']['cases_per_s']:.1f}",
                f"FastStream {many['faststream']['cases_per_s']:.1f}",
                many["ratio_bus_faststream"],
                "> 1",
                many["ratio_bus_faststream"] > 1,
            ),
            _row(
                "latency p50, 1 in flight (ms)",
                f"{one['bus']['p50_ms']:.2f}",
                f"raw {one['raw']['p50_ms']:.2f}",
                one["ratio_p50_bus_raw"],
                "<= 1.3",
                one["ratio_p50_bus_raw"] <= 1.3,
            ),
            _row(
                "CPU of the benchmark process per coordination, 1 in flight (ms)",
                f"{one['bus']['cpu_ms_per_case']:.2f}",
                f"raw {one['raw']['cpu_ms_per_case']:.2f}",
                one["ratio_cpu_bus_raw"],
                "",
                None,
            ),
            _row(
                "latency p99, 1 in flight (ms)",
                f"{one['bus']['p99_ms']:.2f}",
                f"raw {one['raw']['p99_ms']:.2f}",
                one["ratio_p99_bus_raw"],
                "",
                None,
            ),
        ]
    d = result.get("departments")
    if d:
        lines.append(
            _row(
                "30 departments, 100 in flight (cases/s)",
                f"{d['departments_30']['cases_per_s']:.1f}",
                f"3 departments {d['departments_3']['cases_per_s']:.1f}",
                d["ratio_30_3"],
                ">= 0.9",
                d["ratio_30_3"] >= 0.9,
            )
        )
    r = result.get("replay")
    if r:
        lines += [
            _row(
                f"replay --verify, {r['stream']['events']:,} events (events/s)",
                f"{r['replay_verify']['events_per_s']:,.0f}",
                f"ordered consumer {r['raw']['events_per_s']:,.0f}",
                r["ratio"],
                ">= 0.7",
                r["ratio"] >= 0.7,
            ),
            _row(
                "replay --verify peak RSS (MB)",
                f"{r['replay_verify']['peak_rss_mb']:.0f}",
                f"ordered consumer {r['raw']['peak_rss_mb']:.0f}",
                r["replay_verify"]["peak_rss_mb"] / r["raw"]["peak_rss_mb"],
                "",
                None,
            ),
        ]
    mem = result.get("memory")
    if mem:
        cases = mem["loaded"]["cases"]
        peak = mem["loaded"]["peak_rss_mb"]
        at_100k = mem["empty"]["peak_rss_mb"] + mem["bytes_per_case"] * 100_000 / (1024 * 1024)
        measured_100k = cases >= 100_000
        lines.append(
            _row(
                f"broker peak RSS, {cases:,} open cases (MB)",
                f"{peak:.0f}" + ("" if measured_100k else f" (→ {at_100k:.0f} at 100,000)"),
                f"empty broker {mem['empty']['peak_rss_mb']:.0f}",
                peak / mem["empty"]["peak_rss_mb"],
                "<= 300 MB at 100,000",
                at_100k <= 300 if not measured_100k else peak <= 300,
            )
        )
    lines.append("")
    if c:
        many = c["in_flight_100"]
        lines.append(
            "I/O per coordination (messages into the server): "
            f"unstuck {many['bus']['server_msgs_per_case']:.1f}, raw {many['raw']['server_msgs_per_case']:.1f}, "
            f"FastStream {many['faststream']['server_msgs_per_case']:.1f}. "
            f"Raw with one acked publish per event instead of atomic batches: "
            f"{c['in_flight_1']['ratio_raw_unbatched_raw']:.2f}x raw at 1 in flight, "
            f"{many['ratio_raw_unbatched_raw']:.2f}x at 100."
        )
    if mem:
        lines.append(
            f"Broker rebuild: {mem['loaded']['events']:,} events in {mem['loaded']['seconds']:.1f}s "
            f"({mem['rebuild_events_per_s']:,.0f} events/s), {mem['bytes_per_case']:,.0f} bytes per open case."
        )
    if r:
        verdict = r["replay_verify"]["findings"]
        lines.append(f"replay --verify findings on the generated stream: {verdict} (0 expected).")
    return "\n".join(lines) + "\n"
