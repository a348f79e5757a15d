"""The reply judge: what a department sent back, classified without side effects.

A department answers a coordination request with a ``CoordinationReply`` or, through the NATS
service framework, with an error header. Only a valid reply to this very request from this very
department is accepted; anything else is a failed attempt with a reason the retry policy acts on.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from unstuck.schemas import CoordinationReply, CoordinationRequest
from unstuck.schemas.coordination import OVERRAN_CODE

SERVICE_ERROR_HEADER = "Nats-Service-Error"
SERVICE_ERROR_CODE_HEADER = "Nats-Service-Error-Code"


def judge_reply(
    request: CoordinationRequest, department: str, data: bytes, headers: Mapping[str, str] | None
) -> tuple[str, CoordinationReply | None, str]:
    """What a department sent back, judged without side effects: (outcome or failure, reply, detail).

    The failure is ``error`` (the adapter said it failed), ``timeout`` (its host said the hook did not
    answer in time, error code 504) or ``invalid_reply`` (the answer does not
    validate, answers another request, or names another department); only a valid answer to this
    request from this department comes back as a reply.
    """
    headers = headers or {}
    if SERVICE_ERROR_CODE_HEADER in headers:
        code = str(headers.get(SERVICE_ERROR_CODE_HEADER))
        said = f"{code} {headers.get(SERVICE_ERROR_HEADER, '')}"
        # 504: the adapter host answers for a hook still running at the deadline: a timeout, explained
        return ("timeout" if code == OVERRAN_CODE else "error"), None, said
    try:
        reply = CoordinationReply.model_validate_json(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        return "invalid_reply", None, f"{where}: {err['msg']}"
    if reply.request_id != request.request_id:
        return "invalid_reply", None, f"request_id {reply.request_id} answers another request"
    if reply.department != department:
        return "invalid_reply", None, f"reply names department {reply.department}"
    return reply.outcome.value, reply, ""
