"""The two baselines (floor, strawberry-default): Depot's models, apps and database settings
(the same psycopg pool), with the anchors' minimal middleware and their own URLs."""

from bench.http import sqlcount
from project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.http.urls_peers"
# As in ../shared/bench-anchors: one middleware, the same for both baselines.
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]

sqlcount.install()
