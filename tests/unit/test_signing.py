"""Request signing v1: the shared vectors, canonical query rules, header checks, tampering."""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict, cast
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from domain.signing import (
    DEFAULT_WINDOW_SECONDS,
    HEADER_KEY,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SIGNATURE_VERSION,
    KeyType,
    SignatureError,
    SignedHeaders,
    canonical_query,
    check_timestamp,
    ed25519_public_key_b64,
    load_ed25519_private_key_from_seed_b64,
    new_nonce,
    parse_signed_headers,
    sign_ed25519,
    sign_hmac,
    sign_request,
    split_target,
    string_to_sign,
    verify_signature,
)

# The vectors are published with the signing specification, in docs/ (docs/signing.md).
_VECTORS_PATH = Path(__file__).resolve().parents[2] / "docs" / "signing-vectors.json"


class _Case(TypedDict):
    algorithm: str
    method: str
    target: str
    key_id: str
    timestamp: int
    nonce: str
    body_b64: str
    string_to_sign: str
    signature: str


class _Vectors(TypedDict):
    hmac_secret: str
    ed25519_private_seed_b64: str
    ed25519_public_key_b64: str
    cases: list[_Case]


VECTORS = cast(_Vectors, json.loads(_VECTORS_PATH.read_text(encoding="utf-8")))
SECRET = VECTORS["hmac_secret"]
PRIVATE_KEY = load_ed25519_private_key_from_seed_b64(VECTORS["ed25519_private_seed_b64"])
PUBLIC_KEY = base64.b64decode(VECTORS["ed25519_public_key_b64"])
CASES = VECTORS["cases"]
CASE_IDS = [f"{i}-{c['algorithm']}-{c['method']}-{c['target']}" for i, c in enumerate(CASES)]

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
GOOD_NONCE = "n0nce-0000-abcdefgh"
GOOD_SIGNATURE = base64.b64encode(bytes(32)).decode("ascii")


def _material(key_type: KeyType) -> bytes:
    return SECRET.encode("utf-8") if key_type is KeyType.HMAC else PUBLIC_KEY


def _case_message(case: _Case) -> str:
    path, query = split_target(case["target"])
    body = base64.b64decode(case["body_b64"])
    return string_to_sign(
        case["method"], path, query, case["key_id"], str(case["timestamp"]), case["nonce"], body
    )


def _good_headers() -> dict[str, str]:
    return {
        HEADER_KEY: "dk_hmac_demo",
        HEADER_TIMESTAMP: "1795000000",
        HEADER_NONCE: GOOD_NONCE,
        HEADER_SIGNATURE: GOOD_SIGNATURE,
    }


# --- the shared vectors ---------------------------------------------------------------------


# The vectors file is the contract's byte for byte: pinned by its hash, so that no edit of
# the published examples goes unnoticed.
VECTORS_SHA256 = "8d52a1aee25f2f9103b6b33f8680ec767e29bb951455d6f1918b923df945c715"


def test_vector_copy_is_the_shared_contract() -> None:
    copy = _VECTORS_PATH.read_bytes()
    assert hashlib.sha256(copy).hexdigest() == VECTORS_SHA256


def test_vectors_cover_both_algorithms() -> None:
    assert {case["algorithm"] for case in CASES} == {"hmac", "ed25519"}


