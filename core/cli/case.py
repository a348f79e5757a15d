"""Window staff commands: ``unstuck case ...`` and ``unstuck accountability ...``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from unstuck.schemas import EVENT_LABELS

from .common import CliError, add_connection_args, call, print_json, table, with_client

# command name → (API verb, [(flag, field, type, required, help)], summary)
Arg = tuple[str, str, Any, bool, str]
ACTOR: Arg = ("--actor", "actor", str, False, "your staff id (default $UNSTUCK_STAFF)")
COMMANDS: dict[str, tuple[str, list[Arg], str]] = {
    "classify": (
        "case.classify",
        [
            ACTOR,
            ("--category", "category", str, True, "cannot | hard | refused | guided"),
            ("--reason", "reason", str, True, "why this category"),
            ("--department", "departments", "list", False, "department to ask (repeat)"),
        ],
        "classify, or reclassify with a reason",
    ),
    "handover": (
        "case.handover",
        [
            ACTOR,
            ("--to", "owner", str, True, "the new owner's staff id"),
            ("--reason", "reason", str, True, "why"),
        ],
        "hand the case to a new owner",
    ),
    "extend": (
        "case.extend",
        [
            ACTOR,
            ("--working-days", "working_days", int, True, "extra working days"),
            ("--reason", "reason", str, True, "why (延期理由)"),
        ],
        "request an extension (延期)",
    ),
    "approve-extension": ("case.approve_extension", [ACTOR], "approve the pending extension (leaders)"),
    "record": (
        "case.record",
        [
            ACTOR,
            ("--department", "department", str, True, "department code"),
            ("--outcome", "outcome", str, True, "resolved | accepted | cannot | not_ours | need_materials"),
            ("--message", "message", str, True, "the department's answer"),
            ("--handler", "handler", str, True, "who answered"),
            ("--legal-basis", "legal_basis", str, False, "with cannot"),
            ("--belongs-to", "belongs_to", str, False, "with not_ours"),
            ("--expected-date", "expected_date", str, False, "with accepted"),
            ("--material", "materials", "list", False, "with need_materials (repeat)"),
        ],
        "record a department's answer given outside the bus",
    ),
    "guide": (
        "case.guide",
        [
            ACTOR,
            ("--window", "window", str, True, "the regular window to go to"),
            ("--instructions", "instructions", str, True, "what to bring, what to say"),
        ],
        "guide the applicant to a regular window and close",
    ),
    "close": (
        "case.close",
        [
            ACTOR,
            ("--outcome", "outcome", str, True, "resolved | cannot | guided | need_materials | withdrawn"),
            ("--explanation", "explanation", str, True, "what the applicant was told"),
        ],
        "close the case (銷號)",
    ),
    "evaluate": (
        "case.evaluate",
        [
            ACTOR,
            ("--rating", "rating", str, True, "good | bad"),
            ("--comment", "comment", str, False, "the applicant's words"),
            (
                "--department-at-fault",
                "department_at_fault",
                str,
                False,
                "a bad rating caused by this department reopens the case",
            ),
        ],
        "record the applicant's evaluation (好差評)",
    ),
    "reopen": ("case.reopen", [ACTOR, ("--reason", "reason", str, True, "why (重辦)")], "reopen (leaders)"),
    "escalate": (
        "case.escalate",
        [
            ACTOR,
            ("--department", "department", str, True, "department code or window"),
            ("--level", "level", str, True, "clerk | section_head | leader_in_charge | director"),
            ("--note", "note", str, True, "what you ask of them"),
        ],
        "address any level of a department directly",
    ),
    "rule-bounce": (
        "case.rule_bounce",
        [ACTOR, ("--department", "department", str, True, "who must handle it")],
        "duty leader: decide which department handles a bounced case",
    ),
    "accountability": (
        "accountability.record",
        [
            ACTOR,
            ("--staff", "staff", str, True, "who refused"),
            ("--section", "section", str, True, "their section"),
            ("--leader-in-charge", "leader_in_charge", str, True, "分管領導"),
            ("--finding", "finding", str, True, "what happened"),
            (
                "--measure",
                "measures",
                "list",
                True,
                "interview | performance_review | criticism | none (repeat)",
            ),
            ("--fault-tolerance", "fault_tolerance", bool, False, "容錯免責: acted in good faith"),
        ],
        "record accountability in a refused (不給辦) case",
    ),
}


EXTRA_CASE_ACTIONS: list[Any] = []
"""Other command modules add ``register(case_subparsers)`` functions here (e.g. ``case timeline``)."""


def register(sub: Any) -> None:
    p = sub.add_parser("case", help="open, show and move cases")
    s = p.add_subparsers(dest="case_command", metavar="ACTION", required=True)
    for extra in EXTRA_CASE_ACTIONS:
        extra(s)

    o = s.add_parser("open", help="open a case from a JSON file (see examples/cases/)")
    o.add_argument(
        "--file", type=Path, required=True, help="case JSON: applicant, matter, window, department ..."
    )
    o.add_argument("--json", action="store_true")
    add_connection_args(o)
    o.set_defaults(func=run_open)

    sh = s.add_parser("show", help="a case's state and its events in order")
    sh.add_argument("case_id")
    sh.add_argument("--json", action="store_true")
    sh.add_argument("--reveal", action="store_true", help="show id and phone numbers unmasked")
    add_connection_args(sh)
    sh.set_defaults(func=run_show)

    ls = s.add_parser("list", help="the case ledger (台賬) with filters")
    ls.add_argument("--state", help="intake | guiding | coordinating | answered | closed | evaluated")
    ls.add_argument("--category", help="cannot | hard | refused | guided")
    ls.add_argument("--department")
    ls.add_argument("--overdue", action="store_true", help="only overdue cases")
    ls.add_argument("--limit", type=int, default=200)
    ls.add_argument("--json", action="store_true")
    add_connection_args(ls)
    ls.set_defaults(func=run_list)

    for name, (verb, args, summary) in COMMANDS.items():
        c = s.add_parser(name, help=summary)
        c.add_argument("case_id")
        for flag, field, kind, required, help_ in args:
            if kind == "list":
                c.add_argument(flag, dest=field, action="append", required=required, help=help_)
            elif kind is bool:
                c.add_argument(flag, dest=field, action="store_true", help=help_)
            else:
                c.add_argument(flag, dest=field, type=kind, required=required, help=help_)
        c.add_argument("--json", action="store_true")
        add_connection_args(c)
        c.set_defaults(func=run_command, verb=verb, fields=[a[1] for a in args])

    a = sub.add_parser("accountability", help="不給辦 accountability records")
    asub = a.add_subparsers(dest="acc_command", metavar="ACTION", required=True)
    al = asub.add_parser("list", help="accountability records, by staff or department")
    al.add_argument("--staff")
    al.add_argument("--department")
    al.add_argument("--json", action="store_true")
    add_connection_args(al)
    al.set_defaults(func=run_accountability_list)


def _staff(args: Any) -> str:
    actor = getattr(args, "actor", None) or os.environ.get("UNSTUCK_STAFF")
    if not actor:
        raise CliError("--actor is required (or set UNSTUCK_STAFF to your staff id)")
    return str(actor)


def run_command(args: Any) -> int:
    body: dict[str, Any] = {"case_id": args.case_id}
    for field in args.fields:
        value = getattr(args, field, None)
        if field == "actor":
            value = _staff(args)
        if value is not None and value is not False:
            body[field] = value
        elif value is False and field == "fault_tolerance":
            body[field] = False
    result = with_client(args, lambda nc: call(nc, args.verb, body))
    if args.json:
        print_json(result)
    else:
        events = (
            ", ".join(f"#{e['seq']} {e['type']}" for e in result.get("events", [])) or "nothing to record"
        )
        print(f"{result.get('case_id') or args.case_id}: {events}; state {result.get('state')}")
    return 0


def run_open(args: Any) -> int:
    try:
        body = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"--file {args.file}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CliError(f"--file {args.file} is not valid JSON: {exc}") from exc
    result = with_client(args, lambda nc: call(nc, "case.open", body))
    if args.json:
        print_json(result)
    else:
        again = " (already open: same client_ref)" if result.get("duplicate") else ""
        print(f"opened {result['case_id']}{again}; state {result['state']}")
    return 0


def run_show(args: Any) -> int:
    result = with_client(
        args, lambda nc: call(nc, "case.get", {"case_id": args.case_id, "reveal": args.reveal})
    )
    if args.json:
        print_json(result)
        return 0
    s = result["state"]
    intake = s["intake"]
    applicant = intake.get("applicant", {})
    print(f"{s['case_id']}  {intake.get('matter_title')}  [{s['state']}]")
    print(f"  applicant  {applicant.get('name')} {applicant.get('id_number')}  ({applicant.get('kind')})")
    print(f"  failed at  {intake.get('window')} ({intake.get('department')})")
    print(
        f"  category   {s.get('category') or '-'}   owner {s.get('owner')}   due {s.get('due_date') or '-'}"
        f"{'   OVERDUE' if s.get('overdue') else ''}"
    )
    rows = []
    for e in result.get("events", []):
        zh, en = EVENT_LABELS.get(e["type"], (e["type"], e["type"]))
        rows.append([e["seq"], e["at"][:19].replace("T", " "), e["actor"], f"{zh} {en}", _brief(e)])
    print()
    print(table(["#", "at (UTC)", "actor", "event", "detail"], rows, right=[0]))
    return 0


def _brief(e: dict[str, Any]) -> str:
    d = e.get("data", {})
    for key in ("outcome", "category", "reason", "owner", "window", "target", "due_date", "rating"):
        if key in d:
            extra = d.get("department") or d.get("message") or ""
            text = f"{key}={d[key]}" + (f" {extra}" if extra else "")
            return text[:60]
    return str(d.get("department", ""))[:60]


def run_list(args: Any) -> int:
    body: dict[str, Any] = {"limit": args.limit}
    for key in ("state", "category", "department"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    if args.overdue:
        body["overdue"] = True
    result = with_client(args, lambda nc: call(nc, "case.list", body))
    if args.json:
        print_json(result)
        return 0
    rows = [
        [
            c["case_id"],
            c["state"],
            c["category"] or "-",
            ",".join(c["departments"]) or c["department"],
            c["owner"],
            c["due_date"] or "-",
            "yes" if c["overdue"] else "",
            c["matter_title"],
        ]
        for c in result["cases"]
    ]
    print(table(["case", "state", "category", "departments", "owner", "due", "overdue", "matter"], rows))
    print(f"{result['count']} case(s)")
    return 0


def run_accountability_list(args: Any) -> int:
    body = {k: getattr(args, k) for k in ("staff", "department") if getattr(args, k)}
    result = with_client(args, lambda nc: call(nc, "accountability.list", body))
    if args.json:
        print_json(result)
        return 0
    rows = [
        [
            r["case_id"],
            r["department"],
            r["staff"],
            r["section"],
            r["leader_in_charge"],
            ",".join(r["measures"]),
            "yes" if r["fault_tolerance"] else "",
            r["finding"][:40],
        ]
        for r in result["records"]
    ]
    print(
        table(["case", "department", "staff", "section", "leader", "measures", "容錯免責", "finding"], rows)
    )
    return 0
