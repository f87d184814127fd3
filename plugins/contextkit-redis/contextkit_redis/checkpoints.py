"""LangGraph checkpoint storage of the Redis tier (placeholder: the CheckpointStore methods land here)."""

from __future__ import annotations


class RedisCheckpoints:
    """LangGraph CheckpointStore on Redis; filled in later."""
