"""An upload into a collection at the moment a deletion deletes it: one waits for the other,
and either the deletion finds the new asset (and deletes it with the rest) or the upload is
told NOT_FOUND. Before, the upload's foreign key was checked only at its commit, after it took
the workspace's event counter that the deletion needed too: they deadlocked. And a move reads
its assets under its lock, so one a deletion has marked since is refused; and every change that
locks several assets takes them in id order (a bulk edit took them newest first, the opposite of
a deletion's batch)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from domain.accounts.actor import Actor
from domain.accounts.models import User, Workspace
from domain.assets import deletion, editing, services
from domain.assets.models import Asset, Collection
from domain.common.errors import InvalidState, NotFound
from tests import factories
from tests.locks import wait_until_a_session_waits_for_a_lock

pytestmark = pytest.mark.django_db(transaction=True)


def _upload_start(collection: Collection, owner: User) -> Any:
    return services.asset_upload_start(
        collection=collection,
        filename="a.jpg",
        content_type="image/jpeg",
        size=10,
        title=None,
        actor=Actor(user=owner),
    )


def _in_thread(name: str, call: Callable[[], Any], outcome: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        try:
            outcome[name] = call()
        except Exception as error:
            outcome[name] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def test_a_deletion_waits_for_an_upload_under_way_and_deletes_its_asset_too(
    workspace: Workspace, owner: User
) -> None:
    collection = factories.collection(workspace)
    inside, go_on = threading.Event(), threading.Event()
    presign = services.storage.presign_upload
    outcome: dict[str, Any] = {}

    def held_presign(**kwargs: Any) -> Any:  # the upload's last step before its commit
        inside.set()
        go_on.wait(10)
        return presign(**kwargs)

    with mock.patch.object(services.storage, "presign_upload", held_presign):
        upload = _in_thread("upload", lambda: _upload_start(collection, owner), outcome)
        assert inside.wait(10)
        delete = _in_thread(
            "deletion",
            lambda: deletion._delete_collection_if_empty(workspace.pk, collection.pk),
            outcome,
        )
        wait_until_a_session_waits_for_a_lock("the deletion")  # for the collection's row
        go_on.set()
        upload.join(10)
        delete.join(10)

    assert isinstance(outcome["upload"], services.UploadStarted), outcome
    assert outcome["deletion"] is None  # an asset is left: the job deletes it in a batch
    assert Asset.objects.filter(pk=outcome["upload"].asset.pk, collection=collection).exists()


@pytest.mark.parametrize("change", ["upload", "move"])
def test_a_change_into_a_collection_being_deleted_waits_and_is_told_not_found(
    workspace: Workspace, owner: User, change: str
) -> None:
    collection = factories.collection(workspace)
    elsewhere = factories.asset(factories.collection(workspace))
    deleted, go_on = threading.Event(), threading.Event()
    record = deletion.events.record
    outcome: dict[str, Any] = {}

    def held_record(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "deletion":  # its row deleted, not committed
            deleted.set()
            go_on.wait(10)
        return record(*args, **kwargs)

    def move() -> Any:
        return editing.asset_move(assets=[elsewhere], collection=collection, actor=Actor(owner))

    with mock.patch.object(deletion.events, "record", held_record):
        delete = _in_thread(
            "deletion",
            lambda: deletion._delete_collection_if_empty(workspace.pk, collection.pk),
            outcome,
        )
        assert deleted.wait(10)
        start = (lambda: _upload_start(collection, owner)) if change == "upload" else move
        changing = _in_thread(change, start, outcome)
        wait_until_a_session_waits_for_a_lock("the change")  # for the collection's row
        go_on.set()
        delete.join(10)
        changing.join(10)

    assert outcome["deletion"] == "deleted"
    assert isinstance(outcome[change], NotFound), outcome
    assert outcome[change].path == ["collectionId"]
    assert not Collection.objects.filter(pk=collection.pk).exists()
    assert Asset.objects.get(pk=elsewhere.pk).collection_id == elsewhere.collection_id
    assert Asset.objects.filter(workspace=workspace).count() == 1  # nothing half-made


def test_a_move_reads_the_state_under_its_lock_and_refuses_an_asset_being_deleted(
    workspace: Workspace, owner: User
) -> None:
    asset = factories.asset(factories.collection(workspace))
    read_before = Asset.objects.get(pk=asset.pk)  # what the mutation read, before the deletion
    with mock.patch("domain.jobs.dispatch.send"):
        deletion.asset_delete(asset=asset, actor=Actor(user=owner))
    target = factories.collection(workspace)
    with pytest.raises(InvalidState, match="being deleted"):
        editing.asset_move(assets=[read_before], collection=target, actor=Actor(user=owner))
    assert Asset.objects.get(pk=asset.pk).collection_id == asset.collection_id


def test_every_change_that_locks_several_assets_takes_them_in_id_order(
    workspace: Workspace, owner: User
) -> None:
    collection = factories.collection(workspace)
    assets = [factories.asset(collection) for _ in range(3)]
    ids = [asset.pk for asset in assets]
    actor = Actor(user=owner)
    changes = [
        lambda: editing.asset_move(
            assets=assets[::-1], collection=factories.collection(workspace), actor=actor
        ),
        lambda: editing.assets_bulk_update(
            items=[editing.BulkItem(pk, editing.AssetChanges(title="t")) for pk in ids[::-1]],
            all_or_nothing=True,
            actor=actor,
        ),
        lambda: deletion._mark_deleting(workspace.pk, ids[::-1], {}),
    ]
    for change in changes:
        with CaptureQueriesContext(connection) as queries:
            change()
        [locking] = [
            q["sql"] for q in queries if "assets_asset" in q["sql"] and "FOR UPDATE" in q["sql"]
        ]
        assert locking.endswith('ORDER BY "assets_asset"."id" ASC FOR UPDATE'), locking
