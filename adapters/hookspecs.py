"""The adapter API: what a department implements (project name ``unstuck.adapter``).

An adapter is a plain object (or module) with these hook implementations, published under the
entry-point group ``unstuck.adapters``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from unstuck.schemas import CoordinationReply, CoordinationRequest, Department

adapter_hookspec = pluggy.HookspecMarker("unstuck.adapter")
adapter_hookimpl = pluggy.HookimplMarker("unstuck.adapter")


class AdapterSpec:
    @adapter_hookspec(firstresult=True)
    def unstuck_department(self) -> Department:
        """Describe the department this adapter answers for (its code becomes the subject token)."""

    @adapter_hookspec(firstresult=True)
    def unstuck_coordinate(
        self, request: CoordinationRequest
    ) -> CoordinationReply | Awaitable[CoordinationReply]:
        """Answer one coordination request; called once per request_id (the host replays repeats)."""
