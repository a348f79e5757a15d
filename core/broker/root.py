"""The composition root: builds the broker's parts, wires them, starts and stops them.

No part imports this module. Callers (the running bus, tests, the benchmarks) use ``Broker`` as the
facade: it keeps the names they use and forwards to the part that does the work.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import pluggy
from nats.aio.client import Client

from unstuck import lifecycle as lc
from unstuck.clock import WALL, Clock, WallClock, local_date
from unstuck.config import Config
from unstuck.coordinator import Coordinator
from unstuck.eventstore import EventStore
from unstuck.ledger import Ledger, Projector
from unstuck.metrics import Metrics
from unstuck.plugins.manager import make_plugin_manager
from unstuck.workcalendar import WorkingCalendar

from .api import Api
from .background import Background
from .casebook import CaseBook
from .commands import CommandRunner
from .coordination import Outcomes, Requests
from .deadlines import DeadlineTicker
from .departments import Departments
from .gauges import CaseGauges
from .health import HeadKeeper, HealthWatcher
from .ids import CaseIds, ClientRefs
from .ledgerview import LedgerView
from .notifier import Notifier
from .opening import CaseOpener
from .quota import ApplicantQuota
from .reactions import Reactions
from .rules import Rules
from .snapshots import SnapshotKeeper
from .status import StatusReport
from .transport import API_VERBS, ApiTransport

log = logging.getLogger(__name__)

MEMORY_LEDGER = "sqlite://"
"""The ledger of a broker built without one and with no ``[ledger] url``: in memory, for its lifetime."""


class Broker:
    def __init__(
        self,
        nc: Client,
        config: Config,
        clock: Clock,
        departments: Mapping[str, str] | None = None,
        calendar: WorkingCalendar | None = None,
        metrics: Metrics | None = None,
        plugins: pluggy.PluginManager | None = None,
        wall: WallClock = WALL,
        ledger: Ledger | None = None,
    ) -> None:
        """``departments``: code -> name of the departments the caller knows of (installed adapters);
        every configured department is added. ``clock`` is the case clock, ``wall`` the wall clock.
        ``ledger``: the ledger database the broker projects the stream into and answers lists from
        (``unstuck serve`` opens the configured one); without one, ``[ledger] url`` if set, else an
        in-memory SQLite database that lives as long as the broker."""
        self.ledger, self._own_ledger = ledger, ledger is None
        self.nc, self.js, self.config, self.clock = nc, nc.jetstream(), config, clock
        self.departments = dict(departments or {})
        for code in config.department_codes():
            self.departments.setdefault(code, config.department(code).name or code)
        self.metrics = metrics or Metrics(self.departments, API_VERBS, policy=config.retry_policy)
        self.metrics.use_clock(lambda: clock.now().timestamp())
        self.calendar = calendar or WorkingCalendar(
            config.deadlines.calendar_override, on_unknown_year=self.metrics.on_unknown_year
        )
        pm = plugins or make_plugin_manager(config.deadlines.working_days, config.escalation_chains())
        self.store = store = EventStore(self.js, stream=config.broker.stream, replicas=config.broker.replicas)
        self.background = background = Background()
        self.book = book = CaseBook(store, self.metrics.stream_rejected.inc)
        book.invites_ratings = config.deadlines.invite_rating_days > 0
        self.gauges, refs = CaseGauges(self.metrics), ClientRefs()
        self.quota = quota = ApplicantQuota(config.limits, clock)
        book.observers += [self.gauges.account, refs.observe, quota.observe]
        self.directory = Departments(nc, self.departments, on_learned=self.metrics.add_department)
        rules = Rules(pm, self.calendar, config, clock, self.departments, self.directory.chains)
        self.heads = HeadKeeper(book, store)
        runner = CommandRunner(
            book, store, clock, wall, self.metrics, react=lambda _: None, unsure=self.heads.mark_unsure
        )
        self.coordinator = Coordinator(
            nc, config, self.metrics, Outcomes(book.state_of, runner.execute, rules, pm), wall
        )
        self.requests = Requests(book.state_of, self.coordinator.ensure)
        self.notifier = notifier = Notifier.of(self.js, background.spawn, book.state_of, self.metrics, config)
        # bound last: what follows an event reaches the runner again (through the coordinator)
        runner.react = Reactions(
            book.state_of, self.requests.ask, notifier.notify, self.metrics, self.calendar, clock, pm
        ).after
        self.ticker = DeadlineTicker(book.states, rules, runner, background)
        self.report = StatusReport(
            self.departments,
            self.coordinator,
            self.metrics.waiting,
            self.gauges.stalled_counts,
            book,
            clock,
            wall,
            self.calendar_warnings,
        )
        ids = CaseIds(self.js, config.broker.case_prefix, config.broker.replicas, clock)
        opener = CaseOpener(book, runner, ids, refs, quota, rules)
        self.ledger_view = LedgerView(book, clock)
        reads = (store.read_case, self.ledger_view, opener.open, self.report.status, self.ticker.tick)
        identity = (config.broker.require_identity, config.broker.online_owner)
        api = Api(book, runner, rules, *reads, self.directory.ensure, *identity)
        self.transport = ApiTransport(nc, api.handlers, config, self.metrics, background)
        self.watcher = HealthWatcher(
            nc, self.js, book, self.heads, self.metrics, background, calendar_warnings=self.calendar_warnings
        )
        self.snapshots = SnapshotKeeper(self.js, book, quota, replicas=config.broker.replicas)
        self._subs: list[Any] = []
        self.projector: Projector | None = None
        # the facade: the names callers use, each answered by its part
        self.states, self.stream_seqs, self.state_of = book.states, book.stream_seqs, book.state_of
        self.stalled_counts, self._on_stored = self.gauges.stalled_counts, book.on_stored
        self.handle, self.health = self.transport.handle, self.watcher.health
        self.status, self.tick = self.report.status, self.ticker.tick

    async def start(self, serve_api: bool = True) -> None:
        await self.store.ensure()
        await self.notifier.ensure()
        self.watcher.stream_ok = True
        start_seq = await self._restore()
        self._subs.append(await self.book.follow(start_seq))
        await self.book.wait_caught_up()
        if start_seq == 1 and self.book.applied_seq > 0:  # read from the start: never again
            await self._snapshot()
        await self._start_ledger()
        self.directory.remember(
            c.department for state in self.book.states.values() for c in state.coordinations.values()
        )
        for code in self.departments:
            self.metrics.add_department(code)
        self.metrics.nats_connected.set(1)
        self.metrics.stream_ready.set(1)
        self.requests.resume(self.book.states.values())
        await self._revise_due_dates()
        if serve_api:
            self._subs.append(await self.transport.subscribe())
        self.background.spawn(self.watcher.watch())
        self.background.spawn(self.heads.reconcile_recent())
        self.background.spawn(self._snapshot_every(self.config.broker.snapshot_seconds))
        self.background.spawn(self.directory.keep_discovering(self.config.broker.discovery_seconds))
        await self.nc.flush()

    def calendar_warnings(self) -> list[str]:
        """What operators must do about the working calendar today (``unstuck status``, ``/healthz``)."""
        return self.calendar.schedule_warnings(local_date(self.clock.now()))

    async def _revise_due_dates(self) -> None:
        """Recount the provisional due dates on the calendar this broker started with."""
        try:
            await self.ticker.revise_due_dates()
        except Exception:  # the next tick after the calendar changes tries again
            log.exception("due dates not recounted at start-up")

    async def _start_ledger(self) -> None:
        """Open the ledger if the caller gave none, and project the stream into it from now on."""
        if self.ledger is None:
            settings = self.config.ledger
            self.ledger = await asyncio.to_thread(
                Ledger.open,
                settings.url or MEMORY_LEDGER,
                key_file=settings.applicant_key_file,
                personal_data=settings.personal_data,
                key=None if settings.url or settings.applicant_key_file else secrets.token_bytes(32),
            )
        self.ledger_view.ledger = self.ledger
        if self.config.ledger.in_broker:
            self.projector = Projector(self.js, self.store.stream, self.ledger)
            self.ledger_view.projector = self.projector
            self.background.spawn(self.projector.run())

    async def _restore(self) -> int:
        """Start from the stored snapshot of the open cases, checked against the chain: the stream
        sequence to follow from (1 without a usable snapshot)."""
        last = await self.store.last_seq()
        snapshot = await self.snapshots.load(last) if last else None
        if snapshot is None:
            return 1
        self.book.restore(snapshot.states, snapshot.known_cases, snapshot.covers)
        self.quota.restore(snapshot.quota)
        wrong = await self.snapshots.verify(snapshot)
        if wrong:
            log.warning(
                "the snapshot of %s disagrees with the stream on %d case(s) (%s): read back from their subjects",
                self.store.stream,
                len(wrong),
                ", ".join(sorted(wrong)[:5]),
            )
            for case_id in wrong:
                self.book.states.pop(case_id, None)
                self.book.stream_seqs.pop(case_id, None)
                await self.book.load(case_id)
        for state in self.book.states.values():  # the gauges count what the snapshot brought back
            self.gauges.account(lc.CaseState(case_id=state.case_id), state, "snapshot")
        self.snapshots.saved_covers = snapshot.covers
        return snapshot.covers + 1

    async def _snapshot(self) -> None:
        try:
            await self.snapshots.save()
        except Exception as exc:  # the next one will do: start-up then reads a longer tail
            log.warning("snapshot of the open cases not stored: %s", exc)

    async def _snapshot_every(self, seconds: float) -> None:
        while not self.background.stopping.is_set():
            await self.background.pause(seconds)
            if self.book.applied_seq > self.snapshots.saved_covers and not self.background.stopping.is_set():
                await self._snapshot()

    def start_ticker(self, interval: float) -> None:
        """Run the deadline watcher every ``interval`` seconds until the broker stops."""
        self.background.spawn(self.ticker.run(interval))

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        self._subs.clear()
        self.background.stopping.set()
        if self.projector is not None:
            self.projector.stop()
        await self.coordinator.stop()
        await self.background.stop()
        if self.book.caught_up.is_set() and self.book.applied_seq > self.snapshots.saved_covers:
            await self._snapshot()
        await self.store.heads.close()
        if self._own_ledger and self.ledger is not None:
            await asyncio.to_thread(self.ledger.close)

    @property
    def applied_seq(self) -> int:
        return self.book.applied_seq
