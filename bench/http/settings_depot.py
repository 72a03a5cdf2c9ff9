"""Depot as deployed (project.settings, all of its middleware), plus the SQL counter.

The only differences from production: ROOT_URLCONF adds GET /__sql__/ in front of Depot's own
URLs, and every cursor execute bumps a process-wide counter (bench/http/sqlcount.py). With
BENCH_WHATIF set (the `depot-whatif` contender only), bench/http/whatif.py patches apply.
"""

from bench.http import sqlcount, whatif
from project.settings import *  # noqa: F403
from project.settings import MIDDLEWARE

ROOT_URLCONF = "bench.http.urls_depot"
MIDDLEWARE = whatif.middleware(MIDDLEWARE)

sqlcount.install()
