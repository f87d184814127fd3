"""contextkit-example: a hot tier for contextkit (a scaffold: replace "example" with your backend's name)."""

from contextkit_example.hot import ExampleHotStore

__all__ = ["ExampleHotStore"]
__version__ = "0.1.0"
