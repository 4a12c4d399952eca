"""``pipeline create -f``, ``pipeline get`` and ``pipeline delete``: resources through the API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.cli.operator import ApiError, api_request, show
from pipeline.config.loader import StrictLoader, yaml_files

#: YAML kind -> API path segment, in the order that satisfies references when creating.
API_PATHS = {"EventFilter": "filters", "Mutator": "mutators", "HookConfig": "hooks", "Handler": "handlers",
             "Pipeline": "pipelines", "CheckConfig": "checks", "Silenced": "silenced"}  # fmt: skip
KINDS = {path: kind for kind, path in API_PATHS.items()}


def _documents(source: Path) -> list[tuple[str, int, Any]]:
    files = yaml_files(source) if source.is_dir() else [source]
    found = []
    for path in files:
        try:
            for number, document in enumerate(yaml.load_all(path.read_text(), Loader=StrictLoader), start=1):
                if document is not None:
                    found.append((str(path), number, document))
        except (OSError, yaml.YAMLError) as exc:
            raise ApiError(f"{path}: {exc}") from None
    return found


def _order(item: tuple[str, int, Any]) -> tuple[int, int]:
    document = item[2]
    kind = document.get("type") if isinstance(document, dict) else None
    rank = list(API_PATHS).index(kind) if kind in API_PATHS else len(API_PATHS)
    is_set = isinstance(document, dict) and (document.get("spec") or {}).get("type") == "set"
    return rank, 1 if is_set else 0  # sets after the handlers they name


def cmd_create(args: argparse.Namespace) -> int:
    """Apply every document of a file or directory, one progress line each; exit 1 if any failed."""
    documents = sorted(_documents(args.file), key=_order)
    failed = 0
    for number, (file, index, document) in enumerate(documents, start=1):
        kind = document.get("type") if isinstance(document, dict) else None
        metadata = document.get("metadata") or {} if isinstance(document, dict) else {}
        name, namespace = metadata.get("name", ""), metadata.get("namespace") or args.namespace
        label = f"[{number}/{len(documents)}] {file}: document {index}: {kind} {name!r}"
        if kind not in API_PATHS:
            failed += 1
            print(f"{label}: unknown type (expected one of {', '.join(API_PATHS)})")
            continue
        base = f"/api/core/v2/namespaces/{namespace}/{API_PATHS[kind]}"
        if kind == "Silenced":
            response = api_request(args, "POST", base, json={"metadata": metadata, **(document.get("spec") or {})})
        else:
            response = api_request(args, "PUT", f"{base}/{name}", json=document)
        if response.status_code in (200, 201):
            print(f"{label}: saved")
        else:
            failed += 1
            print(f"{label}: {response.json().get('message', response.status_code)}")
    print(f"{len(documents) - failed} of {len(documents)} resources saved")
    return 1 if failed else 0


def cmd_get(args: argparse.Namespace) -> int:
    if args.kind not in KINDS:
        print(f"pipeline: unknown kind {args.kind!r} (one of {', '.join(KINDS)})", file=sys.stderr)
        return 2
    path = f"/api/core/v2/namespaces/{args.namespace}/{args.kind}" + (f"/{args.name}" if args.name else "")
    response = api_request(args, "GET", path)
    if response.status_code != 200:
        raise ApiError(response.json().get("message", f"HTTP {response.status_code}"))
    found = response.json()
    if args.name:
        print(json.dumps(found, indent=2))
        return 0
    rows = [[item.get("metadata", {}).get("name", ""), item.get("type") or item.get("action") or "",
             item.get("command") or item.get("reason") or ""] for item in found]  # fmt: skip
    return show(found, args, f"no {args.kind}", ["name", "type", "command"], rows)


def cmd_delete(args: argparse.Namespace) -> int:
    if args.kind not in KINDS:
        print(f"pipeline: unknown kind {args.kind!r} (one of {', '.join(KINDS)})", file=sys.stderr)
        return 2
    response = api_request(args, "DELETE", f"/api/core/v2/namespaces/{args.namespace}/{args.kind}/{args.name}")
    if response.status_code != 204:
        raise ApiError(response.json().get("message", f"HTTP {response.status_code}"))
    print(f"{args.kind} {args.name!r} deleted")
    return 0
