"""``unstuck schemas export``: write the contract as JSON Schema files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unstuck.schemas.export import JSON_DIR, export


def register(sub: Any) -> None:
    p = sub.add_parser("schemas", help="the wire contract as JSON Schema")
    s = p.add_subparsers(dest="schemas_command", metavar="ACTION", required=True)
    e = s.add_parser("export", help="write schemas/json/*.json from the models")
    e.add_argument("--dir", type=Path, default=JSON_DIR, help=f"output directory (default {JSON_DIR})")
    e.set_defaults(func=run_export)


def run_export(args: Any) -> int:
    written = export(args.dir)
    print(f"wrote {len(written)} schema files to {args.dir}")
    return 0
