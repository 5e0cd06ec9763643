"""A service's own access token: client credentials at the admin, cached until shortly before expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from artstore_common.errors import DependencyUnavailable

TOKEN_PATH = "/api/v1/auth/token"


class ServiceToken:
    """`await token()` gives a valid bearer token; one refresh at a time however many callers wait."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        admin_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        refresh_margin_seconds: float = 60.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._http = http
        self._url = admin_url.rstrip("/") + TOKEN_PATH
        self._client_id = client_id
        self._secret = client_secret
        self._margin = refresh_margin_seconds
        self._timeout = timeout_seconds
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self) -> str:
        if self._token is not None and time.monotonic() < self._expires_at:
            return self._token
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    async def send(self, call: Callable[[dict[str, str]], Awaitable[httpx.Response]]) -> httpx.Response:
        """Make `call` with this service's Authorization header; once more with a fresh token on a 401 (the
        signing key may have rotated out under the cached one)."""
        response = await call({"Authorization": f"Bearer {await self()}"})
        if response.status_code == 401:
            self.invalidate()
            response = await call({"Authorization": f"Bearer {await self()}"})
        return response

    def invalidate(self) -> None:
        """Forget the cached token (a callee refused it: the key may have been rotated out)."""
        self._expires_at = 0.0

    async def _fetch(self) -> None:
        started = time.monotonic()
        try:
            response = await self._http.post(
                self._url,
                data={"grant_type": "client_credentials"},
                # RFC 6749 s.2.3.1: both halves of the Basic credentials are form-encoded first.
                auth=(quote(self._client_id, safe=""), quote(self._secret.get_secret_value(), safe="")),
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(f"cannot reach the admin for a service token: {exc}") from exc
        if response.status_code != 200:
            raise DependencyUnavailable(
                f"the admin refused this service's credentials (HTTP {response.status_code}): "
                f"{response.text[:200]}; check the client id and secret in the settings"
            )
        body = response.json()
        lifetime = float(body.get("expires_in", 300))
        self._token = str(body["access_token"])
        self._expires_at = started + max(lifetime - self._margin, lifetime / 2)
