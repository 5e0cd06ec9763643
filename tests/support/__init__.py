"""Test support: real PostgreSQL, Redis and service processes, plus a stand-in token issuer."""
