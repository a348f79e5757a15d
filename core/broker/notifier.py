"""Notifications on ``unstuck.notify.<audience>``: one text per event type, from the table below.

Each notification is stored in the JetStream stream ``UNSTUCK_NOTIFY`` with an acknowledged publish
whose ``Nats-Msg-Id`` is ``<event_id>:<audience>``: however often it is retried (here, or by a broker
that replays the event after a restart within the duplicate window) it is stored once. ``unstuck
notify`` delivers it from there (core/notify/, docs/notifications.md). A notification that cannot be
stored is logged and counted (``unstuck_notifications_total{outcome="failed"}``), never raised into
the command that produced the event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from prometheus_client import Counter
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from unstuck import lifecycle as lc
from unstuck.config import Config
from unstuck.eventstore import StoredEvent
from unstuck.metrics import Metrics
from unstuck.schemas.privacy import mask_personal, mask_text
from unstuck.schemas.subjects import (
    APPLICANT,
    NOTIFY_MAX_AGE_DAYS,
    NOTIFY_PREFIX,
    NOTIFY_STREAM,
    notify_subject,
)

log = logging.getLogger(__name__)

NOTICES: dict[str, tuple[str, str]] = {
    # event type: (audience, text); {name} is the event's data field, {case_id} and {type} the event's own
    "case.escalated": ("{audience}", "督辦：案件{case_id}已升級至{target}（{reason}）"),
    "case.deadline_warned": (
        "owner",
        "催辦：案件{case_id}將於{due_date}到期，剩餘{working_days_left}個工作日",
    ),
    "case.overdue": ("duty_leader", "督辦：案件{case_id}已逾期（期限{due_date}）"),
    "case.extended": ("applicant", "您的事項（案件{case_id}）已延期，新的辦結日期為{due_date}"),
    "case.review_requested": (
        "applicant",
        "案件{case_id}：{department}答覆不能辦理（依據：{legal_basis}），已提請{higher_department}複核，"
        "{notify_by}前告知結果",
    ),
    "case.closed": ("applicant", "案件{case_id}已辦結銷號，請對本次服務進行評價（好差評）"),
    "case.rating_invited": (
        "applicant",
        "案件{case_id}已於{closed_on}辦結，您尚未評價，歡迎對本次服務作出評價（好差評）",
    ),
    "case.follow_up_opened": ("owner", "差評回訪：案件{case_id}收到差評，請於{due_date}前完成回訪和整改"),
    "case.bounce_ruled": ("duty_leader", "案件{case_id}：{type}"),
    "coordination.stalled": ("duty_leader", "案件{case_id}：{type}"),
}

PUBLISH_ATTEMPTS = 5
PUBLISH_TIMEOUT_SECONDS = 2.0


def notify_stream_config(replicas: int = 1) -> StreamConfig:
    """``UNSTUCK_NOTIFY``: every notification, kept 30 days (limits retention) whether delivered or not."""
    return StreamConfig(
        name=NOTIFY_STREAM,
        subjects=[f"{NOTIFY_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        max_age=NOTIFY_MAX_AGE_DAYS * 86400.0,
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=120.0,
        description="unstuck notifications, stored until `unstuck notify` delivers them (docs/notifications.md)",
    )


def recipients(
    audience: str, data: dict[str, Any], state: lc.CaseState | None, duty_leader: str
) -> dict[str, Any]:
    """Whom a notification is for: the applicant's phone (and email), or the staff id(s) of the audience."""
    if audience == APPLICANT:
        applicant = (state.intake.get("applicant") if state is not None else None) or {}
        return {k: applicant[k] for k in ("phone", "email") if applicant.get(k)}
    if audience == "owner":
        staff = [state.owner] if state is not None and state.owner else []
    elif audience == "duty_leader":
        staff = [(state.duty_leader if state is not None else None) or duty_leader]
    else:  # an escalation: the person at that level of the chain, as the event names them
        staff = [str(data["target"])] if data.get("target") else []
    return {"staff": staff}


@dataclass(eq=False)
class Notifier:
    js: JetStreamContext
    spawn: Callable[[Coroutine[Any, Any, Any]], Any]
    state_of: Callable[[str], lc.CaseState | None]
    counter: Counter
    duty_leader: str = "duty-leader"
    replicas: int = 1
    wait_max_seconds: float = 2.0

    @classmethod
    def of(
        cls,
        js: JetStreamContext,
        spawn: Callable[[Coroutine[Any, Any, Any]], Any],
        state_of: Callable[[str], lc.CaseState | None],
        metrics: Metrics,
        config: Config,
    ) -> Notifier:
        """The broker's notifier: its counter, the window's duty leader, ``[broker] replicas``."""
        return cls(
            js, spawn, state_of, metrics.notifications, config.window.duty_leader, config.broker.replicas
        )

    async def ensure(self) -> None:
        """Create ``UNSTUCK_NOTIFY`` if missing; idempotent. A failure is logged, not raised: the
        broker still runs, and each notification it cannot store is counted as failed."""
        try:
            try:
                await self.js.stream_info(NOTIFY_STREAM)
            except nats.js.errors.NotFoundError:
                try:
                    await self.js.add_stream(notify_stream_config(self.replicas))
                except nats.js.errors.BadRequestError:
                    await self.js.stream_info(NOTIFY_STREAM)  # another broker created it meanwhile
        except Exception as exc:
            log.error("notification stream %s not available: %s", NOTIFY_STREAM, exc)

    def notify(self, event: StoredEvent) -> None:
        notice = NOTICES.get(event.type)
        if notice is None:
            return
        d = event.fields["data"]
        audience, text = (
            part.format_map({**d, "case_id": event.case_id, "type": event.type}) for part in notice
        )
        notification_id = f"{event.fields['event_id']}:{audience}"
        try:
            state: lc.CaseState | None = self.state_of(event.case_id)
        except KeyError:
            state = None
        body = {
            "id": notification_id,
            "case_id": event.case_id,
            "type": event.type,
            "audience": audience,
            "at": event.fields["at"],
            "to": recipients(audience, d, state, self.duty_leader),
            "text": mask_text(text),
            "data": mask_personal({k: v for k, v in d.items() if k != "applicant"}),
        }
        self.spawn(self._publish(audience, notification_id, json.dumps(body, ensure_ascii=False).encode()))

    async def _publish(self, audience: str, notification_id: str, body: bytes) -> None:
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(PUBLISH_ATTEMPTS),
                wait=wait_exponential(multiplier=0.1, max=self.wait_max_seconds),
                reraise=True,
            ):
                with attempt:
                    await self.js.publish(
                        notify_subject(audience),
                        body,
                        stream=NOTIFY_STREAM,
                        timeout=PUBLISH_TIMEOUT_SECONDS,
                        headers={"Nats-Msg-Id": notification_id},
                    )
        except Exception as exc:
            self.counter.labels("failed").inc()
            log.warning("notification %s to %s not stored: %s", notification_id, audience, exc)
            return
        self.counter.labels("stored").inc()
