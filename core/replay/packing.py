"""A replayed case state packed into a few hundred bytes, and back: how a long replay keeps memory
bounded by the number of cases rather than by the size of their states.

A ``CaseState`` with its intake, coordinations and closing takes some 2.5 KB as Python objects;
pickled it is about 1.4 KB, and deflated against a dictionary made from another state of the same
record (``dictionary_of``) a few hundred bytes. Packing and unpacking are exact:
``unpack_state(pack_state(s, d), d) == s``.

The pickler is given its own reducers for the state's classes (the state, a coordination, the
status enums) instead of the dataclass defaults, which look up the fields again for every object.
"""

from __future__ import annotations

import copyreg
import io
import operator
import pickle
import zlib
from dataclasses import fields
from enum import Enum
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

_ENUMS: tuple[type[Enum], ...] = (lc.CaseStatus, lc.CoordinationStatus, Outcome)
_MEMBERS = {(cls.__name__, m.value): m for cls in _ENUMS for m in cls}


def _state(values: tuple[Any, ...]) -> lc.CaseState:
    new = object.__new__(lc.CaseState)
    for setter, value in zip(_STATE_SETTERS, values, strict=True):
        setter(new, value)
    return new


def _coordination(values: tuple[Any, ...]) -> lc.Coordination:
    new = object.__new__(lc.Coordination)
    for setter, value in zip(_COORDINATION_SETTERS, values, strict=True):
        setter(new, value)
    return new


def _member(cls_name: str, value: str) -> Enum:
    return _MEMBERS[cls_name, value]


def _reduce_enum(member: Enum) -> tuple[Any, ...]:
    return _member, (type(member).__name__, member.value)


_REDUCERS: dict[type, Any] = {
    **copyreg.dispatch_table,
    lc.CaseState: lambda s: (_state, (_state_values(s),)),
    lc.Coordination: lambda c: (_coordination, (_coordination_values(c),)),
    **dict.fromkeys(_ENUMS, _reduce_enum),
}


def _pickled(state: lc.CaseState) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.dispatch_table = _REDUCERS
    pickler.dump(state)
    return buffer.getvalue()


def dictionary_of(state: lc.CaseState) -> bytes:
    """A compression dictionary made from one state: what the states of a record have in common
    (field and class names, the intake's keys, departments, staff, the usual texts) is then not
    repeated in every packed state. Only the size of a packed state depends on it."""
    return _pickled(state)


def pack_state(state: lc.CaseState, dictionary: bytes = b"") -> bytes:
    """The state as compact bytes: pickled with the reducers above, then deflated against ``dictionary``."""
    packer = zlib.compressobj(1, zdict=dictionary) if dictionary else zlib.compressobj(1)
    return packer.compress(_pickled(state)) + packer.flush()


def unpack_state(packed: bytes, dictionary: bytes = b"") -> lc.CaseState:
    """The state ``pack_state`` packed with the same dictionary, equal to the original.

    Only for bytes this process or a replay worker packed: they are unpickled.
    """
    unpacker = zlib.decompressobj(zdict=dictionary) if dictionary else zlib.decompressobj()
    state: lc.CaseState = pickle.loads(unpacker.decompress(packed) + unpacker.flush())
    return state
