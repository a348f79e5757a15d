"""Plain-text tables that line up with Chinese text, drawn by rich (a wide character takes two columns).

Shared by the CLI, the demo and the conformance report; not part of the CLI itself. What a table
shows comes from cases and departments (an applicant's name, a matter's title, a department's
message): ``clean`` takes out every terminal escape sequence and control character first, so no
value can colour, move the cursor of, retitle or clear the terminal it is printed on. The tables are
plain text whether or not the output is a terminal: no colours, the same bytes in a pipe.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

_ESCAPE = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]               # CSI: colours, cursor moves, erasing (ESC [ ... final)
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?    # OSC: window title, hyperlinks (ESC ] ... BEL or ST)
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?         # DCS, SOS, PM, APC strings (... ST)
    | \x1b[ -/]*[0-~]?                      # any other escape sequence, or a lone ESC
    | \x9b[0-?]*[ -/]*[@-~]                 # CSI in its 8-bit form
    """,
    re.X,
)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 control characters, and the bidirectional overrides that make text read other than stored."""


def clean(value: Any) -> str:
    """``value`` as text a terminal shows as it is: escape sequences and control characters taken out
    (a tab or line break becomes a space)."""
    text = _ESCAPE.sub("", "" if value is None else str(value))
    return _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "", text)


def text_width(text: str) -> int:
    """Terminal columns ``text`` takes (a Chinese character two)."""
    return cell_len(text)


def clip(text: str, width: int) -> str:
    """At most ``width`` columns, cut with an ellipsis."""
    if cell_len(text) <= width:
        return text
    cut = Text(text)
    cut.truncate(width, overflow="ellipsis")
    return cut.plain


_RULED = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)
"""No lines but a dashed rule under the headers, one run per column."""


def table(headers: Sequence[str] | None, rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """``rows`` under ``headers`` (None: no heading), columns two spaces apart; the columns in
    ``right`` right-aligned."""
    shown = headers if headers is not None else [""] * max((len(r) for r in rows), default=0)
    grid = Table(
        box=_RULED,
        show_edge=False,
        show_header=headers is not None,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        expand=False,
    )
    for i, header in enumerate(shown):
        grid.add_column(Text(clean(header)), justify="right" if i in right else "left", no_wrap=True)
    for row in rows:
        grid.add_row(*(Text(clean(value)) for value in row))
    out = io.StringIO()
    Console(file=out, width=100_000, color_system=None, force_terminal=False, legacy_windows=False).print(
        grid
    )
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").split("\n"))


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"
