"""The state a case's events fold into, and the events decided but not yet stored."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from unstuck.schemas import events as ev
from unstuck.schemas.common import WireModel
from unstuck.schemas.coordination import Outcome
from unstuck.schemas.department import Level


class CaseStatus(StrEnum):
    """Where a case stands (a StrEnum: equal to its string, stored and printed as the string)."""

    INTAKE = "intake"  # accepted, not yet classified
    GUIDING = "guiding"  # no barrier: to be guided to a regular window
    COORDINATING = "coordinating"  # waiting for departments
    ANSWERED = "answered"  # every department answered; ready for 銷號
    CLOSED = "closed"  # 銷號; waiting for the applicant's evaluation
    EVALUATED = "evaluated"  # 好差評 recorded; the end unless reopened


INTAKE, GUIDING, COORDINATING, ANSWERED, CLOSED, EVALUATED = CaseStatus
STATES = tuple(CaseStatus)
OPEN_STATES = frozenset({INTAKE, GUIDING, COORDINATING, ANSWERED})

ALLOWED: dict[str, tuple[str, ...]] = {
    INTAKE: ("classify", "handover", "escalate", "tick", "revise_due_date", "reveal"),
    GUIDING: (
        "guide",
        "classify",
        "handover",
        "extend",
        "approve_extension",
        "escalate",
        "tick",
        "revise_due_date",
        "reveal",
    ),
    COORDINATING: (
        "classify",
        "handover",
        "extend",
        "approve_extension",
        "record",
        "escalate",
        "rule_bounce",
        "accountability",
        "close",
        "review_notice",
        "review_conclude",
        "follow_up",
        "tick",
        "revise_due_date",
        "reveal",
    ),
    ANSWERED: (
        "classify",
        "handover",
        "extend",
        "approve_extension",
        "record",
        "close",
        "escalate",
        "accountability",
        "review_notice",
        "review_conclude",
        "follow_up",
        "tick",
        "revise_due_date",
        "reveal",
    ),
    # a closed case still follows the review of a `cannot` (the higher department's answer, the watcher)
    CLOSED: (
        "evaluate",
        "reopen",
        "accountability",
        "record",
        "review_notice",
        "review_conclude",
        "follow_up",
        "tick",
        "reveal",
    ),
    EVALUATED: (
        "reopen",
        "accountability",
        "record",
        "review_notice",
        "review_conclude",
        "follow_up",
        "tick",
        "reveal",
    ),
}

VERB_LABELS: dict[str, str] = {
    "classify": "分類",
    "handover": "移交",
    "escalate": "督辦",
    "guide": "引導辦理",
    "extend": "申請延期",
    "approve_extension": "批准延期",
    "record": "登記部門答覆",
    "rule_bounce": "退單裁定",
    "accountability": "問責記錄",
    "close": "銷號",
    "evaluate": "評價",
    "follow_up": "登記回訪整改",
    "reopen": "重辦",
    "review_notice": "登記複核告知",
    "review_conclude": "登記複核結論",
    "open": "受理",
    "tick": "期限檢查",
    "revise_due_date": "期限重算",
    "reveal": "查看個人信息",
}
"""The Chinese name of each verb; a refusal offers staff only the verbs not in SYSTEM_VERBS."""

SYSTEM_VERBS = frozenset({"tick", "revise_due_date", "reveal"})
"""Verbs only the broker itself gives (the deadline watcher): left out of what a refusal offers."""

LEADER_RANK = int(Level.LEADER_IN_CHARGE)
"""Rank from which a staff member counts as a leader (分管領導, 局長, the window's duty leader)."""


class CoordinationStatus(StrEnum):
    PENDING = "pending"
    STALLED = "stalled"
    ANSWERED = "answered"
    BOUNCED = "bounced"


@dataclass(frozen=True, slots=True)
class Coordination:
    request_id: str
    department: str
    round: int
    question: str
    deadline: date
    status: CoordinationStatus = CoordinationStatus.PENDING
    attempts: int = 0
    outcome: Outcome | None = None
    message: str | None = None
    legal_basis: str | None = None
    rerouted_from: str | None = None
    requested_at: datetime | None = None
    last_reason: str | None = None
    review_of: str | None = None  # the higher department reviewing this department's `cannot`

    @property
    def open(self) -> bool:
        return self.awaiting_reply or (
            self.status == CoordinationStatus.ANSWERED and self.outcome == Outcome.ACCEPTED
        )

    @property
    def awaiting_reply(self) -> bool:
        """The broker should still be asking this department."""
        return self.status in (CoordinationStatus.PENDING, CoordinationStatus.STALLED)


@dataclass(frozen=True, slots=True)
class CaseState:
    case_id: str
    seq: int = 0
    head_hash: str = ""
    state: CaseStatus | Literal[""] = ""
    opened_at: datetime | None = None
    last_event_at: datetime | None = None
    intake: Mapping[str, Any] = field(default_factory=dict)
    category: str | None = None
    mode: str | None = None
    owner: str | None = None
    duty_leader: str | None = None
    working_days: int = 0
    due_date: date | None = None
    due_date_provisional: bool = False  # counted through a year whose holiday schedule is not published
    due_basis: tuple[datetime, int] | None = None
    """What the due date is counted from: (the instant whose local date starts the count, working days
    including extensions); None for the intake deadline, counted from the opening by its own rule."""
    extension_days: int = 0
    pending_extension: Mapping[str, Any] | None = None
    overdue: bool = False
    warned: frozenset[int] = frozenset()
    escalations: Mapping[str, tuple[int, datetime]] = field(default_factory=dict)
    coordinations: Mapping[str, Coordination] = field(default_factory=dict)
    round: int = 1
    bounces: int = 0
    bounce_ruling_needed: bool = False
    ruled_department: str | None = None
    resolution: Mapping[str, Any] | None = None
    closing: Mapping[str, Any] | None = None
    evaluation: Mapping[str, Any] | None = None
    accountability: tuple[Mapping[str, Any], ...] = ()
    reviews: tuple[Mapping[str, Any], ...] = ()
    receipt_digest: str | None = None  # an online case: SHA-256 of its receipt code's secret
    follow_up: Mapping[str, Any] | None = None  # a 差評's 回訪 and 整改: due_date, done, warned, late
    rating_invited: bool = False  # 邀評 sent: a closed case not rated some days after 銷號 is invited once

    @property
    def exists(self) -> bool:
        return self.seq > 0

    @property
    def departments(self) -> list[str]:
        seen: dict[str, None] = {}
        for c in self.coordinations.values():
            seen.setdefault(c.department, None)
        return list(seen)

    def current(self) -> list[Coordination]:
        """This round's coordinations, without the reviews of a `cannot` (a track of their own)."""
        return [c for c in self.coordinations.values() if c.round == self.round and c.review_of is None]

    @property
    def watched(self) -> bool:
        """Still followed by the broker: open, or closed with a `cannot` review not concluded."""
        return (
            self.state in OPEN_STATES
            or any(r.get("due_date") is not None and r.get("conclusion") is None for r in self.reviews)
            or bool(self.follow_up and not self.follow_up.get("done"))
        )

    def followed(self, invites_ratings: bool) -> bool:
        """Watched, or (where the centre sends 邀評) closed and neither rated nor invited yet."""
        return self.watched or (invites_ratings and self.state == CLOSED and not self.rating_invited)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the state (identifiers as stored: callers mask for display)."""
        return {
            "case_id": self.case_id,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "state": self.state,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "category": self.category,
            "mode": self.mode,
            "owner": self.owner,
            "duty_leader": self.duty_leader,
            "working_days": self.working_days,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "due_date_provisional": self.due_date_provisional,
            "extension_days": self.extension_days,
            "pending_extension": dict(self.pending_extension) if self.pending_extension else None,
            "overdue": self.overdue,
            "escalations": {
                d: {"level": lv, "at": at.isoformat()} for d, (lv, at) in self.escalations.items()
            },
            "round": self.round,
            "bounces": self.bounces,
            "bounce_ruling_needed": self.bounce_ruling_needed,
            "coordinations": [
                {
                    "request_id": c.request_id,
                    "department": c.department,
                    "round": c.round,
                    "status": c.status,
                    "attempts": c.attempts,
                    "outcome": c.outcome,
                    "message": c.message,
                    "legal_basis": c.legal_basis,
                    "rerouted_from": c.rerouted_from,
                    "review_of": c.review_of,
                    "deadline": c.deadline.isoformat(),
                }
                for c in self.coordinations.values()
            ],
            "resolution": dict(self.resolution) if self.resolution else None,
            "closing": dict(self.closing) if self.closing else None,
            "evaluation": dict(self.evaluation) if self.evaluation else None,
            "follow_up": dict(self.follow_up) if self.follow_up else None,
            "rating_invited": self.rating_invited,
            "accountability": [dict(a) for a in self.accountability],
            "reviews": [dict(r) for r in self.reviews],
            "intake": dict(self.intake),
        }


_STATE_FIELDS = tuple(f.name for f in fields(CaseState))
_STATE_FIELD_SET = frozenset(_STATE_FIELDS)
_STATE_INDEX = {name: i for i, name in enumerate(_STATE_FIELDS)}
_state_values = operator.attrgetter(*_STATE_FIELDS)
STATE_SETTERS = {name: getattr(CaseState, name).__set__ for name in _STATE_FIELDS}
"""Each field's slot setter: like ``object.__setattr__``, it sets a field of a state not yet handed out."""
_SETTERS = tuple(STATE_SETTERS.values())


def replace_state(old: CaseState, /, **changes: Any) -> CaseState:
    """``dataclasses.replace`` for a CaseState without its per-call introspection (once per event):
    the old values read at once, the changed ones put in, each slot set directly."""
    values = list(_state_values(old))
    index = _STATE_INDEX
    for name, value in changes.items():
        if name not in index:
            unknown = changes.keys() - _STATE_FIELD_SET
            raise TypeError(f"CaseState has no field {sorted(unknown)[0]!r}")
        values[index[name]] = value
    new = object.__new__(CaseState)
    for setter, value in zip(_SETTERS, values, strict=True):
        setter(new, value)
    return new


_COORDINATION_FIELDS = tuple(f.name for f in fields(Coordination))
_COORDINATION_INDEX = {name: i for i, name in enumerate(_COORDINATION_FIELDS)}
_coordination_values = operator.attrgetter(*_COORDINATION_FIELDS)
_COORDINATION_SETTERS = tuple(getattr(Coordination, name).__set__ for name in _COORDINATION_FIELDS)


def replace_coordination(old: Coordination, /, **changes: Any) -> Coordination:
    """``dataclasses.replace`` for a Coordination, the way ``replace_state`` does it."""
    values = list(_coordination_values(old))
    for name, value in changes.items():
        if name not in _COORDINATION_INDEX:
            raise TypeError(f"Coordination has no field {name!r}")
        values[_COORDINATION_INDEX[name]] = value
    new = object.__new__(Coordination)
    for setter, value in zip(_COORDINATION_SETTERS, values, strict=True):
        setter(new, value)
    return new


@dataclass(frozen=True, slots=True)
class EventMeta:
    seq: int
    at: datetime
    hash: str
    actor: str = ""  # who the envelope names (the extension's requester is remembered from it)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event decided but not yet stored: the shell adds id, seq, time and the hash chain.

    Its type is not given but looked up from the payload's model (``ev.event_type_of``), so an event
    cannot be written under another type's name."""

    actor: str
    data: WireModel
    auth: str | None = None  # how the actor was proven (the shell stamps it): "nats", "web", "claimed"

    @property
    def type(self) -> str:
        return ev.event_type_of(self.data)
