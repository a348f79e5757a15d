"""The web apps' only way to the broker: API requests on the subject of the one who acts.

The console connects as the NATS principal ``console`` and asks on ``unstuck.api.web.<staff>.<verb>``
(the staff in ``[staff]`` and the applicant's evaluation screen); the portal connects as ``portal`` and
asks on ``unstuck.api.as.portal.<verb>``. The broker takes the actor from the subject, so a request
body never names who acts.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import nats.errors
from nats.aio.client import Client

from unstuck.schemas.subjects import VIA_WEB, api_subject

from .text import simplified

log = logging.getLogger("unstuck.web.bus")

APPLICANT = "applicant"  # the evaluation screen: the applicant's own channel
# the body field that names who acts, where it is not ``actor`` (as the broker reads it): never sent.
# ``owner`` of case.handover is the new owner, and is sent.
ACTING_FIELD = {"case.open": "owner"}


class BusError(Exception):
    """A request the broker refused or did not answer: ``message`` in Chinese, ``field`` it names."""

    def __init__(self, message: str, code: str = "error", field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


class BusClient:
    """API requests over ``nc``, on the subjects of ``via`` (``web`` for the console, ``as`` for the portal)."""

    def __init__(self, nc: Client, timeout: float = 10.0, via: str = VIA_WEB) -> None:
        self.nc = nc
        self.timeout = timeout
        self.via = via

    async def call(self, verb: str, principal: str, body: dict[str, Any] | None = None) -> Any:
        """``verb`` as ``principal`` (a staff id from ``[staff]``, or ``applicant``); the broker's result."""
        acting = ACTING_FIELD.get(verb, "actor")
        body = {k: v for k, v in (body or {}).items() if k != acting}
        subject = api_subject(verb, principal, self.via)
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            # the subject names the staff member: the broker's rate limit is theirs, not the console's
            msg = await self.nc.request(subject, data, timeout=self.timeout)
        except nats.errors.NoRespondersError as exc:
            raise BusError(
                "总线上没有代理（broker）应答：请联系运维人员启动 unstuck serve", "unavailable"
            ) from exc
        except nats.errors.TimeoutError as exc:
            raise BusError(
                f"代理（broker）在 {self.timeout:g} 秒内未应答：操作可能仍会完成，请稍后查看后再重试",
                "timeout",
            ) from exc
        except Exception as exc:  # a closed or reconnecting connection
            log.warning("%s as %s failed: %s", verb, principal, exc)
            raise BusError("与总线的连接中断：请稍后重试", "unavailable") from exc
        reply = json.loads(msg.data)
        if not reply.get("ok"):
            error = reply.get("error") or {}
            field = error.get("field")
            text = error.get("message_zh") or "请求被拒绝{}：{}".format(
                f"（字段 {field}）" if field else "", error.get("message") or error.get("code") or ""
            )
            raise BusError(simplified(str(text)), str(error.get("code") or "error"), field)
        return reply.get("result")
