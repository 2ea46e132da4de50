"""Contract for TokenService, run against every signing configuration of the JWT adapter.

Each forged token below is built by hand, as an attacker would, so the suite does not trust the
library under test to produce them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, RSAKey

from adapters.security.tokens import JwtTokenService, load_or_create_secret
from domain.errors import Unauthenticated
from domain.identity import Role
from domain.ports.security import TokenClaims, TokenService

ISSUER = "https://hounsfield.test"
AUDIENCE = "hounsfield-api"
NOW = datetime(2030, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
CENTRE = uuid.UUID("0190aaaa-0000-7000-8000-000000000001")
USER = uuid.UUID("0190aaaa-0000-7000-8000-0000000000a1")
GENERIC_REASONS = {"invalid token", "token expired"}


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())


def _hmac_token(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    signing_input = _segments(header, payload)
    mac = hmac.new(key, signing_input.encode("ascii"), digest[header["alg"]]).digest()
    return signing_input + "." + _b64(mac)


def _pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Signing:
    """One configuration of the adapter: its key material and how to sign arbitrary payloads."""

    name: str
    algorithm: str
    key_material: dict[str, bytes]
    public_bytes: bytes
    """What an attacker knows: the public key PEM (asymmetric) or nothing useful (HS256)."""
    make_other: Callable[[], dict[str, bytes]]

    def service(self, **overrides: Any) -> JwtTokenService:
        options: dict[str, Any] = {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "clock": FixedClock(NOW),
            **self.key_material,
        }
        options.update(overrides)
        return JwtTokenService(**options)

    def sign(self, payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        """A correctly signed token around any payload, as a buggy or malicious issuer holding
        the real key could make it."""
        header = header or {"alg": self.algorithm, "typ": "JWT"}
        if "secret" in self.key_material:
            key: OctKey | RSAKey | ECKey = OctKey.import_key(self.key_material["secret"])
        elif self.algorithm == "RS256":
            key = RSAKey.import_key(self.key_material["private_key_pem"])
        else:
            key = ECKey.import_key(self.key_material["private_key_pem"])
        return jws.serialize_compact(
            header, json.dumps(payload).encode(), key, algorithms=[header["alg"]]
        )


def _hs256() -> dict[str, bytes]:
    return {"secret": os.urandom(64)}


def _rs256() -> dict[str, bytes]:
    return {"private_key_pem": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))}


def _es256() -> dict[str, bytes]:
    return {"private_key_pem": _pem(ec.generate_private_key(ec.SECP256R1()))}


def _public_pem(material: dict[str, bytes]) -> bytes:
    if "secret" in material:
        return b""
    private = serialization.load_pem_private_key(material["private_key_pem"], password=None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


_MAKERS = {"hs256": ("HS256", _hs256), "rs256": ("RS256", _rs256), "es256": ("ES256", _es256)}


@pytest.fixture(scope="module", params=sorted(_MAKERS))
def signing(request: pytest.FixtureRequest) -> Signing:
    algorithm, make = _MAKERS[request.param]
    material = make()
    return Signing(
        name=request.param,
        algorithm=algorithm,
        key_material=material,
        public_bytes=_public_pem(material),
        make_other=make,
    )


@pytest.fixture
def service(signing: Signing) -> JwtTokenService:
    return signing.service()


def _claims(
    *, role: Role = Role.RADIOLOGIST, centre: uuid.UUID | None = CENTRE, ttl_s: int = 1800
) -> TokenClaims:
    return TokenClaims(
        subject=USER,
        role=role,
        centre_id=centre,
        issued_at=NOW,
        expires_at=NOW + timedelta(seconds=ttl_s),
    )


def _valid_payload() -> dict[str, Any]:
    iat = int(NOW.timestamp())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(USER),
        "role": "radiologist",
        "centre": str(CENTRE),
        "iat": iat,
        "exp": iat + 1800,
        "jti": "f0d1c2b3",
    }


def assert_refused(service: TokenService, token: str, reason: str = "invalid token") -> None:
    with pytest.raises(Unauthenticated) as refused:
        service.verify(token)
    assert refused.value.detail == reason


# --- the happy path -------------------------------------------------------------------------


def test_issued_claims_come_back_from_verify_to_the_second(service: JwtTokenService) -> None:
    claims = service.verify(service.issue(_claims()))
    assert claims == TokenClaims(
        subject=USER,
        role=Role.RADIOLOGIST,
        centre_id=CENTRE,
        issued_at=NOW.replace(microsecond=0),
        expires_at=NOW.replace(microsecond=0) + timedelta(seconds=1800),
    )


def test_an_admin_token_carries_no_centre(service: JwtTokenService) -> None:
    claims = service.verify(service.issue(_claims(role=Role.ADMIN, centre=None)))
    assert claims.role is Role.ADMIN
    assert claims.centre_id is None


def test_the_token_carries_the_registered_claims_and_a_unique_id(
    signing: Signing, service: JwtTokenService
) -> None:
    first, second = service.issue(_claims()), service.issue(_claims())
    header = json.loads(_unb64(first.split(".")[0]))
    payload = json.loads(_unb64(first.split(".")[1]))
    assert header["alg"] == signing.algorithm == service.algorithm
    assert payload["iss"] == ISSUER
    assert payload["aud"] == AUDIENCE
    assert payload["sub"] == str(USER)
    assert payload["role"] == "radiologist"
    assert payload["centre"] == str(CENTRE)
    assert payload["exp"] - payload["iat"] == 1800
    assert json.loads(_unb64(second.split(".")[1]))["jti"] != payload["jti"]


def test_a_token_is_still_accepted_within_a_few_seconds_of_clock_skew(signing: Signing) -> None:
    token = signing.service().issue(_claims(ttl_s=60))
    late = signing.service(clock=FixedClock(NOW + timedelta(seconds=62)))
    assert late.verify(token).subject == USER


# --- refusals -------------------------------------------------------------------------------


def test_an_expired_token_is_refused(signing: Signing) -> None:
    token = signing.service().issue(_claims(ttl_s=60))
    later = signing.service(clock=FixedClock(NOW + timedelta(seconds=70)))
    assert_refused(later, token, "token expired")


def test_a_token_issued_in_the_future_is_refused(signing: Signing) -> None:
    token = signing.service().issue(_claims())
    earlier = signing.service(clock=FixedClock(NOW - timedelta(minutes=5)))
    assert_refused(earlier, token)


def test_a_token_with_a_tampered_payload_is_refused(service: JwtTokenService) -> None:
    header, payload, signature = service.issue(_claims()).split(".")
    claims = json.loads(_unb64(payload))
    claims["role"] = "admin"
    claims["centre"] = None
    tampered = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    assert_refused(service, tampered)


def test_a_token_with_a_flipped_signature_bit_is_refused(service: JwtTokenService) -> None:
    header, payload, signature = service.issue(_claims()).split(".")
    raw = bytearray(_unb64(signature))
    raw[len(raw) // 2] ^= 0x01
    assert_refused(service, ".".join([header, payload, _b64(bytes(raw))]))


def test_a_token_signed_with_another_key_is_refused(
    signing: Signing, service: JwtTokenService
) -> None:
    impostor = signing.service(**signing.make_other())
    assert_refused(service, impostor.issue(_claims()))


def test_a_token_for_another_audience_is_refused(signing: Signing) -> None:
    other_audience = signing.service(audience="another-api")
    assert_refused(signing.service(), other_audience.issue(_claims()))


def test_a_token_from_another_issuer_is_refused(signing: Signing) -> None:
    other_issuer = signing.service(issuer="https://elsewhere.test")
    assert_refused(signing.service(), other_issuer.issue(_claims()))


@pytest.mark.parametrize("spelling", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_an_unsigned_alg_none_token_is_refused(
    service: JwtTokenService, spelling: str, signature: str
) -> None:
    token = _segments({"alg": spelling, "typ": "JWT"}, _valid_payload()) + "." + signature
    assert_refused(service, token)


@pytest.mark.parametrize("forged_alg", ["HS256", "HS384", "HS512"])
def test_an_hmac_token_keyed_with_what_the_attacker_knows_is_refused(
    signing: Signing, service: JwtTokenService, forged_alg: str
) -> None:
    """Algorithm confusion: HMAC keyed with the public key PEM against an RS256/ES256 service;
    against the HS256 service, the real secret under another HMAC algorithm, or an empty key."""
    if signing.public_bytes:
        key = signing.public_bytes
    elif forged_alg == signing.algorithm:
        key = b""
    else:
        key = signing.key_material["secret"]
    assert_refused(service, _hmac_token({"alg": forged_alg, "typ": "JWT"}, _valid_payload(), key))


@pytest.mark.parametrize("forged_alg", ["RS256", "ES256"])
def test_a_token_signed_by_an_attacker_key_embedded_in_its_header_is_refused(
    signing: Signing, service: JwtTokenService, forged_alg: str
) -> None:
    """Another algorithm (or the same one) with the attacker's own key offered as ``jwk``."""
    attacker = RSAKey.generate_key(2048) if forged_alg == "RS256" else ECKey.generate_key("P-256")
    header = {"alg": forged_alg, "typ": "JWT", "jwk": attacker.as_dict(private=False)}
    token = jws.serialize_compact(
        header, json.dumps(_valid_payload()).encode(), attacker, algorithms=[forged_alg]
    )
    assert_refused(service, token)


