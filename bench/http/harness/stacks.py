#!/usr/bin/env python3
"""Summarise py-spy raw (collapsed) stacks: where the server's time goes, by component.

Each sample is charged to ONE component: first to a cost centre (SCOPES) if any frame of its stack
is one (so the ORM work inside the token lookup counts as auth), else, walking from the leaf
towards the root, to the first frame that a RULE matches (so ORM work called from a resolver
counts as ORM). Also prints the inclusive share
of named functions (auth, parse, validate, execute, optimizer, JSON...) and the top self frames.

usage: stacks.py FILE.txt[.gz] [--top 25] [--cpu-ms MS_PER_REQUEST]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import re

# Cost centres: a sample belongs to the first whose regex matches ANY frame of its stack.
SCOPES = [
    ("relay id: Node.resolve_id_attr annotation scan", r"resolve_id_attr|resolve_model_id_attr"),
    ("rate limits (project/ratelimit.hit, Redis)", r"^hit \(project/ratelimit"),
    ("auth: bearer token -> Actor (schema/http.resolve_actor)", r"^resolve_actor \(schema/http"),
    ("auth: Actor permissions (membership query)", r"_load_permissions"),
    ("workspace check (_in_workspace / workspace_for)", r"_in_workspace|workspace_for"),
    ("graphql parse + validate", r"^(parse|validate) \(graphql/|ParserCache|ValidationCache"),
    (
        "optimizer: shaping the QuerySet",
        r"^(optimize|DjangoOptimizerExtension\.optimize) \(strawberry_django",
    ),
    ("JSON encode of the response", r"encode_json|^dumps \(json|JsonResponse"),
]
SCOPES_C = [(name, re.compile(rx)) for name, rx in SCOPES]

# (component, regex on "function (path)"), tried in order on each frame, leaf first.
RULES = [
    ("DB driver (psycopg, pool)", r"\((psycopg|psycopg_pool)/"),
    (
        "ORM: SQL compile",
        r"SQLCompiler\.(as_sql|compile|get_|setup_query|pre_sql_setup|collapse_group_by|quote)|\(django/db/models/(sql/where|expressions|lookups|functions)",
    ),
    (
        "ORM: rows -> model instances",
        r"Model\.from_db|Model\.__init__|ModelIterable|SQLCompiler\.(results_iter|apply_converters|execute_sql|has_results)|\(django/db/backends/",
    ),
    (
        "ORM: prefetch machinery",
        r"prefetch_related_objects|prefetch_one_level|get_prefetch_quer|_prefetch_related_objects|\(django/db/models/fields/related_descriptors",
    ),
    (
        "ORM: QuerySet/Query building",
        r"\(django/db/models/(query|sql/query|query_utils|manager|base|fields/__init__|options)",
    ),
    ("strawberry-django optimizer", r"\(strawberry_django/optimizer"),
    ("strawberry-django fields/relay/pagination", r"\(strawberry_django/"),
    ("strawberry relay (GlobalID, connection)", r"\(strawberry/relay/"),
    (
        "graphql-core parse/validate",
        r"\(graphql/(language|validation)/|ParserCache|ValidationCache",
    ),
    ("graphql-core execution", r"\(graphql/"),
    (
        "strawberry schema/extensions/types",
        r"\(strawberry/(schema|extensions|types|utils|annotation|field)",
    ),
    ("strawberry HTTP view", r"\(strawberry/(http|django)/"),
    ("JSON encode/decode", r"\(json/"),
    ("Depot code (schema/, domain/)", r"\((schema|domain|realtime)/"),
    ("bench floor / strawberry-default code", r"\((bench/)?http/(floor|strawberry_default)"),
    ("asgiref sync<->async hops", r"\(asgiref/|\(concurrent/futures|\(threading\.py"),
    ("Django request cycle + middleware", r"\((django|whitenoise)/"),
    ("uvicorn / asyncio", r"\((uvicorn|asyncio|uvloop)/"),
]
COMPILED = [(name, re.compile(rx)) for name, rx in RULES]

# Inclusive share of these (a sample counts once however deep the function recurs).
NAMED = [
    (
        "Django middleware chain (all of the request)",
        r"convert_exception_to_response\.<locals>\.inner \(django",
    ),
    ("DepotGraphQLView.dispatch", r"DepotGraphQLView\.dispatch"),
    ("rate limits: ratelimit.hit (2 per request)", r"^hit \(project/ratelimit"),
    ("auth: resolve_actor (token lookup)", r"^resolve_actor \(schema/http"),
    ("auth: Actor._load_permissions (membership query)", r"_load_permissions"),
    ("workspace check: _in_workspace", r"_in_workspace"),
    ("strawberry Schema.execute", r"Schema\.execute \(strawberry"),
    ("graphql parse", r"^parse \(graphql/language|ParserCache"),
    ("graphql validate", r"^validate \(graphql/validation|ValidationCache"),
    ("optimizer (DjangoOptimizerExtension)", r"DjangoOptimizerExtension"),
    ("relay id resolution (Node._id)", r"^Node\._id \(strawberry/relay"),
    ("Node.resolve_id_attr scan", r"resolve_id_attr"),
    ("connection resolve (ListConnection.resolve_connection)", r"resolve_connection"),
    ("QuerySet._fetch_all (SQL + rows)", r"QuerySet\._fetch_all"),
    ("prefetch_related_objects", r"^prefetch_related_objects"),
    ("psycopg execute", r"\(psycopg/"),
    ("JSON encode (json.dumps)", r"^dumps \(json|encode \(json/encoder"),
    ("sync_to_async calls", r"SyncToAsync\.__call__"),
    ("MaskErrors extension", r"MaskErrors|MaskUnexpectedErrors"),
]
NAMED_C = [(name, re.compile(rx)) for name, rx in NAMED]


def load(path: str) -> list[tuple[list[str], int]]:
    out = []
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if stack:
                out.append((stack.split(";"), int(n)))
    return out


def component(frames: list[str]) -> str:
    for name, rx in SCOPES_C:
        if any(rx.search(f) for f in frames):
            return name
    for frame in reversed(frames):
        for name, rx in COMPILED:
            if rx.search(frame):
                return name
    return "other (stdlib, C)"


def summarise(samples: list[tuple[list[str], int]]) -> dict[str, object]:
    total = sum(n for _, n in samples)
    comp: collections.Counter[str] = collections.Counter()
    named: collections.Counter[str] = collections.Counter()
    selfc: collections.Counter[str] = collections.Counter()
    for frames, n in samples:
        comp[component(frames)] += n
        selfc[frames[-1]] += n
        for name, rx in NAMED_C:
            if any(rx.search(f) for f in frames):
                named[name] += n
    return {"total": total, "components": comp, "named": named, "self": selfc}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--requests", type=float, help="requests served while sampling")
    ap.add_argument("--cpu-ms", type=float, help="server CPU ms per request (to scale shares)")
    a = ap.parse_args()
    s = summarise(load(a.file))
    total = s["total"] or 1
    scale = a.cpu_ms

    def row(label: str, n: int) -> str:
        ms = f" | {scale * n / total:7.2f}" if scale else ""
        return f"| {label} | {100 * n / total:5.1f}%{ms} |"

    head = "| component | share" + (" | ≈ms/request |" if scale else " |")
    sep = "|---|---:" + ("|---:|" if scale else "|")
    print(f"samples: {total}" + (f", requests: {a.requests:.0f}" if a.requests else ""))
    print("\nBy component (each sample charged once, to the innermost matching frame):\n")
    print(head)
    print(sep)
    for name, n in s["components"].most_common():
        print(row(name, n))
    print("\nInclusive share of named functions:\n")
    print(head.replace("component", "function"))
    print(sep)
    for name, _ in NAMED:
        if s["named"][name]:
            print(row(name, s["named"][name]))
    print(f"\nTop {a.top} self frames:\n")
    print(head.replace("component", "frame"))
    print(sep)
    for frame, n in s["self"].most_common(a.top):
        print(row(f"`{frame}`", n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
