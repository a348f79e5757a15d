"""The subject table of the contract (DESIGN.md, "Subjects and streams")."""

from __future__ import annotations

from .common import check_subject_token

STREAM = "UNSTUCK_CASES"
HEADS_BUCKET = "UNSTUCK_HEADS"
HEAD_LAG_SECONDS = 2.0
"""While the heads bucket answers, a case's recorded head trails its append by at most this; an
auditor reports a head behind the stream only when it stays behind for longer."""
IDS_BUCKET = "UNSTUCK_IDS"
LEDGER_CONSUMER = "unstuck_ledger"  # the durable consumer that projects the stream into the ledger
SNAPSHOTS_BUCKET = "UNSTUCK_SNAPSHOTS"  # object store: a snapshot of the open cases per case stream
CASE_PREFIX = "unstuck.case"
API_PREFIX = "unstuck.api"
NOTIFY_PREFIX = "unstuck.notify"
NOTIFY_STREAM = "UNSTUCK_NOTIFY"  # the notifications, stored until delivered (limits retention, 30 days)
NOTIFY_CONSUMER = "notifier"  # the durable pull consumer `unstuck notify` delivers from
NOTIFY_MAX_AGE_DAYS = 30
BROKER_QUEUE = "unstuck.broker"


def case_subject(case_id: str) -> str:
    return f"{CASE_PREFIX}.{check_subject_token(case_id, 'case_id')}"


def coordinate_subject(department: str) -> str:
    return f"unstuck.dept.{check_subject_token(department, 'department')}.coordinate"


def department_queue(department: str) -> str:
    return f"unstuck.dept.{check_subject_token(department, 'department')}"


DEPARTMENT_PREFIX = "dept-"  # the NATS user of department <code>: dept-<code>, acting as <code>
STAFF_PREFIX = "staff-"  # the NATS user of staff member <id>: staff-<id>, acting as <id>
APPLICANT = "applicant"  # the applicant's own channel (the evaluation screen, the online channel)
PORTAL = "portal"  # the online channel's web portal: reports, looks up and rates for the applicant
PORTAL_VERBS = ("departments.list", "case.open", "case.lookup", "case.evaluate")  # all the portal may call
SERVICE_PREFIX = "unstuck-"  # department <code>'s adapter is the NATS micro service unstuck-<code>

VIA_NATS = "as"  # unstuck.api.as.<principal>.<verb>: the principal's own NATS credentials
VIA_WEB = "web"  # unstuck.api.web.<principal>.<verb>: the console, for the staff member signed in
ACTING_VIAS = (VIA_NATS, VIA_WEB)


def api_subject(verb: str, principal: str | None = None, via: str = VIA_NATS) -> str:
    """The subject of one API request: ``unstuck.api.<verb>`` anonymous, or made as ``principal``.

    NATS permissions confine each principal to its own ``unstuck.api.as.<principal>.>`` (and the
    console to ``unstuck.api.web.<staff>.>`` of the staff it serves), so the broker learns who asks
    from the subject, never from the body."""
    if principal is None:
        return f"{API_PREFIX}.{verb}"
    if via not in ACTING_VIAS:
        raise ValueError(f"via {via!r}: use one of {', '.join(ACTING_VIAS)}")
    return f"{API_PREFIX}.{via}.{check_subject_token(principal, 'principal')}.{verb}"


def parse_api_subject(subject: str) -> tuple[str, str | None, str | None]:
    """(verb, principal, via) of an API subject; principal and via are None for an anonymous request."""
    rest = subject[len(API_PREFIX) + 1 :]
    via, _, tail = rest.partition(".")
    if via in ACTING_VIAS:
        principal, _, verb = tail.partition(".")
        return verb, principal or None, via
    return rest, None, None


def notify_subject(audience: str) -> str:
    return f"{NOTIFY_PREFIX}.{check_subject_token(audience, 'audience')}"


STORAGE_FORMAT = 2
"""The stream's storage format: one message per decision, its events one per line (docs/architecture.md)."""
FORMAT_METADATA_KEY = "unstuck_format"
"""The stream metadata entry that names the format; a stream without it was written in format 1."""


def storage_format_problem(stream: str, metadata: dict[str, str] | None, messages: int) -> str | None:
    """Why a stream cannot be read as the current storage format, in one line; None when it can.

    An empty stream without the mark is new (the event store marks it); one with messages and no mark
    was written in format 1 (one event per message).
    """
    found = (metadata or {}).get(FORMAT_METADATA_KEY)
    if found == str(STORAGE_FORMAT) or (found is None and messages == 0):
        return None
    version = found if found is not None else "1"
    return (
        f"stream {stream} holds storage format {version}; this unstuck reads format {STORAGE_FORMAT} "
        "only (one message per decision): read it with the release that wrote it, or start on a new stream"
    )
