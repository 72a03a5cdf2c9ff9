"""Shared helpers for the harness scripts (stdlib only, so any Python runs them).

Adapted from ../shared/bench-anchors/harness/common.py: the bodies live in the run directory
(written by seed.py, they carry the seeded ids), and every request carries the bench token.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
RUN = os.environ.get("BENCH_RUN_DIR", os.path.join(BENCH, ".run"))
QUERIES = ("dashboard", "asset")


def load_contenders(path: str | None = None) -> list[tuple[str, str]]:
    """[(name, url)] from contenders.txt; the first one is the reference (FLOOR)."""
    out = []
    with open(path or os.path.join(HERE, "contenders.txt")) as lines:
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line:
                name, url = line.split()[:2]
                out.append((name, url))
    return out


OPTIONAL = {"depot-whatif"}  # only when named with --only (run.sh does so when WHATIF is set)


def select(contenders: list[tuple[str, str]], only: str | None) -> list[tuple[str, str]]:
    if not only:
        return [c for c in contenders if c[0] not in OPTIONAL]
    by = dict(contenders)
    return [(n, by[n]) for n in (x.strip() for x in only.split(",")) if n]


def body_path(query: str) -> str:
    return os.path.join(RUN, "bodies", f"{query}.json")


def auth_header() -> str:
    with open(os.path.join(RUN, "token")) as f:
        return f"Bearer {f.read().strip()}"


def post(url: str, body: bytes, timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(  # noqa: S310 (loopback URLs from contenders.txt)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": auth_header()},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def sql_count(url: str, timeout: float = 60) -> int | None:
    """The server's statement counter. Its view is sync on purpose: under ASGI it waits behind
    the ORM work still queued for the server's sync thread, so an answer means "settled"."""
    u = urllib.parse.urlsplit(url)
    try:
        with urllib.request.urlopen(f"{u.scheme}://{u.netloc}/__sql__/", timeout=timeout) as r:  # noqa: S310
            return int(json.loads(r.read())["queries"])
    except (OSError, KeyError, ValueError):
        return None
