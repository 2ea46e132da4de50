"""Signing in, and turning a presented credential into a Principal.

Sign-in failures look the same whatever went wrong (unknown user, wrong password, inactive
account) and take the same time, so that usernames cannot be discovered; repeated failures
are limited per username and per client address.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from domain.audit import Outcome
from domain.errors import RateLimited, Unauthenticated
from domain.identity import Principal, PrincipalKind, User
from domain.ports.rate_limits import RateLimiter
from domain.ports.security import ApiKeySecrets, PasswordHasher, TokenClaims, TokenService
from domain.ports.services import Clock
from domain.ports.unit_of_work import UnitOfWorkFactory
from domain.services.auditing import Auditor

BAD_CREDENTIALS = "invalid username or password"


class LoginLimits(msgspec.Struct, frozen=True, kw_only=True):
    failures_per_username: int = 5
    failures_per_address: int = 20
    window_s: int = 300


class SignedIn(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    expires_in_s: int
    user: User


class AuthService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        hasher: PasswordHasher,
        tokens: TokenService,
        key_secrets: ApiKeySecrets,
        limiter: RateLimiter,
        auditor: Auditor,
        access_token_ttl_s: int = 1800,
        login_limits: LoginLimits | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._hasher = hasher
        self._tokens = tokens
        self._key_secrets = key_secrets
        self._limiter = limiter
        self._auditor = auditor
        self._ttl_s = access_token_ttl_s
        self._limits = login_limits or LoginLimits()
        self._dummy_hash: str | None = None

    def _throttle_keys(self, username: str, client_address: str | None) -> list[tuple[str, int]]:
        keys = [(f"login:user:{username.lower()}", self._limits.failures_per_username)]
        if client_address:
            keys.append((f"login:addr:{client_address}", self._limits.failures_per_address))
        return keys

    async def sign_in(
        self, username: str, password: str, *, client_address: str | None
    ) -> SignedIn:
        window = self._limits.window_s
        for key, limit in self._throttle_keys(username, client_address):
            decision = await self._limiter.peek(key, limit=limit, window_s=window)
            if not decision.allowed:
                raise RateLimited(
                    "too many failed sign-ins; try again later", decision.retry_after_s
                )
        async with self._uow() as uow:
            user = await uow.users.get_by_username(username)
        valid = self._check_password(user, password)
        anonymous = Principal(
            kind=PrincipalKind.USER,
            id=user.id if user else None,
            role=user.role if user else None,
            centre_id=user.centre_id if user else None,
            # an unknown "username" may be a password typed into the wrong field: not recorded
            display=user.username if user else "unknown-user",
            client_address=client_address,
        )
        if user is None or not valid or not user.active:
            for key, limit in self._throttle_keys(username, client_address):
                await self._limiter.hit(key, limit=limit, window_s=window)
            await self._auditor.record(
                anonymous, "auth.login", "user", None, outcome=Outcome.DENIED
            )
            raise Unauthenticated(BAD_CREDENTIALS)
        await self._limiter.reset(self._throttle_keys(username, None)[0][0])
        now = self._clock.now()
        async with self._uow() as uow:
            fresh = await uow.users.get(user.id)
            if fresh is not None:
                changes: dict[str, object] = {"last_login_at": now}
                if self._hasher.needs_rehash(fresh.password_hash):
                    changes["password_hash"] = self._hasher.hash(password)
                user = await uow.users.update(msgspec.structs.replace(fresh, **changes))
                await uow.commit()
        token = self._tokens.issue(
            TokenClaims(
                subject=user.id,
                role=user.role,
                centre_id=user.centre_id,
                issued_at=now,
                expires_at=now + timedelta(seconds=self._ttl_s),
            )
        )
        await self._auditor.record(anonymous, "auth.login", "user", user.id)
        return SignedIn(access_token=token, expires_in_s=self._ttl_s, user=user)

    def _check_password(self, user: User | None, password: str) -> bool:
        if user is None:
            # spend the same time as a real check, so unknown usernames are not revealed
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash("not-a-real-password-0000")
            self._hasher.verify(password, self._dummy_hash)
            return False
        return self._hasher.verify(password, user.password_hash)

    async def principal_for_token(self, token: str) -> Principal:
        """Verify a bearer token and load its user; role and active flag come from the database,
        so a deactivated user or a changed role takes effect at once."""
        claims = self._tokens.verify(token)
        async with self._uow() as uow:
            user = await uow.users.get(claims.subject)
            centre = await uow.centres.get(user.centre_id) if user and user.centre_id else None
        if user is None or not user.active:
            raise Unauthenticated("the account behind this token is not active")
        if user.centre_id is not None and (centre is None or not centre.active):
            raise Unauthenticated("the centre of this account is not active")
        return Principal(
            kind=PrincipalKind.USER,
            id=user.id,
            role=user.role,
            centre_id=user.centre_id,
            display=user.username,
        )

    async def principal_for_api_key(self, presented: str) -> Principal:
        prefix = self._key_secrets.parse_prefix(presented)
        if prefix is None:
            raise Unauthenticated("invalid API key")
        async with self._uow() as uow:
            key = await uow.api_keys.get_by_prefix(prefix)
            centre = await uow.centres.get(key.centre_id) if key else None
        if key is None or not self._key_secrets.verify(presented, key.secret_hash):
            raise Unauthenticated("invalid API key")
        if key.revoked:
            raise Unauthenticated("this API key was revoked")
        if key.expires_at is not None and key.expires_at <= self._clock.now():
            raise Unauthenticated("this API key has expired")
        if centre is None or not centre.active:
            raise Unauthenticated("the centre of this API key is not active")
        return Principal(
            kind=PrincipalKind.API_KEY,
            id=key.id,
            role=None,
            centre_id=key.centre_id,
            scopes=key.scopes,
            display=f"key:{key.prefix}",
        )
