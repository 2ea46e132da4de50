"""Contract for PasswordHasher: every adapter hashes, salts, verifies and flags old hashes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.security.passwords import Argon2PasswordHasher
from domain.ports.security import PasswordHasher

HASHERS: dict[str, Callable[[], PasswordHasher]] = {
    "argon2id": Argon2PasswordHasher.for_tests,
}


@pytest.fixture(params=sorted(HASHERS))
def hasher(request: pytest.FixtureRequest) -> PasswordHasher:
    return HASHERS[request.param]()


def test_a_hash_does_not_contain_the_password(hasher: PasswordHasher) -> None:
    password = "correct horse battery staple"
    password_hash = hasher.hash(password)
    assert password_hash != password
    assert password not in password_hash


def test_the_right_password_verifies(hasher: PasswordHasher) -> None:
    password_hash = hasher.hash("s3cret-Päss")
    assert hasher.verify("s3cret-Päss", password_hash) is True


def test_a_wrong_password_does_not_verify(hasher: PasswordHasher) -> None:
    password_hash = hasher.hash("s3cret-pass")
    assert hasher.verify("s3cret-pasS", password_hash) is False
    assert hasher.verify("", password_hash) is False


def test_two_hashes_of_one_password_differ_because_each_is_salted(hasher: PasswordHasher) -> None:
    first, second = hasher.hash("same password"), hasher.hash("same password")
    assert first != second
    assert hasher.verify("same password", first)
    assert hasher.verify("same password", second)


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=8,t=1,p=1$",
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$!!!!",
        "$2b$12$KIXQJ8Q7e1d6lQ8mXgk3eOqS6Fq0k0bH3Z5v2l7QvJ0a1b2c3d4e5",  # bcrypt
        "pbkdf2_sha256$600000$salt$hash",
        "$argon2id$v=19$m=99999999999999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        "\x00\udcff",
    ],
)
def test_a_malformed_hash_never_verifies_and_never_raises(
    hasher: PasswordHasher, malformed: str
) -> None:
    assert hasher.verify("anything", malformed) is False


@settings(max_examples=50, deadline=None)
@given(password=st.text(max_size=40), stored=st.text(max_size=120))
def test_any_stored_string_verifies_false_without_raising(password: str, stored: str) -> None:
    hasher = Argon2PasswordHasher.for_tests()
    assert hasher.verify(password, stored) is False


def test_a_fresh_hash_needs_no_rehash(hasher: PasswordHasher) -> None:
    assert hasher.needs_rehash(hasher.hash("pw")) is False


def test_a_hash_made_with_a_lower_cost_needs_rehash_and_still_verifies() -> None:
    old = Argon2PasswordHasher(time_cost=1, memory_cost_kib=8, parallelism=1)
    raised = Argon2PasswordHasher(time_cost=2, memory_cost_kib=16, parallelism=1)
    old_hash = old.hash("pw")
    assert raised.needs_rehash(old_hash) is True
    assert raised.verify("pw", old_hash) is True
    assert raised.needs_rehash(raised.hash("pw")) is False


def test_a_malformed_hash_needs_rehash(hasher: PasswordHasher) -> None:
    assert hasher.needs_rehash("not a hash") is True


def test_dummy_verify_refuses_every_password() -> None:
    hasher = Argon2PasswordHasher.for_tests()
    assert hasher.dummy_verify("") is False
    assert hasher.dummy_verify("any password at all") is False


def test_the_default_profile_is_argon2id_and_memory_hard() -> None:
    password_hash = Argon2PasswordHasher().hash("pw")
    assert password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


@pytest.mark.parametrize(
    "bad",
    [
        {"time_cost": 0},
        {"parallelism": 0},
        {"memory_cost_kib": 4},
        {"salt_len_bytes": 8},
        {"hash_len_bytes": 4},
    ],
)
def test_unsafe_cost_parameters_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        Argon2PasswordHasher(**bad)