def test_public_key_derives_from_seed() -> None:
    assert ed25519_public_key_b64(PRIVATE_KEY) == VECTORS["ed25519_public_key_b64"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vector_string_to_sign(case: _Case) -> None:
    assert _case_message(case) == case["string_to_sign"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vector_signature_reproduced(case: _Case) -> None:
    # Ed25519 is deterministic, so re-signing with the seed must give the very same bytes.
    message = case["string_to_sign"]
    key_type = KeyType(case["algorithm"])
    if key_type is KeyType.HMAC:
        assert sign_hmac(SECRET, message) == case["signature"]
    else:
        assert sign_ed25519(PRIVATE_KEY, message) == case["signature"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vector_signature_verifies(case: _Case) -> None:
    key_type = KeyType(case["algorithm"])
    assert verify_signature(
        key_type, _material(key_type), case["string_to_sign"], case["signature"]
    )


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vector_sign_request_headers(case: _Case) -> None:
    headers = sign_request(
        method=case["method"],
        target=case["target"],
        body=base64.b64decode(case["body_b64"]),
        key_id=case["key_id"],
        key_type=KeyType(case["algorithm"]),
        secret=SECRET,
        private_key=PRIVATE_KEY,
        timestamp=case["timestamp"],
        nonce=case["nonce"],
    )
    assert headers == {
        HEADER_KEY: case["key_id"],
        HEADER_TIMESTAMP: str(case["timestamp"]),
        HEADER_NONCE: case["nonce"],
        HEADER_SIGNATURE: case["signature"],
    }
    assert parse_signed_headers(headers) == SignedHeaders(
        key_id=case["key_id"],
        timestamp=case["timestamp"],
        nonce=case["nonce"],
        signature=case["signature"],
    )


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vector_signature_refused_with_the_other_key(case: _Case) -> None:
    key_type = KeyType(case["algorithm"])
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    wrong_material = (
        b"sk_test_wrong"
        if key_type is KeyType.HMAC
        else base64.b64decode(ed25519_public_key_b64(other))
    )
    assert not verify_signature(key_type, wrong_material, case["string_to_sign"], case["signature"])


# --- canonical query ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ""),
        ("a=1", "a=1"),
        ("b=2&a=1", "a=1&b=2"),
        # repeated names: sorted by value too, none dropped, duplicates kept
        ("a=2&a=10&a=1&a=1", "a=1&a=1&a=10&a=2"),
        # blanks stay as name=, a bare name counts as blank
        ("empty=&flag&x=1", "empty=&flag=&x=1"),
        ("=", "="),
        ("=v", "=v"),
        # empty segments from && or a trailing & are dropped
        ("a=1&&b=2&", "a=1&b=2"),
        ("&", ""),
        # + is a space; an encoded plus stays a plus
        ("q=a+b", "q=a%20b"),
        ("q=a%2Bb", "q=a%2Bb"),
        ("q=a%20b", "q=a%20b"),
        ("a+b=1", "a%20b=1"),
        # only the first = separates name from value
        ("a=b=c", "a=b%3Dc"),
        # unicode, raw or already encoded, comes out as upper-case UTF-8 percent escapes
        ("city=北京", "city=%E5%8C%97%E4%BA%AC"),
        ("city=%e5%8c%97%e4%ba%ac", "city=%E5%8C%97%E4%BA%AC"),
        ("%C3%A9=%c3%a9", "%C3%A9=%C3%A9"),
        # reserved and sub-delims are always encoded; unreserved never are
        ("r=!*'();:@$,/?[]", "r=%21%2A%27%28%29%3B%3A%40%24%2C%2F%3F%5B%5D"),
        ("r=%21%2a%27", "r=%21%2A%27"),
        ("u=AZaz09-_.~", "u=AZaz09-_.~"),
        ("u=%41%7E%2D%5F%2E", "u=A~-_."),
        ("t=2026-11-01T00:00:00Z", "t=2026-11-01T00%3A00%3A00Z"),
        # a stray % is a literal percent sign
        ("p=100%", "p=100%25"),
        ("p=%zz&q=%4", "p=%25zz&q=%254"),
        # bytes that are not UTF-8 survive unchanged rather than becoming U+FFFD
        ("b=%FF%fe", "b=%FF%FE"),
    ],
)
def test_canonical_query(raw: str, expected: str) -> None:
    assert canonical_query(raw) == expected


def test_canonical_query_sorts_pairs_not_joined_strings() -> None:
    # As strings "a-=1" < "a=1" ("-" < "="); as (name, value) pairs "a" < "a-".
    assert canonical_query("a-=1&a=1") == "a=1&a-=1"


def test_canonical_query_sorts_by_name_before_value() -> None:
    assert canonical_query("ab=1&a=2") == "a=2&ab=1"


def test_canonical_query_sorts_by_code_point() -> None:
    # Upper case before lower; and U+FF61 before U+1F600 (UTF-16 order would flip these).
    assert canonical_query("b=1&B=1") == "B=1&b=1"
    assert canonical_query("e=%F0%9F%98%80&e=%EF%BD%A1") == "e=%EF%BD%A1&e=%F0%9F%98%80"


_utf8_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
_pairs = st.lists(st.tuples(_utf8_text, _utf8_text), max_size=6)


def _encode_pairs(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)


@given(_pairs)
def test_canonical_query_matches_reference(pairs: list[tuple[str, str]]) -> None:
    # Python's str ordering is code point order: the contract's sort, stated independently.
    assert canonical_query(_encode_pairs(pairs)) == _encode_pairs(sorted(pairs))


@given(_pairs, st.randoms(use_true_random=False))
def test_canonical_query_ignores_order_and_is_idempotent(
    pairs: list[tuple[str, str]], rng: random.Random
) -> None:
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    canonical = canonical_query(_encode_pairs(pairs))
    assert canonical_query(_encode_pairs(shuffled)) == canonical
    assert canonical_query(canonical) == canonical


# --- target and string to sign --------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/v1/shows?limit=50", ("/v1/shows", "limit=50")),
        ("/v1/orders", ("/v1/orders", "")),
        ("/v1/orders?", ("/v1/orders", "")),
        ("/v1/x?a=1?b=2", ("/v1/x", "a=1?b=2")),
        ("", ("", "")),
        ("?a=1", ("", "a=1")),
    ],
)
def test_split_target(target: str, expected: tuple[str, str]) -> None:
    assert split_target(target) == expected


