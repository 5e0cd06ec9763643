"""Repository tools (not installed with any package)."""
