"""OAuth 2.0 client credentials (RFC 6749 s.4.4) against the admin's token endpoint, and the SDK's token cache."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from artstore_client.credentials import Credentials
from artstore_client.errors import ApiError, ArtStoreError, unreachable

TOKEN_PATH = "/api/v1/auth/token"
REFRESH_MARGIN_SECONDS = 60.0


class TokenRequestFailed(ArtStoreError):
    """The admin could not be reached or refused the request; the message says which and why."""


def _basic_auth(client_id: str, client_secret: str) -> tuple[str, str]:
    # RFC 6749 s.2.3.1: both halves of the Basic credentials are form-encoded first.
    return quote(client_id, safe=""), quote(client_secret, safe="")


def _form(scope: str | None) -> dict[str, str]:
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    return form


def fetch_token(credentials: Credentials, *, scope: str | None = None, timeout: float = 10.0) -> str:
    """One token, no cache (used by `artstore dev up`); failures are TokenRequestFailed."""
    url = credentials.admin_url.rstrip("/") + TOKEN_PATH
    auth = _basic_auth(credentials.client_id, credentials.client_secret)
    try:
        response = httpx.post(url, data=_form(scope), auth=auth, timeout=timeout)
    except httpx.HTTPError as exc:
        raise TokenRequestFailed(
            f"cannot reach the admin at {credentials.admin_url} ({exc}); is `artstore dev up` running?"
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        error = body.get("error", f"HTTP {response.status_code}") if isinstance(body, dict) else "bad reply"
        detail = body.get("error_description", "") if isinstance(body, dict) else ""
        raise TokenRequestFailed(f"the admin refused the token request: {error}. {detail}".strip())
    return str(body["access_token"])


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read without verifying it (the services verify); None if unreadable."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class _Grant:
    value: str
    expires_at: float  # time.monotonic() clock


class TokenCache:
    """One access token shared by every call of a client (and its threads); a new one is fetched when less
    than `margin` seconds of its life remain, or when a service refused it (`refresh`)."""

    def __init__(
        self,
        http: httpx.Client,
        client_id: str,
        client_secret: str,
        *,
        admin_url: str,
        scope: str | None = None,
        margin: float = REFRESH_MARGIN_SECONDS,
        initial: str | None = None,
    ) -> None:
        self._http = http
        self._auth = _basic_auth(client_id, client_secret)
        self._admin_url = admin_url
        self._scope = scope
        self._margin = margin
        self._lock = threading.Lock()
        self._grant: _Grant | None = None
        if initial:
            exp = token_expiry(initial)
            lifetime = exp - time.time() if exp is not None else margin + 3600.0
            self._grant = _Grant(initial, time.monotonic() + lifetime)

    def get(self) -> str:
        with self._lock:
            grant = self._grant
            if grant is None or time.monotonic() >= grant.expires_at - self._margin:
                grant = self._grant = self._fetch()
            return grant.value

    def refresh(self, refused: str) -> str:
        """A service refused `refused`: fetch a new token unless another thread already did."""
        with self._lock:
            if self._grant is None or self._grant.value == refused:
                self._grant = self._fetch()
            return self._grant.value

    def _fetch(self) -> _Grant:
        started = time.monotonic()
        try:
            response = self._http.post(TOKEN_PATH, data=_form(self._scope), auth=self._auth)
        except httpx.TransportError as exc:
            raise unreachable(exc, service="admin", url=self._admin_url) from None
        if response.status_code != 200:
            raise ApiError.from_response(response)
        try:
            body = response.json()
            value = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                response.status_code, "BAD_TOKEN_RESPONSE", "the admin's token reply has no access_token"
            ) from None
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            lifetime = float(expires_in)
        else:
            exp = token_expiry(value)
            lifetime = exp - time.time() if exp is not None else 0.0
        return _Grant(value, started + lifetime)
