"""The case lifecycle as two pure functions (the Decider pattern).

``decide(state, command) -> list[NewEvent]`` refuses a command or says what happened;
``evolve(state, event) -> state`` folds one stored event into the state. Neither does I/O, reads a
clock or logs: the clock's reading, the calendar's answers and the plugins' choices arrive inside the
command, computed by the broker (the shell). Replay and the live broker use the same ``evolve``.

``state`` holds the state and the decided events, ``commands`` the commands, ``decide`` and
``evolve`` one function per command and per event type. Imports: the standard library and
``unstuck.schemas`` only.
"""

from .commands import (
    ApproveExtension,
    CheckDeadlines,
    Classification,
    Classify,
    Close,
    Command,
    ConcludeReview,
    Escalate,
    Evaluate,
    Guide,
    Handover,
    IntakeDeadline,
    Open,
    RecordAccountability,
    RecordAttemptFailure,
    RecordReply,
    RecordReviewNotice,
    RecordStall,
    Reopen,
    RequestExtension,
    RevealPersonalData,
    ReviseDueDate,
    RuleBounce,
)
from .decide import Refused, _question, decide
from .evolve import SHARED_INTAKE_FIELDS, _placeholder_meta, _shared_vocabulary, evolve, evolve_many
from .state import (
    ALLOWED,
    ANSWERED,
    CLOSED,
    COORDINATING,
    EVALUATED,
    GUIDING,
    INTAKE,
    LEADER_RANK,
    OPEN_STATES,
    STATES,
    SYSTEM_VERBS,
    VERB_LABELS,
    CaseState,
    CaseStatus,
    Coordination,
    CoordinationStatus,
    EventMeta,
    NewEvent,
)
from .state import replace_state as _replace_state

__all__ = [
    "ALLOWED",
    "ANSWERED",
    "CLOSED",
    "COORDINATING",
    "EVALUATED",
    "GUIDING",
    "INTAKE",
    "LEADER_RANK",
    "OPEN_STATES",
    "SHARED_INTAKE_FIELDS",
    "STATES",
    "SYSTEM_VERBS",
    "VERB_LABELS",
    "ApproveExtension",
    "CaseState",
    "CaseStatus",
    "CheckDeadlines",
    "Classification",
    "Classify",
    "Close",
    "Command",
    "ConcludeReview",
    "Coordination",
    "CoordinationStatus",
    "Escalate",
    "Evaluate",
    "EventMeta",
    "Guide",
    "Handover",
    "IntakeDeadline",
    "NewEvent",
    "Open",
    "RecordAccountability",
    "RecordAttemptFailure",
    "RecordReply",
    "RecordReviewNotice",
    "RecordStall",
    "Refused",
    "Reopen",
    "RequestExtension",
    "RevealPersonalData",
    "ReviseDueDate",
    "RuleBounce",
    "_placeholder_meta",
    "_question",
    "_replace_state",
    "_shared_vocabulary",
    "decide",
    "evolve",
    "evolve_many",
]
