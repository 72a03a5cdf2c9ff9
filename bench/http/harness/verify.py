#!/usr/bin/env python3
"""Check that every contender returns the same `data` as the first (FLOOR), after canonical
JSON normalisation, and count SQL statements per request (the server must be idle).

usage: verify.py [--only a,b] [--out FILE]     (adapted from ../shared/bench-anchors)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

from common import QUERIES, body_path, load_contenders, post, select, sql_count


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contenders")
    ap.add_argument("--only")
    ap.add_argument("--out")
    a = ap.parse_args()
    cs = select(load_contenders(a.contenders), a.only)
    report: dict[str, dict[str, object]] = {}
    ok = True
    for q in QUERIES:
        ref = None
        with open(body_path(q), "rb") as f:
            body = f.read()
        for name, url in cs:
            post(url, body)  # warm caches and lazy imports
            sql = []
            for _ in range(3):  # the same count three times: no per-process first-use query
                before = sql_count(url)
                status, raw = post(url, body)
                after = sql_count(url)
                sql.append(None if before is None or after is None else after - before)
            doc = json.loads(raw)
            if doc.get("errors"):
                print(f"[{q}] {name}: errors: {doc['errors']}", file=sys.stderr)
            canon = json.dumps(doc.get("data"), sort_keys=True, separators=(",", ":"))
            digest = hashlib.sha256(canon.encode()).hexdigest()[:16]
            if ref is None:
                ref = canon
            same = canon == ref
            ok &= same and status == 200 and not doc.get("errors") and doc.get("data") is not None
            report.setdefault(q, {})[name] = {
                "status": status,
                "identical_to_ref": same,
                "sha256_16": digest,
                "response_bytes": len(raw),
                "sql_queries": sql[-1],
                "sql_queries_runs": sql,
            }
            print(
                f"[{q:9}] {name:18} status={status} identical={same} sha={digest} "
                f"bytes={len(raw)} sql={sql[-1]} (runs {sql})"
            )
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)
    print("verify:", "OK, identical data" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
