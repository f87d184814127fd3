"""contextkit-memory: the in-process hot tier (placeholder until the store lands)."""
