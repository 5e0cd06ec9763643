"""ArtStore shared library. Services import from here; this package never imports a service."""
