"""Window staff commands: ``unstuck case ...`` and ``unstuck accountability ...``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from unstuck.broker.api import VERBS, Verb
from unstuck.broker.identity import APPLICANT_VERBS
from unstuck.natsconfig import acting_principal, credential_from_env
from unstuck.schemas.api import API_REQUESTS
from unstuck.texttable import clean, clip, table

from .common import CliError, add_connection_args, call, print_json, with_client
from .display import DUE_EVENTS, Display, describe, display

ACTOR_HELP = "your staff id (default $UNSTUCK_STAFF)"


def case_commands() -> Iterator[tuple[str, str, Verb, type[Any]]]:
    """``unstuck case <name>``, one for each case command of the API table: (name, verb, entry, request model)."""
    for verb, entry in VERBS.items():
        if entry.command is not None:
            yield verb.removeprefix("case.").split(".")[0].replace("_", "-"), verb, entry, API_REQUESTS[verb]


def add_field(parser: Any, name: str, info: Any, help_: str) -> None:
    """A request field as a flag: a list repeats (``--department`` for departments), a bool is a switch."""
    union = get_origin(info.annotation) in (Union, UnionType)
    kind = next(
        t for t in (get_args(info.annotation) if union else (info.annotation,)) if t is not type(None)
    )
    flag = "--to" if name == "owner" else "--" + name.replace("_", "-")
    if get_origin(kind) is list:
        parser.add_argument(
            flag.removesuffix("s"), dest=name, action="append", required=info.is_required(), help=help_
        )
    elif kind is bool:
        parser.add_argument(flag, dest=name, action="store_true", help=help_)
    else:
        kind = kind if kind is int else str
        parser.add_argument(
            flag, dest=name, type=kind, required=info.is_required() and name != "actor", help=help_
        )


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
    sh.add_argument(
        "--reveal",
        metavar="REASON",
        help="show id and phone numbers unmasked, saying why: the case's record keeps who, when and why",
    )
    sh.add_argument(
        "--actor", help="who looks (default $UNSTUCK_STAFF; taken from your credentials when given)"
    )
    add_connection_args(sh)
    sh.set_defaults(func=run_show)

    ls = s.add_parser("list", help="the case ledger (台賬) with filters")
    ls.add_argument("--state", help="intake | guiding | coordinating | answered | closed | evaluated")
    ls.add_argument("--category", help="cannot | hard | refused | guided")
    ls.add_argument("--department")
    ls.add_argument("--overdue", action="store_true", help="only overdue cases")
    ls.add_argument("--applicant", metavar="ID_NUMBER", help="the applicant's id number (or credit code)")
    ls.add_argument("--matter", help="the matter's code, or part of its title")
    ls.add_argument("--client-ref", metavar="REF", help="the client_ref the case was opened with")
    ls.add_argument("--opened-from", metavar="YYYY-MM-DD", help="opened on or after this local date")
    ls.add_argument("--opened-to", metavar="YYYY-MM-DD", help="opened on or before this local date")
    ls.add_argument("--limit", type=int, default=200)
    ls.add_argument("--json", action="store_true")
    add_connection_args(ls)
    ls.set_defaults(func=run_list)

    for name, verb, entry, model in case_commands():
        c = s.add_parser(name, help=entry.cli)
        c.add_argument("case_id")
        fields = [f for f in model.model_fields if f != "case_id"]
        for field in fields:
            add_field(
                c, field, model.model_fields[field], ACTOR_HELP if field == "actor" else entry.help[field]
            )
        c.add_argument("--json", action="store_true")
        add_connection_args(c)
        c.set_defaults(func=run_command, verb=verb, fields=fields)

    a = sub.add_parser("accountability", help="不給辦 accountability records")
    asub = a.add_subparsers(dest="acc_command", metavar="ACTION", required=True)
    al = asub.add_parser("list", help="accountability records, by staff or department")
    al.add_argument("--staff")
    al.add_argument("--department")
    al.add_argument("--json", action="store_true")
    add_connection_args(al)
    al.set_defaults(func=run_accountability_list)


def _staff(args: Any) -> str | None:
    """Who acts: nobody to type when one's own credentials prove it (the broker takes it from them)."""
    actor = getattr(args, "actor", None) or os.environ.get("UNSTUCK_STAFF")
    if not actor and acting_principal(credential_from_env()) is None:
        raise CliError(
            "--actor is required (or set UNSTUCK_STAFF to your staff id); with your own credentials "
            "(UNSTUCK_NATS_AUTH_FILE from unstuck nats-config) it is taken from them"
        )
    return str(actor) if actor else None


def run_command(args: Any) -> int:
    body: dict[str, Any] = {"case_id": args.case_id}
    for field in args.fields:
        if field == "actor" and args.verb in APPLICANT_VERBS:
            continue  # the applicant's own act: the broker names the channel it came on
        value = _staff(args) if field == "actor" else getattr(args, field, None)
        if value is not None:  # a switch not given is sent as false
            body[field] = value
    result = with_client(args, lambda nc: call(nc, args.verb, body))
    if args.json:
        print_json(result)
        return 0
    d = display(args)
    events = [e["type"] for e in result.get("events", [])]
    moved = ", ".join(f"#{e['seq']} {d.label('event', e['type'])}" for e in result.get("events", []))
    print(
        d.word(
            "moved",
            case_id=result.get("case_id") or args.case_id,
            events=moved or d.word("nothing"),
            state=d.label("state", result.get("state")),
        )
    )
    if DUE_EVENTS.intersection(events):
        print(due_line(result, d))
    return 0


