"""A stand-in for the admin module's identity endpoints, used by `artstore dev up` until that module exists.

It is deliberately small: one RSA signing key and one bootstrap ADMIN account, both generated once and kept
in the data directory, a JWKS, and a client-credentials token endpoint. It runs inside the `dev up`
process at the admin's port, so the storage elements verify real RS256 tokens exactly as they will against
the admin. Nothing here is meant for production; the admin module replaces all of it.
"""
