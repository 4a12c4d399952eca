"""``pipeline dump`` and ``pipeline restore``: every resource in ``sensuctl dump``'s format.

A dump is the documents ``sensuctl dump all`` writes: ``{type, api_version, metadata, spec}``,
as YAML documents split by ``---`` (``--format yaml``, the default) or one JSON object a line
(``--format wrapped-json``). ``restore`` reads either (a file ``sensuctl dump`` wrote too) and
sends every resource pipeline runs to the all-or-nothing apply endpoint in one request: on a
refusal nothing has changed. Entities, which have their own API, follow one by one; Sensu Go
kinds pipeline does not run (users, roles, ...) are named on stderr and left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from pipeline.cli.operator import ApiError, api_get, api_request, in_namespace, segment
from pipeline.cli.output import Bar

#: API list -> type, in the order a restore needs them (namespaces first, what names others before them).
DUMPED = [("namespaces", "Namespace"), ("assets", "Asset"), ("hooks", "HookConfig"), ("filters", "EventFilter"),
          ("mutators", "Mutator"), ("handlers", "Handler"), ("pipelines", "Pipeline"), ("checks", "CheckConfig"),
          ("silenced", "Silenced"), ("entities", "Entity")]  # fmt: skip
APPLIED = {kind for _, kind in DUMPED} - {"Entity"}
APPLY = "/api/pipeline/v1/apply"


def wrap(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """A resource as the API lists it (Sensu's flat JSON), as sensuctl dump writes it."""
    if kind == "Namespace":
        return {"type": kind, "api_version": "core/v2", "metadata": {}, "spec": {"name": item.get("name", "")}}
    spec = {k: v for k, v in item.items() if k != "metadata"}
    return {"type": kind, "api_version": "core/v2", "metadata": item.get("metadata") or {}, "spec": spec}


def collect(args: argparse.Namespace) -> list[dict[str, Any]]:
    kinds = DUMPED if args.all_namespaces else DUMPED[1:]  # namespaces are cluster-wide
    documents: list[dict[str, Any]] = []
    with Bar(len(kinds), "dumping", sys.stderr) as bar:
        for plural, kind in kinds:
            where = f"/api/core/v2/{plural}" if args.all_namespaces else in_namespace(args, plural)
            documents += [wrap(kind, item) for item in api_get(args, where)]
            bar.advance()
    return documents


def render(documents: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "wrapped-json":
        return "".join(json.dumps(document) + "\n" for document in documents)
    import yaml

    return "---\n".join(yaml.safe_dump(document, sort_keys=False) for document in documents)


def cmd_dump(args: argparse.Namespace) -> int:
    documents = collect(args)
    text = render(documents, args.format)
    if args.file is None:
        sys.stdout.write(text)
    else:
        args.file.write_text(text)
        counts = Counter(document["type"] for document in documents)
        print(f"{len(documents)} resources written to {args.file}: " + ", ".join(f"{n} {k}" for k, n in counts.items()),
              file=sys.stderr)  # fmt: skip
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from pipeline.cli.resources import print_refusals
    from pipeline.config.documents import read_file

    documents, error = read_file(args.file)
    if error is not None:
        print(f"pipeline: {error}", file=sys.stderr)
        print("nothing restored", file=sys.stderr)
        return 1
    applied = [d for d in documents if isinstance(d.data, dict) and d.data.get("type") in APPLIED]
    entities = [d for d in documents if isinstance(d.data, dict) and d.data.get("type") == "Entity"]
    left = Counter(str(d.data.get("type") if isinstance(d.data, dict) else "?") for d in documents
                   if d not in applied and d not in entities)  # fmt: skip
    for kind, count in sorted(left.items()):
        print(f"left out: {count} {kind} (pipeline does not run them)", file=sys.stderr)
    response = api_request(args, "POST", APPLY, json=[d.data for d in applied], timeout=120.0)
    if response.status_code != 200:
        print_refusals(response, applied)
        print("nothing restored", file=sys.stderr)
        return 1
    with Bar(len(entities), "entities", sys.stderr) as bar:
        for document in entities:
            put_entity(args, document.data)
            bar.advance()
    print(f"{len(applied) + len(entities)} resources restored from {args.file}")
    return 0


def put_entity(args: argparse.Namespace, document: dict[str, Any]) -> None:
    metadata = document.get("metadata") or {}
    namespace, name = metadata.get("namespace") or args.namespace, metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(f"{args.file}: an Entity without metadata.name")
    body = {**(document.get("spec") or {}), "metadata": {**metadata, "namespace": namespace}}
    path = f"/api/core/v2/namespaces/{segment(namespace, 'metadata.namespace')}/entities/{segment(name, 'name')}"
    api_request(args, "PUT", path, expect=201, json=body)
