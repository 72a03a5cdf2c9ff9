"""Deleting assets and collections through their jobs: every object goes, a batch at a time in a
few statements and requests to the store; a cancel or a refusing store loses nothing; and a
processing job that meets a deletion leaves no object behind and no asset READY again."""

from __future__ import annotations

import io
import itertools
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.assets import deletion, processing, renditions_on_demand, storage
from domain.assets.models import Asset, AssetState, Collection, Rendition
from domain.assets.services import PROCESS_JOB
from domain.common.ids import global_id
from domain.jobs import runner
from domain.jobs.models import Event, Job, JobState
from domain.jobs.services import job_cancel, job_create, job_retry
from tests import factories, media


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"tests/deletion-{uuid.uuid4().hex}"
    yield prefix
    for key in storage.list_keys(prefix):
        storage.delete_object(key)


def _stored_asset(collection: Collection, prefix: str) -> Asset:
    """An asset whose original and one rendition really are in the object store."""
    asset = factories.asset(collection, storage_key=f"{prefix}/{uuid.uuid4().hex}")
    rendition_key = f"{prefix}/{uuid.uuid4().hex}"
    Rendition.objects.create(
        asset=asset, preset="thumb-256", format="jpeg", width=1, height=1, size=1,
        storage_key=rendition_key,
    )  # fmt: skip
    for key in (asset.storage_key, rendition_key):
        storage.write_object(key, io.BytesIO(b"bytes"), "image/jpeg")
    return asset


def _delete_job(collection: Collection, owner: User) -> Job:
    with mock.patch("domain.jobs.dispatch.send"):
        return deletion.collection_delete(collection=collection, actor=Actor(user=owner))


def _ticking_clock() -> Any:
    # Every reading is a second later, so the job reads its cancel flag at every check. Only the
    # context's clock: patching time.monotonic itself also fooled the process's lease renewer
    # thread, which then slept through the renewals of the tests after this one.
    return mock.patch("domain.jobs.context.monotonic", side_effect=itertools.count(0, 1.0))


@pytest.mark.django_db
def test_deleting_a_collection_removes_every_object_even_of_an_asset_added_meanwhile(
    workspace: Workspace, owner: User, prefix: str
) -> None:
    collection = factories.collection(workspace)
    assets = [_stored_asset(collection, prefix) for _ in range(3)]
    job = _delete_job(collection, owner)
    assert Asset.objects.get(pk=assets[0].pk).state == AssetState.READY  # reached by the job
    remove = deletion._remove_objects
    late: list[Asset] = []

    def upload_during_the_job(batch: list[Asset]) -> None:
        if not late:
            late.append(_stored_asset(collection, prefix))
        remove(batch)

    with mock.patch("domain.assets.deletion._remove_objects", upload_during_the_job):
        runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"deleted": 4}
    assert not Collection.objects.filter(pk=collection.pk).exists()
    assert storage.list_keys(prefix) == []
    types = list(
        Event.objects.filter(workspace=workspace)
        .order_by("sequence")
        .values_list("type", flat=True)
    )
    assert types.count("asset.deleting") == 4
    assert types.count("asset.deleted") == 4
    assert types.index("collection.deleting") < types.index("collection.deleted")


@pytest.mark.django_db
def test_an_empty_collection_goes_in_two_statements_with_its_event(
    workspace: Workspace, owner: User
) -> None:
    collection = factories.collection(workspace)
    job = _delete_job(collection, owner)
    with CaptureQueriesContext(connection) as queries:
        runner.execute(job.pk)
    job.refresh_from_db()
    assert (job.state, job.result) == (JobState.SUCCEEDED, {"deleted": 0})
    assert not Collection.objects.filter(pk=collection.pk).exists()
    # The row's lock, then its delete if no asset is left: no read before, no Collector.
    touching = [q["sql"] for q in queries if "assets_" in q["sql"]]
    assert len(touching) == 2, touching
    assert touching[0].endswith("FOR UPDATE")
    assert touching[1].startswith("DELETE")
    deleted = Event.objects.get(workspace=workspace, type="collection.deleted")
    assert deleted.payload == {"collectionId": global_id("Collection", collection.pk)}


