"""ArtStore storage element."""

__version__ = "0.1.0"
