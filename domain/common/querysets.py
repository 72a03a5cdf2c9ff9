"""A QuerySet whose per-object copies made by a prefetch share the SQL query until it is read.

For every object of a prefetch (`asset.renditions` for 200 assets), Django builds a QuerySet to
hold that object's rows (`RelatedManager._apply_rel_filters`): a copy of the prefetch's Query,
with the relation's filter deferred since it is most likely never needed. The copy of the Query
is most of that cost. Here the per-object QuerySet shares the prefetch's Query and takes its own
copy the first time anything reads `.query` (filtering those rows again, or fetching them
again); reading the prefetched rows never does. Models opt in as their default and base manager
(prefetches load through the base manager).
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.db.models.sql import Query

_M = TypeVar("_M", bound=models.Model)


def _shallow_copy(value: Any) -> Any:
    # What other libraries attach to a QuerySet (strawberry-django's config dataclass), copied
    # the way their own clone hooks copy it, minus dataclasses.replace's overhead.
    copied = object.__new__(type(value))
    copied.__dict__.update(value.__dict__)
    return copied


class PrefetchFriendlyQuerySet(models.QuerySet[_M]):
    _query_shared = False

    def _clone(self) -> Any:
        this: Any = self  # Django's private attributes are untyped
        # Django sets _defer_next_filter only on the QuerySet that a related manager filters
        # to hold one object's prefetched rows; every other clone is Django's own.
        if not this._defer_next_filter:
            return super()._clone()  # type: ignore[misc]
        clone: Any = self.__class__(
            model=self.model, query=this._query, using=this._db, hints=this._hints
        )
        for name, value in this.__dict__.items():
            if name not in clone.__dict__:
                clone.__dict__[name] = _shallow_copy(value)
        clone._query_shared = True
        clone._sticky_filter = this._sticky_filter
        clone._for_write = this._for_write
        clone._prefetch_related_lookups = this._prefetch_related_lookups[:]
        clone._known_related_objects = this._known_related_objects
        clone._iterable_class = this._iterable_class
        clone._fields = this._fields
        return clone

    @property
    def query(self) -> Query:
        if self._query_shared:
            this: Any = self
            this._query = this._query.chain()
            self._query_shared = False
        return super().query

    @query.setter
    def query(self, value: Query) -> None:
        self._query_shared = False
        models.QuerySet.query.fset(self, value)  # type: ignore[attr-defined]
