"""A token issuer for tests until the admin module exists: its own RSA keys, served as a real JWKS."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ALL_PERMISSIONS = [
    "files:read", "files:write", "files:delete", "storage:read", "storage:write",
    "accounts:read", "accounts:write", "audit:read", "internal",
]  # fmt: skip
ISSUER = "artstore-admin"
AUDIENCE = ["admin", "ingester", "query", "storage"]


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class TestIssuer:
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    published: bool = True
    _server: ThreadingHTTPServer | None = None

    def jwks(self) -> dict[str, Any]:
        if not self.published:
            return {"keys": []}
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def token(
        self,
        *,
        sub: str = "test-account",
        permissions: list[str] | None = None,
        role: str = "ADMIN",
        lifetime: int = 1800,
        header: dict[str, Any] | None = None,
        key: rsa.RSAPrivateKey | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        perms = ALL_PERMISSIONS if permissions is None else permissions
        body: dict[str, Any] = {
            "iss": ISSUER,
            "sub": sub,
            "client_id": f"client-{sub}",
            "role": role,
            "scope": " ".join(perms),
            "permissions": perms,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        body.update(claims)
        headers = {"kid": self.kid, "typ": "at+jwt", **(header or {})}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers=headers)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    def start(self) -> TestIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200 if self.path.endswith("jwks.json") else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                """Requests are not logged: the test output stays readable."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
