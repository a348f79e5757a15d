"""The applicant's online channel (``unstuck portal``): report a matter a window could not do, look
its progress up by receipt code, rate it once closed. It acts on the bus only through the API subjects
``unstuck.api.as.portal.<verb>`` as the NATS principal ``portal`` (docs/portal.md).

``serve_in_background(config, nats_url=...)`` starts it inside a program's own event loop
(``unstuck demo --keep-running``, the tests); ``serve`` runs it in the foreground.
"""

from __future__ import annotations

from .app import create_app
from .context import Portal
from .limits import Buckets, Limits
from .server import RunningPortal, portal_credential, serve, serve_in_background

__all__ = [
    "Buckets",
    "Limits",
    "Portal",
    "RunningPortal",
    "create_app",
    "portal_credential",
    "serve",
    "serve_in_background",
]