def due_line(result: dict[str, Any], d: Display) -> str:
    """The due date the window tells the applicant, from a command's answer."""
    due, provisional = result.get("due_date"), result.get("due_date_provisional")
    if result.get("state") == "intake":  # the intake deadline: classify by then
        return d.word("classify_by", due=due) if due else d.word("no_due")
    if due and provisional is True:
        return d.word("tell_due", due=f"{due}{d.word('provisional')}")
    if due:
        return d.word("tell_due", due=due)
    if isinstance(provisional, str):
        return d.word("tell_provisional", due=provisional)
    return d.word("no_due")


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
        return 0
    d = display(args)
    opened = d.word("opened", case_id=result["case_id"], state=d.label("state", result["state"]))
    print(opened + (d.word("again") if result.get("duplicate") else ""))
    print(due_line(result, d))
    return 0


def run_show(args: Any) -> int:
    body: dict[str, Any] = {"case_id": args.case_id}
    if args.reveal is not None:
        body.update(reveal=True, reveal_reason=args.reveal)
        if actor := _staff(args):
            body["actor"] = actor
    result = with_client(args, lambda nc: call(nc, "case.get", body))
    if args.json:
        print_json(result)
        return 0
    d = display(args)
    s = result["state"]
    intake = s["intake"]
    applicant = intake.get("applicant", {})
    kind = d.label("applicant", applicant.get("kind"))
    closing = s.get("closing")
    due = s.get("due_date")
    past_due = bool(s.get("overdue")) or bool(
        not closing and due and result.get("today") and due < result["today"]
    )
    timeliness = d.timeliness(closing.get("on_time") if closing else None, past_due)
    facts = [
        (d.word("applicant"), f"{applicant.get('name')} {applicant.get('id_number')}  ({kind})"),
        (d.word("failed_at"), f"{intake.get('window')} ({intake.get('department')})"),
        (d.word("category"), d.label("category", s.get("category"))),
        (d.word("owner"), s.get("owner")),
        (d.word("due"), f"{due or '-'}  {timeliness}".rstrip()),
    ]
    if closing:
        facts.append((d.label("event", "case.closed"), describe("case.closed", closing, d)))
    print(clean(f"{s['case_id']}  {intake.get('matter_title')}  [{d.label('state', s['state'])}]"))
    print("\n".join("  " + line for line in table(None, facts).split("\n")))
    rows = [
        [
            e["seq"],
            d.time(e["at"]),
            e["actor"],
            d.label("event", e["type"]),
            describe(e["type"], e["data"], d),
        ]
        for e in result.get("events", [])
    ]
    print()
    print(table(["#", d.time_heading(), d.word("actor"), d.word("event"), d.word("detail")], rows, right=[0]))
    return 0


def run_list(args: Any) -> int:
    body: dict[str, Any] = {"limit": args.limit}
    for key in ("state", "category", "department", "matter", "client_ref", "opened_from", "opened_to"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    if args.applicant:
        body["applicant_id_number"] = args.applicant
    if args.overdue:
        body["overdue"] = True
    result = with_client(args, lambda nc: call(nc, "case.list", body))
    if args.json:
        print_json(result)
        return 0
    d = display(args)
    rows = [
        [
            c["case_id"],
            d.label("state", c["state"]),
            d.label("category", c["category"]),
            ",".join(c["departments"]) or c["department"],
            c["owner"],
            c["due_date"] or "-",
            d.timeliness(c.get("on_time"), c["overdue"]),
            c["matter_title"],
        ]
        for c in result["cases"]
    ]
    keys = ("case", "state", "category", "departments", "owner", "due", "timeliness", "matter")
    print(table([d.word(k) for k in keys], rows))
    print(d.word("count", n=result["count"]))
    return 0


def run_accountability_list(args: Any) -> int:
    body = {k: getattr(args, k) for k in ("staff", "department") if getattr(args, k)}
    result = with_client(args, lambda nc: call(nc, "accountability.list", body))
    if args.json:
        print_json(result)
        return 0
    d = display(args)
    rows = [
        [
            r["case_id"],
            r["department"],
            r["staff"],
            r["section"],
            r["leader_in_charge"],
            d.labels("measure", r["measures"]),
            d.word("yes") if r["fault_tolerance"] else "",
            clip(clean(r["finding"]), 40),
        ]
        for r in result["records"]
    ]
    headers = [d.word(k) for k in ("case", "department", "staff", "section")]
    headers += [
        d.label("role", "leader_in_charge"),
        *(d.word(k) for k in ("measures", "fault_tolerance", "finding")),
    ]
    print(table(headers, rows))
    return 0