def test_a_correctly_signed_payload_is_accepted_before_claims_are_removed(
    signing: Signing, service: JwtTokenService
) -> None:
    """Guards the next test: the hand-built payload is otherwise valid."""
    assert service.verify(signing.sign(_valid_payload())).subject == USER


@pytest.mark.parametrize("missing", ["iss", "aud", "sub", "role", "centre", "iat", "exp", "jti"])
def test_a_token_missing_a_required_claim_is_refused(
    signing: Signing, service: JwtTokenService, missing: str
) -> None:
    payload = _valid_payload()
    del payload[missing]
    assert_refused(service, signing.sign(payload))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("role", "superuser"),
        ("role", ["admin"]),
        ("role", None),
        ("sub", "not-a-uuid"),
        ("sub", 42),
        ("centre", 42),
        ("centre", "not-a-uuid"),
        ("exp", "tomorrow"),
        ("exp", 10**30),
        ("iat", True),
        ("iat", int(NOW.timestamp()) + 3600),
        ("iss", ["https://hounsfield.test", "https://evil.test"]),
        ("aud", 7),
        ("jti", 7),
    ],
)
def test_a_token_with_an_ill_typed_claim_is_refused(
    signing: Signing, service: JwtTokenService, claim: str, value: object
) -> None:
    payload = _valid_payload()
    payload[claim] = value
    assert_refused(service, signing.sign(payload))


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "Bearer abc",
        "a.b.c",
        "..",
        "...",
        "e30.e30.",
        "eyJhbGciOiJIUzI1NiJ9.W10.c2ln",  # payload is a JSON array
        "x" * 100_000,
    ],
)
def test_garbage_is_refused_with_a_generic_reason(service: JwtTokenService, garbage: str) -> None:
    assert_refused(service, garbage)


