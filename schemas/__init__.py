"""The wire contract of unstuck: pydantic models exported as JSON Schema (and AsyncAPI).

Nothing here imports the broker; adapters and plugins depend on these models only.
"""

from .case import Applicant, CaseIntake, CaseSummary, Channel, MaskedStr
from .common import CATEGORY_LABELS, Category
from .coordination import (
    FINAL_OUTCOMES,
    OUTCOME_LABELS,
    AdapterError,
    CoordinationReply,
    CoordinationRequest,
    Outcome,
)
from .department import LEVEL_LABELS, LEVEL_NAMES, Department, Level
from .events import (
    CURRENT_VERSIONS,
    ENVELOPE_VERSION,
    EVENT_LABELS,
    EVENT_TYPES,
    Envelope,
    EventSchemaError,
    parse_payload,
    upcaster,
)
from .labels import LABELS, LANGS, STATE_LABELS, label
from .privacy import PERSONAL_FIELDS, mask_identifier, mask_personal, mask_text

__all__ = [
    "CATEGORY_LABELS",
    "CURRENT_VERSIONS",
    "ENVELOPE_VERSION",
    "EVENT_LABELS",
    "EVENT_TYPES",
    "FINAL_OUTCOMES",
    "LABELS",
    "LANGS",
    "LEVEL_LABELS",
    "LEVEL_NAMES",
    "OUTCOME_LABELS",
    "PERSONAL_FIELDS",
    "STATE_LABELS",
    "AdapterError",
    "Applicant",
    "CaseIntake",
    "CaseSummary",
    "Category",
    "Channel",
    "CoordinationReply",
    "CoordinationRequest",
    "Department",
    "Envelope",
    "EventSchemaError",
    "Level",
    "MaskedStr",
    "Outcome",
    "label",
    "mask_identifier",
    "mask_personal",
    "mask_text",
    "parse_payload",
    "upcaster",
]
