"""Signed access tokens (JWT, RFC 7519) through joserfc, and the generated signing secret.

joserfc is the JOSE library of the Authlib project; ``authlib.jose`` is deprecated in its favour
since Authlib 1.6, so it is used directly.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import ECKey, OctKey, RSAKey

from domain.errors import Unauthenticated
from domain.identity import Role
from domain.ports.security import TokenClaims
from domain.ports.services import Clock
from domain.values import utc

MIN_SECRET_BYTES = 32
"""HS256 keys shorter than the hash output (256 bits) weaken it (RFC 7518 section 3.2)."""
GENERATED_SECRET_BYTES = 64
MIN_RSA_BITS = 2048
MAX_LEEWAY_S = 60
MAX_TOKEN_CHARS = 8192
"""Longer strings are refused before any parsing: ours are a few hundred characters."""

INVALID_TOKEN = "invalid token"
EXPIRED_TOKEN = "token expired"

REQUIRED_CLAIMS = ("iss", "aud", "sub", "role", "centre", "iat", "exp", "jti")

_SigningKey = OctKey | RSAKey | ECKey


class JwtTokenService:
    """A ``TokenService`` issuing compact JWS tokens signed with one configured algorithm.

    Give exactly one of ``secret`` (HS256, shared by every process that verifies) or
    ``private_key_pem`` (an unencrypted PKCS#8/PKCS#1/SEC1 PEM private key: RSA of at least 2048
    bits gives RS256, EC P-256 gives ES256; verification uses only the derived public key).

    Tokens carry ``iss``, ``aud``, ``sub`` (user id), ``role``, ``centre`` (centre id or null),
    ``iat``, ``exp`` (whole seconds) and a random ``jti``. ``verify`` accepts only the configured
    algorithm (so ``alg: none`` and HS256/RS256 confusion are refused), then checks the
    signature, expiry (with ``leeway_s`` for clock skew), issuer, audience and every claim;
    each failure raises ``Unauthenticated`` with a short generic reason.

    Args:
        issuer: the ``iss`` written and required.
        audience: the ``aud`` written and required.
        secret: the HS256 key, at least 32 bytes.
        private_key_pem: the RS256/ES256 private key.
        leeway_s: clock skew tolerated on ``exp`` and ``iat``, 0 to 60 seconds.
        clock: where "now" comes from when verifying; the system clock when omitted.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        secret: bytes | None = None,
        private_key_pem: bytes | None = None,
        leeway_s: int = 5,
        clock: Clock | None = None,
    ) -> None:
        if not issuer:
            raise ValueError("issuer must not be empty")
        if not audience:
            raise ValueError("audience must not be empty")
        if not 0 <= leeway_s <= MAX_LEEWAY_S:
            raise ValueError(f"leeway_s must be between 0 and {MAX_LEEWAY_S}, got {leeway_s}")
        if (secret is None) == (private_key_pem is None):
            raise ValueError("give exactly one of secret (HS256) or private_key_pem (RS256/ES256)")
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._clock = clock
        self._public_key_pem: bytes | None = None
        self._signing_key: _SigningKey
        self._verifying_key: _SigningKey
        if secret is not None:
            if not isinstance(secret, bytes):
                raise TypeError(f"secret must be bytes, got {type(secret).__name__}")
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}"
                )
            self._algorithm = "HS256"
            self._signing_key = self._verifying_key = OctKey.import_key(secret)
        else:
            assert private_key_pem is not None
            (
                self._algorithm,
                self._signing_key,
                self._verifying_key,
                self._public_key_pem,
            ) = _asymmetric_keys(private_key_pem)

    @property
    def algorithm(self) -> str:
        """The one JWS algorithm this service signs with and accepts."""
        return self._algorithm

    @property
    def public_key_pem(self) -> bytes | None:
        """The SubjectPublicKeyInfo PEM other verifiers need (``None`` for HS256)."""
        return self._public_key_pem

    def issue(self, claims: TokenClaims) -> str:
        issued_at = _numeric_date(claims.issued_at)
        expires_at = _numeric_date(claims.expires_at)
        if expires_at <= issued_at:
            raise ValueError(
                f"expires_at ({claims.expires_at.isoformat()}) must be at least a second "
                f"after issued_at ({claims.issued_at.isoformat()})"
            )
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(claims.subject),
            "role": claims.role.value,
            "centre": None if claims.centre_id is None else str(claims.centre_id),
            "iat": issued_at,
            "exp": expires_at,
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(
            {"alg": self._algorithm}, payload, self._signing_key, algorithms=[self._algorithm]
        )

    def verify(self, token: str) -> TokenClaims:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated(INVALID_TOKEN)
        try:
            decoded = jwt.decode(token, self._verifying_key, algorithms=[self._algorithm])
        except (JoseError, ValueError, TypeError, KeyError, IndexError) as err:
            # malformed base64/JSON, a header naming another algorithm, a bad signature
            raise Unauthenticated(INVALID_TOKEN) from err
        if decoded.header.get("alg") != self._algorithm:
            raise Unauthenticated(INVALID_TOKEN)
        payload = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=int(self._now()),
            leeway=self._leeway_s,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": self._audience},
            sub={"essential": True},
            iat={"essential": True},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(payload)
        except ExpiredTokenError as err:
            raise Unauthenticated(EXPIRED_TOKEN) from err
        except (JoseError, ValueError, TypeError, OverflowError) as err:
            raise Unauthenticated(INVALID_TOKEN) from err
        try:
            return _claims_from(payload)
        except (KeyError, ValueError, TypeError, OverflowError, OSError) as err:
            raise Unauthenticated(INVALID_TOKEN) from err

    def _now(self) -> float:
        return self._clock.now().timestamp() if self._clock is not None else time.time()


