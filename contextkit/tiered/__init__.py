"""Tiering: the hot tier, the cold tier that archives it and the archiver between them, as one consistent store.

* :mod:`contextkit.tiered.layer` - :class:`Tiered`, which owns read-through, rehydration (put-if-absent),
  numbering continuation and deletes for the kit, the import / migration sink and the LangGraph adapter;
* :mod:`contextkit.tiered.events` - the archive event of every write, built in one place;
* :mod:`contextkit.tiered.cold_rules` - which archived row answers, and what a delete hides, for every cold tier.

The invariants this package keeps are stated in ``docs/archive.md`` ("Guarantees").
"""

from __future__ import annotations

from contextkit.tiered.layer import Tiered, TieringStats

__all__ = ["Tiered", "TieringStats"]
