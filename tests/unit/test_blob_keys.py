"""Blob keys: whatever ``validate_blob_key`` accepts stays inside a store's root."""

from __future__ import annotations

import posixpath
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from adapters.storage.filesystem import FilesystemBlobStore
from domain.errors import InvalidInput
from domain.ports.blobs import MAX_KEY_LENGTH, validate_blob_key

# Characters chosen to hit every trap: separators, dots, backslashes, NUL, colons, unicode.
_TRICKY = st.text(alphabet="aZ09._-/\\:\x00 ~%é", max_size=40)
_SEGMENT = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True)
_VALID_KEYS = st.lists(_SEGMENT, min_size=1, max_size=6).map("/".join)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path_factory.mktemp("blob-root"))


def _accepted(key: str) -> bool:
    try:
        validate_blob_key(key)
    except InvalidInput:
        return False
    return True


@given(key=st.one_of(_TRICKY, st.text(max_size=60), _VALID_KEYS))
@example(key="../x")
@example(key="a/../../x")
@example(key="..")
@example(key="a/..")
def test_any_accepted_key_resolves_strictly_inside_the_root(
    store: FilesystemBlobStore, key: str
) -> None:
    if not _accepted(key):
        with pytest.raises(InvalidInput):
            store.path_for(key)
        return

    path = store.path_for(key)

    assert path.is_relative_to(store.root)
    assert path != store.root
    assert path == store.root.joinpath(*key.split("/"))


@given(key=st.one_of(_TRICKY, st.text(max_size=60)))
def test_an_accepted_key_is_already_a_normalised_relative_posix_path(key: str) -> None:
    if not _accepted(key):
        return

    assert posixpath.normpath(key) == key
    assert not key.startswith("/")
    assert "\\" not in key
    assert ".." not in key.split("/")


@given(key=_VALID_KEYS)
def test_keys_made_of_valid_segments_are_accepted_unchanged(key: str) -> None:
    assert validate_blob_key(key) == key


@given(prefix=_VALID_KEYS, trap=st.sampled_from(["..", ".", "", ".hidden", "a\\b", "/x"]))
def test_a_single_bad_segment_anywhere_rejects_the_key(prefix: str, trap: str) -> None:
    with pytest.raises(InvalidInput):
        validate_blob_key(f"{prefix}/{trap}")


def test_keys_longer_than_the_limit_are_rejected() -> None:
    key = "/".join(["a" * 100] * 11)
    assert len(key) > MAX_KEY_LENGTH

    with pytest.raises(InvalidInput, match="characters"):
        validate_blob_key(key)


def test_an_invalid_key_error_quotes_the_key_without_flooding_the_message() -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_blob_key("../" * 500)

    assert len(raised.value.detail) < 300


def test_resolution_happens_against_the_resolved_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)

    store = FilesystemBlobStore(tmp_path / "link")

    assert store.root == real.resolve()
    assert store.path_for("a/b") == real.resolve() / "a" / "b"
