"""A request the broker does not answer in time: the command says whether it may still be carried out
and how to check, instead of leaving staff to guess whether to try again.

A real nats-server, and on the API subject a real subscriber that takes every request and never
replies (a broker stuck between receiving a request and answering it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from nats.aio.client import Client

from conftest import sample
from unstuck.cli.common import CliError, call
from unstuck.schemas.subjects import api_subject


@pytest_asyncio.fixture
async def silent_broker(nats_client: Client) -> AsyncIterator[Client]:
    """Something takes every API request and never answers (so the request waits, not 'no responders')."""
    sub = await nats_client.subscribe(api_subject(">"), queue="unstuck-broker")
    await nats_client.flush()
    yield nats_client
    await sub.unsubscribe()


async def unanswered(nc: Client, verb: str, body: dict[str, object]) -> CliError:
    with pytest.raises(CliError) as refused:
        await call(nc, verb, body, timeout=0.5)
    assert refused.value.exit_code == 3
    return refused.value


async def test_an_unanswered_case_open_with_a_client_ref_may_still_open_and_names_the_list_to_check(
    silent_broker,
):
    error = await unanswered(silent_broker, "case.open", sample("02", client_ref="front-desk 0002"))
    assert str(error) == (
        "the broker did not answer case.open within 0.5s; the case may still be opened: check with "
        "`unstuck case list --client-ref 'front-desk 0002'` before opening it again (opening it again with the "
        "same client_ref gives the same case, never a second one)"
    )


async def test_an_unanswered_case_open_without_a_client_ref_says_it_has_nothing_to_find_it_by(
    silent_broker,
):
    error = await unanswered(silent_broker, "case.open", sample("02"))  # sample() leaves out client_ref
    assert "the case may still be opened, and this request has no client_ref" in str(error)
    assert "`unstuck case list --matter name_registration`" in str(error)


async def test_an_unanswered_case_command_may_still_be_carried_out_and_names_case_show(silent_broker):
    body = {"case_id": "DD-20260928-0007", "actor": "w-li", "rating": "good"}
    error = await unanswered(silent_broker, "case.evaluate", body)
    assert str(error) == (
        "the broker did not answer case.evaluate within 0.5s; it may still be carried out: check with "
        "`unstuck case show DD-20260928-0007` before asking again"
    )


async def test_an_unanswered_read_changed_nothing_and_may_be_asked_again(silent_broker):
    error = await unanswered(silent_broker, "case.get", {"case_id": "DD-20260928-0007"})
    assert str(error) == (
        "the broker did not answer case.get within 0.5s; it changes nothing, so ask again; "
        "if the broker keeps silent, look at its log and /healthz"
    )