def test_string_to_sign_layout() -> None:
    message = string_to_sign("get", "", "b=2&a=1", "k1", "17", "n" * 16, b"")
    assert message == "\n".join(
        [SIGNATURE_VERSION, "GET", "/", "a=1&b=2", "k1", "17", "n" * 16, EMPTY_SHA256]
    )
    assert not message.endswith("\n")


def test_string_to_sign_keeps_path_encoding() -> None:
    message = string_to_sign("GET", "/v1/shows/a%2Fb", "", "k1", "17", "n" * 16, b"")
    assert message.split("\n")[2] == "/v1/shows/a%2Fb"


# --- headers --------------------------------------------------------------------------------


def test_parse_signed_headers() -> None:
    assert parse_signed_headers(_good_headers()) == SignedHeaders(
        key_id="dk_hmac_demo", timestamp=1795000000, nonce=GOOD_NONCE, signature=GOOD_SIGNATURE
    )


@pytest.mark.parametrize("fold", [str.lower, str.upper])
def test_parse_signed_headers_ignores_case(fold: Callable[[str], str]) -> None:
    folded = {fold(name): value for name, value in _good_headers().items()}
    folded["Content-Type"] = "application/json"
    assert parse_signed_headers(folded) == parse_signed_headers(_good_headers())


