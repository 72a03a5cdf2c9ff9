#!/usr/bin/env python3
"""CPU and wall time of one asgiref `sync_to_async` hop (a no-op function) under uvloop, the
unit that bench/http/PROFILE.md prices thread hops in.

usage: .venv/bin/python bench/http/harness/hop_cost.py [-n HOPS]
"""

from __future__ import annotations

import argparse
import time

import uvloop
from asgiref.sync import sync_to_async


def _nothing() -> int:
    return 1


async def _measure(hops: int) -> None:
    hop = sync_to_async(_nothing)
    for _ in range(200):  # warm-up: the executor's thread is started here
        await hop()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(hops):
        await hop()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"sync_to_async hop: {cpu / hops * 1e6:.1f} µs CPU, {wall / hops * 1e6:.1f} µs wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=3000)
    uvloop.run(_measure(parser.parse_args().n))


if __name__ == "__main__":
    main()
