"""HMAC-signed URLs for stores whose backend cannot sign its own (the filesystem store)."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlsplit

from domain.errors import InvalidInput, Unavailable
from domain.ports.blobs import validate_blob_key

MAX_EXPIRES_IN_S = 7 * 24 * 3600
"""The longest a presigned URL may live: S3's limit, applied to every store alike."""

MIN_SIGNING_KEY_BYTES = 16
_METHODS = frozenset({"GET", "PUT"})


def check_expires_in(expires_in_s: int) -> int:
    """Return ``expires_in_s`` when it is a usable URL lifetime, else raise ``InvalidInput``."""
    if isinstance(expires_in_s, bool) or not isinstance(expires_in_s, int):
        raise InvalidInput(f"expires_in_s must be a whole number of seconds, got {expires_in_s!r}")
    if not 1 <= expires_in_s <= MAX_EXPIRES_IN_S:
        raise InvalidInput(
            f"expires_in_s must be between 1 and {MAX_EXPIRES_IN_S} seconds, got {expires_in_s}"
        )
    return expires_in_s


def presigning_not_configured(store: str) -> Unavailable:
    return Unavailable(
        f"presigned URLs are not configured for the {store} blob store "
        "(it needs a signing key and a public base URL); "
        "check supports_presigned_urls before asking for one"
    )


class UrlSigner:
    """Signs ``{public_base_url}/{key}?method=..&expires=..&signature=..`` URLs.

    The signature is the hex HMAC-SHA256 of ``"{METHOD}\\n{key}\\n{expires}"`` under the
    signing key; ``expires`` is a Unix time in whole seconds.
    """

    def __init__(self, *, signing_key: bytes, public_base_url: str) -> None:
        if len(signing_key) < MIN_SIGNING_KEY_BYTES:
            raise InvalidInput(
                f"signing_key must have at least {MIN_SIGNING_KEY_BYTES} bytes, "
                f"got {len(signing_key)}"
            )
        parts = urlsplit(public_base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query:
            raise InvalidInput(
                f"public_base_url {public_base_url!r} must be an absolute http(s) URL "
                "without a query, e.g. 'https://example.org/api/v1/blobs'"
            )
        self._key = signing_key
        self._base_url = public_base_url.rstrip("/")

    def url(self, method: str, key: str, *, expires_in_s: int, now: float | None = None) -> str:
        method = _check_method(method)
        validate_blob_key(key)
        check_expires_in(expires_in_s)
        expires = int(time.time() if now is None else now) + expires_in_s
        signature = self.signature(method, key, expires)
        return f"{self._base_url}/{key}?method={method}&expires={expires}&signature={signature}"

    def signature(self, method: str, key: str, expires: int) -> str:
        message = f"{method}\n{key}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(
        self, method: str, key: str, expires: int, signature: str, *, now: float | None = None
    ) -> bool:
        """True when ``signature`` was made by :meth:`url` for this method and key and
        ``expires`` has not passed; never raises for malformed input."""
        if method.upper() not in _METHODS or not isinstance(signature, str):
            return False
        try:
            validate_blob_key(key)
        except InvalidInput:
            return False
        if isinstance(expires, bool) or not isinstance(expires, int):
            return False
        current = time.time() if now is None else now
        if current >= expires:
            return False
        expected = self.signature(method.upper(), key, expires)
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def _check_method(method: str) -> str:
    upper = method.upper()
    if upper not in _METHODS:
        raise InvalidInput(f"presigned URLs are for GET or PUT, not {method!r}")
    return upper
