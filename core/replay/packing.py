"""A replayed case state packed into a few hundred bytes, and back: how a long replay keeps memory
bounded by the number of cases rather than by the size of their states.

A ``CaseState`` with its intake, coordinations and closing takes some 2.5 KB as Python objects.
Packed, it is a tuple of plain values (times as ISO text, dates as day numbers, enums as their
values, a coordination as a tuple) serialised with ``marshal`` (about 1.2 KB), deflated against a
dictionary made from another state of the same record (``dictionary_of``): a few hundred bytes. A
state holding something else than those plain values (a pending extension keeps dates) is pickled
instead. Packing is exact: ``unpack_state(pack_state(s, d), d) == s``.

Packed bytes are only ever read back by the replay that packed them (or its worker processes):
they are not a storage format, and the pickled ones must never come from anywhere else.
"""

from __future__ import annotations

import marshal
import operator
import pickle
import zlib
from dataclasses import fields
from datetime import date, datetime
from typing import Any

from unstuck import lifecycle as lc
from unstuck.schemas.coordination import Outcome

_STATE_FIELDS = tuple(f.name for f in fields(lc.CaseState))
_COORDINATION_FIELDS = tuple(f.name for f in fields(lc.Coordination))
_state_values = operator.attrgetter(*_STATE_FIELDS)
_coordination_values = operator.attrgetter(*_COORDINATION_FIELDS)
# the slots' own setters: they bypass the frozen dataclass's __setattr__, as its __init__ does
_STATE_SETTERS = tuple(getattr(lc.CaseState, name).__set__ for name in _STATE_FIELDS)
_COORDINATION_SETTERS = tuple(getattr(lc.Coordination, name).__set__ for name in _COORDINATION_FIELDS)

# where the values that are not plain sit, in the state and in a coordination
_S = {name: i for i, name in enumerate(_STATE_FIELDS)}
_C = {name: i for i, name in enumerate(_COORDINATION_FIELDS)}
STATE_TIMES = (_S["opened_at"], _S["last_event_at"])
_STATUS, _DUE, _BASIS, _ESCALATIONS, _COORDINATIONS = (
    _S["state"],
    _S["due_date"],
    _S["due_basis"],
    _S["escalations"],
    _S["coordinations"],
)
_C_DEADLINE, _C_STATUS, _C_OUTCOME, _C_REQUESTED = (
    _C["deadline"],
    _C["status"],
    _C["outcome"],
    _C["requested_at"],
)

_CASE_STATUS: dict[str, lc.CaseStatus | str] = {"": "", **{m.value: m for m in lc.CaseStatus}}
_COORDINATION_STATUS = {m.value: m for m in lc.CoordinationStatus}
_OUTCOME = {m.value: m for m in Outcome}

_MARSHAL = b"m"
_PICKLE = b"p"
_WBITS = 13  # an 8 KB window: the dictionary and a state fit in it, and it is cheap to set up


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _plain_coordination(c: lc.Coordination) -> tuple[Any, ...]:
    values = list(_coordination_values(c))
    values[_C_DEADLINE] = c.deadline.toordinal()
    values[_C_STATUS] = str(c.status)
    values[_C_OUTCOME] = None if c.outcome is None else str(c.outcome)
    values[_C_REQUESTED] = _iso(c.requested_at)
    return tuple(values)


def _coordination(values: list[Any]) -> lc.Coordination:
    values[_C_DEADLINE] = date.fromordinal(values[_C_DEADLINE])
    values[_C_STATUS] = _COORDINATION_STATUS[values[_C_STATUS]]
    outcome = values[_C_OUTCOME]
    values[_C_OUTCOME] = None if outcome is None else _OUTCOME[outcome]
    values[_C_REQUESTED] = _time(values[_C_REQUESTED])
    new = object.__new__(lc.Coordination)
    for setter, value in zip(_COORDINATION_SETTERS, values, strict=True):
        setter(new, value)
    return new


def _plain(state: lc.CaseState) -> tuple[Any, ...]:
    """The state as a tuple of values ``marshal`` can write."""
    values = list(_state_values(state))
    for i in STATE_TIMES:
        values[i] = _iso(values[i])
    values[_STATUS] = str(state.state)
    values[_DUE] = None if state.due_date is None else state.due_date.toordinal()
    basis = state.due_basis
    values[_BASIS] = None if basis is None else (basis[0].isoformat(), basis[1])
    values[_ESCALATIONS] = {d: (level, at.isoformat()) for d, (level, at) in state.escalations.items()}
    values[_COORDINATIONS] = [_plain_coordination(c) for c in state.coordinations.values()]
    return tuple(values)


def _from_plain(values: list[Any]) -> lc.CaseState:
    for i in STATE_TIMES:
        values[i] = _time(values[i])
    values[_STATUS] = _CASE_STATUS[values[_STATUS]]
    due = values[_DUE]
    values[_DUE] = None if due is None else date.fromordinal(due)
    basis = values[_BASIS]
    values[_BASIS] = None if basis is None else (datetime.fromisoformat(basis[0]), basis[1])
    values[_ESCALATIONS] = {
        d: (level, datetime.fromisoformat(at)) for d, (level, at) in values[_ESCALATIONS].items()
    }
    coordinations = [_coordination(list(c)) for c in values[_COORDINATIONS]]
    values[_COORDINATIONS] = {c.request_id: c for c in coordinations}
    new = object.__new__(lc.CaseState)
    for setter, value in zip(_STATE_SETTERS, values, strict=True):
        setter(new, value)
    return new


def _serialised(state: lc.CaseState) -> bytes:
    try:
        return _MARSHAL + marshal.dumps(_plain(state))
    except ValueError:  # something marshal cannot write (the dates of a pending extension)
        return _PICKLE + pickle.dumps(state, protocol=5)


def dictionary_of(state: lc.CaseState) -> bytes:
    """A compression dictionary made from one state: what the states of a record have in common
    (field values of the same shape, the intake's keys, departments, staff, the usual texts) is then
    not repeated in every packed state. Only the size of a packed state depends on it."""
    return _serialised(state)


def pack_state(state: lc.CaseState, dictionary: bytes = b"") -> bytes:
    """The state as compact bytes: serialised, then deflated against ``dictionary``."""
    packer = zlib.compressobj(1, zlib.DEFLATED, _WBITS, 3, zdict=dictionary or b"\0")
    return packer.compress(_serialised(state)) + packer.flush()


def unpack_state(packed: bytes, dictionary: bytes = b"") -> lc.CaseState:
    """The state ``pack_state`` packed with the same dictionary, equal to the original."""
    unpacker = zlib.decompressobj(_WBITS, zdict=dictionary or b"\0")
    raw = unpacker.decompress(packed) + unpacker.flush()
    if raw[:1] == _MARSHAL:
        return _from_plain(list(marshal.loads(raw[1:])))
    state: lc.CaseState = pickle.loads(raw[1:])
    return state
