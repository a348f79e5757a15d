"""What the commands share: connecting, calling the API, telling a refusal."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client

from unstuck.config import ConfigError, load_config
from unstuck.connection import Connection, NoServer, data_dir, require_server
from unstuck.natsconfig import CLI, acting_principal, credential_from_env, local_credential, staff_principal
from unstuck.schemas.subjects import api_subject
from unstuck.texttable import clean

T = TypeVar("T")


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_connection_args(parser: Any, data_dir_help: str | None = None) -> None:
    parser.add_argument(
        "--data-dir",
        help=data_dir_help or "where the embedded server keeps its data and URL (default .unstuck)",
    )
    parser.add_argument(
        "--config", type=Path, help="configuration file (default unstuck.toml, or $UNSTUCK_CONFIG)"
    )


def config_from(args: Any) -> Any:
    try:
        return load_config(getattr(args, "config", None))
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


class ApiCallError(CliError):
    """A request the broker refused (its ``ApiError``): printed by ``text`` in the staff's language."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(self._message(error), exit_code=1)
        self.error = error

    @staticmethod
    def _message(error: dict[str, Any]) -> str:
        message = str(error.get("message") or "request refused")
        return message + (f" (fix: {error['fix']})" if error.get("fix") else "")

    def text(self, lang: str = "zh") -> str:
        """``錯誤：`` and the broker's Chinese message (its English one when it sends none), or in
        English ``error:`` and the English message; then the stable code, e.g. ``[not_allowed]``."""
        zh = self.error.get("message_zh")
        if lang == "en":
            said = f"error: {self._message(self.error)}"
        else:
            said = f"錯誤：{zh or self._message(self.error)}"
        return clean(f"{said} [{self.error.get('code') or 'error'}]")


async def call(nc: Client, verb: str, body: dict[str, Any], timeout: float = 10.0) -> Any:
    """One API request; returns the result or raises ApiCallError with the broker's message."""
    try:
        # a staff member's (or department's) own credentials: its own subject, which proves who acts
        subject = api_subject(verb, getattr(nc, "acting_as", None) or acting_principal(credential_from_env()))
        msg = await nc.request(subject, json.dumps(body, ensure_ascii=False).encode(), timeout=timeout)
    except nats.errors.NoRespondersError as exc:
        raise CliError(
            "no broker answers on unstuck.api: start one with `unstuck serve`", exit_code=3
        ) from exc
    except nats.errors.TimeoutError as exc:
        raise CliError(
            f"the broker did not answer {verb} within {timeout:g}s; {unanswered(verb, body)}", exit_code=3
        ) from exc
    reply = json.loads(msg.data)
    if not reply.get("ok"):
        raise ApiCallError(reply.get("error") or {})
    return reply.get("result")


READS = frozenset({"case.get", "case.list", "accountability.list", "status"})
"""The verbs that only read: a request of one of them that went unanswered changed nothing."""


def unanswered(verb: str, body: dict[str, Any]) -> str:
    """After a request went unanswered: whether it may still be carried out, and how to check."""
    if verb in READS:
        return "it changes nothing, so ask again; if the broker keeps silent, look at its log and /healthz"
    if verb == "case.open":
        ref = body.get("client_ref")
        if isinstance(ref, str) and ref:
            return (
                "the case may still be opened: check with "
                f"`unstuck case list --client-ref {shlex.quote(ref)}` before opening it again "
                "(opening it again with the same client_ref gives the same case, never a second one)"
            )
        matter = body.get("matter")
        listing = (
            f"unstuck case list --matter {shlex.quote(matter)}"
            if isinstance(matter, str)
            else "unstuck case list"
        )
        return (
            "the case may still be opened, and this request has no client_ref to find it by: look for it "
            f"among the newest cases (listed last) of `{listing}` before opening it again; "
            "a case with a client_ref cannot be opened twice"
        )
    case_id = body.get("case_id")
    if isinstance(case_id, str) and case_id:
        return (
            f"it may still be carried out: check with `unstuck case show {shlex.quote(case_id)}` "
            "before asking again"
        )
    return "it may still be carried out: check with `unstuck status` before asking again"


def with_client(args: Any, work: Callable[[Client], Awaitable[T]], name: str = "unstuck-cli") -> T:
    """Connect to the running bus (NATS_URL or the embedded server here), run ``work``, disconnect."""
    try:
        url = require_server(data_dir(getattr(args, "data_dir", None)))
    except NoServer as exc:
        raise CliError(str(exc), exit_code=3) from exc

    directory = data_dir(getattr(args, "data_dir", None))
    staff = getattr(args, "actor", None) or os.environ.get("UNSTUCK_STAFF")
    # the environment's credentials, else the data directory's: the staff member's own, else the cli's
    auth = credential_from_env() or local_credential(
        directory, staff_principal(staff) if staff else CLI, fallback=CLI
    )

    async def run() -> T:
        conn = Connection(url=url)
        try:
            nc = await conn.connect(name, auth=auth, max_reconnect_attempts=2, allow_reconnect=False)
            nc.acting_as = acting_principal(auth)
        except Exception as exc:
            hint = ""
            if "authorization" in str(exc).lower():
                hint = (
                    "; the server requires credentials: set UNSTUCK_NATS_AUTH_FILE to your credentials file "
                    "(see `unstuck nats-config`) or UNSTUCK_NATS_USER and UNSTUCK_NATS_PASSWORD"
                )
            raise CliError(f"cannot connect to NATS at {url}: {exc}{hint}", exit_code=3) from exc
        try:
            return await work(nc)
        finally:
            await conn.close()

    return asyncio.run(run())


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True))
