"""API key secrets: ``hf_<prefix>_<secret>``, shown once, stored only as a hash.

The prefix (8 letters and digits) is kept in clear so a presented key can be looked up and a
key recognised in listings; the secret is 32 random bytes, base64url without padding
(43 characters, which may include ``-`` and ``_``: the format is parsed by position, not split).

Why a single SHA-256 and not a slow password hash: a slow, salted hash protects *guessable*
secrets from offline guessing. These secrets are 256 bits from the OS CSPRNG, so guessing one
from a leaked hash means a 2**256 search whatever the hash costs, and a per-key salt adds
nothing because no two keys share a secret. A fast hash also keeps authenticating a request a
microsecond job rather than a memory-hard one that clients could use to exhaust the server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from typing import NamedTuple

KEY_MARKER = "hf_"
PREFIX_CHARS = 8
SECRET_BYTES = 32
SECRET_CHARS = 43
"""base64url of 32 bytes without padding."""
HASH_SCHEME = "sha256:"
"""Stored hashes name their algorithm, so a later scheme can be told apart."""

_PREFIX_ALPHABET = string.ascii_letters + string.digits
_PREFIX_SET = frozenset(_PREFIX_ALPHABET)
_SECRET_SET = frozenset(string.ascii_letters + string.digits + "-_")
KEY_CHARS = len(KEY_MARKER) + PREFIX_CHARS + 1 + SECRET_CHARS


class GeneratedApiKey(NamedTuple):
    key: str
    """The full key; give it to the client once and never store it."""
    prefix: str
    """Stored in clear, for lookup and display."""
    secret_hash: str
    """Stored; ``verify_api_key`` checks a presented key against it."""


def generate_api_key() -> GeneratedApiKey:
    """Make a new key: ``(full key shown once, prefix, hash to store)``."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_CHARS))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    key = f"{KEY_MARKER}{prefix}_{secret}"
    return GeneratedApiKey(key=key, prefix=prefix, secret_hash=hash_api_key(key))


def parse_api_key(text: str) -> str | None:
    """The prefix of a well-formed key, or ``None`` for anything else (never raises)."""
    if not isinstance(text, str) or len(text) != KEY_CHARS or not text.startswith(KEY_MARKER):
        return None
    prefix_end = len(KEY_MARKER) + PREFIX_CHARS
    prefix, separator, secret = text[3:prefix_end], text[prefix_end], text[prefix_end + 1 :]
    if separator != "_" or not _PREFIX_SET.issuperset(prefix):
        return None
    if not _SECRET_SET.issuperset(secret):
        return None
    return prefix


def hash_api_key(key: str) -> str:
    """The value stored for ``key``: ``sha256:`` and the hex digest of the whole key."""
    return HASH_SCHEME + hashlib.sha256(key.encode("utf-8")).hexdigest()


def verify_api_key(text: str, stored_hash: str) -> bool:
    """Whether ``text`` is a well-formed key whose hash is ``stored_hash``; never raises.

    The comparison is constant-time (``hmac.compare_digest`` on bytes, so non-ASCII input
    cannot make it raise).
    """
    if parse_api_key(text) is None or not isinstance(stored_hash, str):
        return False
    presented = hash_api_key(text).encode("utf-8")
    return hmac.compare_digest(presented, stored_hash.encode("utf-8", "surrogatepass"))


class Sha256ApiKeySecrets:
    """The ``ApiKeySecrets`` port over the functions of this module."""

    def generate(self) -> tuple[str, str, str]:
        return generate_api_key()

    def parse_prefix(self, presented: str) -> str | None:
        return parse_api_key(presented)

    def verify(self, presented: str, stored_hash: str) -> bool:
        return verify_api_key(presented, stored_hash)
