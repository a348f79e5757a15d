"""Delivering one notification: email through SMTP (aiosmtplib), SMS through the ``unstuck_send_sms``
plugin hook. No SMS provider is built in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiosmtplib
import pluggy

from unstuck.config import NotifyConfig
from unstuck.schemas.privacy import mask_identifier, mask_personal

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    DELIVERED = "delivered"  # every recipient reached on at least one channel
    UNDELIVERABLE = "undeliverable"  # nobody it names can be reached (no address, no SMS plugin)


class DeliveryFailed(Exception):
    """A channel failed (SMTP down, the SMS provider refused): deliver again later."""


def message_id(notification_id: str) -> str:
    """The Message-ID of a notification's mail: its notification id (``<event_id>:<audience>``, the ``:``
    written ``.``, which a Message-ID cannot hold), so a redelivered mail is recognisably the same one."""
    return f"<{notification_id.replace(':', '.')}@unstuck>"


def mail(notification: Mapping[str, Any], sender: str, to: list[str]) -> EmailMessage:
    """The mail of one notification: its (masked) text, the case id in the subject."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = f"辦不成事窗口通知：案件{notification['case_id']}"
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id(str(notification["id"]))
    msg.set_content(
        f"{notification['text']}\n\n案件編號：{notification['case_id']}\n（本郵件由系統自動發送）\n"
    )
    return msg


@dataclass(eq=False)
class Delivery:
    settings: NotifyConfig
    pm: pluggy.PluginManager | None = None
    config_dir: Path | None = None
    _password: str | None = field(default=None, init=False, repr=False)

    def can_send_sms(self) -> bool:
        return self.pm is not None and bool(self.pm.hook.unstuck_send_sms.get_hookimpls())

    async def deliver(self, notification: Mapping[str, Any]) -> Outcome:
        """Deliver to every recipient; raises DeliveryFailed when a channel failed."""
        to = notification.get("to") or {}
        emails: list[str] = []
        sms: list[str] = []
        unreachable: list[str] = []
        for staff_id in to.get("staff", []):
            address = self.settings.staff_email.get(staff_id)
            (emails.append(address) if address else unreachable.append(f"staff {staff_id}"))
        if to.get("email"):
            emails.append(str(to["email"]))
        if to.get("phone"):
            if self.can_send_sms():
                sms.append(str(to["phone"]))
            elif not to.get("email"):
                unreachable.append(f"phone {mask_identifier(str(to['phone']))} (no SMS plugin)")
        for who in unreachable:
            log.warning("notification %s: %s cannot be reached", notification.get("id"), who)
        if emails:
            await self._send_mail(notification, emails)
        for phone in sms:
            await self._send_sms(notification, phone)
        return Outcome.DELIVERED if emails or sms else Outcome.UNDELIVERABLE

    async def _send_mail(self, notification: Mapping[str, Any], to: list[str]) -> None:
        s = self.settings
        try:
            await aiosmtplib.send(
                mail(notification, s.smtp_from, to),
                hostname=s.smtp_host,
                port=s.smtp_port,
                start_tls=s.smtp_starttls,
                use_tls=False,
                username=s.smtp_username,
                password=self._smtp_password(),
                timeout=s.smtp_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryFailed(f"SMTP {s.smtp_host}:{s.smtp_port}: {exc}") from exc

    async def _send_sms(self, notification: Mapping[str, Any], phone: str) -> None:
        assert self.pm is not None
        hook = self.pm.hook.unstuck_send_sms
        try:  # on a thread: a provider's client may block
            sent = await asyncio.to_thread(hook, phone=phone, text=str(notification["text"]))
        except Exception as exc:
            raise DeliveryFailed(f"SMS to {mask_identifier(phone)}: {mask_personal(str(exc))}") from exc
        if not sent:
            raise DeliveryFailed(f"SMS to {mask_identifier(phone)}: no plugin accepted it")

    def _smtp_password(self) -> str | None:
        path = self.settings.smtp_password_file
        if path is None or self.settings.smtp_username is None:
            return None
        if self._password is None:
            full = path if path.is_absolute() or self.config_dir is None else self.config_dir / path
            self._password = full.read_text(encoding="utf-8").strip()
        return self._password
