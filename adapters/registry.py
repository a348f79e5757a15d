"""Discovering adapters through the ``unstuck.adapters`` entry-point group."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from unstuck.plugins.loading import ALLOW_VARIABLE, LoadReport, load_entry_points, register_checked
from unstuck.schemas import CoordinationReply, CoordinationRequest, Department

from .hookspecs import AdapterSpec
from .isolation import in_worker_thread

GROUP = "unstuck.adapters"


class AdapterLoadError(RuntimeError):
    """An adapter that cannot be served; the message names it."""


class AdapterReplyError(RuntimeError):
    """An adapter's hook returned something that is not a reply; the message says what and the fix."""


NO_VERSION = "0.0.0"  # an adapter object served without a package (tests, ``serve_adapter``)


@dataclass
class LoadedAdapter:
    """One adapter behind its own plugin manager, so two adapters' hooks never mix."""

    name: str
    plugin: Any
    pm: pluggy.PluginManager
    department: Department
    version: str = NO_VERSION  # the version of the package that ships it

    @property
    def is_async(self) -> bool:
        """Whether the hook is ``async def`` (it runs on an event loop) rather than plain ``def`` (a thread)."""
        impls = self.pm.hook.unstuck_coordinate.get_hookimpls()
        return any(inspect.iscoroutinefunction(impl.function) for impl in impls)

    async def coordinate(self, request: CoordinationRequest) -> CoordinationReply:
        """The hook's answer: an ``async def`` hook is awaited here, a plain ``def`` one runs in a worker
        thread so that a blocking call in it (a database, an HTTP client, ``time.sleep``) blocks no loop."""
        if self.is_async:
            result = self.pm.hook.unstuck_coordinate(request=request)
        else:
            result = await in_worker_thread(self.pm.hook.unstuck_coordinate, request=request)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            raise AdapterReplyError(
                f"adapter {self.name}: unstuck_coordinate returned None for {request.request_id}; "
                "fix: return a CoordinationReply (or a dict of its fields) from every branch of the hook"
            )
        return result


def wrap_adapter(name: str, obj: Any, report: LoadReport | None = None) -> LoadedAdapter | None:
    """Turn an adapter object (or class, instantiated without arguments) into a served adapter."""
    report = report if report is not None else LoadReport()
    plugin = obj() if inspect.isclass(obj) else obj
    pm = pluggy.PluginManager("unstuck.adapter")
    pm.add_hookspecs(AdapterSpec)
    if not register_checked(pm, plugin, name, report):
        return None
    for hook in ("unstuck_department", "unstuck_coordinate"):
        if not getattr(pm.hook, hook).get_hookimpls():
            report.loaded.remove(name)
            report.broken[name] = f"adapter {name} does not implement {hook}"
            return None
    try:
        department = pm.hook.unstuck_department()
        if not isinstance(department, Department):
            department = Department.model_validate(department)
    except Exception as exc:
        report.loaded.remove(name)
        report.broken[name] = f"unstuck_department failed: {exc}"
        return None
    return LoadedAdapter(name=name, plugin=plugin, pm=pm, department=department)


def package_versions() -> dict[str, str]:
    """Entry-point name → the version of the distribution that declares it."""
    versions: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        if dist is not None and ep.name not in versions:
            versions[ep.name] = dist.version
    return versions


def discover(report: LoadReport | None = None) -> dict[str, LoadedAdapter]:
    """Every installed adapter by department code; broken ones land in ``report.broken``."""
    report = report if report is not None else LoadReport()
    found: dict[str, LoadedAdapter] = {}
    versions = package_versions()
    for name, obj in load_entry_points(GROUP, report):
        try:
            adapter = wrap_adapter(name, obj, report)
        except Exception as exc:
            report.broken[name] = f"{type(exc).__name__}: {exc}"
            continue
        if adapter is None:
            continue
        adapter.version = versions.get(name, NO_VERSION)
        code = adapter.department.code
        if code in found:  # two packages answering for one department: keep the first, name the second
            report.loaded.remove(name)
            report.broken[name] = (
                f"department {code} is already answered by adapter {found[code].name}; "
                f"uninstall one, or exclude one with {ALLOW_VARIABLE}"
            )
            continue
        found[code] = adapter
    return found


def installed_departments(report: LoadReport | None = None) -> dict[str, str]:
    """Code → name of every installed adapter's department (the broker learns new departments here)."""
    return {code: adapter.department.name for code, adapter in discover(report).items()}
