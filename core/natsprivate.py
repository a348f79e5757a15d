"""The nats-py internals unstuck reaches, in this module only; each names the public API it lacks.

Everything else uses nats-py's public API. When nats-py grows these, replace the bodies here.
"""

from __future__ import annotations

from nats.aio.client import Client
from nats.js import JetStreamContext


def connection_of(js: JetStreamContext) -> Client:
    """The connection under a JetStream context (for plain publishes with headers and raw API requests).

    nats-py has no public accessor from a ``JetStreamContext`` to the ``Client`` it was made from.
    """
    return js._nc


def api_prefix_of(js: JetStreamContext) -> str:
    """The JetStream API subject prefix of a context (``$JS.API``, or a domain's prefix).

    nats-py keeps the prefix computed from ``prefix=`` and ``domain=`` private.
    """
    return str(getattr(js, "_prefix", "$JS.API"))


def server_requires_auth(nc: Client) -> bool:
    """True when the server's INFO said it requires authentication.

    nats-py exposes no public view of the server's INFO block (only a few fields, not auth_required).
    """
    return bool(nc._server_info.get("auth_required"))
