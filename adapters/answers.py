"""Building a department's replies to one request, the way the built-in adapters answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unstuck.schemas import CoordinationReply, CoordinationRequest, Outcome


class Answers:
    """``answer(Outcome.RESOLVED, message, handler, **fields)`` builds a reply to ``request``."""

    def __init__(self, request: CoordinationRequest, department: str) -> None:
        self.request = request
        self.department = department

    def __call__(self, outcome: Outcome, message: str, handler: str, **extra: Any) -> CoordinationReply:
        return CoordinationReply(
            request_id=self.request.request_id,
            department=self.department,
            outcome=outcome,
            message=message,
            handler=handler,
            **extra,
        )

    def elsewhere_or_later(self, elsewhere: Mapping[str, str], own_name: str) -> CoordinationReply:
        """A matter this department does not decide: 退單 to the department it belongs to, if known;
        otherwise accept it for study and answer by the deadline."""
        request = self.request
        if request.matter in elsewhere:
            return self(
                Outcome.NOT_OURS,
                f"{request.matter_title}不屬{own_name}職責",
                "辦公室",
                belongs_to=elsewhere[request.matter],
            )
        return self(Outcome.ACCEPTED, "已轉業務科室研究，按期答覆", "辦公室", expected_date=request.deadline)
