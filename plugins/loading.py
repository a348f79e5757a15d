"""Loading plugins the pluggy way: each entry point on its own, broken ones reported by name."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

log = logging.getLogger(__name__)

ALLOW_VARIABLE = "UNSTUCK_LOAD_PLUGINS"
"""Comma-separated entry-point names to load; unset loads all, empty loads none."""


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)


def allowed_names() -> set[str] | None:
    raw = os.environ.get(ALLOW_VARIABLE)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def iter_entry_points(group: str) -> list[EntryPoint]:
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def load_entry_points(group: str, report: LoadReport) -> list[tuple[str, Any]]:
    """Load every entry point of ``group`` that the allow-list admits; a failure is reported, not raised."""
    allow = allowed_names()
    out = []
    for ep in iter_entry_points(group):
        if allow is not None and ep.name not in allow:
            report.skipped.append(ep.name)
            continue
        try:
            out.append((ep.name, ep.load()))
        except Exception as exc:  # a broken plugin must not stop the others
            report.broken[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("plugin %s (%s) failed to load: %s", ep.name, ep.value, exc)
    return out


def register_checked(pm: pluggy.PluginManager, plugin: object, name: str, report: LoadReport) -> bool:
    """Register a plugin and verify its hook implementations; unregister it again if they are wrong."""
    try:
        pm.register(plugin, name=name)
        pm.check_pending()
    except (pluggy.PluginValidationError, ValueError) as exc:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        report.broken[name] = str(exc)
        log.error("plugin %s rejected: %s", name, exc)
        return False
    report.loaded.append(name)
    return True
