"""RS256 tokens from a PEM key or a JWKS file beside the suite's HS256 ones, and every refusal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from workermon_core.auth import (
    TokenAuthority,
    authority_from_settings,
    load_jwks_file,
    load_public_key_file,
)
from workermon_core.errors import Unauthenticated
from workermon_core.settings import ConfigError, Settings, load_settings

SECRET = "suite-secret-" + "s" * 40
ISSUER = "workermon"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _jwk(key: rsa.RSAPrivateKey, kid: str | None, **extra: str) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    if kid is not None:
        entry["kid"] = kid
    entry.update(extra)
    return entry


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {"sub": "alice", "role": "operator", "iss": ISSUER, "iat": now, "exp": now + 60}
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """An IdP key published as PEM, two JWKS keys, and a stranger's key nobody trusts."""

    def __init__(self, tmp_path: Path) -> None:
        self.pem_key, self.first, self.second, self.stranger = _rsa(), _rsa(), _rsa(), _rsa()
        self.pem_file = tmp_path / "idp.pem"
        self.pem_file.write_bytes(_public_pem(self.pem_key))
        self.jwks_file = tmp_path / "jwks.json"
        self.jwks_file.write_text(
            json.dumps({"keys": [_jwk(self.first, "k1"), _jwk(self.second, "k2", use="sig", alg="RS256")]})
        )

    def settings(self, tmp_path: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "jwt_secret": SECRET,
            "jwt_public_key_file": self.pem_file,
            "jwks_file": self.jwks_file,
        }
        values.update(overrides)
        return load_settings(**values)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


@pytest.fixture
def authority(keys: Keys, tmp_path: Path) -> TokenAuthority:
    return authority_from_settings(keys.settings(tmp_path))


def _refusal(authority: TokenAuthority, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        authority.verify(token)
    return caught.value


def test_own_hs256_tokens_still_verify(authority: TokenAuthority) -> None:
    principal = authority.verify(authority.mint("bob", "viewer", 60))
    assert (principal.subject, principal.role) == ("bob", "viewer")
    assert authority.accepts_rs256


def test_rs256_from_the_pem_key(keys: Keys, authority: TokenAuthority) -> None:
    token = jwt.encode(_claims(), keys.pem_key, algorithm="RS256")
    principal = authority.verify(token)
    assert (principal.subject, principal.role) == ("alice", "operator")


def test_rs256_from_the_jwks_chosen_by_kid(keys: Keys, authority: TokenAuthority) -> None:
    one = jwt.encode(_claims(sub="one"), keys.first, algorithm="RS256", headers={"kid": "k1"})
    two = jwt.encode(_claims(sub="two"), keys.second, algorithm="RS256", headers={"kid": "k2"})
    assert authority.verify(one).subject == "one"
    assert authority.verify(two).subject == "two"
    # The right key under the wrong kid must not verify.
    swapped = jwt.encode(_claims(), keys.first, algorithm="RS256", headers={"kid": "k2"})
    err = _refusal(authority, swapped)
    assert err.reason == "TOKEN_INVALID" and err.metadata["check"] == "signature"


def test_jwks_only_unknown_kid_and_missing_kid(keys: Keys, tmp_path: Path) -> None:
    authority = authority_from_settings(keys.settings(tmp_path, jwt_public_key_file=None))
    unknown = jwt.encode(_claims(), keys.first, algorithm="RS256", headers={"kid": "k9"})
    err = _refusal(authority, unknown)
    assert err.metadata["check"] == "key" and "unknown key id 'k9'" in err.message
    no_kid = jwt.encode(_claims(), keys.first, algorithm="RS256")
    err = _refusal(authority, no_kid)
    assert err.metadata["check"] == "key" and "no key id" in err.message


def test_single_jwks_key_serves_tokens_without_kid(keys: Keys, tmp_path: Path) -> None:
    single = tmp_path / "single.json"
    single.write_text(json.dumps({"keys": [_jwk(keys.first, "only")]}))
    authority = authority_from_settings(keys.settings(tmp_path, jwt_public_key_file=None, jwks_file=single))
    assert authority.verify(jwt.encode(_claims(), keys.first, algorithm="RS256")).subject == "alice"


def test_pem_only_accepts_any_kid(keys: Keys, tmp_path: Path) -> None:
    authority = authority_from_settings(keys.settings(tmp_path, jwks_file=None))
    token = jwt.encode(_claims(), keys.pem_key, algorithm="RS256", headers={"kid": "whatever"})
    assert authority.verify(token).subject == "alice"


def test_wrong_rsa_key(keys: Keys, authority: TokenAuthority) -> None:
    for headers in ({}, {"kid": "k1"}):
        token = jwt.encode(_claims(), keys.stranger, algorithm="RS256", headers=headers)
        err = _refusal(authority, token)
        assert err.reason == "TOKEN_INVALID" and err.metadata["check"] == "signature"


def test_wrong_hs256_secret(authority: TokenAuthority) -> None:
    token = jwt.encode(_claims(), "another-secret-" + "y" * 40, algorithm="HS256")
    err = _refusal(authority, token)
    assert (err.reason, err.metadata["check"]) == ("TOKEN_INVALID", "signature")


def test_alg_none_is_refused(authority: TokenAuthority) -> None:
    for alg in ("none", "None", "NONE"):
        token = (
            f"{_b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{_b64(json.dumps(_claims()).encode())}."
        )
        err = _refusal(authority, token)
        assert err.metadata["check"] == "algorithm" and "alg none" in err.message


def test_other_algorithms_are_refused(authority: TokenAuthority) -> None:
    token = jwt.encode(_claims(), SECRET * 2, algorithm="HS512")
    assert "'HS512' is refused" in _refusal(authority, token).message
    es_key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(_claims(), es_key, algorithm="ES256")
    assert _refusal(authority, token).metadata["check"] == "algorithm"


def test_hs256_signed_with_the_public_key_is_refused(keys: Keys, authority: TokenAuthority) -> None:
    # PyJWT itself refuses a PEM as HMAC secret, so the attacker's token is built by hand.
    pem = keys.pem_file.read_bytes()
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}."
        f"{_b64(json.dumps(_claims(role='admin')).encode())}"
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    err = _refusal(authority, f"{signing_input}.{_b64(signature)}")
    assert err.metadata["check"] == "algorithm" and "algorithm confusion" in err.message


