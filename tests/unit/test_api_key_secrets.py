"""API key secrets: the shown-once key, its lookup prefix, and the only thing stored, its hash."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.security.api_keys import (
    Sha256ApiKeySecrets,
    generate_api_key,
    hash_api_key,
    parse_api_key,
    verify_api_key,
)
from domain.ports.security import ApiKeySecrets

KEY_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}")


def test_a_new_key_has_the_documented_format() -> None:
    key, prefix, _ = generate_api_key()
    assert KEY_PATTERN.fullmatch(key)
    assert key.startswith(f"hf_{prefix}_")


def test_the_prefix_of_a_new_key_parses_back() -> None:
    key, prefix, _ = generate_api_key()
    assert parse_api_key(key) == prefix


def test_only_a_hash_is_stored_and_it_does_not_reveal_the_secret() -> None:
    key, _, secret_hash = generate_api_key()
    secret = key[len("hf_AbCd1234_") :]
    assert secret_hash.startswith("sha256:")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", secret_hash)
    assert key not in secret_hash
    assert secret not in secret_hash


def test_the_full_key_verifies_against_its_hash() -> None:
    key, _, secret_hash = generate_api_key()
    assert verify_api_key(key, secret_hash) is True


def test_another_key_with_the_same_prefix_does_not_verify() -> None:
    _, prefix, secret_hash = generate_api_key()
    other_key = generate_api_key().key
    forged = f"hf_{prefix}_{other_key[12:]}"
    assert parse_api_key(forged) == prefix
    assert verify_api_key(forged, secret_hash) is False


def test_a_key_with_one_changed_character_does_not_verify() -> None:
    key, _, secret_hash = generate_api_key()
    last = "A" if key[-1] != "A" else "B"
    assert verify_api_key(key[:-1] + last, secret_hash) is False


def test_keys_are_unique() -> None:
    keys = [generate_api_key() for _ in range(200)]
    assert len({key for key, _, _ in keys}) == 200
    assert len({prefix for _, prefix, _ in keys}) == 200
    assert len({secret_hash for _, _, secret_hash in keys}) == 200


def test_a_key_whose_secret_contains_underscores_still_parses() -> None:
    key = "hf_AbCd1234_" + "_" * 20 + "-" * 23
    assert parse_api_key(key) == "AbCd1234"
    assert verify_api_key(key, hash_api_key(key)) is True


@pytest.mark.parametrize(
    "not_a_key",
    [
        "",
        "hf_",
        "hf_AbCd1234_",
        "Bearer hf_AbCd1234_" + "a" * 43,
        "HF_AbCd1234_" + "a" * 43,
        "hf_AbCd1234-" + "a" * 43,
        "hf_AbCd_234_" + "a" * 43,
        "hf_AbCd1234_" + "a" * 42,
        "hf_AbCd1234_" + "a" * 44,
        "hf_AbCd1234_" + "a" * 42 + "=",
        "hf_AbCd1234_" + "a" * 42 + "é",
        " hf_AbCd1234_" + "a" * 42,
        "hf_AbCd1234_" + "a" * 42 + "\n",
    ],
)
def test_malformed_keys_have_no_prefix_and_never_verify(not_a_key: str) -> None:
    assert parse_api_key(not_a_key) is None
    assert verify_api_key(not_a_key, hash_api_key(not_a_key)) is False


@given(garbage=st.text())
def test_any_string_parses_to_none_or_to_a_prefix_of_eight_characters(garbage: str) -> None:
    prefix = parse_api_key(garbage)
    assert prefix is None or (len(prefix) == 8 and garbage.startswith(f"hf_{prefix}_"))


@given(presented=st.text(), stored=st.text())
def test_any_strings_verify_false_without_raising(presented: str, stored: str) -> None:
    assert verify_api_key(presented, stored) is False


@given(stored=st.text())
def test_a_real_key_never_verifies_against_a_garbage_hash(stored: str) -> None:
    key, _, _ = generate_api_key()
    assert verify_api_key(key, stored) is False


def test_the_adapter_serves_the_api_key_secrets_port() -> None:
    secrets_port: ApiKeySecrets = Sha256ApiKeySecrets()
    key, prefix, secret_hash = secrets_port.generate()
    assert secrets_port.parse_prefix(key) == prefix
    assert secrets_port.verify(key, secret_hash) is True
    assert secrets_port.verify(key, hash_api_key(generate_api_key().key)) is False
    assert secrets_port.parse_prefix("garbage") is None
