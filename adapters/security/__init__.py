"""Credential adapters: Argon2id password hashing, signed JWT access tokens, API key secrets."""

from adapters.security.api_keys import (
    GeneratedApiKey,
    Sha256ApiKeySecrets,
    generate_api_key,
    hash_api_key,
    parse_api_key,
    verify_api_key,
)
from adapters.security.passwords import Argon2PasswordHasher
from adapters.security.tokens import JwtTokenService, load_or_create_secret

__all__ = [
    "Argon2PasswordHasher",
    "GeneratedApiKey",
    "JwtTokenService",
    "Sha256ApiKeySecrets",
    "generate_api_key",
    "hash_api_key",
    "load_or_create_secret",
    "parse_api_key",
    "verify_api_key",
]
