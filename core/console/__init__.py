"""The window console (``unstuck console``): the window staff's web app, acting on the bus only through
the API subjects ``unstuck.api.web.<staff>.<verb>`` as the NATS principal ``console`` (docs/console.md).

``serve_in_background(config, data_dir, nats_url=...)`` starts it inside a program's own event loop
(``unstuck demo --keep-running``); ``serve`` runs it in the foreground.
"""

from __future__ import annotations

from .app import create_app
from .context import Console, actions_for
from .server import RunningConsole, console_credential, serve, serve_in_background
from .store import PasswordError, PasswordStore

__all__ = [
    "Console",
    "PasswordError",
    "PasswordStore",
    "RunningConsole",
    "actions_for",
    "console_credential",
    "create_app",
    "serve",
    "serve_in_background",
]