@pytest.mark.parametrize("header", [HEADER_KEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE])
@pytest.mark.parametrize("blank", [None, ""])
def test_parse_signed_headers_missing(header: str, blank: str | None) -> None:
    headers = _good_headers()
    if blank is None:
        del headers[header]
    else:
        headers[header] = blank
    with pytest.raises(SignatureError) as caught:
        parse_signed_headers(headers)
    assert caught.value.code == "signature_missing"
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (HEADER_KEY, "dk demo"),
        (HEADER_KEY, "dk.demo"),
        (HEADER_KEY, "dk_é"),
        (HEADER_KEY, "k" * 129),
        (HEADER_KEY, "dk_demo\n"),
        (HEADER_TIMESTAMP, "-1795000000"),
        (HEADER_TIMESTAMP, "+1795000000"),
        (HEADER_TIMESTAMP, "1795000000.5"),
        (HEADER_TIMESTAMP, "1.795e9"),
        (HEADER_TIMESTAMP, " 1795000000"),
        (HEADER_TIMESTAMP, "1795000000\n"),
        (HEADER_TIMESTAMP, "1_795_000_000"),
        (HEADER_TIMESTAMP, "١٧٩٥"),  # Arabic-Indic digits: int() accepts them, we do not
        (HEADER_TIMESTAMP, "1" * 13),
        (HEADER_TIMESTAMP, "01795000000"),
        (HEADER_TIMESTAMP, "0x6afe2d80"),
        (HEADER_NONCE, "n" * 15),
        (HEADER_NONCE, "n" * 65),
        (HEADER_NONCE, "n0nce+0000+abcdefgh"),
        (HEADER_NONCE, "n0nce=0000=abcdefgh"),
        (HEADER_NONCE, "n0nce 0000 abcdefgh"),
        (HEADER_SIGNATURE, "AAAA!AAA"),
        (HEADER_SIGNATURE, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),  # padding dropped
        (HEADER_SIGNATURE, "-_-_AAAA"),  # URL-safe alphabet
        (HEADER_SIGNATURE, "QR=="),  # non-zero padding bits: decodes, but not canonical
        (HEADER_SIGNATURE, "AAAA AAAA"),
        (HEADER_SIGNATURE, "AAAA\nAAAA"),
        (HEADER_SIGNATURE, "é"),
    ],
)
def test_parse_signed_headers_malformed(header: str, value: str) -> None:
    headers = _good_headers()
    headers[header] = value
    with pytest.raises(SignatureError) as caught:
        parse_signed_headers(headers)
    assert caught.value.code == "signature_malformed"
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        (HEADER_KEY, "k", "k"),
        (HEADER_KEY, "K" * 128, "K" * 128),
        (HEADER_TIMESTAMP, "0", 0),
        (HEADER_TIMESTAMP, "9" * 12, 999_999_999_999),
        (HEADER_NONCE, "a" * 16, "a" * 16),
        (HEADER_NONCE, "Z-_9" * 16, "Z-_9" * 16),
        (HEADER_SIGNATURE, "QQ==", "QQ=="),
    ],
)
def test_parse_signed_headers_limits_accepted(header: str, value: str, expected: object) -> None:
    headers = _good_headers()
    headers[header] = value
    parsed = parse_signed_headers(headers)
    field = {
        HEADER_KEY: parsed.key_id,
        HEADER_TIMESTAMP: parsed.timestamp,
        HEADER_NONCE: parsed.nonce,
        HEADER_SIGNATURE: parsed.signature,
    }[header]
    assert field == expected


def test_parse_signed_headers_refuses_a_repeated_header() -> None:
    headers = _good_headers()
    headers[HEADER_NONCE.lower()] = "another-nonce-0001"
    with pytest.raises(SignatureError) as caught:
        parse_signed_headers(headers)
    assert caught.value.code == "signature_malformed"


# --- timestamp window -----------------------------------------------------------------------


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_check_timestamp_inside_window(skew: int) -> None:
    check_timestamp(1_795_000_000 + skew, now=1_795_000_000.0)


@pytest.mark.parametrize("skew", [-301, 301, -1_795_000_000])
def test_check_timestamp_outside_window(skew: int) -> None:
    with pytest.raises(SignatureError) as caught:
        check_timestamp(1_795_000_000 + skew, now=1_795_000_000.0)
    assert caught.value.code == "timestamp_out_of_window"
    assert caught.value.status == 401


def test_check_timestamp_uses_fractional_now() -> None:
    check_timestamp(1_795_000_000, now=1_795_000_300.0)
    with pytest.raises(SignatureError):
        check_timestamp(1_795_000_000, now=1_795_000_300.5)


def test_check_timestamp_custom_window() -> None:
    assert DEFAULT_WINDOW_SECONDS == 300
    check_timestamp(100, now=130.0, window_seconds=30)
    with pytest.raises(SignatureError):
        check_timestamp(100, now=131.0, window_seconds=30)


# --- verification never raises --------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
@pytest.mark.parametrize(
    "signature",
    [
        "",
        "not base64!",
        "QR==",
        "AAAA",
        base64.b64encode(bytes(63)).decode("ascii"),
        base64.b64encode(bytes(65)).decode("ascii"),
        "é",
        "-_-_",
    ],
)
def test_verify_signature_garbage_is_false(key_type: KeyType, signature: str) -> None:
    assert not verify_signature(key_type, _material(key_type), "message", signature)


