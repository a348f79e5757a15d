"""``unstuck replay``: rebuild every case from the stream itself, and with ``--verify`` prove it intact.

Exit codes: 0 replayed (and, verifying, nothing wrong); 1 verification found something wrong;
2 a bad argument; 3 no server or no such stream.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from unstuck.clock import CHINA
from unstuck.connection import Connection, NoServer, data_dir, require_server
from unstuck.natsconfig import AUDITOR, credential_from_env, local_credential
from unstuck.replay import ReplayError, Report, replay
from unstuck.replay.rows import CELLS, Cells, RowSpec, cells_of, dump, json_row, row_of
from unstuck.schemas.subjects import HEADS_BUCKET, STREAM
from unstuck.texttable import table

from .common import CliError

EXIT_FINDINGS = 1
EXIT_UNAVAILABLE = 3


def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="rebuild every case from the stream; --verify proves the record intact",
        description="Read the case stream from its first event, straight from JetStream, and rebuild "
        "every case with the broker's own lifecycle. With --verify, check every event's bytes and hash, "
        "each case's chain, schemas, subjects and recorded head (docs/audit.md). Exit 1 when anything "
        "is wrong.",
    )
    add_source_args(p)
    p.add_argument("--case", metavar="ID", help="only this case (read from its own subject)")
    p.add_argument("--since", metavar="TIME", help="only cases with events from TIME on")
    p.add_argument("--until", metavar="TIME", help="states as they were at TIME (a date means its end)")
    p.add_argument("--verify", action="store_true", help="check hashes, chains, schemas and recorded heads")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--out", type=Path, metavar="FILE", help="write the result here instead of stdout")
    p.add_argument("--reveal", action="store_true", help="json/csv: id and phone numbers unmasked")
    p.add_argument(
        "--jobs",
        type=jobs_arg,
        default=None,
        metavar="N",
        help="processes to verify with, cases split between them (default: one per core on a large "
        "stream; 1: this process only)",
    )
    p.set_defaults(func=run_replay)


def jobs_arg(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1, 2 ... or auto)")
    return jobs


def add_source_args(p: Any) -> None:
    """Where to read: the server, the stream and the heads bucket."""
    p.add_argument("--stream", default=STREAM, help=f"the case stream (default {STREAM})")
    p.add_argument(
        "--heads-bucket",
        default=HEADS_BUCKET,
        help=f"KV bucket of the heads the broker recorded (default {HEADS_BUCKET})",
    )
    p.add_argument("--nats", metavar="URL", help="NATS server (default $NATS_URL or the embedded one here)")
    p.add_argument("--data-dir", help="where the embedded server keeps its data and URL (default .unstuck)")


def parse_time(text: str | None, end_of_day: bool = False) -> datetime | None:
    """ISO 8601 date or date-time; without a zone it is the service centre's time (UTC+8)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            start = datetime.combine(day, dtime(0, 0), tzinfo=CHINA)
            return start + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else start
        instant = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(
            f"time {text!r} is not ISO 8601: use 2026-10-08 or 2026-10-08T17:30 (UTC+8 unless a zone is given)"
        ) from exc
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=CHINA)


def server_url(args: Any) -> str:
    if getattr(args, "nats", None):
        return str(args.nats)
    try:
        return require_server(data_dir(getattr(args, "data_dir", None)))
    except NoServer as exc:
        raise CliError(str(exc), exit_code=EXIT_UNAVAILABLE) from exc


