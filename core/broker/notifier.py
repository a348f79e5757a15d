"""Notifications on ``unstuck.notify.<audience>``: one text per event type, from the table below."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client

from unstuck.eventstore import StoredEvent
from unstuck.schemas.privacy import mask_personal, mask_text
from unstuck.schemas.subjects import notify_subject

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


@dataclass(eq=False)
class Notifier:
    nc: Client
    spawn: Callable[[Coroutine[Any, Any, Any]], Any]

    def notify(self, event: StoredEvent) -> None:
        notice = NOTICES.get(event.type)
        if notice is None:
            return
        d = event.fields["data"]
        audience, text = (
            part.format_map({**d, "case_id": event.case_id, "type": event.type}) for part in notice
        )
        body = {
            "case_id": event.case_id,
            "type": event.type,
            "at": event.fields["at"],
            "text": mask_text(text),
            "data": mask_personal({k: v for k, v in d.items() if k != "applicant"}),
        }
        self.spawn(self._publish(audience, json.dumps(body, ensure_ascii=False).encode()))

    async def _publish(self, audience: str, body: bytes) -> None:
        try:
            await self.nc.publish(notify_subject(audience), body)
        except Exception as exc:
            log.warning("notification to %s not sent: %s", audience, exc)
