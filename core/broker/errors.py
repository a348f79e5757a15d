"""How the API refuses a request: an error code, the field at fault and the fix."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from unstuck.schemas import api
from unstuck.schemas.privacy import PERSONAL_FIELDS, mask_identifier, mask_text


class ApiFailure(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        fix: str | None = None,
        message_zh: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error = api.ApiError(code=code, message=message, field=field, fix=fix, message_zh=message_zh)


def validation_failure(exc: ValidationError, model: type[BaseModel]) -> ApiFailure:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    problem = err["msg"]
    given = err.get("input")
    if isinstance(given, dict | list):  # a whole object or list is not echoed, masked or not
        given = None
    if given is not None and any(str(p) in PERSONAL_FIELDS for p in err["loc"]):
        given = mask_identifier(str(given))  # an id number or phone is never echoed, even a wrong one
    elif given is not None:
        given = mask_text(str(given))  # nor one sent under another name
    shown = "" if isinstance(given, dict | list) or given is None else f" (got {str(given)[:40]!r})"
    count = len(exc.errors())
    more = f"; {count - 1} more problem(s)" if count > 1 else ""
    ctx = err.get("ctx") or {}  # a check that speaks to staff and applicants too gives zh and fix
    return ApiFailure(
        "invalid_request",
        f"{where}: {problem}{shown}{more}",
        field=where,
        fix=ctx.get("fix") or f"send a body matching schemas/json/api.{model.__name__}.json",
        message_zh=f"{ctx['zh']}{shown.replace(' (got ', '（收到 ').replace(')', '）')}"
        if "zh" in ctx
        else None,
    )


def parse(model: type[Any], body: dict[str, Any]) -> Any:
    """The request ``body`` as ``model``, or the ApiFailure naming the first problem."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_failure(exc, model) from exc


def no_such_case(case_id: str) -> ApiFailure:
    return ApiFailure(
        "not_found",
        f"case {case_id} does not exist",
        field="case_id",
        fix="check the id with `unstuck case list`",
    )
