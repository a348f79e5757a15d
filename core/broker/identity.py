"""Who is asking: the principal NATS authenticated, read from the subject the request came on.

nats-server lets each principal publish only below its own ``unstuck.api.as.<principal>.>`` (the
console: ``unstuck.api.web.<staff>.>`` for the staff it serves), so the subject is proof of who sent
a request; the body's ``actor`` (``owner`` for ``case.open``) is filled in from it, and refused when
it names someone else. A request on the bare ``unstuck.api.<verb>`` is anonymous: refused for
anything that acts when ``[security] require_identity`` holds (always under ``--secure``); without
it (a bus with no NATS users, for development) the body's actor is taken as *claimed* and the
record says so (``auth: claimed`` in the envelope).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from unstuck.schemas.subjects import (
    APPLICANT,
    DEPARTMENT_PREFIX,
    PORTAL,
    PORTAL_VERBS,
    STAFF_PREFIX,
    VIA_NATS,
    VIA_WEB,
)

from .errors import ApiFailure

SYSTEM = "system"  # the broker itself: no request may act under this name
CLAIMED = "claimed"
ONLINE = "online"  # the applicant through the portal: the portal's credentials, the case's receipt code
AUTH_OF_VIA = {VIA_NATS: "nats", VIA_WEB: "web"}

ACTOR_FIELD = {"case.open": "owner"}  # the request field that names who acts, where it is not ``actor``
APPLICANT_VERBS = frozenset({"case.evaluate"})  # only the applicant's channel may call these
DEPARTMENT_VERBS = frozenset({"case.record"})  # only the department's own principal records its answer


@dataclass(frozen=True)
class Caller:
    """The principal a request came from; ``actor`` is how the record names it, ``auth`` how it was proven."""

    actor: str
    auth: (
        str  # "nats" (its own credentials), "web" (the console's session), "online" (the portal) or "claimed"
    )

    @property
    def proven(self) -> bool:
        return self.auth != CLAIMED


CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("unstuck_caller", default=None)


def caller_of(principal: str | None, via: str | None) -> Caller | None:
    """The caller named by an API subject's principal token (None: an anonymous request).

    A department's principal ``dept-<code>`` acts as ``<code>`` (as its answers on the bus do); a staff
    member's NATS user ``staff-<id>`` acts as ``<id>``."""
    if principal is None or via is None:
        return None
    if principal == PORTAL and via == VIA_NATS:
        return Caller(actor=APPLICANT, auth=ONLINE)
    actor = principal
    for prefix in (DEPARTMENT_PREFIX, STAFF_PREFIX):
        if principal.startswith(prefix):
            actor = principal.removeprefix(prefix)
    return Caller(actor=actor, auth=AUTH_OF_VIA[via])


def with_actor(
    verb: str, body: dict[str, Any], fields: Any, caller: Caller | None, require_identity: bool
) -> tuple[dict[str, Any], Caller | None]:
    """The body with the acting field taken from the caller; the caller (a claimed one when anonymous).

    ``fields``: the request model's fields (``model_fields``); a verb with no acting field (a query)
    passes through, except that an anonymous one is refused where identity is required and it acts."""
    if caller is not None and caller.auth == ONLINE:
        return _online(verb, body), caller
    name = ACTOR_FIELD.get(verb, "actor")
    if name not in fields and verb not in APPLICANT_VERBS:
        return body, caller
    typed = body.get(name)
    if caller is None:
        # a read (case.get) may be anonymous; naming oneself without proof may not, where identity is required
        acts = verb in APPLICANT_VERBS or fields[name].is_required() or typed is not None
        if require_identity and acts:
            raise ApiFailure(
                "unauthenticated",
                f"{verb} acts on a case: who acts must be proven, and this request came anonymously",
                field="subject",
                fix="connect with your own credentials (unstuck nats-config gives each staff member a file) "
                "or sign in to the console",
                message_zh="此操作須以本人身份登錄：請使用本人的憑證（unstuck nats-config 生成）或登錄窗口控制台",
            )
        actor = APPLICANT if verb in APPLICANT_VERBS else typed
        if verb in APPLICANT_VERBS and typed not in (None, APPLICANT):
            raise _applicant_only(verb)
        if actor == SYSTEM:
            raise _not_system(name)
        return ({**body, name: actor} if name in fields else body), (
            Caller(actor, CLAIMED) if isinstance(actor, str) else None
        )
    if verb in APPLICANT_VERBS and caller.actor != APPLICANT:
        raise _applicant_only(verb)
    if caller.actor == SYSTEM:
        raise _not_system(name)
    if typed is not None and typed != caller.actor:
        raise ApiFailure(
            "actor_mismatch",
            f"{name} {typed!r} is not who you are: you are signed in as {caller.actor!r}",
            field=name,
            fix=f"leave {name} out (it is taken from your sign-in) or give {caller.actor!r}",
            message_zh=f"{name} 填的是 {typed}，但您登錄的身份是 {caller.actor}：不能以他人名義操作",
        )
    return ({**body, name: caller.actor} if name in fields else body), caller


def _online(verb: str, body: dict[str, Any]) -> dict[str, Any]:
    """A request of the portal: one of its verbs; a rating names the receipt code, never a case id."""
    if verb not in PORTAL_VERBS:
        raise ApiFailure(
            "not_allowed",
            f"{verb}: the online portal may call {', '.join(PORTAL_VERBS)} only",
            field="subject",
            fix="staff act through the console or their own credentials",
            message_zh="網上渠道只能反映、查詢和評價",
        )
    if verb == "case.evaluate" and "case_id" in body:
        raise ApiFailure(
            "not_allowed",
            "case.evaluate online names the receipt code and the phone's last 4 digits, not a case id",
            field="case_id",
            fix="give receipt and phone_last4",
            message_zh="網上評價須憑回執碼和電話後 4 位",
        )
    return {**body, "actor": APPLICANT} if verb == "case.evaluate" else body


def department_only(verb: str, department: str) -> ApiFailure:
    return ApiFailure(
        "not_allowed",
        f"{verb}: only {department}'s own principal records {department}'s answer",
        field="actor",
        fix=f"the department answers on the bus, or records it with its credentials (dept-{department})",
        message_zh=f"部門答覆只能由該部門（{department}）以本部門身份登記，窗口人員不能代為登記",
    )


def _applicant_only(verb: str) -> ApiFailure:
    return ApiFailure(
        "not_allowed",
        f"{verb}: the rating (好差評) is the applicant's own, given on the window's evaluation screen or "
        "online; staff cannot type it",
        field="actor",
        fix="turn the evaluation screen to the applicant (unstuck console), or let them rate online",
        message_zh="好差評由申請人本人在評價屏或網上作出，工作人員不能代評",
    )


def _not_system(name: str) -> ApiFailure:
    return ApiFailure(
        "not_allowed",
        f"{name} 'system' is the broker itself; no request acts under that name",
        field=name,
        fix="act under your own name",
        message_zh="system 是系統本身，任何請求都不能以 system 名義操作",
    )
