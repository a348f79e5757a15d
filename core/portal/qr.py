"""``unstuck portal qr``: the portal's address as a QR code in SVG, for the poster beside the window."""

from __future__ import annotations

from pathlib import Path


def write_qr(url: str, out: Path, scale: int = 8) -> Path:
    """The QR code of ``url`` (error correction M, a quiet zone of 4 modules) written to ``out`` as SVG."""
    import segno

    code = segno.make(url, error="m", micro=False)
    code.save(
        str(out), kind="svg", scale=scale, border=4, title="“办不成事”网上反映", dark="#000", light="#fff"
    )
    return out
