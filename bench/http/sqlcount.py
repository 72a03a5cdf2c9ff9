"""Count every SQL statement this process executes (all threads), read at GET /__sql__/.

Copied from ../shared/bench-anchors (peers/peers/sqlcount.py). Installed by the bench settings
modules of every contender, so the cost (one increment per statement) is the same for all.
"""

from __future__ import annotations

import itertools
from typing import Any

from django.http import HttpRequest, JsonResponse

_counter = itertools.count(1)
_value = [0]


def _bump() -> None:
    _value[0] = next(_counter)


def install() -> None:
    from django.db.backends import utils

    if getattr(utils.CursorWrapper, "_bench_counted", False):
        return
    orig_execute = utils.CursorWrapper._execute
    orig_executemany = utils.CursorWrapper._executemany

    def _execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        _bump()
        return orig_execute(self, *args, **kwargs)

    def _executemany(self: Any, *args: Any, **kwargs: Any) -> Any:
        _bump()
        return orig_executemany(self, *args, **kwargs)

    utils.CursorWrapper._execute = _execute
    utils.CursorWrapper._executemany = _executemany
    utils.CursorWrapper._bench_counted = True


def sql_count_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"queries": _value[0]})
