"""The kit: :class:`ContextKit`, the composer and the seed's whole API (see :mod:`contextkit.kit.composer`)."""

from __future__ import annotations

from contextkit.kit.composer import ContextKit

__all__ = ["ContextKit"]