@settings(max_examples=200, deadline=None)
@given(
    garbage=st.one_of(
        st.text(max_size=200),
        st.lists(st.text(alphabet="AZaz09-_=.", max_size=40), min_size=3, max_size=3).map(".".join),
    )
)
def test_any_string_is_refused_with_unauthenticated_and_nothing_else(garbage: str) -> None:
    service = JwtTokenService(issuer=ISSUER, audience=AUDIENCE, secret=b"k" * 32)
    with pytest.raises(Unauthenticated) as refused:
        service.verify(garbage)
    assert refused.value.detail in GENERIC_REASONS


# --- configuration --------------------------------------------------------------------------


def test_issuing_naive_or_inverted_times_is_a_programming_error(service: JwtTokenService) -> None:
    naive = TokenClaims(
        subject=USER,
        role=Role.ADMIN,
        centre_id=None,
        issued_at=datetime(2030, 1, 1),
        expires_at=datetime(2030, 1, 2),
    )
    with pytest.raises(ValueError, match="timezone"):
        service.issue(naive)
    with pytest.raises(ValueError, match="expires_at"):
        service.issue(_claims(ttl_s=0))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"secret": b"short"}, "at least 32 bytes"),
        ({}, "exactly one"),
        ({"secret": b"k" * 32, "private_key_pem": b"pem"}, "exactly one"),
        ({"private_key_pem": b"not a pem"}, "not an unencrypted PEM"),
        ({"secret": b"k" * 32, "issuer": ""}, "issuer"),
        ({"secret": b"k" * 32, "audience": ""}, "audience"),
        ({"secret": b"k" * 32, "leeway_s": 600}, "leeway_s"),
    ],
)
def test_unsafe_configuration_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JwtTokenService(**{"issuer": ISSUER, "audience": AUDIENCE, **options})


def test_a_text_secret_is_refused() -> None:
    with pytest.raises(TypeError, match="bytes"):
        JwtTokenService(issuer=ISSUER, audience=AUDIENCE, secret="k" * 64)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("private_key", "message"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "2048"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "P-256"),
    ],
)
def test_weak_or_unsupported_private_keys_are_refused(
    private_key: Callable[[], rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        JwtTokenService(issuer=ISSUER, audience=AUDIENCE, private_key_pem=_pem(private_key()))


def test_an_asymmetric_service_publishes_its_public_key_only(signing: Signing) -> None:
    service = signing.service()
    if signing.algorithm == "HS256":
        assert service.public_key_pem is None
    else:
        assert service.public_key_pem == signing.public_bytes
        assert b"PRIVATE" not in signing.public_bytes


# --- the generated secret -------------------------------------------------------------------


def test_the_secret_is_created_once_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "jwt-secret"
    secret = load_or_create_secret(path)
    assert len(secret) == 64
    assert path.read_bytes() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["jwt-secret"]


def test_the_secret_is_reused_on_later_starts(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"
    assert load_or_create_secret(path) == load_or_create_secret(path)


def test_two_secrets_in_two_places_differ(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path / "a") != load_or_create_secret(tmp_path / "b")


def test_processes_starting_together_end_up_with_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"
    start = threading.Barrier(8)

    def race(_: int) -> bytes:
        start.wait()
        return load_or_create_secret(path)

    with ThreadPoolExecutor(max_workers=8) as pool:
        secrets_seen = set(pool.map(race, range(8)))
    assert secrets_seen == {path.read_bytes()}
    assert os.listdir(tmp_path) == ["jwt-secret"]


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"
    load_or_create_secret(path)
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_or_create_secret(path)


def test_a_truncated_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="fewer than 32"):
        load_or_create_secret(path)


def test_a_service_built_on_the_generated_secret_verifies_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"
    before = JwtTokenService(
        issuer=ISSUER, audience=AUDIENCE, secret=load_or_create_secret(path), clock=FixedClock(NOW)
    )
    token = before.issue(_claims())
    after = JwtTokenService(
        issuer=ISSUER, audience=AUDIENCE, secret=load_or_create_secret(path), clock=FixedClock(NOW)
    )
    assert after.verify(token).subject == USER
