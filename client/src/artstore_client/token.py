"""OAuth 2.0 client credentials (RFC 6749 s.4.4) against the admin's token endpoint."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from artstore_client.credentials import Credentials

TOKEN_PATH = "/api/v1/auth/token"


class TokenRequestFailed(Exception):
    """The admin could not be reached or refused the request; the message says which and why."""


def fetch_token(credentials: Credentials, *, scope: str | None = None, timeout: float = 10.0) -> str:
    url = credentials.admin_url.rstrip("/") + TOKEN_PATH
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    # RFC 6749 s.2.3.1: both halves of the Basic credentials are form-encoded first.
    auth = (quote(credentials.client_id, safe=""), quote(credentials.client_secret, safe=""))
    try:
        response = httpx.post(url, data=form, auth=auth, timeout=timeout)
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
