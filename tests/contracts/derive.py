"""Rebuild the project's Omnisend contract from Omnisend's official OpenAPI files.

The official files (one per API area, OpenAPI 3.0) live outside this repository, in
`../shared/omnisend/openapi/` beside a clone. This script keeps only the machine-checkable facts of
them (paths, methods, parameters, request and response schemas with their fields, types, enums,
limits and required lists, and the scopes each operation needs) and merges them into one JSON file
that the sandbox and the tests load. Prose (descriptions, summaries, examples) is dropped.

    python -m tests.contracts.derive            # rewrite tests/contracts/omnisend-<version>.json
    python -m tests.contracts.derive --check    # exit 1 when the committed file is out of date
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

API_VERSION = "2026-03-15"
AREAS = ("batches", "brands", "contacts")
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
OFFICIAL_DIR = REPO_ROOT.parent / "shared" / "omnisend" / "openapi"
CONTRACT_PATH = HERE / f"omnisend-{API_VERSION}.json"

# Keys that carry prose or presentation only; everything else is a fact we keep.
PROSE_KEYS = frozenset({"description", "summary", "example", "examples", "externalDocs", "x-default"})
# The per-operation rate limit is stated only in the description; it is a fact worth keeping.
RATE_LIMIT_PROSE = re.compile(r"rate limited to (\d+) requests per minute", re.IGNORECASE)


def _strip_prose(node: Any, *, in_properties: bool = False) -> Any:
    if isinstance(node, dict):
        kept = {}
        for key, value in node.items():
            # Inside "properties", keys are field names (a field could be called "description").
            if not in_properties and key in PROSE_KEYS:
                continue
            kept[key] = _strip_prose(value, in_properties=(key == "properties" and not in_properties))
        return kept
    if isinstance(node, list):
        return [_strip_prose(item) for item in node]
    return node


def _operation_facts(operation: dict) -> dict:
    facts = _strip_prose({k: v for k, v in operation.items() if k != "tags"})
    match = RATE_LIMIT_PROSE.search(operation.get("description", ""))
    if match:
        facts["x-rateLimitPerMinute"] = int(match.group(1))
    return facts


def _merge_named(target: dict, section: str, items: dict, source: str) -> None:
    for name, value in items.items():
        if name in target and target[name] != value:
            raise ValueError(f"{source}: components.{section}.{name} differs from another area's definition")
        target[name] = value


def derive(official_dir: Path = OFFICIAL_DIR) -> dict:
    """The facts-only contract of all areas, merged; raises when two areas disagree on a name."""
    contract: dict[str, Any] = {
        "x-apiVersion": API_VERSION,
        "x-sources": [],
        "servers": [],
        "paths": {},
        "components": {"parameters": {}, "requestBodies": {}, "schemas": {}},
    }
    for area in AREAS:
        source = f"{area}-{API_VERSION}.json"
        document = json.loads((official_dir / source).read_text(encoding="utf-8"))
        contract["x-sources"].append(source)
        for server in document.get("servers", []):
            if server not in contract["servers"]:
                contract["servers"].append(_strip_prose(server))
        for path, operations in document["paths"].items():
            if path in contract["paths"]:
                raise ValueError(f"{source}: path {path} is defined by two areas")
            contract["paths"][path] = {method: _operation_facts(op) for method, op in operations.items()}
        for section in ("parameters", "requestBodies", "schemas"):
            items = _strip_prose(document.get("components", {}).get(section, {}))
            _merge_named(contract["components"][section], section, items, source)
    return contract


def render(contract: dict) -> str:
    return json.dumps(contract, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-dir", type=Path, default=OFFICIAL_DIR)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    if not args.official_dir.is_dir():
        print(f"official OpenAPI folder not found: {args.official_dir}", file=sys.stderr)
        return 2
    text = render(derive(args.official_dir))
    if args.check:
        current = CONTRACT_PATH.read_text(encoding="utf-8") if CONTRACT_PATH.exists() else ""
        if current != text:
            print(f"{CONTRACT_PATH.name} is out of date; run python -m tests.contracts.derive", file=sys.stderr)
            return 1
        print(f"{CONTRACT_PATH.name} matches the official files")
        return 0
    CONTRACT_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {CONTRACT_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
