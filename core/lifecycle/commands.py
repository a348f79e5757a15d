"""The commands ``decide`` takes: each an imperative, carrying what the shell computed for it (the
clock's reading, the calendar's answers, the plugins' choices), so ``decide`` needs nothing else.

``verb`` is the command's name in ``ALLOWED`` and in refusals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import ClassVar

from unstuck.schemas import events as ev
from unstuck.schemas.case import CaseIntake
from unstuck.schemas.common import Category, Satisfaction
from unstuck.schemas.coordination import CoordinationReply


@dataclass(frozen=True, slots=True, kw_only=True)
class Classification:
    """The shell's answer to "which category, which deadline, which departments" (plugins + calendar)."""

    category: Category
    reason: str
    working_days: int
    due_date: date
    departments: tuple[str, ...]
    duty_leader: str | None
    due_date_provisional: bool = False  # counted through a year whose schedule is not published


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeDeadline:
    """When an unclassified case must be classified: ``working_days`` after the day it opened."""

    working_days: int
    due_date: date
    due_date_provisional: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Open:
    verb: ClassVar[str] = "open"
    intake: CaseIntake
    classification: Classification | None = None
    intake_deadline: IntakeDeadline | None = None
    """Given with no classification: the case is watched from its first day."""
    opened_by: str | None = None
    """Who opened it when not its owner: ``applicant`` for a case reported online."""
    receipt_digest: str | None = None
    """An online case: the digest of the receipt code given to the applicant."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Classify:
    verb: ClassVar[str] = "classify"
    actor: str
    classification: Classification
    actor_rank: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Handover:
    verb: ClassVar[str] = "handover"
    actor: str
    actor_rank: int
    owner: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordAttemptFailure:
    verb: ClassVar[str] = "record"
    request_id: str
    attempt: int
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordStall:
    verb: ClassVar[str] = "record"
    request_id: str
    attempts: int
    last_reason: str
    chain: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordReply:
    verb: ClassVar[str] = "record"
    reply: CoordinationReply
    attempt: int
    today: date
    review_notify_by: date
    review_due_date: date
    higher_department: str
    max_bounces: int
    known_departments: frozenset[str]
    recorded_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleBounce:
    verb: ClassVar[str] = "rule_bounce"
    actor: str
    actor_rank: int
    department: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckDeadlines:
    """The deadline watcher's reading: today, working days left, and the escalation settings.

    ``working_hours_since`` holds, for each escalation the case has reached, the working hours
    (office hours on working days) since it was reached; ``days_left`` the working days from today to
    each date of a review the case waits for. The shell counts both on the calendar."""

    verb: ClassVar[str] = "tick"
    today: date
    at: datetime
    working_days_left: int
    warn_at: tuple[int, ...]
    escalation_hours: float
    chains: Mapping[str, Mapping[str, str]]
    working_day: bool = True  # today is a working day: escalations climb on working days only
    working_hours_since: Mapping[str, float] = field(default_factory=dict)
    days_left: Mapping[date, int] = field(default_factory=dict)
    invite_after_days: int = 0  # 邀評 this many days after 銷號 if the applicant has not rated (0: never)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestExtension:
    verb: ClassVar[str] = "extend"
    actor: str
    working_days: int
    reason: str
    today: date
    proposed_due_date: date
    max_total: int = 10
    due_date_provisional: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ApproveExtension:
    verb: ClassVar[str] = "approve_extension"
    actor: str
    actor_rank: int
    due_date: date | None = None
    """The due date as it stands, moved by the pending extension; None: the date proposed with the request
    (the two differ when the case was reclassified in between)."""
    due_date_provisional: bool = False  # of ``due_date``; None's comes with the request


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalate:
    verb: ClassVar[str] = "escalate"
    actor: str
    department: str
    level: int
    note: str
    chain: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Guide:
    verb: ClassVar[str] = "guide"
    actor: str
    actor_rank: int
    window: str
    instructions: str
    today: date


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    verb: ClassVar[str] = "close"
    actor: str
    actor_rank: int
    outcome: str
    explanation: str
    today: date
    override_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluate:
    verb: ClassVar[str] = "evaluate"
    actor: str
    level: Satisfaction
    follow_up_days: int = 0  # a bad rating's 回訪 and 整改: working days, and the due date they give
    follow_up_due: date | None = None
    follow_up_provisional: bool = False
    comment: str
    department_at_fault: str | None
    working_days: int
    due_date: date
    due_date_provisional: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Reopen:
    verb: ClassVar[str] = "reopen"
    actor: str
    actor_rank: int
    reason: str
    working_days: int
    due_date: date
    due_date_provisional: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordAccountability:
    verb: ClassVar[str] = "accountability"
    actor: str
    data: ev.AccountabilityRecorded
    actor_rank: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowUp:
    verb: ClassVar[str] = "follow_up"
    actor: str
    visit: str
    measures: str
    today: date
    actor_rank: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordReviewNotice:
    verb: ClassVar[str] = "review_notice"
    actor: str
    department: str
    how: str
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConcludeReview:
    verb: ClassVar[str] = "review_conclude"
    actor: str
    department: str
    outcome: str
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RevealPersonalData:
    """Someone is shown the unmasked identifiers of the case's applicant: the record keeps who and why."""

    verb: ClassVar[str] = "reveal"
    actor: str
    fields: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviseDueDate:
    """The due date counted again by the broker when the calendar learnt a year's schedule: the same
    base date and working days, on the calendar as it is now."""

    verb: ClassVar[str] = "revise_due_date"
    due_date: date
    due_date_provisional: bool
    reason: str


Command = (
    Open
    | Classify
    | Handover
    | RecordAttemptFailure
    | RecordStall
    | RecordReply
    | RuleBounce
    | CheckDeadlines
    | RequestExtension
    | ApproveExtension
    | Escalate
    | Guide
    | Close
    | Evaluate
    | FollowUp
    | Reopen
    | RecordAccountability
    | RecordReviewNotice
    | ConcludeReview
    | ReviseDueDate
    | RevealPersonalData
)
