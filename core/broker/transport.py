"""The API transport: serves ``unstuck.api.>`` and turns every outcome into one reply.

Answers go to inboxes only, each client is rate limited, bodies are bounded and must be JSON
objects, and whatever goes wrong becomes ``{"ok": false, "error": ...}``: ``handle`` never raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from unstuck import lifecycle as lc
from unstuck.config import Config
from unstuck.eventstore import StoreUnavailable
from unstuck.limits import ClientRateLimiter, client_of, json_shape_problem
from unstuck.metrics import Metrics
from unstuck.schemas import api
from unstuck.schemas.subjects import API_PREFIX, BROKER_QUEUE, parse_api_subject

from .background import Background
from .errors import ApiFailure
from .identity import CALLER, Caller, caller_of

log = logging.getLogger(__name__)

API_VERBS = tuple(api.API_REQUESTS)
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(eq=False)
class ApiTransport:
    nc: Client
    handlers: Mapping[str, Handler]
    config: Config
    metrics: Metrics
    background: Background

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.config.broker.api_concurrency)
        limits = self.config.limits
        self.rate_limiter = ClientRateLimiter(limits.api_requests_per_second, limits.api_burst)

    async def subscribe(self) -> Any:
        return await self.nc.subscribe(f"{API_PREFIX}.>", queue=BROKER_QUEUE, cb=self._on_api)

    async def _on_api(self, msg: Msg) -> None:
        await self.slots.acquire()
        self.background.spawn(self._serve(msg), done=lambda _task: self.slots.release())

    async def _serve(self, msg: Msg) -> None:
        verb, principal, via = parse_api_subject(msg.subject)
        if msg.reply and not msg.reply.startswith("_INBOX."):
            # answer only to an inbox: with reply subject unstuck.case.X the answer would land in the record
            self.metrics.api_errors.labels("not_allowed").inc()
            log.warning("API %s refused: reply subject %r is not an _INBOX", verb, msg.reply[:80])
            return
        reply = await self.handle(verb, msg.data, client_of(principal, via), caller_of(principal, via))
        if msg.reply:
            try:
                await msg.respond(reply)
            except Exception as exc:
                log.warning("API reply for %s not sent: %s", verb, exc)

    async def handle(
        self, verb: str, data: bytes, client: str | None = None, caller: Caller | None = None
    ) -> bytes:
        """Answer one API request; never raises. ``client`` (see unstuck.limits) is rate limited;
        ``caller`` is the principal the subject proves (None: anonymous)."""
        token = CALLER.set(caller)
        try:
            handler, body = self._admit(verb, data, client)
            result = await handler(body)
            return api.ApiReply(ok=True, result=result).model_dump_json().encode()
        except ApiFailure as failure:
            error = failure.error
        except lc.Refused as refused:
            error = api.ApiError(
                code=refused.code, message=str(refused), message_zh=refused.zh, field=refused.field
            )
        except StoreUnavailable as exc:
            error = api.ApiError(
                code="unavailable",
                message=f"the case record is unavailable: {exc}; the change was not confirmed",
                fix="retry when JetStream is back (see /healthz); case.open with a client_ref is stored once",
            )
        except nats.errors.Error as exc:  # the KV buckets or the stream did not answer
            error = api.ApiError(
                code="unavailable",
                message=f"JetStream is unavailable: {type(exc).__name__}: {exc}"[:300],
                fix="retry when JetStream is back (see /healthz)",
            )
        except Exception as exc:
            log.exception("API %s failed", verb)
            error = api.ApiError(code="internal", message=f"internal error: {type(exc).__name__}")
        finally:
            CALLER.reset(token)
        self.metrics.api_errors.labels(error.code).inc()
        return api.ApiReply(ok=False, error=error).model_dump_json().encode()

    def _admit(self, verb: str, data: bytes, client: str | None) -> tuple[Handler, dict[str, Any]]:
        """The verb's handler and the body as a JSON object, or the ApiFailure that refuses the request."""
        handler = self.handlers.get(verb)
        if client is not None and (wait := self.rate_limiter.take(client)):
            limits = self.config.limits
            raise ApiFailure(
                "rate_limited",
                f"too many API requests from this client: the limit is {limits.api_requests_per_second:g} "
                f"per second with bursts of {limits.api_burst}",
                field="subject",
                fix=f"retry after {wait:.2f}s and send fewer requests, or raise [limits] api_requests_per_second",
            )
        if handler is None:
            raise ApiFailure(
                "not_found",
                f"unknown API verb {verb!r}",
                field="subject",
                fix=f"use unstuck.api.<verb> with one of: {', '.join(API_VERBS)}",
            )
        self.metrics.api_requests.labels(verb).inc()
        limit = self.config.broker.max_payload_bytes
        if len(data) > limit:
            raise ApiFailure(
                "payload_too_large",
                f"request body is {len(data)} bytes; the maximum is {limit}",
                field="body",
                fix="shorten the description or raise broker.max_payload_bytes",
            )
        if (shape := json_shape_problem(data)) is not None:
            raise ApiFailure(
                "invalid_request",
                f"request body is {shape}: no API request is",
                field="body",
                fix="send the fields of the request as in schemas/json (flat values, short lists)",
            )
        try:
            body = json.loads(data) if data.strip() else {}
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ApiFailure(
                "invalid_json",
                f"request body is not JSON: {exc}",
                field="body",
                fix="send a UTF-8 JSON object",
            ) from exc
        if not isinstance(body, dict):
            raise ApiFailure(
                "invalid_request",
                "request body must be a JSON object",
                field="body",
                fix="wrap the fields in {...}",
            )
        return handler, body