@pytest.mark.parametrize("material", [b"", bytes(31), bytes(33), b"\xff" * 32])
def test_verify_signature_bad_public_key_is_false(material: bytes) -> None:
    signature = sign_ed25519(PRIVATE_KEY, "message")
    assert not verify_signature(KeyType.ED25519, material, "message", signature)


def test_verify_signature_rejects_non_canonical_encoding_of_a_valid_signature() -> None:
    # Flip the unused low bits of the last base64 character: same bytes, different spelling.
    signature = sign_hmac(SECRET, "message")
    assert signature.endswith("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = signature[-2]
    sibling = alphabet[alphabet.index(last) ^ 1]
    mangled = signature[:-2] + sibling + "="
    assert base64.b64decode(mangled) == base64.b64decode(signature)
    assert verify_signature(KeyType.HMAC, SECRET.encode(), "message", signature)
    assert not verify_signature(KeyType.HMAC, SECRET.encode(), "message", mangled)


# --- the rest of the API --------------------------------------------------------------------


def test_signature_error_fields_and_pickling() -> None:
    error = SignatureError("account_suspended", "account is suspended", status=403)
    assert (error.code, error.message, error.status) == (
        "account_suspended",
        "account is suspended",
        403,
    )
    assert str(error) == "account_suspended: account is suspended"
    assert SignatureError("signature_invalid", "no").status == 401
    # Errors cross process boundaries (Ray), so they must survive pickling intact.
    revived = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (revived.code, revived.message, revived.status) == (error.code, error.message, 403)


def test_new_nonce_is_well_formed_and_fresh() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    for nonce in nonces:
        headers = _good_headers()
        headers[HEADER_NONCE] = nonce
        assert parse_signed_headers(headers).nonce == nonce


def test_load_seed_rejects_malformed() -> None:
    for seed in ["", "AAAA", base64.b64encode(bytes(31)).decode(), "not base64"]:
        with pytest.raises(ValueError, match="32 bytes"):
            load_ed25519_private_key_from_seed_b64(seed)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"key_type": KeyType.HMAC, "secret": None}, "secret"),
        ({"key_type": KeyType.ED25519, "private_key": None}, "private key"),
        ({"nonce": "short"}, "nonce"),
        ({"key_id": "bad id"}, "key_id"),
        ({"timestamp": -1}, "timestamp"),
    ],
)
def test_sign_request_refuses_what_the_server_would(changes: dict[str, object], match: str) -> None:
    kwargs: dict[str, object] = {
        "method": "GET",
        "target": "/v1/shows",
        "body": b"",
        "key_id": "dk_demo",
        "key_type": KeyType.HMAC,
        "secret": SECRET,
        "private_key": PRIVATE_KEY,
        "timestamp": 1_795_000_000,
        "nonce": GOOD_NONCE,
    }
    kwargs.update(changes)
    with pytest.raises(ValueError, match=match):
        sign_request(**kwargs)  # type: ignore[arg-type]


# --- property: signatures bind every field --------------------------------------------------


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: str
    body: bytes
    key_id: str
    timestamp: int
    nonce: str


@dataclass(frozen=True)
class _Key:
    key_type: KeyType
    secret: str | None
    private_key: Ed25519PrivateKey | None
    material: bytes


_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_methods = st.sampled_from(_METHODS)
_paths = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/%",
    max_size=24,
).map(lambda tail: "/" + tail)
_queries = _pairs.map(_encode_pairs)
_key_ids = st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True)
_nonces = st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True)
_timestamps = st.integers(min_value=0, max_value=10**12 - 1)
_requests = st.builds(
    _Request,
    method=_methods,
    path=_paths,
    query=_queries,
    body=st.binary(max_size=64),
    key_id=_key_ids,
    timestamp=_timestamps,
    nonce=_nonces,
)


def _hmac_key(secret: str) -> _Key:
    return _Key(KeyType.HMAC, secret, None, secret.encode("utf-8"))


