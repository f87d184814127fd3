"""contextkit: context storage for AI applications, with hot and cold tiers as plugins."""

from contextkit.hookspecs import hookimpl

__all__ = ["hookimpl"]
__version__ = "0.1.0"