@pytest.mark.django_db
def test_asking_again_while_a_collection_is_deleted_returns_its_job_and_records_nothing(
    workspace: Workspace, owner: User
) -> None:
    collection = factories.collection(workspace)
    first = _delete_job(collection, owner)
    again = _delete_job(collection, owner)
    assert again.pk == first.pk
    types = list(Event.objects.filter(workspace=workspace).values_list("type", flat=True))
    assert types.count("collection.deleting") == 1
    assert types.count("job.queued") == 1
    deleting = Event.objects.get(workspace=workspace, type="collection.deleting")
    assert deleting.payload == {
        "collectionId": global_id("Collection", collection.pk),
        "jobId": global_id("Job", first.pk),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("what", ["asset", "collection"])
def test_asking_again_after_a_deletion_was_cancelled_starts_a_new_one(
    workspace: Workspace, owner: User, prefix: str, what: str
) -> None:
    """The repeat returned the cancelled job (its idempotency key), and an asset stayed
    DELETING, refused everything, with its objects in the store."""
    collection = factories.collection(workspace)
    asset = _stored_asset(collection, prefix)
    actor = Actor(user=owner)

    def ask() -> Job:
        with mock.patch("domain.jobs.dispatch.send"):
            if what == "asset":
                return deletion.asset_delete(asset=asset, actor=actor)
            return deletion.collection_delete(collection=collection, actor=actor)

    first = ask()
    job_cancel(job_id=first.pk, actor=actor)
    assert Job.objects.get(pk=first.pk).state == JobState.CANCELLED
    again = ask()
    assert again.pk != first.pk
    assert ask().pk == again.pk  # while it is under way, a repeat returns it
    runner.execute(again.pk)
    assert Job.objects.get(pk=again.pk).state == JobState.SUCCEEDED
    assert not Asset.objects.filter(pk=asset.pk).exists()
    assert storage.list_keys(prefix) == []
    assert Job.objects.get(pk=first.pk).state == JobState.CANCELLED  # kept as it ended


@pytest.mark.django_db
def test_deleting_a_collection_already_gone_succeeds_and_says_so(
    workspace: Workspace, owner: User
) -> None:
    collection = factories.collection(workspace)
    job = _delete_job(collection, owner)
    Collection.objects.filter(pk=collection.pk).delete()
    runner.execute(job.pk)
    job.refresh_from_db()
    assert (job.state, job.result) == (JobState.SUCCEEDED, {"alreadyDeleted": True})
    assert not Event.objects.filter(workspace=workspace, type="collection.deleted").exists()


@pytest.mark.django_db
def test_a_cancelled_collection_deletion_leaves_the_rest_as_it_was_and_a_retry_finishes(
    workspace: Workspace, owner: User, prefix: str
) -> None:
    collection = factories.collection(workspace)
    assets = [_stored_asset(collection, prefix) for _ in range(3)]
    job = _delete_job(collection, owner)
    remove = deletion._remove_objects

    def cancel_after_the_first(batch: list[Asset]) -> None:
        remove(batch)
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)

    with (
        _ticking_clock(),
        mock.patch.object(deletion, "BATCH_SIZE", 1),
        mock.patch("domain.assets.deletion._remove_objects", cancel_after_the_first),
    ):
        runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    left = Asset.objects.filter(collection=collection).order_by("pk")
    assert [a.pk for a in left] == [a.pk for a in assets[1:]]
    assert {a.state for a in left} == {AssetState.READY}
    assert len(storage.list_keys(prefix)) == 4  # two assets, an original and a rendition each

    with mock.patch("domain.jobs.dispatch.send"):
        job_retry(job_id=job.pk, actor=Actor(user=owner))
    runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert not Collection.objects.filter(pk=collection.pk).exists()
    assert storage.list_keys(prefix) == []


def _deletion_statements(workspace: Workspace, owner: User, prefix: str, assets: int) -> int:
    collection = factories.collection(workspace)
    for _ in range(assets):
        _stored_asset(collection, prefix)
    job = _delete_job(collection, owner)
    with CaptureQueriesContext(connection) as statements:
        runner.execute(job.pk)
    assert Job.objects.get(pk=job.pk).result == {"deleted": assets}
    return len(statements)


