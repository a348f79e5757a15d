"""The findings catalogue: every way the record can be wrong, by stable code, and one finding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FINDINGS: dict[str, str] = {
    "unreadable": "the stored body is not a JSON object; nothing else can be checked",
    "not_canonical": "the stored bytes are not the canonical JSON of their content (edited after sealing)",
    "hash_mismatch": "the event's hash does not match its content: the event was changed",
    "schema_invalid": "the envelope or the payload does not match the event schema of its type and version",
    "subject_mismatch": "the event is stored under another case's subject than the case_id in its body",
    "seq_gap": "sequence numbers are missing in the middle of the case: events were dropped",
    "seq_repeat": "a sequence number of the case occurs twice: a forged or duplicated event",
    "seq_out_of_order": "an event is stored after a later event of the same case: events were reordered",
    "prev_hash_mismatch": "the event's prev_hash is not the hash of the case's previous event: the chain is broken",
    "duplicate_event_id": "the same event id occurs in more than one stored event",
    "head_missing": "the broker recorded no head for a case that has events in the stream",
    "head_mismatch": "the head the broker recorded outside the stream differs from the stream at that seq",
    "tail_missing": "the stream ends before the head the broker recorded: the case's tail was cut off",
    "untracked_tail": "the stream has events after the head the broker recorded outside the stream",
}
"""Every finding code with its one-line meaning; docs/audit.md gives the step-by-step reading."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with the record: a stable code, where (case, seq, stream seq) and what."""

    code: str
    case_id: str | None
    seq: int | None
    stream_seq: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "case_id": self.case_id,
            "seq": self.seq,
            "stream_seq": self.stream_seq,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = f"case {self.case_id}" if self.case_id else "stream"
        if self.seq is not None:
            where += f" seq {self.seq}"
        if self.stream_seq is not None:
            where += f" (stream seq {self.stream_seq})"
        return f"{self.code}: {where}: {self.message}"


class ReplayError(Exception):
    """The stream could not be read (missing, unreachable); the message says what to do."""


_ORDER = {code: i for i, code in enumerate(FINDINGS)}


def finding_order(f: Finding) -> tuple[str, int, int, int]:
    return (f.case_id or "", f.seq if f.seq is not None else -1, f.stream_seq or 0, _ORDER.get(f.code, 99))
