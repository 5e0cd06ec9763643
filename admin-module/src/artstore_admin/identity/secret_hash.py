"""Client secrets: generated here, shown once, stored only as a scrypt hash with its parameters and salt."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets

# ~16 MiB and tens of milliseconds per check: slow for a guesser, bearable for a token request.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_HASH_BYTES = 32


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=length)


def hash_secret_sync(secret: str) -> str:
    salt = os.urandom(_SALT_BYTES)
    digest = _scrypt(secret, salt, _N, _R, _P, _HASH_BYTES)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_secret_sync(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(secret, _unb64(salt), int(n), int(r), int(p), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


async def hash_secret(secret: str) -> str:
    return await asyncio.to_thread(hash_secret_sync, secret)


async def verify_secret(secret: str, stored: str) -> bool:
    return await asyncio.to_thread(verify_secret_sync, secret, stored)


# A real hash of nothing anyone knows: unknown clients cost the same scrypt as known ones, so response time
# does not tell which client ids exist.
DECOY_HASH = hash_secret_sync(secrets.token_urlsafe(16))
