"""The heads the broker recorded outside the stream, as a replay keeps them: one per case, so a
million-event record brings a hundred thousand of them."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from typing import Any

from unstuck.envelope import HEX64

Head = tuple[int, str, int]
"""A recorded head, compactly: (seq, hash, stream seq)."""


def compact_head(value: Head | Mapping[str, Any]) -> Head:
    if isinstance(value, tuple):
        return value
    try:
        return int(value.get("seq", -1)), str(value.get("hash", "")), int(value.get("stream_seq", 0))
    except (TypeError, ValueError):
        return -1, f"unreadable head value {value!r:.40}", 0


_NUMBERS = struct.Struct("<qQ")  # seq, stream seq


def _packed(head: Head) -> bytes | Head:
    """A head as 48 bytes (its seq, its stream seq and the 32 bytes its hash spells in hex): 81 bytes
    as an object, where the tuple of an int, a 64-character str and an int takes some 210. A head
    that is not of that shape (unreadable, or a hash that is not lowercase hex) stays a tuple."""
    seq, digest, stream_seq = head
    if HEX64.fullmatch(digest) and -(1 << 63) <= seq < 1 << 63 and 0 <= stream_seq < 1 << 64:
        return _NUMBERS.pack(seq, stream_seq) + bytes.fromhex(digest)
    return head


def _unpacked(value: bytes | Head) -> Head:
    if isinstance(value, tuple):
        return value
    seq, stream_seq = _NUMBERS.unpack_from(value)
    return seq, value[16:].hex(), stream_seq


class HeadBook(Mapping[str, Head]):
    """Recorded heads by case id, each kept packed (``_packed``) and read back as a ``Head``."""

    def __init__(self, heads: Mapping[str, Head | Mapping[str, Any]] | None = None) -> None:
        self._heads: dict[str, bytes | Head] = {}
        for case_id, value in (heads or {}).items():
            self.put(case_id, value)

    def put(self, case_id: str, value: Head | Mapping[str, Any]) -> None:
        self._heads[case_id] = _packed(compact_head(value))

    def drop(self, case_id: str) -> None:
        self._heads.pop(case_id, None)

    def __getitem__(self, case_id: str) -> Head:
        return _unpacked(self._heads[case_id])

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._heads

    def __iter__(self) -> Iterator[str]:
        return iter(self._heads)

    def __len__(self) -> int:
        return len(self._heads)

    def seq_of(self, case_id: str) -> int | None:
        """The recorded head's seq, or None (once per event: without unpacking the hash)."""
        value = self._heads.get(case_id)
        if value is None:
            return None
        if isinstance(value, tuple):
            return value[0]
        seq: int = _NUMBERS.unpack_from(value)[0]
        return seq

    def split(self, part_of: Any, parts: int) -> list[HeadBook]:
        """The heads shared out by ``part_of(case_id)`` into ``parts`` books, as they are kept."""
        books = [HeadBook() for _ in range(parts)]
        for case_id, value in self._heads.items():
            books[part_of(case_id)]._heads[case_id] = value
        return books

    def clear(self) -> None:
        self._heads.clear()
