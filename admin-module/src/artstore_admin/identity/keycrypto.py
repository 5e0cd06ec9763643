"""Signing-key material: RSA generation, AES-GCM encryption at rest, public JWK export."""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BITS = 2048
_NONCE_BYTES = 12
_PUBLIC_MEMBERS = ("kty", "n", "e")


class KeyDecryptionError(RuntimeError):
    pass


class KeyCipher:
    """Encrypts private keys for the database. The kid is authenticated data, so a ciphertext copied onto
    another key's row fails to decrypt instead of silently signing under the wrong kid."""

    def __init__(self, encoded_key: str) -> None:
        try:
            key = base64.b64decode(encoded_key, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("ARTSTORE_ADMIN_KEY_ENCRYPTION_KEY must be base64 of 32 random bytes") from exc
        if len(key) != 32:
            raise ValueError(
                f"ARTSTORE_ADMIN_KEY_ENCRYPTION_KEY decodes to {len(key)} bytes; it must be 32 "
                "(e.g. `python -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())'`)"
            )
        self._aead = AESGCM(key)

    def encrypt(self, kid: str, private_key: rsa.RSAPrivateKey) -> bytes:
        der = private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, der, kid.encode())

    def decrypt(self, kid: str, blob: bytes) -> rsa.RSAPrivateKey:
        try:
            der = self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], kid.encode())
        except InvalidTag as exc:
            raise KeyDecryptionError(
                f"cannot decrypt signing key {kid}: ARTSTORE_ADMIN_KEY_ENCRYPTION_KEY is not the key it was "
                "stored with"
            ) from exc
        key = serialization.load_der_private_key(der, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise KeyDecryptionError(f"signing key {kid} is not an RSA key")
        return key


def generate_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def public_jwk(kid: str, private_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Only the public members (RFC 7517/7518): never d, p, q, dp, dq, qi."""
    full = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    jwk = {name: full[name] for name in _PUBLIC_MEMBERS}
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return jwk
