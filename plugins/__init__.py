"""The broker's extension surface: pluggy hook specs and the built-in rules, registered as plugins."""

from .hookspecs import BrokerSpec, hookimpl, hookspec

__all__ = ["BrokerSpec", "hookimpl", "hookspec"]
