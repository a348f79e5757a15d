"""Department adapters: the hook specs an adapter implements, the host that serves them on NATS,
and the built-in adapters for 人社局 (renshe), 市場監管局 (scjg) and 城管局 (chengguan)."""

from .hookspecs import AdapterSpec, adapter_hookimpl, adapter_hookspec

hookimpl = adapter_hookimpl

__all__ = ["AdapterSpec", "adapter_hookimpl", "adapter_hookspec", "hookimpl"]
