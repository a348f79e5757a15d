"""JetStream out of storage mid-load: the API answers "unavailable", nothing is half-written, the
metric shows it, and service resumes once the storage limit is raised (a config reload, no restart)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import nats
import pytest

from unstuck.embedded import EmbeddedNats

from .harness import BUILTIN, Bus, Load, metric, record, scrape, verify, wait_for

pytestmark = pytest.mark.slow


async def test_out_of_storage_answers_unavailable_half_writes_nothing_and_resumes_when_storage_returns(
    nats_server_factory: Callable[..., EmbeddedNats], make_bus: Callable[..., Bus], tmp_path
) -> None:
    limits = tmp_path / "nats.conf"
    limits.write_text("jetstream { max_file_store: 400KB }\n")
    server = nats_server_factory(config_file=limits)
    observer = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.25)
    bus = make_bus(server.url)
    try:
        broker = bus.broker(adapters=BUILTIN).start()
        load = Load(server.url, "storage", total=200).start()
        await wait_for(
            lambda: load.error_codes["unavailable"] >= 40, 120, "the API answering unavailable a while"
        )
        accepted_when_full = len(load.accepted)
        unavailable_metric = metric(scrape(broker), "unstuck_api_errors_total", reason="unavailable")

        limits.write_text("jetstream { max_file_store: 64MB }\n")
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGHUP)  # the operator frees storage: reload, no restart
        repaired = time.monotonic()
        await load.finish()

        verdict = await verify(observer, server.url, tmp_path, "out_of_storage", load)
        recovery = load.first_ack_after(repaired)
        record(
            "out_of_storage",
            {
                **verdict.figures(),
                "accepted_before_fault": accepted_when_full,
                "unavailable_answers": load.error_codes["unavailable"],
                "unavailable_metric_while_full": int(unavailable_metric),
                "recovery_seconds": round(recovery, 2) if recovery is not None else None,
            },
        )
        assert broker.alive, broker.log_tail()
        assert unavailable_metric > 0  # unstuck_api_errors_total{reason="unavailable"}
        assert set(load.error_codes) == {"unavailable"}  # a clear error, never "internal"
        assert verdict.cases_in == 200
        assert verdict.lost == 0
        assert verdict.duplicated == 0
        assert verdict.count.half_written == []
        assert verdict.findings == 0, verdict.replay
        assert verdict.replay_exit == 0
        assert verdict.unsettled == []
    finally:
        await observer.close()
