"""``unstuck case timeline ID`` and ``unstuck audit export ID --out DIR``: one case, read from the stream.

Both read the stream directly (no broker needed) and verify the case on the way. Exit codes as for
``unstuck replay``: 0 intact, 1 something wrong with the record, 2 a bad argument, 3 no server or stream.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from unstuck.audit import CaseRecord, load_case, timeline, verification, who, write_dossier
from unstuck.schemas.common import CASE_ID_PATTERN
from unstuck.texttable import clean, clip, table

from . import case as case_cli
from .common import CliError, print_json
from .display import display
from .replay import EXIT_FINDINGS, add_source_args, with_stream


def register_timeline(case_sub: Any) -> None:
    t = case_sub.add_parser(
        "timeline",
        help="who did what when, read from the stream and verified (no broker needed)",
    )
    t.add_argument("case_id")
    t.add_argument("--reveal", action="store_true", help="show id and phone numbers unmasked")
    t.add_argument("--json", action="store_true")
    add_source_args(t)
    t.set_defaults(func=run_timeline)


case_cli.EXTRA_CASE_ACTIONS.append(register_timeline)


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="audit one case: export its dossier")
    s = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    e = s.add_parser(
        "export",
        help="write the case's stored events, replayed state and an HTML report into a directory",
    )
    e.add_argument("case_id")
    e.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to write into")
    e.add_argument(
        "--reveal", action="store_true", help="state and report with id and phone numbers unmasked"
    )
    add_source_args(e)
    e.set_defaults(func=run_export)


def _load(args: Any) -> CaseRecord:
    if not re.fullmatch(CASE_ID_PATTERN, args.case_id):
        raise CliError(
            f"CASE_ID {args.case_id[:80]!r} is not a case id: letters, digits, '-' and '_' only, "
            "e.g. DD-20260928-0001",
            exit_code=2,
        )
    record: CaseRecord = with_stream(
        args, lambda nc: load_case(nc, args.case_id, args.stream, args.heads_bucket)
    )
    if not record.records and record.head is None:
        raise CliError(f"case {args.case_id} has no event in stream {args.stream}: check the id")
    return record


def run_timeline(args: Any) -> int:
    record = _load(args)
    rows = timeline(record, args.reveal)
    if args.json:
        print_json({"case_id": record.case_id, "timeline": rows, "verification": verification(record)})
        return EXIT_FINDINGS if not record.ok else 0
    d = display(args)
    print(f"{record.case_id}  ({len(rows)} event(s) in {record.stream}; times {d.zone})")
    print(
        table(
            ["#", "time", "who", "事件", "event", "detail", "check"],
            [
                [
                    r["seq"] if r["seq"] is not None else "?",
                    d.time(r["at"]),
                    who(r),
                    r["label_zh"],
                    r["label_en"],
                    clip(clean(r["detail"]), 70),
                    ",".join(r["findings"]) or "ok",
                ]
                for r in rows
            ],
            right=[0],
        )
    )
    _print_verdict(record)
    return EXIT_FINDINGS if not record.ok else 0


def run_export(args: Any) -> int:
    record = _load(args)
    try:
        paths = write_dossier(record, args.out, reveal=args.reveal)
    except OSError as exc:
        raise CliError(f"--out {args.out}: {exc.strerror or exc}") from exc
    for kind in ("events", "state", "html", "sums"):
        print(f"wrote {paths[kind]}")
    _print_verdict(record)
    return EXIT_FINDINGS if not record.ok else 0


def _print_verdict(record: CaseRecord) -> None:
    if record.ok:
        head = record.head or {}
        print(f"record intact: chain verified, recorded head seq {head.get('seq')} matches")
        return
    print(f"record NOT intact: {len(record.findings)} finding(s)", file=sys.stdout)
    for f in record.findings:
        print(clean(f"  {f}"))
