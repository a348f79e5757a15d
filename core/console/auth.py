"""Signing in: who may (the ``[staff]`` of the configuration), how it is checked (an outside identity
provider, then the console's own argon2 passwords), and how guessing is slowed (failed attempts per
account and per client address within a window) and recorded (a log line, a Prometheus counter and
``console/logins.jsonl``)."""

from __future__ import annotations

import importlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from .store import LoginLog, PasswordStore

log = logging.getLogger("unstuck.console.auth")

IdentityProvider = Callable[[str, str], str | None]
"""``(username, password) -> staff id or None``: an outside identity provider (LDAP, a city's single
sign-on ...), named in ``[console] identity_provider = "module:callable"``."""


class ProviderError(ValueError):
    """``[console] identity_provider`` names nothing that can be called."""


def load_provider(spec: str | None) -> IdentityProvider | None:
    """The callable ``module:callable`` names; None when none is configured."""
    if not spec:
        return None
    module_name, _, attr = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ProviderError(
            f"[console] identity_provider = {spec!r}: {exc}; give module:callable of an installed module"
        ) from exc
    if not callable(found):
        raise ProviderError(f"[console] identity_provider = {spec!r} is not callable")
    return found  # type: ignore[no-any-return]


@dataclass
class Window:
    """Failures within the last ``seconds``, per key."""

    limit: int
    seconds: float
    seen: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self.seen[key]
        while q and q[0] <= now - self.seconds:
            q.popleft()
        return q

    def blocked_for(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: it may now)."""
        q = self._recent(key, now)
        return (q[0] + self.seconds - now) if len(q) >= self.limit else 0.0

    def fail(self, key: str, now: float) -> None:
        self._recent(key, now).append(now)
        if len(self.seen) > 10000:  # forget the quietest keys: this can only forgive
            for stale in [k for k, v in self.seen.items() if not v][:5000]:
                del self.seen[stale]

    def clear(self, key: str) -> None:
        self.seen.pop(key, None)


@dataclass(frozen=True)
class Outcome:
    staff_id: str | None
    reason: str  # ok | bad_password | unknown_account | limited | empty
    wait_seconds: float = 0.0


class Authenticator:
    def __init__(
        self,
        staff: dict[str, str],
        passwords: PasswordStore,
        attempts: LoginLog,
        registry: CollectorRegistry,
        provider: IdentityProvider | None = None,
        per_account: int = 5,
        per_address: int = 20,
        window_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.staff = staff
        self.passwords = passwords
        self.attempts = attempts
        self.provider = provider
        self.accounts = Window(per_account, window_seconds)
        self.addresses = Window(per_address, window_seconds)
        self.clock = clock
        self.counter = Counter(
            "unstuck_console_logins",
            "Sign-in attempts at the window console, by outcome",
            ["outcome"],
            registry=registry,
        )

    def sign_in(self, username: str, password: str, address: str) -> Outcome:
        now = self.clock()
        username = username.strip()
        wait = max(self.accounts.blocked_for(username, now), self.addresses.blocked_for(address, now))
        if wait > 0:
            outcome = Outcome(None, "limited", wait)
        elif not username or not password:
            outcome = Outcome(None, "empty")
        else:
            outcome = self._check(username, password)
            if outcome.staff_id is None:
                self.accounts.fail(username, now)
                self.addresses.fail(address, now)
            else:
                self.accounts.clear(username)
        self._record(username, address, outcome)
        return outcome

    def _check(self, username: str, password: str) -> Outcome:
        if self.provider is not None:
            try:
                found = self.provider(username, password)
            except Exception:
                log.exception("console: the identity provider failed for %r", username)
                found = None
            if found is not None:
                if found in self.staff:
                    return Outcome(found, "ok")
                log.warning("console: the identity provider named %r, who is not in [staff]", found)
                return Outcome(None, "unknown_account")
        if username not in self.staff:
            self.passwords.verify(username, password)  # as long as for a known account
            return Outcome(None, "unknown_account")
        if self.passwords.verify(username, password):
            return Outcome(username, "ok")
        return Outcome(None, "bad_password")

    def _record(self, username: str, address: str, outcome: Outcome) -> None:
        self.counter.labels(outcome.reason).inc()
        entry: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "username": username[:64],
            "address": address,
            "outcome": outcome.reason,
        }
        if outcome.staff_id:
            entry["staff"] = outcome.staff_id
        self.attempts.record(entry)
        level = logging.INFO if outcome.reason == "ok" else logging.WARNING
        log.log(level, "console sign-in %s: %r from %s", outcome.reason, username[:64], address)