def test_rs256_refused_without_configured_keys(keys: Keys) -> None:
    plain = TokenAuthority(SECRET)
    assert not plain.accepts_rs256
    err = _refusal(plain, jwt.encode(_claims(), keys.pem_key, algorithm="RS256"))
    assert "no public key is configured" in err.message


@pytest.mark.parametrize("signer", ["hs256", "rs256"])
def test_expired_wrong_issuer_and_missing_claims(keys: Keys, authority: TokenAuthority, signer: str) -> None:
    def sign(body: dict[str, Any]) -> str:
        if signer == "hs256":
            return jwt.encode(body, SECRET, algorithm="HS256")
        return jwt.encode(body, keys.first, algorithm="RS256", headers={"kid": "k1"})

    now = int(time.time())
    err = _refusal(authority, sign(_claims(iat=now - 120, exp=now - 60)))
    assert (err.reason, err.message) == ("TOKEN_EXPIRED", "token has expired")
    err = _refusal(authority, sign(_claims(iss="someone-else")))
    assert err.metadata["check"] == "issuer" and "'workermon'" in err.message
    for claim in ("exp", "sub", "iss", "role"):
        err = _refusal(authority, sign(_claims(**{claim: None})))
        assert err.reason == "TOKEN_INVALID" and f"'{claim}' claim" in err.message, err.message
    err = _refusal(authority, sign(_claims(role="root")))
    assert err.metadata["check"] == "role"
    err = _refusal(authority, sign(_claims(nbf=now + 3600)))
    assert "not valid yet" in err.message


def test_malformed_tokens(authority: TokenAuthority) -> None:
    for token in ("", "abc", "a.b.c", "only.two"):
        assert _refusal(authority, token).metadata["check"] == "format"


