"""Jobs through GraphQL: children of a batch, and stats for dashboards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from domain.accounts.models import Workspace
from domain.common.ids import global_id
from domain.jobs.models import Job, JobState, Lane
from tests.conftest import GQL


def _job(workspace: Workspace, state: str, lane: str = Lane.INTERACTIVE, **fields: object) -> Job:
    return Job.objects.create(
        workspace=workspace, kind="asset.process", lane=lane, state=state, **fields
    )


@pytest.mark.django_db
def test_a_batch_job_lists_its_children(gql: GQL, token: str, workspace: Workspace) -> None:
    parent = _job(workspace, JobState.RUNNING, Lane.BULK)
    for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.QUEUED):
        _job(workspace, state, Lane.BULK, parent=parent)
    data = gql(
        """query($id: ID!) { job(id: $id) { children { totalCount edges { node {
      state parent { id } } } } } }""",
        {"id": global_id("Job", parent.pk)},
        token,
    )
    children = data["data"]["job"]["children"]
    assert children["totalCount"] == 3
    assert {edge["node"]["parent"]["id"] for edge in children["edges"]} == {
        global_id("Job", parent.pk)
    }
    top = gql("""{ jobs(filters: {topLevel: true}) { totalCount } }""", token=token)
    assert top["data"]["jobs"]["totalCount"] == 1


@pytest.mark.django_db
def test_job_stats_count_states_and_recent_throughput(
    gql: GQL, token: str, workspace: Workspace, other_workspace: Workspace
) -> None:
    now = timezone.now()
    for _ in range(3):
        _job(workspace, JobState.SUCCEEDED, finished_at=now)
    _job(workspace, JobState.FAILED, finished_at=now)
    _job(workspace, JobState.SUCCEEDED, finished_at=now - timedelta(hours=2))
    _job(workspace, JobState.QUEUED, Lane.BULK)
    _job(other_workspace, JobState.QUEUED)
    data = gql(
        """query($w: ID!) { jobStats(workspaceId: $w) { windowMinutes
      counts { state lane count } throughput { succeeded failed } } }""",
        {"w": global_id("Workspace", workspace.pk)},
        token,
    )["data"]["jobStats"]
    assert sorted((c["state"], c["lane"], c["count"]) for c in data["counts"]) == [
        ("FAILED", "INTERACTIVE", 1),
        ("QUEUED", "BULK", 1),
        ("SUCCEEDED", "INTERACTIVE", 4),
    ]
    assert data["throughput"] == [{"succeeded": 3, "failed": 1}]
    foreign = gql(
        """query($w: ID!) { jobStats(workspaceId: $w) { windowMinutes } }""",
        {"w": global_id("Workspace", other_workspace.pk)},
        token,
    )
    assert foreign["errors"][0]["extensions"]["code"] == "NOT_FOUND"
