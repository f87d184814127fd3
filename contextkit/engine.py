"""Kept importable for code written against earlier contextkit versions: the facade lives in
:mod:`contextkit.compat` now (``from contextkit.compat import ContextEngine``)."""

from contextkit import compat as _compat
from contextkit.compat import *  # noqa: F403  (the same names, whatever compat exports)

__all__ = list(_compat.__all__)
