"""The broker's plugin manager: the built-in rules first, then outside plugins (called first, so they override)."""

from __future__ import annotations

from collections.abc import Mapping

import pluggy

from .hookspecs import BrokerSpec
from .loading import LoadReport, load_entry_points, register_checked
from .rules import ConfiguredEscalation, DeadlineRule, FailedWindowRouting, PhraseClassifier


def make_plugin_manager(
    working_days: Mapping[str, int],
    chains: Mapping[str, Mapping[str, str]],
    report: LoadReport | None = None,
) -> pluggy.PluginManager:
    """``working_days`` overrides the 1-3-5 table by category; ``chains``: escalation chain by department
    (and ``window``), as ``Config.escalation_chains()`` gives them."""
    report = report if report is not None else LoadReport()
    pm = pluggy.PluginManager("unstuck")
    pm.add_hookspecs(BrokerSpec)
    builtins: list[tuple[str, object]] = [
        ("builtin-deadlines", DeadlineRule(working_days)),
        ("builtin-classifier", PhraseClassifier()),
        ("builtin-routing", FailedWindowRouting()),
        ("builtin-escalation", ConfiguredEscalation(chains)),
    ]
    for name, plugin in builtins:
        register_checked(pm, plugin, name, report)
    for name, obj in load_entry_points("unstuck.plugins", report):
        try:
            plugin = obj() if isinstance(obj, type) else obj
        except Exception as exc:
            report.broken[name] = f"{type(exc).__name__}: {exc}"
            continue
        register_checked(pm, plugin, name, report)
    return pm
