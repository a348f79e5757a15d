"""``unstuck schemas export``: write the contract as JSON Schema files and the AsyncAPI document, and the
case file format as docs/cases.md."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from unstuck.schemas import casedoc
from unstuck.schemas.asyncapi import ASYNCAPI_FILE
from unstuck.schemas.asyncapi import export as export_asyncapi
from unstuck.schemas.export import JSON_DIR, export

CASES_DOC = Path(__file__).resolve().parents[2] / "docs" / "cases.md"
"""docs/cases.md of a source checkout (the package's folders sit beside docs/ there)."""


def register(sub: Any) -> None:
    p = sub.add_parser("schemas", help="the wire contract as JSON Schema and AsyncAPI")
    s = p.add_subparsers(dest="schemas_command", metavar="ACTION", required=True)
    e = s.add_parser(
        "export",
        help="write schemas/json/*.json, schemas/asyncapi.yaml and docs/cases.md from the models",
    )
    e.add_argument("--dir", type=Path, default=JSON_DIR, help=f"JSON Schema directory (default {JSON_DIR})")
    e.add_argument(
        "--asyncapi",
        type=Path,
        default=ASYNCAPI_FILE,
        help=f"AsyncAPI 3.0 document to write (default {ASYNCAPI_FILE})",
    )
    e.add_argument(
        "--cases-doc",
        type=Path,
        help=f"the case file format page to write (default {CASES_DOC}, when that docs/ directory exists)",
    )
    e.set_defaults(func=run_export)


def sample_cases() -> list[tuple[str, str]]:
    """(file name, JSON text) of every sample case in examples/cases/, as installed."""
    files = resources.files("unstuck.samples").iterdir()
    return [(f.name, f.read_text(encoding="utf-8")) for f in files if f.name.endswith(".json")]


def render_cases_doc() -> str:
    """docs/cases.md as ``unstuck schemas export`` writes it."""
    return casedoc.render(sample_cases())


def run_export(args: Any) -> int:
    written = export(args.dir)
    print(f"wrote {len(written)} schema files to {args.dir}")
    print(f"wrote the AsyncAPI document to {export_asyncapi(args.asyncapi)}")
    target = args.cases_doc or CASES_DOC
    if args.cases_doc is None and not CASES_DOC.parent.is_dir():
        print(f"not writing the case file format: no {CASES_DOC.parent} here; pass --cases-doc FILE")
        return 0
    text = render_cases_doc()
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    print(f"wrote the case file format to {target}")
    return 0