def test_roles_list_picks_the_highest_suite_role(keys: Keys, authority: TokenAuthority) -> None:
    def rs(roles: object) -> str:
        return jwt.encode(_claims(role=None, roles=roles), keys.pem_key, algorithm="RS256")

    assert authority.verify(rs(["viewer", "billing", "operator"])).role == "operator"
    assert authority.verify(rs(["worker", "admin"])).role == "admin"
    assert authority.verify(rs(["viewer", "worker"])).role == "viewer"
    assert authority.verify(rs(["worker"])).role == "worker"
    assert "no suite role" in _refusal(authority, rs(["billing"])).message
    assert "must be a list" in _refusal(authority, rs("admin")).message
    # An explicit `role` wins over the list.
    both = jwt.encode(_claims(role="viewer", roles=["admin"]), keys.pem_key, algorithm="RS256")
    assert authority.verify(both).role == "viewer"
    # The suite's own HS256 tokens always carry `role`; a list there is not honoured.
    hs = jwt.encode(_claims(role=None, roles=["admin"]), SECRET, algorithm="HS256")
    assert "'role' claim" in _refusal(authority, hs).message


def test_token_with_an_audience_is_refused_unless_configured(keys: Keys) -> None:
    token = jwt.encode(_claims(aud="other-app"), keys.pem_key, algorithm="RS256")
    pem_key = load_public_key_file(keys.pem_file)
    err = _refusal(TokenAuthority(SECRET, rsa_keys=[pem_key]), token)
    assert err.metadata["check"] == "audience"
    accepting = TokenAuthority(SECRET, rsa_keys=[pem_key], audience="other-app")
    assert accepting.verify(token).subject == "alice"


def test_jwks_skips_encryption_and_foreign_keys(keys: Keys, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.json"
    ec_jwk = {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "ec"}
    mixed.write_text(
        json.dumps(
            {
                "keys": [
                    ec_jwk,
                    _jwk(keys.second, "enc", use="enc"),
                    _jwk(keys.second, "ps", alg="PS256"),
                    _jwk(keys.first, "sig"),
                ]
            }
        )
    )
    assert [k.kid for k in load_jwks_file(mixed)] == ["sig"]


@pytest.mark.parametrize(
    ("field", "content", "fragment"),
    [
        ("jwt_public_key_file", None, "cannot read"),
        ("jwt_public_key_file", "not a key", "not a PEM public key"),
        ("jwks_file", None, "cannot read"),
        ("jwks_file", "{not json", "is not JSON"),
        ("jwks_file", '{"keys": 3}', "'keys' list"),
        ("jwks_file", '{"keys": []}', "no RSA signing key"),
        ("jwks_file", '{"keys": [{"kty": "RSA", "kid": "x", "n": "!!", "e": "AQAB"}]}', "unusable"),
    ],
)
def test_bad_key_files_name_the_variable(
    keys: Keys, tmp_path: Path, field: str, content: str | None, fragment: str
) -> None:
    bad = tmp_path / "bad-file"
    if content is not None:
        bad.write_text(content)
    with pytest.raises(ConfigError) as caught:
        authority_from_settings(keys.settings(tmp_path, **{field: bad}))
    assert f"WORKERMON_{field.upper()}" in str(caught.value) and fragment in str(caught.value)


def test_small_or_non_rsa_keys_are_refused(keys: Keys, tmp_path: Path) -> None:
    small = tmp_path / "small.pem"
    small.write_bytes(_public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    with pytest.raises(ConfigError, match="at least 2048"):
        authority_from_settings(keys.settings(tmp_path, jwt_public_key_file=small))
    ec_pem = tmp_path / "ec.pem"
    ec_pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigError, match="not an RSA public key"):
        authority_from_settings(keys.settings(tmp_path, jwt_public_key_file=ec_pem))


def test_settings_without_keys_give_the_plain_authority(tmp_path: Path) -> None:
    authority = authority_from_settings(load_settings(data_dir=tmp_path))
    assert not authority.accepts_rs256
    assert (tmp_path / "jwt-secret").exists()
    assert authority.verify(authority.mint("x", "admin", 60)).role == "admin"


def test_an_identity_providers_token_never_speaks_for_a_suite_service(
    keys: Keys, authority: TokenAuthority
) -> None:
    """Only the suite's own secret can mint a service identity: an `act` claim in an RS256 token is
    ignored, so such a token is refused by RPCs kept for the suite's services."""
    token = jwt.encode(_claims(act={"sub": "monitor"}, wid="w-*"), keys.pem_key, algorithm="RS256")
    principal = authority.verify(token)
    assert principal.actor is None
    assert principal.worker == "w-*"
