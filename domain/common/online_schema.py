"""Migration operations that keep a big table usable while its indexes change.

On Postgres they build and drop indexes CONCURRENTLY: no lock that stops writes (a plain
CREATE INDEX holds a SHARE lock, blocking every INSERT and UPDATE, for the whole build). That
cannot run in a transaction, so a migration using them says `atomic = False` and holds nothing
else. Elsewhere (SQLite, embedded mode) they are the plain AddIndex and RemoveIndex:
django.contrib.postgres's AddIndexConcurrently fails there.
"""

from __future__ import annotations

import copy
from typing import Any

from django.db import migrations
from django.db.migrations.state import ProjectState


def _concurrently(schema_editor: Any) -> bool:
    if schema_editor.connection.vendor != "postgresql":
        return False
    # sqlmigrate only collects the statements: no transaction matters there.
    if schema_editor.connection.in_atomic_block and not schema_editor.collect_sql:
        raise RuntimeError(
            "An index is built or dropped CONCURRENTLY outside a transaction: give the "
            "migration `atomic = False`."
        )
    return True


def _add(schema_editor: Any, model: Any, index: Any) -> None:
    if _concurrently(schema_editor):
        schema_editor.add_index(model, index, concurrently=True)
    else:
        schema_editor.add_index(model, index)


def _remove(schema_editor: Any, model: Any, index: Any) -> None:
    if _concurrently(schema_editor):
        schema_editor.remove_index(model, index, concurrently=True)
    else:
        schema_editor.remove_index(model, index)


class AddIndexOnline(migrations.AddIndex):
    """AddIndex, CONCURRENTLY on Postgres."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            _add(schema_editor, model, self.index)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            _remove(schema_editor, model, self.index)

    def describe(self) -> str:
        return super().describe() + " (concurrently on Postgres)"


class RemoveIndexOnline(migrations.RemoveIndex):
    """RemoveIndex, CONCURRENTLY on Postgres."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            state = from_state.models[app_label, self.model_name_lower]
            _remove(schema_editor, model, state.get_index_by_name(self.name))

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            state = to_state.models[app_label, self.model_name_lower]
            _add(schema_editor, model, state.get_index_by_name(self.name))

    def describe(self) -> str:
        return super().describe() + " (concurrently on Postgres)"


class AddIndexedFieldOnline(migrations.AddField):
    """AddField of a nullable column with an index (a foreign key without a database
    constraint, say), the index built CONCURRENTLY on Postgres: Django's AddField builds it
    with a plain CREATE INDEX, which stops writes to the table for the whole build. The column
    is a catalogue change (nullable, no default, no constraint to check). The migration says
    `atomic = False`. Elsewhere, the plain AddField."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if not _concurrently(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        field = model._meta.get_field(self.name)
        if not field.null or field.has_default() or getattr(field, "db_constraint", False):
            raise ValueError(
                "AddIndexedFieldOnline adds a nullable column with no default and no "
                "constraint: anything else is checked or written under the ALTER's lock"
            )
        column_only = copy.copy(field)
        column_only.db_index = False
        schema_editor.add_field(model, column_only)
        schema_editor.execute(
            schema_editor._create_index_sql(model, fields=[field], concurrently=True)
        )

    def describe(self) -> str:
        return super().describe() + " (its index concurrently on Postgres)"
