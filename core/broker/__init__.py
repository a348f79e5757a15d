"""The broker: the thin shell around the pure lifecycle, in parts (docs/architecture.md, "The broker's parts").

It follows the stream into the case book, serves the API on ``unstuck.api.>``, runs each command
through the pure ``decide``, appends the events, folds them in with ``evolve``, and acts on them:
coordination requests, notifications, metrics. ``Broker`` (root.py) wires the parts.
"""

from .errors import ApiFailure
from .root import Broker
from .transport import API_VERBS

__all__ = ["API_VERBS", "ApiFailure", "Broker"]
