"""ArtStore client: the Python SDK and the `artstore` command line."""

__version__ = "0.1.0"