@pytest.mark.django_db
def test_a_batch_of_assets_takes_the_same_statements_and_one_store_request_however_many(
    workspace: Workspace, owner: User, prefix: str
) -> None:
    client = storage.internal_s3_client()
    delete_objects = client.delete_objects
    requests: list[int] = []

    def counted(**kwargs: Any) -> Any:
        requests.append(len(kwargs["Delete"]["Objects"]))
        return delete_objects(**kwargs)

    with mock.patch.object(client, "delete_objects", counted):
        few = _deletion_statements(workspace, owner, prefix, 2)
        many = _deletion_statements(workspace, owner, prefix, 12)
    # Per asset, deletion took a dozen statements and a request per object before batches.
    assert many == few
    assert requests == [4, 24]  # an original and a rendition each
    assert storage.list_keys(prefix) == []
    deleted = Event.objects.filter(workspace=workspace, type="asset.deleted")
    assert deleted.count() == 14
    assert {event.payload["state"] for event in deleted} == {"DELETED"}


@pytest.mark.django_db
def test_each_asset_is_announced_deleting_before_it_is_deleted(
    workspace: Workspace, owner: User, prefix: str
) -> None:
    collection = factories.collection(workspace)
    assets = [_stored_asset(collection, prefix) for _ in range(5)]
    job = _delete_job(collection, owner)
    with mock.patch.object(deletion, "BATCH_SIZE", 2):
        runner.execute(job.pk)
    assert Job.objects.get(pk=job.pk).result == {"deleted": 5}
    seen = [
        (event.type, event.payload.get("assetId"))
        for event in Event.objects.filter(workspace=workspace).order_by("sequence")
    ]
    for asset in assets:
        asset_id = global_id("Asset", asset.pk)
        deleting, deleted = (
            seen.index(("asset.deleting", asset_id)),
            seen.index(("asset.deleted", asset_id)),
        )
        assert deleting < deleted
    # Batches of two: the first two assets are gone before the last is marked.
    last = global_id("Asset", assets[-1].pk)
    first_deleted = seen.index(("asset.deleted", global_id("Asset", assets[0].pk)))
    assert first_deleted < seen.index(("asset.deleting", last))


@pytest.mark.django_db
def test_a_store_that_keeps_an_object_fails_the_job_and_its_retry_finishes(
    workspace: Workspace, owner: User, prefix: str
) -> None:
    collection = factories.collection(workspace)
    assets = [_stored_asset(collection, prefix) for _ in range(2)]
    job = _delete_job(collection, owner)
    client = storage.internal_s3_client()

    def refusing(**kwargs: Any) -> Any:
        first = kwargs["Delete"]["Objects"][0]["Key"]
        return {"Errors": [{"Key": first, "Code": "AccessDenied", "Message": "Access Denied"}]}

    with mock.patch.object(client, "delete_objects", refusing):
        runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error is not None
    assert job.error["code"] == "STORAGE_ERROR"
    assert "AccessDenied" in job.error["message"]
    # Nothing lost: the rows stay, marked DELETING, with every object.
    left = Asset.objects.filter(collection=collection)
    assert {a.pk for a in left} == {a.pk for a in assets}
    assert {a.state for a in left} == {AssetState.DELETING}
    assert len(storage.list_keys(prefix)) == 4

    with mock.patch("domain.jobs.dispatch.send"):
        job_retry(job_id=job.pk, actor=Actor(user=owner))
    runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"deleted": 2}
    assert not Collection.objects.filter(pk=collection.pk).exists()
    assert storage.list_keys(prefix) == []


def _uploaded_photo(collection: Collection, prefix: str) -> tuple[Asset, Job]:
    """An uploaded JPEG (its original really in the store) and its processing job."""
    content = media.jpeg(600, 400)
    asset = factories.asset(
        collection,
        storage_key=f"{prefix}/{uuid.uuid4().hex}",
        state=AssetState.UPLOADED,
        size=len(content),
        content_type="",
    )
    storage.write_object(asset.storage_key, io.BytesIO(content), "image/jpeg")
    with mock.patch("domain.jobs.dispatch.send"):
        job = job_create(
            workspace_id=asset.workspace_id,
            kind=PROCESS_JOB,
            parameters={"asset_id": asset.pk},
            created_by_id=None,
        )
    return asset, job


