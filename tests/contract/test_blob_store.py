"""The BlobStore contract, run against every adapter (memory, filesystem, S3 on moto),
then what each adapter adds: presigned URLs, path safety, failures, the storage URL."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from adapters.memory.blobs import MemoryBlobStore
from adapters.storage import (
    FilesystemBlobStore,
    S3BlobStore,
    StorageHealthProbe,
    blob_store_from_url,
)
from domain.errors import Conflict, InvalidInput, Unavailable
from domain.ports.blobs import BlobEntry, BlobInfo, BlobNotFound, BlobStore, BlobWrite
from tests.fixtures.s3 import S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY

SIGNING_KEY = b"contract-test-signing-key-0123456789"
PUBLIC_BASE_URL = "https://hounsfield.test/api/v1/blobs"
MIB = 1024 * 1024


@pytest.fixture(params=["memory", "filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    if request.param == "filesystem":
        return FilesystemBlobStore(
            tmp_path / "blobs", signing_key=SIGNING_KEY, public_base_url=PUBLIC_BASE_URL
        )
    s3_store: S3BlobStore = request.getfixturevalue("s3_blob_store")
    return s3_store


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that are not a repeating period of any chunk size we use."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


async def chunks_of(data: bytes, chunk_size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk_size):
        yield data[start : start + chunk_size]


async def collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in stream]


async def listed(store: BlobStore, prefix: str) -> dict[str, int]:
    """The keys under ``prefix`` with their sizes."""
    return {entry.key: entry.size_bytes async for entry in store.list_prefix(prefix)}


# -- the contract ---------------------------------------------------------------------------


async def test_bytes_put_are_returned_byte_identical(store: BlobStore) -> None:
    data = bytes(range(256)) * 64 + pattern(10_000)

    info = await store.put("studies/1.2.840.1/series/7/instance-1.dcm", data)

    assert info == BlobInfo(
        key="studies/1.2.840.1/series/7/instance-1.dcm", size_bytes=len(data), content_type=None
    )
    assert await store.get("studies/1.2.840.1/series/7/instance-1.dcm") == data


async def test_an_empty_object_round_trips(store: BlobStore) -> None:
    await store.put("empty.bin", b"")

    assert await store.get("empty.bin") == b""
    assert await store.head("empty.bin") == BlobInfo(key="empty.bin", size_bytes=0)


async def test_a_streamed_put_of_many_chunks_streams_back_identical(store: BlobStore) -> None:
    data = pattern(9 * MIB + 12_345, seed=1)  # over 8 MiB: S3 takes it as a multipart upload

    info = await store.put("large/volume.nii", chunks_of(data, 64 * 1024))
    chunks = await collect(store.stream("large/volume.nii", chunk_size=MIB))

    assert info.size_bytes == len(data)
    assert len(chunks) > 1
    assert b"".join(chunks) == data
    assert await store.get("large/volume.nii") == data


async def test_a_streamed_put_of_no_chunks_stores_an_empty_object(store: BlobStore) -> None:
    info = await store.put("nothing.bin", chunks_of(b"", 1))

    assert info.size_bytes == 0
    assert await store.get("nothing.bin") == b""


async def test_head_reports_size_and_content_type(store: BlobStore) -> None:
    await store.put("mask.dcm", b"x" * 1234, content_type="application/dicom")
    await store.put("plain.bin", b"y" * 10)

    assert await store.head("mask.dcm") == BlobInfo(
        key="mask.dcm", size_bytes=1234, content_type="application/dicom"
    )
    assert await store.head("plain.bin") == BlobInfo(key="plain.bin", size_bytes=10)
    assert await store.head("absent.bin") is None


async def test_exists_follows_put_and_delete(store: BlobStore) -> None:
    assert not await store.exists("a/b.bin")

    await store.put("a/b.bin", b"1")
    assert await store.exists("a/b.bin")

    await store.delete("a/b.bin")
    assert not await store.exists("a/b.bin")
    assert await store.head("a/b.bin") is None


async def test_deleting_a_missing_key_is_not_an_error(store: BlobStore) -> None:
    await store.put("once.bin", b"1")

    await store.delete("once.bin")
    await store.delete("once.bin")
    await store.delete("never/existed.bin")

    assert not await store.exists("once.bin")


async def test_getting_a_missing_key_raises_blob_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound) as raised:
        await store.get("missing/object.bin")

    assert raised.value.key == "missing/object.bin"


async def test_streaming_a_missing_key_raises_blob_not_found_on_first_iteration(
    store: BlobStore,
) -> None:
    chunks = store.stream("missing/object.bin")

    with pytest.raises(BlobNotFound):
        await anext(chunks)


async def test_overwriting_replaces_the_whole_object(store: BlobStore) -> None:
    await store.put("report.txt", b"a long first version " * 100, content_type="text/plain")

    await store.put("report.txt", b"short")

    assert await store.get("report.txt") == b"short"
    assert await store.head("report.txt") == BlobInfo(key="report.txt", size_bytes=5)


async def test_readers_see_the_old_object_until_a_streamed_overwrite_completes(
    store: BlobStore,
) -> None:
    old, new = pattern(100_000, seed=2), pattern(6 * MIB, seed=3)
    await store.put("series/volume.bin", old)
    seen_mid_write: list[bytes] = []
    new_key_visible_mid_write: list[bool] = []

    async def slow_source() -> AsyncIterator[bytes]:
        for index, start in enumerate(range(0, len(new), MIB)):
            if index == 3:
                seen_mid_write.append(await store.get("series/volume.bin"))
                new_key_visible_mid_write.append(await store.exists("series/other.bin"))
            yield new[start : start + MIB]

    await store.put("series/volume.bin", slow_source())
    await store.put("series/other.bin", chunks_of(new, MIB))

    assert seen_mid_write == [old]
    assert new_key_visible_mid_write == [False]
    assert await store.get("series/volume.bin") == new


async def test_a_failed_streamed_put_leaves_the_previous_object(store: BlobStore) -> None:
    await store.put("kept.bin", b"previous")

    async def failing_source() -> AsyncIterator[bytes]:
        yield pattern(6 * MIB, seed=4)
        raise InvalidInput("upload exceeds the size limit")

    with pytest.raises(InvalidInput, match="size limit"):
        await store.put("kept.bin", failing_source())
    with pytest.raises(InvalidInput, match="size limit"):
        await store.put("fresh.bin", failing_source())

    assert await store.get("kept.bin") == b"previous"
    assert not await store.exists("fresh.bin")


INVALID_KEYS = ["../x", "/abs", "a//b", "a\\b", "", "a/../b", "./a", "a/", ".hidden"]


@pytest.mark.parametrize("key", INVALID_KEYS)
async def test_invalid_keys_are_rejected_by_every_operation(store: BlobStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        await store.put(key, b"data")
    with pytest.raises(InvalidInput):
        await store.put(key, chunks_of(b"data", 2))
    with pytest.raises(InvalidInput):
        await store.get(key)
    with pytest.raises(InvalidInput):
        await anext(store.stream(key))
    with pytest.raises(InvalidInput):
        await store.head(key)
    with pytest.raises(InvalidInput):
        await store.exists(key)
    with pytest.raises(InvalidInput):
        await store.delete(key)
    with pytest.raises(InvalidInput):
        await store.presign_put(key, expires_in_s=60)
    with pytest.raises(InvalidInput):
        await store.presign_get(key, expires_in_s=60)


async def test_a_batch_round_trips_each_object_with_its_content_type(store: BlobStore) -> None:
    writes = [
        BlobWrite("batch/s1/a.dcm", pattern(3000, seed=1), "application/dicom"),
        BlobWrite("batch/s1/b.json", b'{"b": 2}', "application/json"),
        BlobWrite("batch/s2/c.bin", pattern(17, seed=3)),
        BlobWrite("top.bin", b""),
    ]

    await store.put_many(writes)

    for write in writes:
        assert await store.get(write.key) == write.data
        assert await store.head(write.key) == BlobInfo(
            key=write.key, size_bytes=len(write.data), content_type=write.content_type
        )


async def test_a_batch_returns_the_infos_in_the_order_of_its_writes(store: BlobStore) -> None:
    keys = [f"order/{name}.bin" for name in ("m", "c", "x", "a", "q", "b", "z", "d", "k", "e")]
    writes = [BlobWrite(key, pattern(i * 11, seed=i)) for i, key in enumerate(keys)]

    infos = await store.put_many(writes)

    assert infos == [BlobInfo(key=key, size_bytes=i * 11) for i, key in enumerate(keys)]


async def test_an_empty_batch_returns_no_infos(store: BlobStore) -> None:
    assert await store.put_many([]) == []


@pytest.mark.parametrize("key", ["../x", "a//b", ".hidden"])
async def test_an_invalid_key_in_a_batch_rejects_it_before_anything_is_written(
    store: BlobStore, key: str
) -> None:
    writes = [BlobWrite("first.bin", b"1"), BlobWrite(key, b"2"), BlobWrite("last.bin", b"3")]

    with pytest.raises(InvalidInput):
        await store.put_many(writes)

    assert not await store.exists("first.bin")
    assert not await store.exists("last.bin")


async def test_every_object_of_a_batch_is_readable_once_it_returns(store: BlobStore) -> None:
    await store.put("ready/old.bin", b"previous")
    body = pattern(3 * 1024 + 7, seed=9)

    await store.put_many([BlobWrite("ready/old.bin", b"replaced"), BlobWrite("ready/new", body)])

    assert await store.get("ready/old.bin") == b"replaced"
    assert await store.exists("ready/new")
    assert b"".join(await collect(store.stream("ready/new", chunk_size=1000))) == body


async def test_ping_succeeds_on_a_working_store(store: BlobStore) -> None:
    await store.ping()

    assert await StorageHealthProbe(store, detail="under test").check() == "under test"


async def test_presigning_is_refused_clearly_when_unsupported(store: BlobStore) -> None:
    if store.supports_presigned_urls:
        pytest.skip("this store supports presigned URLs")

    with pytest.raises(Unavailable, match="presigned URLs are not"):
        await store.presign_put("upload.dcm", expires_in_s=60)
    with pytest.raises(Unavailable, match="presigned URLs are not"):
        await store.presign_get("upload.dcm", expires_in_s=60)


@pytest.mark.parametrize("expires_in_s", [0, -1, 8 * 24 * 3600])
async def test_presigned_url_lifetimes_out_of_range_are_rejected(
    store: BlobStore, expires_in_s: int
) -> None:
    if not store.supports_presigned_urls:
        pytest.skip("this store has no presigned URLs")

    with pytest.raises(InvalidInput, match="expires_in_s"):
        await store.presign_get("upload.dcm", expires_in_s=expires_in_s)


async def test_listing_a_prefix_answers_exactly_the_objects_under_it_with_sizes(
    store: BlobStore,
) -> None:
    await store.put("staging/c1/u1/scan.dcm", b"123")
    await store.put("staging/c1/u2/other.dcm", chunks_of(b"12345", 2), content_type="x/y")
    await store.put("staging/c2/u3/third.nii", b"")
    await store.put("staging2/c1/u4/sibling.dcm", b"sibling")
    await store.put("stagingfile.bin", b"not under staging/")
    await store.put("centres/c1/staging/x.dcm", b"staging deeper down")

    under_staging = {
        "staging/c1/u1/scan.dcm": 3,
        "staging/c1/u2/other.dcm": 5,
        "staging/c2/u3/third.nii": 0,
    }
    assert await listed(store, "staging") == under_staging
    assert await listed(store, "staging/") == under_staging
    assert await listed(store, "staging/c1") == {
        "staging/c1/u1/scan.dcm": 3,
        "staging/c1/u2/other.dcm": 5,
    }


async def test_listing_a_prefix_with_nothing_under_it_answers_nothing(store: BlobStore) -> None:
    assert await listed(store, "staging") == {}
    await store.put("staging/c1/u1/scan.dcm", b"123")

    assert await listed(store, "nothing") == {}
    assert await listed(store, "staging/c2") == {}
    assert await listed(store, "staging/c1/u1/scan.dcm") == {}  # an object is no prefix


async def test_listing_the_empty_prefix_answers_every_object(store: BlobStore) -> None:
    await store.put("top.bin", b"1")
    await store.put("a/b/c.bin", b"22")

    assert await listed(store, "") == {"top.bin": 1, "a/b/c.bin": 2}


async def test_listed_objects_carry_a_recent_utc_modification_time(store: BlobStore) -> None:
    # S3 keeps whole seconds and its clock is not ours: a few seconds of slack either way
    before = datetime.now(UTC) - timedelta(seconds=5)
    await store.put("staging/c1/u1/scan.dcm", b"123")
    after = datetime.now(UTC) + timedelta(seconds=5)

    [entry] = [entry async for entry in store.list_prefix("staging")]

    assert isinstance(entry, BlobEntry)
    assert entry.modified_at.utcoffset() == timedelta(0)
    assert before <= entry.modified_at <= after


async def test_objects_may_be_deleted_while_they_are_listed(store: BlobStore) -> None:
    for index in range(5):
        await store.put(f"staging/c1/u{index}/scan.dcm", b"x")

    async for entry in store.list_prefix("staging"):
        await store.delete(entry.key)

    assert await listed(store, "staging") == {}


@pytest.mark.parametrize("prefix", ["../x", "/abs", "a//b", "a\\b", "/", ".hidden"])
async def test_invalid_prefixes_are_rejected(store: BlobStore, prefix: str) -> None:
    with pytest.raises(InvalidInput):
        await anext(store.list_prefix(prefix))


# -- S3: presigned URLs work with a plain HTTP client, failures are Unavailable -------------


@pytest.mark.s3
async def test_s3_presigned_put_accepts_an_upload_that_get_returns(
    s3_blob_store: S3BlobStore,
) -> None:
    url = await s3_blob_store.presign_put("uploads/large.dcm", expires_in_s=300)
    data = pattern(300_000, seed=5)

    async with httpx.AsyncClient() as client:
        response = await client.put(url, content=data)

    assert response.status_code == 200
    assert await s3_blob_store.get("uploads/large.dcm") == data


@pytest.mark.s3
async def test_s3_presigned_get_serves_the_object(s3_blob_store: S3BlobStore) -> None:
    data = pattern(50_000, seed=6)
    await s3_blob_store.put("exports/study.zip", data)
    url = await s3_blob_store.presign_get("exports/study.zip", expires_in_s=300)

    async with httpx.AsyncClient() as client:
        response = await client.get(url)

    assert response.status_code == 200
    assert response.content == data


@pytest.mark.s3
async def test_s3_streamed_puts_are_multipart_uploads(
    s3_blob_store: S3BlobStore, s3_client: Any
) -> None:
    await s3_blob_store.put("large/volume.nii", chunks_of(pattern(9 * MIB, seed=7), 256 * 1024))

    etag = s3_client.head_object(Bucket=s3_blob_store.bucket, Key="large/volume.nii")["ETag"]

    assert etag.strip('"').endswith("-2")  # two 5 MiB-or-less parts, completed as one object


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unreachable_s3() -> S3BlobStore:
    return S3BlobStore(
        bucket="nowhere",
        endpoint=f"http://127.0.0.1:{_closed_port()}",
        region=S3_REGION,
        access_key_id=S3_ACCESS_KEY_ID,
        secret_access_key=S3_SECRET_ACCESS_KEY,
        allow_http=True,
        max_retries=0,
        retry_timeout_s=1,
    )


async def test_s3_unreachable_is_unavailable_without_leaking_the_secret(
    unreachable_s3: S3BlobStore,
) -> None:
    with pytest.raises(Unavailable) as on_get:
        await unreachable_s3.get("a.bin")
    with pytest.raises(Unavailable) as on_ping:
        await unreachable_s3.ping()
    with pytest.raises(Unavailable):
        await unreachable_s3.put("a.bin", b"1")
    with pytest.raises(Unavailable):
        await unreachable_s3.head("a.bin")

    for raised in (on_get, on_ping):
        message = str(raised.value)
        assert "'nowhere'" in message
        assert "\n" not in message
        assert S3_SECRET_ACCESS_KEY not in message


@pytest.mark.s3
async def test_s3_missing_bucket_is_unavailable(s3_endpoint: str) -> None:
    store = S3BlobStore(
        bucket="no-such-bucket",
        endpoint=s3_endpoint,
        region=S3_REGION,
        access_key_id=S3_ACCESS_KEY_ID,
        secret_access_key=S3_SECRET_ACCESS_KEY,
        allow_http=True,
    )

    with pytest.raises(Unavailable, match="bucket does not exist"):
        await store.ping()
    with pytest.raises(Unavailable):
        await store.put("a.bin", b"1")


@pytest.mark.s3
async def test_an_s3_url_path_is_a_prefix_that_keys_live_under(
    s3_blob_store: S3BlobStore, s3_endpoint: str
) -> None:
    prefixed = blob_store_from_url(
        f"s3://{s3_blob_store.bucket}/tenant-1/blobs?endpoint={s3_endpoint}"
        f"&region={S3_REGION}&allow_http=true"
        f"&access_key_id={S3_ACCESS_KEY_ID}&secret_access_key={S3_SECRET_ACCESS_KEY}"
    )

    await prefixed.put("x/y.bin", b"under a prefix")

    assert await s3_blob_store.get("tenant-1/blobs/x/y.bin") == b"under a prefix"
    assert await prefixed.get("x/y.bin") == b"under a prefix"


# -- filesystem: signed URLs, path safety, atomic files ----------------------------------


@pytest.fixture
def fs_store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(
        tmp_path / "blobs", signing_key=SIGNING_KEY, public_base_url=PUBLIC_BASE_URL
    )


def _url_parts(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    key = parts.path.removeprefix(urlsplit(PUBLIC_BASE_URL).path + "/")
    return query["method"], key, int(query["expires"]), query["signature"]


async def test_filesystem_presigned_urls_verify_for_their_method_and_key(
    fs_store: FilesystemBlobStore,
) -> None:
    put_url = await fs_store.presign_put("uploads/scan.dcm", expires_in_s=600)
    get_url = await fs_store.presign_get("uploads/scan.dcm", expires_in_s=600)

    assert put_url.startswith(f"{PUBLIC_BASE_URL}/uploads/scan.dcm?method=PUT&expires=")
    assert fs_store.supports_presigned_urls
    assert fs_store.verify_presigned(*_url_parts(put_url))
    assert fs_store.verify_presigned(*_url_parts(get_url))
    assert _url_parts(get_url)[0] == "GET"


async def test_filesystem_presigned_urls_do_not_verify_once_tampered(
    fs_store: FilesystemBlobStore,
) -> None:
    method, key, expires, signature = _url_parts(
        await fs_store.presign_put("uploads/scan.dcm", expires_in_s=600)
    )
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]

    assert not fs_store.verify_presigned(method, key, expires, flipped)
    assert not fs_store.verify_presigned("GET", key, expires, signature)
    assert not fs_store.verify_presigned(method, "uploads/other.dcm", expires, signature)
    assert not fs_store.verify_presigned(method, key, expires + 3600, signature)
    assert not fs_store.verify_presigned(method, "../etc/passwd", expires, signature)
    assert not fs_store.verify_presigned(method, key, expires, "")


async def test_filesystem_presigned_urls_expire(fs_store: FilesystemBlobStore) -> None:
    method, key, expires, signature = _url_parts(
        await fs_store.presign_get("uploads/scan.dcm", expires_in_s=60)
    )

    assert fs_store.verify_presigned(method, key, expires, signature, now=expires - 1)
    assert not fs_store.verify_presigned(method, key, expires, signature, now=expires)
    assert not fs_store.verify_presigned(method, key, expires, signature, now=expires + 3600)


async def test_filesystem_urls_from_another_signing_key_do_not_verify(tmp_path: Path) -> None:
    ours = FilesystemBlobStore(tmp_path, signing_key=SIGNING_KEY, public_base_url=PUBLIC_BASE_URL)
    theirs = FilesystemBlobStore(
        tmp_path, signing_key=b"another-signing-key-9876543210", public_base_url=PUBLIC_BASE_URL
    )

    url = await theirs.presign_get("a.bin", expires_in_s=60)

    assert not ours.verify_presigned(*_url_parts(url))


async def test_filesystem_without_signing_configuration_has_no_presigned_urls(
    tmp_path: Path,
) -> None:
    store = FilesystemBlobStore(tmp_path)

    assert not store.supports_presigned_urls
    assert not store.verify_presigned("GET", "a.bin", 2**40, "00")
    with pytest.raises(Unavailable, match="not configured"):
        await store.presign_get("a.bin", expires_in_s=60)


def test_filesystem_rejects_a_short_signing_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="signing_key"):
        FilesystemBlobStore(tmp_path, signing_key=b"short", public_base_url=PUBLIC_BASE_URL)


async def test_filesystem_stores_each_key_at_its_path_under_the_root(
    fs_store: FilesystemBlobStore,
) -> None:
    await fs_store.put("studies/s1/i1.dcm", b"dicom", content_type="application/dicom")

    path = fs_store.path_for("studies/s1/i1.dcm")
    assert path == fs_store.root / "studies" / "s1" / "i1.dcm"
    assert path.read_bytes() == b"dicom"


async def test_filesystem_leaves_no_temporary_files_behind(
    fs_store: FilesystemBlobStore,
) -> None:
    async def failing_source() -> AsyncIterator[bytes]:
        yield b"partial"
        raise InvalidInput("client went away")

    await fs_store.put("dir/a.bin", b"1", content_type="text/plain")
    await fs_store.put("dir/a.bin", chunks_of(b"22", 1))
    with pytest.raises(InvalidInput):
        await fs_store.put("dir/b.bin", failing_source())

    assert sorted(p.name for p in (fs_store.root / "dir").iterdir()) == ["a.bin"]


def _has_user_attributes(directory: Path) -> bool:
    probe = directory / "xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except (AttributeError, OSError):
        return False
    finally:
        probe.unlink()
    return True


async def test_filesystem_keeps_the_content_type_with_the_file_not_beside_it(
    fs_store: FilesystemBlobStore,
) -> None:
    fs_store.root.mkdir(parents=True, exist_ok=True)
    if not _has_user_attributes(fs_store.root):
        pytest.skip("this filesystem has no user extended attributes")

    await fs_store.put("dir/a.dcm", b"dicom", content_type="application/dicom")
    await fs_store.put("dir/b.dcm", chunks_of(b"dicom", 2), content_type="application/dicom")

    assert sorted(p.name for p in (fs_store.root / "dir").iterdir()) == ["a.dcm", "b.dcm"]
    for key in ("dir/a.dcm", "dir/b.dcm"):
        assert await fs_store.head(key) == BlobInfo(
            key=key, size_bytes=5, content_type="application/dicom"
        )


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "streamed"])
async def test_filesystem_content_types_in_sidecars_stay_readable_and_are_replaced(
    tmp_path: Path, streamed: bool
) -> None:
    # a store without extended attributes (or objects stored before they were used) keeps
    # content types in sidecar files; a store with them reads those and replaces them
    def body(data: bytes) -> bytes | AsyncIterator[bytes]:
        return chunks_of(data, 2) if streamed else data

    sidecars = FilesystemBlobStore(tmp_path, extended_attributes=False)
    await sidecars.put("d/a.txt", body(b"old"), content_type="text/plain")
    assert (tmp_path / "d" / ".a.txt.content-type").read_text() == "text/plain"
    assert await sidecars.head("d/a.txt") == BlobInfo(
        key="d/a.txt", size_bytes=3, content_type="text/plain"
    )

    store = FilesystemBlobStore(tmp_path)
    assert await store.head("d/a.txt") == BlobInfo(
        key="d/a.txt", size_bytes=3, content_type="text/plain"
    )
    await store.put("d/a.txt", body(b"newer"), content_type="application/json")
    assert await store.head("d/a.txt") == BlobInfo(
        key="d/a.txt", size_bytes=5, content_type="application/json"
    )
    await store.put("d/a.txt", body(b"typeless"))
    assert await store.head("d/a.txt") == BlobInfo(key="d/a.txt", size_bytes=8)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["a.txt"]


async def test_filesystem_listing_skips_temp_files_sidecars_and_symlinks(
    tmp_path: Path,
) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs", extended_attributes=False)
    await store.put("staging/c1/u1/scan.dcm", b"123", content_type="application/dicom")
    directory = store.path_for("staging/c1/u1/scan.dcm").parent
    assert (directory / ".scan.dcm.content-type").is_file()
    (directory / ".scan.dcm.abc123.tmp").write_bytes(b"a put in progress")
    (directory / "link.dcm").symlink_to(directory / "scan.dcm")
    (directory.parent / ".hidden-dir").mkdir()
    (directory.parent / ".hidden-dir" / "x.dcm").write_bytes(b"not a key")

    assert await listed(store, "staging") == {"staging/c1/u1/scan.dcm": 3}


async def test_filesystem_refuses_a_symlink_that_leads_outside_the_root(
    fs_store: FilesystemBlobStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not yours")
    fs_store.root.mkdir(parents=True)
    (fs_store.root / "escape").symlink_to(outside, target_is_directory=True)

    with pytest.raises(InvalidInput, match="outside"):
        await fs_store.get("escape/secret.txt")
    with pytest.raises(InvalidInput, match="outside"):
        await fs_store.put("escape/new.txt", b"x")

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


async def test_filesystem_cannot_keep_an_object_and_a_prefix_of_the_same_name(
    fs_store: FilesystemBlobStore,
) -> None:
    await fs_store.put("a", b"object")
    await fs_store.put("b/c", b"object")

    with pytest.raises(Conflict):
        await fs_store.put("a/b", b"under an object")
    with pytest.raises(Conflict):
        await fs_store.put("b", b"over a prefix")

    assert await fs_store.get("a") == b"object"
    assert not await fs_store.exists("b")
    with pytest.raises(BlobNotFound):
        await fs_store.get("b")


async def test_filesystem_batch_rejects_a_bad_content_type_before_writing_anything(
    fs_store: FilesystemBlobStore,
) -> None:
    writes = [BlobWrite("a.bin", b"1", "text/plain"), BlobWrite("b.bin", b"2", "bad\ntype")]

    with pytest.raises(InvalidInput, match="content_type"):
        await fs_store.put_many(writes)

    assert not await fs_store.exists("a.bin")


async def test_filesystem_batch_raises_the_failure_of_the_first_write_that_fails(
    fs_store: FilesystemBlobStore,
) -> None:
    await fs_store.put("a", b"object")
    writes = [BlobWrite("ok.bin", b"fine"), BlobWrite("a/b", b"under an object")]

    with pytest.raises(Conflict, match="'a/b'"):
        await fs_store.put_many(writes)

    assert await fs_store.get("a") == b"object"


async def test_filesystem_ping_fails_when_the_root_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    store = FilesystemBlobStore(blocker / "blobs")

    with pytest.raises(Unavailable, match="not writable"):
        await store.ping()
    with pytest.raises(Unavailable):
        await StorageHealthProbe(store).check()
    with pytest.raises(Unavailable, match="could not store"):
        await store.put("a.bin", b"1")


# -- choosing a store by URL ---------------------------------------------------------------


def test_a_file_url_builds_a_filesystem_store(tmp_path: Path) -> None:
    store = blob_store_from_url(
        (tmp_path / "my blobs").as_uri(), signing_key=SIGNING_KEY, public_base_url=PUBLIC_BASE_URL
    )

    assert isinstance(store, FilesystemBlobStore)
    assert store.root == (tmp_path / "my blobs").resolve()
    assert store.supports_presigned_urls


def test_a_plain_path_builds_a_filesystem_store(tmp_path: Path) -> None:
    store = blob_store_from_url(str(tmp_path / "blobs"))

    assert isinstance(store, FilesystemBlobStore)
    assert store.root == (tmp_path / "blobs").resolve()
    assert not store.supports_presigned_urls


def test_memory_url_builds_a_memory_store() -> None:
    assert isinstance(blob_store_from_url("memory://"), MemoryBlobStore)


def test_an_s3_url_builds_an_s3_store() -> None:
    store = blob_store_from_url(
        "s3://scans?endpoint=http://127.0.0.1:9000&region=eu-west-1&allow_http=true"
        "&access_key_id=AKIAEXAMPLE&secret_access_key=very-secret-value"
    )

    assert isinstance(store, S3BlobStore)
    assert store.bucket == "scans"


@pytest.mark.s3
async def test_an_s3_url_takes_credentials_from_the_environment(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY)

    store = blob_store_from_url(f"s3://{s3_bucket}?endpoint={s3_endpoint}&allow_http=true")
    await store.put("from-env.bin", b"ok")

    assert await store.get("from-env.bin") == b"ok"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "is empty"),
        ("ftp://host/blobs", "unsupported scheme 'ftp'"),
        ("file://server/share/blobs", "remote host"),
        ("file:relative/blobs", "relative path"),
        ("memory://somewhere", "memory:// does not take"),
        ("s3://?region=eu-west-1", "no bucket name"),
        ("s3://scans?regoin=eu-west-1", "unknown parameters 'regoin'"),
        ("s3://scans?region=a&region=b", "repeats parameters 'region'"),
        ("s3://scans?allow_http=perhaps", "allow_http"),
        ("s3://scans?endpoint=localhost:9000", "endpoint"),
        ("s3://scans?access_key_id=AKIAEXAMPLE", "both access_key_id and secret_access_key"),
        ("s3://user:very-secret-value@scans", "credentials before the bucket"),
    ],
)
def test_a_bad_storage_url_is_one_clear_line(url: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        blob_store_from_url(url)

    message = raised.value.detail
    assert problem in message
    assert "accepted forms" in message
    assert "\n" not in message


def test_a_bad_storage_url_never_repeats_the_secret() -> None:
    with pytest.raises(InvalidInput) as raised:
        blob_store_from_url("s3://scans?secret_access_key=very-secret-value&bogus=1")

    assert "very-secret-value" not in raised.value.detail
    assert "'bogus'" in raised.value.detail


def test_storage_probe_reports_the_storage_component() -> None:
    assert StorageHealthProbe(MemoryBlobStore()).component == "storage"


class HangingBlobStore(MemoryBlobStore):
    async def ping(self) -> None:
        await asyncio.sleep(60)


async def test_storage_probe_gives_up_on_a_store_that_does_not_answer() -> None:
    probe = StorageHealthProbe(HangingBlobStore(), timeout_s=0.05)

    with pytest.raises(Unavailable, match=r"did not answer within 0\.05 s"):
        await probe.check()


async def test_filesystem_objects_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)

    await store.put("a.bin", b"patient data")

    assert os.stat(store.path_for("a.bin")).st_mode & 0o077 == 0