def with_stream(args: Any, work: Any) -> Any:
    """Connect (no broker needed), run ``work(nc)``, disconnect; stream and server errors exit 3."""
    url = server_url(args)
    # the environment's credentials, else the auditor's in the data directory (reading the record is
    # the auditor's role; --nats points elsewhere, where this directory's files mean nothing)
    auth = credential_from_env()
    if auth is None and not getattr(args, "nats", None):
        auth = local_credential(data_dir(getattr(args, "data_dir", None)), AUDITOR, fallback=None)

    async def run() -> Any:
        conn = Connection(url=url)
        try:
            nc = await conn.connect(
                "unstuck-audit", auth=auth, max_reconnect_attempts=5, allow_reconnect=True
            )
        except Exception as exc:
            raise CliError(f"cannot connect to NATS at {url}: {exc}", exit_code=EXIT_UNAVAILABLE) from exc
        try:
            return await work(nc)
        except ReplayError as exc:
            raise CliError(str(exc), exit_code=EXIT_UNAVAILABLE) from exc
        finally:
            await conn.close()

    return asyncio.run(run())


class ProgressBar:
    """``replay ━━━━━━━━━━━━━━━━  42% 420000/1000000 messages 61,000 msg/s 0:00:07`` on stderr (a
    terminal only; a message is one decision, its events), drawn by rich a few times a second; the
    line is gone once the replay ends."""

    def __init__(self, stream: TextIO) -> None:
        self.progress = Progress(
            TextColumn("replay"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("messages"),
            MessageRate(),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=True,
            refresh_per_second=5,
        )
        self.task = self.progress.add_task("replay", total=None)
        self.progress.start()

    def __call__(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total or None)

    def close(self) -> None:
        self.progress.stop()


class MessageRate(ProgressColumn):
    """Messages per second so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        return Text(f"{task.completed / elapsed:,.0f} msg/s" if elapsed > 0 else "")


def run_replay(args: Any) -> int:
    since = parse_time(args.since)
    until = parse_time(args.until, end_of_day=True)
    if since and until and since > until:
        raise CliError("--since is after --until: nothing can fall in between")
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() and not args.case else None

    async def work(nc: Any) -> Report:
        return await replay(
            nc,
            args.stream,
            verify=args.verify,
            case_id=args.case,
            since=since,
            until=until,
            heads_bucket=args.heads_bucket,
            progress=bar,
            jobs=args.jobs,
            rows=RowSpec(state_json=args.format == "json", reveal=args.reveal),
        )

    try:
        report = with_stream(args, work)
    finally:
        if bar is not None:
            bar.close()
    if args.case and args.case not in report.cases and not report.findings:
        raise CliError(f"case {args.case} has no event in stream {args.stream}: check the id")
    if args.out:
        try:
            with args.out.open("w", encoding="utf-8") as out:
                write(report, args.format, out, args.reveal)
        except OSError as exc:
            raise CliError(f"--out {args.out}: {exc.strerror or exc}") from exc
        print(summary_line(report))
    else:
        write(report, args.format, sys.stdout, args.reveal)
    return EXIT_FINDINGS if report.findings else 0


CELLS_ONLY = RowSpec()


def write(report: Report, fmt: str, out: TextIO, reveal: bool = False) -> None:
    """The report in ``fmt``, written case by case (a million-event replay has a big answer)."""
    if fmt == "json":
        write_json(report, out, reveal)
    elif fmt == "csv":
        write_csv(report, out)
    else:
        out.write(to_table(report))


def render(report: Report, fmt: str, reveal: bool = False) -> str:
    buffer = io.StringIO()
    write(report, fmt, buffer, reveal)
    return buffer.getvalue()


def codes_by_case(report: Report) -> dict[str, str]:
    codes: dict[str, set[str]] = {}
    for f in report.findings:
        if f.case_id is not None:
            codes.setdefault(f.case_id, set()).add(f.code)
    return {case_id: ";".join(sorted(c)) for case_id, c in codes.items()}


def case_row(
    report: Report, case_id: str, codes: dict[str, str] | None = None, cells: Cells | None = None
) -> dict[str, Any]:
    """One case's row; ``cells`` when the caller has them already (see ``row_of``)."""
    track = report.cases[case_id]
    if cells is None:
        cells = cells_of(track.state)
    return {
        "case_id": case_id,
        **dict(zip(CELLS, cells, strict=True)),
        "events": track.events,
        "findings": track.findings,
        "codes": (codes if codes is not None else codes_by_case(report)).get(case_id, ""),
        "stopped": track.stopped or "",
    }


def summary_json(report: Report) -> dict[str, Any]:
    return {
        **report.summary(),
        "since": report.since.isoformat() if report.since else None,
        "until": report.until.isoformat() if report.until else None,
        "case": report.case_filter,
        "moved_during_replay": report.moved_during_replay,
    }


def write_json(report: Report, out: TextIO, reveal: bool = False) -> None:
    """One JSON document: summary, findings (one per line) and cases (one per line, by case id)."""
    spec = RowSpec(state_json=True, reveal=reveal)
    out.write('{"summary": ' + json.dumps(summary_json(report), ensure_ascii=False, indent=2, sort_keys=True))
    out.write(',\n"findings": [')
    for i, f in enumerate(report.findings):
        out.write(("\n" if i == 0 else ",\n") + dump(f.to_dict()))
    out.write('\n],\n"cases": [')
    codes = codes_by_case(report)
    for i, track in enumerate(report.selected()):
        cells, state = row_of(track, spec)
        assert state is not None
        out.write(("\n" if i == 0 else ",\n") + json_row(track, cells, state, codes.get(track.case_id, "")))
    out.write("\n]}\n")


def to_json(report: Report, reveal: bool = False) -> dict[str, Any]:
    """The JSON output as a value (what ``--format json`` writes)."""
    parsed: dict[str, Any] = json.loads(render(report, "json", reveal))
    return parsed


CSV_FIELDS = (
    "case_id",
    "state",
    "category",
    "owner",
    "seq",
    "events",
    "due_date",
    "overdue",
    "opened_at",
    "last_event_at",
    "head_hash",
    "findings",
    "codes",
    "stopped",
)


def write_csv(report: Report, out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    codes = codes_by_case(report)
    for track in report.selected():
        writer.writerow(case_row(report, track.case_id, codes, row_of(track, CELLS_ONLY)[0]))


def to_table(report: Report) -> str:
    rows = []
    codes = codes_by_case(report)
    for track in report.selected():
        r = case_row(report, track.case_id, codes, row_of(track, CELLS_ONLY)[0])
        record = "ok" if report.verified and track.intact else ""
        if track.findings:
            record = r["codes"]
        if track.stopped and track.stopped != "until":
            record = f"{record} (state stops: {track.stopped})".strip()
        rows.append(
            [
                r["case_id"],
                r["state"],
                r["category"],
                r["owner"],
                r["seq"],
                r["due_date"] or "-",
                "yes" if r["overdue"] else "",
                record,
            ]
        )
    headers = [
        "case",
        "state",
        "category",
        "owner",
        "seq",
        "due",
        "overdue",
        "record" if report.verified else "",
    ]
    lines = [table(headers, rows, right=[4])]
    if report.findings:
        lines.append("")
        lines.append(
            table(
                ["finding", "case", "seq", "stream seq", "what"],
                [
                    [f.code, f.case_id or "-", _dash(f.seq), _dash(f.stream_seq), f.message]
                    for f in report.findings
                ],
                right=[2, 3],
            )
        )
    lines.append("")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def summary_line(report: Report) -> str:
    rate = report.events / report.seconds if report.seconds else 0.0
    shown = len(report.selected())
    scope = f"{shown} of {len(report.cases)} case(s)" if shown != len(report.cases) else f"{shown} case(s)"
    line = f"replayed {report.events} event(s), {scope} from {report.stream} in {report.seconds:.2f}s ({rate:,.0f} events/s)"
    if report.until:
        line += f"; states as of {report.until.isoformat()}"
    if not report.verified:
        return line
    if report.ok:
        return line + f"; verified: record intact ({report.heads_checked} recorded head(s) match)"
    counts = ", ".join(f"{code} {n}" for code, n in sorted(report.counts().items()))
    return line + f"; verified: {len(report.findings)} finding(s), record NOT intact ({counts})"