def _ed25519_key(seed: bytes) -> _Key:
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    public = base64.b64decode(ed25519_public_key_b64(private_key))
    return _Key(KeyType.ED25519, None, private_key, public)


_keys = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40).map(_hmac_key),
    st.binary(min_size=32, max_size=32).map(_ed25519_key),
)


def _sign(req: _Request, key: _Key) -> dict[str, str]:
    target = f"{req.path}?{req.query}" if req.query else req.path
    return sign_request(
        method=req.method,
        target=target,
        body=req.body,
        key_id=req.key_id,
        key_type=key.key_type,
        secret=key.secret,
        private_key=key.private_key,
        timestamp=req.timestamp,
        nonce=req.nonce,
    )


def _server_accepts(req: _Request, headers: dict[str, str], key: _Key) -> bool:
    """What the server does: read the headers, rebuild the string from the request, verify."""
    signed = parse_signed_headers(headers)
    message = string_to_sign(
        req.method,
        req.path,
        req.query,
        signed.key_id,
        str(signed.timestamp),
        signed.nonce,
        req.body,
    )
    return verify_signature(key.key_type, key.material, message, signed.signature)


@given(_requests, _keys)
def test_signed_request_verifies(req: _Request, key: _Key) -> None:
    assert _server_accepts(req, _sign(req, key), key)


Tamper = Callable[[st.DataObject, _Request, dict[str, str]], tuple[_Request, dict[str, str]]]


def _tamper_method(
    data: st.DataObject, req: _Request, headers: dict[str, str]
) -> tuple[_Request, dict[str, str]]:
    method = data.draw(_methods.filter(lambda m: m != req.method))
    return replace(req, method=method), headers


def _tamper_path(
    data: st.DataObject, req: _Request, headers: dict[str, str]
) -> tuple[_Request, dict[str, str]]:
    path = data.draw(_paths.filter(lambda p: p != req.path))
    return replace(req, path=path), headers


def _tamper_query(
    data: st.DataObject, req: _Request, headers: dict[str, str]
) -> tuple[_Request, dict[str, str]]:
    # Reordering pairs is not a change (by design), so require a different canonical form.
    original = canonical_query(req.query)
    query = data.draw(_queries.filter(lambda q: canonical_query(q) != original))
    return replace(req, query=query), headers


def _tamper_body(
    data: st.DataObject, req: _Request, headers: dict[str, str]
) -> tuple[_Request, dict[str, str]]:
    body = bytearray(req.body)
    if body:
        index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
        body[index] ^= data.draw(st.integers(min_value=1, max_value=255))
    else:
        body.append(data.draw(st.integers(min_value=0, max_value=255)))
    return replace(req, body=bytes(body)), headers


def _tamper_header(header: str, values: st.SearchStrategy[str]) -> Tamper:
    def tamper(
        data: st.DataObject, req: _Request, headers: dict[str, str]
    ) -> tuple[_Request, dict[str, str]]:
        value = data.draw(values.filter(lambda v: v != headers[header]))
        return req, {**headers, header: value}

    return tamper


_TAMPERS: dict[str, Tamper] = {
    "method": _tamper_method,
    "path": _tamper_path,
    "query": _tamper_query,
    "body": _tamper_body,
    "key_id": _tamper_header(HEADER_KEY, _key_ids),
    "timestamp": _tamper_header(HEADER_TIMESTAMP, _timestamps.map(str)),
    "nonce": _tamper_header(HEADER_NONCE, _nonces),
}


@pytest.mark.parametrize("field", list(_TAMPERS))
@given(req=_requests, key=_keys, data=st.data())
def test_any_single_change_breaks_the_signature(
    field: str, req: _Request, key: _Key, data: st.DataObject
) -> None:
    headers = _sign(req, key)
    tampered_request, tampered_headers = _TAMPERS[field](data, req, headers)
    assert not _server_accepts(tampered_request, tampered_headers, key)


def test_verify_signature_unknown_key_type_is_false() -> None:
    signature = sign_hmac(SECRET, "message")
    assert not verify_signature("rsa", SECRET.encode(), "message", signature)  # type: ignore[arg-type]
