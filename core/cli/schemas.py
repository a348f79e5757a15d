"""``unstuck schemas export``: write the contract as JSON Schema files and the AsyncAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unstuck.schemas.asyncapi import ASYNCAPI_FILE
from unstuck.schemas.asyncapi import export as export_asyncapi
from unstuck.schemas.export import JSON_DIR, export


def register(sub: Any) -> None:
    p = sub.add_parser("schemas", help="the wire contract as JSON Schema and AsyncAPI")
    s = p.add_subparsers(dest="schemas_command", metavar="ACTION", required=True)
    e = s.add_parser("export", help="write schemas/json/*.json and schemas/asyncapi.yaml from the models")
    e.add_argument("--dir", type=Path, default=JSON_DIR, help=f"JSON Schema directory (default {JSON_DIR})")
    e.add_argument(
        "--asyncapi",
        type=Path,
        default=ASYNCAPI_FILE,
        help=f"AsyncAPI 3.0 document to write (default {ASYNCAPI_FILE})",
    )
    e.set_defaults(func=run_export)


def run_export(args: Any) -> int:
    written = export(args.dir)
    print(f"wrote {len(written)} schema files to {args.dir}")
    print(f"wrote the AsyncAPI document to {export_asyncapi(args.asyncapi)}")
    return 0