def _delete_now(asset: Asset, owner: User) -> None:
    """assetDelete and its job, run to the end (as another worker would, meanwhile)."""
    with mock.patch("domain.jobs.dispatch.send"):
        job = deletion.asset_delete(asset=asset, actor=Actor(user=owner))
    runner.execute(job.pk)
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED


def _deleting_after(writes: int, asset: Asset, owner: User, stored: list[str]) -> Any:
    """storage.write_object that deletes the asset (its job run to the end) right after the
    `writes`-th object it stores, noting each key in `stored`."""
    write_object = storage.write_object

    def write_then_delete(key: str, source: Any, content_type: str) -> None:
        write_object(key, source, content_type)
        stored.append(key)
        if len(stored) == writes:
            _delete_now(asset, owner)

    return write_then_delete


def _objects_of(asset: Asset, prefix: str) -> list[str]:
    renditions = f"{asset.workspace_id}/{asset.pk}/"
    return [*storage.list_keys(prefix), *storage.list_keys(renditions)]


@pytest.mark.django_db
def test_an_asset_deleted_while_its_renditions_are_stored_leaves_no_object_behind(
    workspace: Workspace, owner: User, prefix: str
) -> None:
    collection = factories.collection(workspace)
    asset, job = _uploaded_photo(collection, prefix)
    stored: list[str] = []
    # The deletion runs between a rendition's object and its row: it cannot list it.
    with mock.patch.object(storage, "write_object", _deleting_after(2, asset, owner, stored)):
        runner.execute(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error == {"code": "ASSET_DELETED", "message": "The asset is being deleted."}
    assert not Asset.objects.filter(pk=asset.pk).exists()
    assert not Rendition.objects.filter(asset_id=asset.pk).exists()
    assert len(stored) == 2
    assert _objects_of(asset, prefix) == []


@pytest.mark.django_db
def test_processing_that_ends_after_the_asset_was_marked_deleting_never_makes_it_ready(
    workspace: Workspace, owner: User, prefix: str
) -> None:
    collection = factories.collection(workspace)
    asset, job = _uploaded_photo(collection, prefix)
    finish = processing._finish

    def marked_meanwhile(of: Asset, **results: Any) -> list[str]:
        with mock.patch("domain.jobs.dispatch.send"):
            deletion.asset_delete(asset=asset, actor=Actor(user=owner))  # its job not run yet
        return finish(of, **results)

    with mock.patch("domain.assets.processing._finish", marked_meanwhile):
        runner.execute(job.pk)
    job.refresh_from_db()
    assert job.error is not None
    assert (job.state, job.error["code"]) == (JobState.FAILED, "ASSET_DELETED")
    assert Asset.objects.get(pk=asset.pk).state == AssetState.DELETING
    types = list(
        Event.objects.filter(workspace=workspace)
        .order_by("sequence")
        .values_list("type", flat=True)
    )
    assert [t for t in types if t.startswith("asset.")][-2:] == [
        "asset.processing",
        "asset.deleting",
    ]
    # Its renditions have rows, so the deletion's job removes them with the original.
    assert Rendition.objects.filter(asset_id=asset.pk).count() == 3
    runner.execute(Job.objects.get(kind=deletion.DELETE_ASSET_JOB).pk)
    assert _objects_of(asset, prefix) == []


@pytest.mark.django_db
def test_an_asset_deleted_while_a_rendition_is_made_on_demand_leaves_no_object_behind(
    workspace: Workspace, owner: User, prefix: str
) -> None:
    collection = factories.collection(workspace)
    asset, _processing = _uploaded_photo(collection, prefix)
    runner.execute(_processing.pk)
    asset.refresh_from_db()
    assert asset.state == AssetState.READY
    with mock.patch("domain.jobs.dispatch.send"):
        requested = renditions_on_demand.asset_rendition_request(
            asset=asset, width=320, format="webp", actor=Actor(user=owner)
        )
    assert requested.job is not None
    stored: list[str] = []
    with mock.patch.object(storage, "write_object", _deleting_after(1, asset, owner, stored)):
        runner.execute(requested.job.pk)
    assert len(stored) == 1
    job = Job.objects.get(pk=requested.job.pk)
    assert job.error is not None
    assert (job.state, job.error["code"]) == (JobState.FAILED, "ASSET_DELETED")
    assert not Asset.objects.filter(pk=asset.pk).exists()
    assert _objects_of(asset, prefix) == []
