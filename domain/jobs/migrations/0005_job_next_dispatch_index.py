# The sweeper's index on (state, next_dispatch_at), built without stopping writes to jobs_job:
# CONCURRENTLY on Postgres, outside a transaction (hence atomic = False), a plain CREATE INDEX
# on SQLite (domain/common/online_schema.py). The index the old sweeper read, on
# (state, dispatched_at), goes only once the new one exists, concurrently too. If the build
# fails on Postgres it leaves an INVALID index: DROP INDEX CONCURRENTLY job_state_next_dispatch,
# then migrate again (docs/operations.md, "Migrations").

from django.db import migrations, models

from domain.common.online_schema import AddIndexOnline, RemoveIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0004_job_deadline"),
    ]

    operations = [
        AddIndexOnline(
            model_name="job",
            index=models.Index(
                fields=["state", "next_dispatch_at"], name="job_state_next_dispatch"
            ),
        ),
        RemoveIndexOnline(
            model_name="job",
            name="job_state_dispatched",
        ),
    ]
