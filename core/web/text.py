"""Simplified characters for mainland readers.

The label catalogue (``unstuck.schemas.labels``) and the broker's ``message_zh`` are written in
traditional characters; mainland staff and applicants read simplified ones, so the web apps convert
them when they show them, with OpenCC's ``t2s`` table (the converter mainland systems use).
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _converter() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


@functools.lru_cache(maxsize=4096)
def simplified(text: str) -> str:
    """``text`` in simplified characters (traditional ones converted, everything else unchanged)."""
    return str(_converter().convert(text)) if text else text
