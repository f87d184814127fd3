"""The plumbing the hot and cold conformance suites share: stores built per test on a namespace of their own,
cleaned up and closed at teardown, whatever the test did.

:class:`StoreSuite` is generic in the store type; :class:`~contextkit.testing.hot.HotStoreSuite` and
:class:`~contextkit.testing.cold.ColdStoreSuite` derive from it and add the contract's tests. A backend's test
class overrides :meth:`StoreSuite.make_store` (and :meth:`StoreSuite.cleanup_store` when a namespace leaves
something behind that closing the store does not remove).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import pytest

from contextkit.stores import StoreSettings

__all__ = ["StoreSuite"]


class _Closable(Protocol):
    async def aclose(self) -> None: ...


S = TypeVar("S", bound=_Closable)


class StoreSuite(Generic[S]):
    """Builds, tracks, cleans up and closes the stores of one test.

    Every test may build several stores (:meth:`new_store`); the autouse fixture cleans up and closes each one
    at teardown, the newest first, and reports the first error after trying them all (a failed cleanup never
    leaves another store open).
    """

    #: Prefix of the unique namespaces the suite creates (visible in the server if a cleanup fails).
    namespace_prefix: str = "ck"
    #: Between the prefix and the random part of a namespace (``_`` where a namespace becomes an identifier).
    namespace_separator: ClassVar[str] = "-"
    #: Settings every store starts from; :meth:`new_store` overrides single fields.
    default_settings: StoreSettings = StoreSettings()
    _made_stores: list[S]

    # -- what a backend provides --------------------------------------------------------------------------------
    async def make_store(self, settings: StoreSettings) -> S:
        """Build and open a store for ``settings`` (a fresh, unique namespace). Backends must override this."""
        raise NotImplementedError(f"subclasses of {type(self).__name__} implement `async def make_store(self, settings)`")

    async def cleanup_store(self, store: S) -> None:
        """Remove what a test left behind (keys, tables, files); called before the suite closes ``store``."""

    # -- plumbing -------------------------------------------------------------------------------------------------
    @pytest.fixture(autouse=True)
    async def _store_lifecycle(self, request: pytest.FixtureRequest) -> AsyncIterator[None]:
        """Track every store a test builds, and clean up and close each one at teardown."""
        # pytest runs a fixture of a test class on the instance that runs the test.
        instance = request.instance if request.instance is not None else self
        made: list[S] = []
        instance._made_stores = made
        yield
        errors: list[BaseException] = []
        for store in reversed(made):
            try:
                await instance.cleanup_store(store)
            except Exception as exc:  # keep closing the others, then report
                errors.append(exc)
            try:
                await store.aclose()
            except Exception as exc:
                errors.append(exc)
        instance._made_stores = []
        if errors:
            raise errors[0]

    def new_namespace(self) -> str:
        """A namespace no other test uses: the prefix, the separator and 12 random hex digits."""
        return f"{self.namespace_prefix}{self.namespace_separator}{uuid.uuid4().hex[:12]}"

    async def new_store(self, **overrides: Any) -> S:
        """An opened store on a fresh namespace (or ``namespace=...`` to share one), with ``overrides`` applied to
        :attr:`default_settings`; the suite cleans it up and closes it after the test."""
        namespace = overrides.pop("namespace", None) or self.new_namespace()
        settings = replace(self.default_settings, namespace=namespace, **overrides)
        store = await self.make_store(settings)
        # A store built outside a test (a helper called from a plain function) is tracked from here on.
        made: list[S] | None = self.__dict__.get("_made_stores")
        if made is None:
            made = self._made_stores = []
        made.append(store)
        return store

    @pytest.fixture
    async def store(self, request: pytest.FixtureRequest) -> S:
        """An opened store with :attr:`default_settings` on a unique namespace."""
        instance = request.instance if request.instance is not None else self
        built: S = await instance.new_store()
        return built
