"""Start and stop the identity part of the admin: keys, accounts, tokens and the admin's own verifier."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from artstore_admin.context import AdminContext
from artstore_admin.identity.accounts import AccountService
from artstore_admin.identity.keycrypto import KeyCipher
from artstore_admin.identity.keystore import KeyStore
from artstore_admin.identity.ratelimits import RateLimitPublisher
from artstore_admin.identity.tokens import TokenIssuer
from artstore_common.auth import JwksVerifier
from artstore_common.background import running

_log = logging.getLogger("artstore.admin.identity")
# An unknown kid costs one indexed query here, not an HTTP fetch, so the verifier may look again soon.
_UNKNOWN_KID_RELOAD_SECONDS = 1.0


@asynccontextmanager
async def component(app: FastAPI, ctx: AdminContext) -> AsyncIterator[None]:
    settings = ctx.settings
    if settings.key_encryption_key is None:
        raise RuntimeError("ARTSTORE_ADMIN_KEY_ENCRYPTION_KEY is not set (artstore dev up sets it for you)")
    if settings.key_grace_seconds <= settings.token_lifetime_seconds:
        _log.warning(
            "key_grace_seconds (%s) is not longer than token_lifetime_seconds (%s): tokens signed just before a "
            "rotation will be refused before they expire",
            settings.key_grace_seconds,
            settings.token_lifetime_seconds,
        )
    keys = KeyStore(
        ctx.engine,
        KeyCipher(settings.key_encryption_key.get_secret_value()),
        ctx.audit,
        rotation_seconds=settings.key_rotation_seconds,
        grace_seconds=settings.key_grace_seconds,
    )
    await keys.start()
    limits = RateLimitPublisher(
        ctx.redis,
        settings.redis_namespace,
        per_minute=settings.rate_limit_per_minute,
        burst=settings.rate_limit_burst,
    )
    accounts = AccountService(
        ctx.engine,
        ctx.audit,
        limits,
        secret_overlap_seconds=settings.secret_overlap_seconds,
        secret_lifetime_days=settings.secret_lifetime_days,
    )
    bootstrap_secret = settings.bootstrap_client_secret
    await accounts.bootstrap(
        settings.bootstrap_client_id,
        bootstrap_secret.get_secret_value() if bootstrap_secret else None,
        is_system=settings.bootstrap_is_system,
    )
    await accounts.publish_rate_limits()
    verifier = JwksVerifier(
        jwks_url=None,
        jwks_loader=keys.load_jwks,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        http=ctx.http,
        leeway_seconds=settings.jwt_leeway_seconds,
        refetch_seconds=min(settings.jwks_refetch_seconds, _UNKNOWN_KID_RELOAD_SECONDS),
    )
    await verifier.refresh()
    app.state.keys = keys
    app.state.accounts = accounts
    app.state.tokens = TokenIssuer(
        keys, issuer=settings.jwt_issuer, lifetime_seconds=settings.token_lifetime_seconds
    )
    app.state.verifier = verifier
    app.state.health.add("signing_keys", keys.reload)
    async with running(_maintain_keys(keys, verifier, settings.key_check_seconds), "signing-keys"):
        yield


async def _maintain_keys(keys: KeyStore, verifier: JwksVerifier, check_seconds: float) -> None:
    """Rotate when due, pick up other admins' rotations, and drop retired keys the moment their grace ends."""
    while True:
        delay = check_seconds
        grace_ends = keys.next_expiry()
        if grace_ends is not None:
            delay = min(delay, max((grace_ends - datetime.now(UTC)).total_seconds(), 0.0) + 0.05)
        await asyncio.sleep(delay)
        try:
            rotation = await keys.rotate_if_due()
            if rotation is not None and rotation.rotated:
                _log.info("signing key rotated", extra={"kid": rotation.active_kid})
            # Reloads the key store too; forgets cached verdicts on tokens whose key left the JWKS.
            await verifier.refresh()
        except Exception as exc:  # the database may be down for a while; the next round retries
            _log.warning("signing key maintenance failed: %s", exc)
