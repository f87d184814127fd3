"""contextkit.testing: the conformance suites every backend runs, and helpers to find test services.

* :mod:`contextkit.testing.hot` - ``HotStoreSuite``, the hot tier contract.
* :mod:`contextkit.testing.cold` - ``ColdStoreSuite``, the cold tier contract.
* :mod:`contextkit.testing.engine` - ``EngineSuite``, scenarios through the whole kit.
* :mod:`contextkit.testing.services` - finding or starting the servers tests need (PostgreSQL, Redis, Redis
  Cluster, ClickHouse, TLS material): test support, which needs the ``testing`` extra.
"""