def _claims_from(payload: dict[str, Any]) -> TokenClaims:
    """Read the domain claims; a missing or ill-typed one raises KeyError, ValueError, TypeError."""
    missing = [name for name in REQUIRED_CLAIMS if name not in payload]
    if missing:
        raise KeyError(",".join(missing))
    subject, role, centre = payload["sub"], payload["role"], payload["centre"]
    issued_at, expires_at = payload["iat"], payload["exp"]
    if not isinstance(subject, str) or not isinstance(role, str):
        raise TypeError("sub and role must be strings")
    if centre is not None and not isinstance(centre, str):
        raise TypeError("centre must be a string or null")
    if expires_at <= issued_at:
        raise ValueError("exp must be after iat")
    return TokenClaims(
        subject=UUID(subject),
        role=Role(role),
        centre_id=None if centre is None else UUID(centre),
        issued_at=datetime.fromtimestamp(issued_at, UTC),
        expires_at=datetime.fromtimestamp(expires_at, UTC),
    )


def _numeric_date(moment: datetime) -> int:
    """Whole seconds since the epoch (JWT NumericDate); naive datetimes are refused."""
    return int(utc(moment).timestamp())


def _asymmetric_keys(private_key_pem: bytes) -> tuple[str, _SigningKey, _SigningKey, bytes]:
    """The algorithm, signing key, verifying key (public only) and public PEM of a private key."""
    try:
        native = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise ValueError(
            "private_key_pem is not an unencrypted PEM private key (RSA or EC P-256)"
        ) from err
    public_pem = native.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if isinstance(native, rsa.RSAPrivateKey):
        if native.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"an RSA key must have at least {MIN_RSA_BITS} bits, got {native.key_size}"
            )
        rsa_keys = RSAKey.import_key(private_key_pem), RSAKey.import_key(public_pem)
        return "RS256", *rsa_keys, public_pem
    if isinstance(native, ec.EllipticCurvePrivateKey):
        if not isinstance(native.curve, ec.SECP256R1):
            raise ValueError(f"an EC key must be on P-256 for ES256, got {native.curve.name}")
        ec_keys = ECKey.import_key(private_key_pem), ECKey.import_key(public_pem)
        return "ES256", *ec_keys, public_pem
    raise ValueError(f"unsupported private key type {type(native).__name__}; use RSA or EC P-256")


def load_or_create_secret(path: Path) -> bytes:
    """Return the HS256 secret kept at ``path``, generating it on first use.

    A new secret is 64 random bytes, written to a temporary file created with mode 0600 in the
    same directory, fsynced, then hard-linked into place: the link is atomic and never replaces
    a secret another process created meanwhile (that one is read and returned instead), so
    every process of an installation ends up with the same secret. An existing file that group
    or others can access, or that is shorter than 32 bytes, is refused rather than used.
    """
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        return _read_secret(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_bytes(GENERATED_SECRET_BYTES)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read_secret(path)
        _fsync_directory(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return secret


def _read_secret(path: Path) -> bytes:
    with path.open("rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if os.name == "posix" and mode & 0o077:
            raise PermissionError(
                f"secret file {str(path)!r} can be read by group or others "
                f"(mode {oct(mode & 0o777)}); run: chmod 600 {path}"
            )
        secret = handle.read()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"secret file {str(path)!r} holds {len(secret)} bytes, fewer than "
            f"{MIN_SECRET_BYTES}; delete it to generate a new one"
        )
    return secret


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
