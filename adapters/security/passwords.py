"""Password hashing with Argon2id (RFC 9106), through argon2-cffi."""

from __future__ import annotations

import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2PasswordHasher:
    """A ``PasswordHasher`` using Argon2id, memory-hard winner of the Password Hashing Competition.

    The defaults are RFC 9106's second recommended option ("low memory": 3 passes over 64 MiB,
    4 lanes), stronger than OWASP's minimum (2 passes over 19 MiB). Hashes are PHC strings
    (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``) that carry their own parameters, so
    raising the cost later keeps old hashes verifiable, and ``needs_rehash`` tells sign-in to
    replace them.

    Args:
        time_cost: passes over memory.
        memory_cost_kib: memory per hash, in KiB.
        parallelism: lanes (threads).
        hash_len_bytes: length of the derived hash.
        salt_len_bytes: length of the random salt made for each hash.
    """

    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_cost_kib: int = 64 * 1024,
        parallelism: int = 4,
        hash_len_bytes: int = 32,
        salt_len_bytes: int = 16,
    ) -> None:
        if time_cost < 1:
            raise ValueError(f"time_cost must be >= 1, got {time_cost}")
        if parallelism < 1:
            raise ValueError(f"parallelism must be >= 1, got {parallelism}")
        if memory_cost_kib < 8 * parallelism:
            raise ValueError(
                f"memory_cost_kib must be >= 8 * parallelism ({8 * parallelism}), "
                f"got {memory_cost_kib}"
            )
        if hash_len_bytes < 16:
            raise ValueError(f"hash_len_bytes must be >= 16, got {hash_len_bytes}")
        if salt_len_bytes < 16:
            raise ValueError(f"salt_len_bytes must be >= 16, got {salt_len_bytes}")
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            hash_len=hash_len_bytes,
            salt_len=salt_len_bytes,
            type=argon2.Type.ID,
        )
        self._dummy_hash: str | None = None

    @classmethod
    def for_tests(cls) -> Argon2PasswordHasher:
        """A deliberately cheap profile (one pass over 8 KiB) so test suites stay fast.

        Never use it for real credentials.
        """
        return cls(time_cost=1, memory_cost_kib=8, parallelism=1)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password: str, password_hash: str) -> bool:
        """Whether ``password`` matches ``password_hash``; ``False`` for a malformed hash."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError, ValueError, TypeError):
            # a mismatch, or a stored value that is not an Argon2 hash at all (a bcrypt hash,
            # an empty column, garbage): either way the password is not accepted
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters (or is unusable) and should be
        replaced by a fresh hash at the next successful sign-in."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError, TypeError):
            return True

    def dummy_verify(self, password: str) -> bool:
        """Spend as long as a real ``verify`` and return ``False``.

        Call it when the username is unknown, so that an unknown user takes as long to refuse
        as a wrong password and usernames cannot be discovered by timing. The reference hash
        is made once, lazily, with this hasher's own parameters, so its cost tracks theirs.
        """
        if self._dummy_hash is None:
            self._dummy_hash = self.hash(secrets.token_urlsafe(32))
        self.verify(password, self._dummy_hash)
        return False
