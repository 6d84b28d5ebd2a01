"""SPEC 9, token syntax: segments, base64, JSON, UTF-8, nesting and size.

Every malformed token here carries a valid signature over exactly the bytes
sent, so a lenient parser (one that strips padding, maps ``+/`` to ``-_``,
skips whitespace, ignores unused bits or keeps the last duplicate name) would
accept it. Only the strict syntax checks reject it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.conftest import SECRET, AuthActions, assert_error
from tests.security import NO_LIMITS, Sender, b64, dump, forge, parts, sender, sign

Env = Callable[..., tuple[Sender, str]]
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture(params=["/me", "/auth/validate-token"])
def env(request: pytest.FixtureRequest, make_app: Callable[..., Flask]) -> Env:
    """``env(**config)``: an app, a sender to the endpoint, and a valid token."""

    def build(**config: Any) -> tuple[Sender, str]:
        app = make_app(**NO_LIMITS, **config)
        token = AuthActions(app.test_client()).tokens()["access_token"]
        return sender(app.test_client(), request.param), token

    return build


def signed(head: str, payload: str) -> str:
    """``head.payload`` (as given) with a valid HS256 signature."""
    signing_input = f"{head}.{payload}"
    return f"{signing_input}.{b64(sign(signing_input, 'HS256', SECRET))}"


def _with_filler(claims: dict[str, Any], ok: Callable[[str], bool]) -> dict[str, Any]:
    """``claims`` plus a filler claim chosen so that ``ok(payload_b64)`` holds."""
    for n in range(300):
        candidate = {**claims, "pad": "?~" * (n // 3 + 1) + "x" * (n % 3)}
        if ok(b64(dump(candidate))):
            return candidate
    raise AssertionError("no filler found")


@pytest.mark.parametrize(
    "shape",
    ["{h}.{p}", "{h}.{p}.{s}.{s}", "{h}.{p}.{s}.", "{h}.{p}.{s}.{p}.{s}", "{h}", ""],
)
def test_wrong_segment_count(env: Env, shape: str) -> None:
    send, token = env()
    h, p, s = token.split(".")
    assert_error(send(shape.format(h=h, p=p, s=s) or "."), 401, "invalid_token")


@pytest.mark.parametrize("shape", [".{p}.{s}", "{h}..{s}", "{h}.{p}.", "..", "...", "{h}.."])
def test_empty_segments(env: Env, shape: str) -> None:
    send, token = env()
    h, p, s = token.split(".")
    assert_error(send(shape.format(h=h, p=p, s=s)), 401, "invalid_token")


def test_base64_padding(env: Env) -> None:
    send, token = env()
    header, claims = parts(token)
    claims = _with_filler(claims, lambda seg: len(seg) % 4 == 2)
    h, p = b64(dump(header)), b64(dump(claims))
    assert send(signed(h, p)).status_code == 200
    assert_error(send(signed(h, p + "==")), 401, "invalid_token")
    assert_error(send(signed(h + "=" * (-len(h) % 4 or 4), p)), 401, "invalid_token")
    good = signed(h, p)
    assert_error(send(good + "=" * (-len(good.split(".")[2]) % 4 or 4)), 401, "invalid_token")


def test_standard_base64_alphabet(env: Env) -> None:
    send, token = env()
    header, claims = parts(token)
    claims = _with_filler(claims, lambda seg: "-" in seg and "_" in seg)
    h = b64(dump(header))
    standard = base64.b64encode(dump(claims)).decode().rstrip("=")
    assert "+" in standard
    assert "/" in standard
    assert_error(send(signed(h, standard)), 401, "invalid_token")
    # The same signature bytes written with "+/" instead of "-_".
    for n in range(1000):  # pragma: no branch
        good = forge(header, {**claims, "jti": f"jti-{n}"})
        if "-" in good.split(".")[2] or "_" in good.split(".")[2]:
            break
    assert send(good).status_code == 200
    head, payload, sig = good.split(".")
    plus_slash = sig.replace("-", "+").replace("_", "/")
    assert_error(send(f"{head}.{payload}.{plus_slash}"), 401, "invalid_token")


@pytest.mark.parametrize("space", [" ", "\t", "  "])
def test_whitespace_inside_segments(env: Env, space: str) -> None:
    send, token = env()
    h, p, s = token.split(".")
    assert_error(send(signed(h[:5] + space + h[5:], p)), 401, "invalid_token")
    assert_error(send(signed(h, p[:7] + space + p[7:])), 401, "invalid_token")
    assert_error(send(f"{h}.{p}.{s[:9]}{space}{s[9:]}"), 401, "invalid_token")
    assert_error(send(f"{h} .{p}.{s}"), 401, "invalid_token")


def _flip_unused_bit(segment: str) -> str:
    """The same bytes, with a non-zero unused bit in the last character."""
    assert len(segment) % 4 in (2, 3)
    last = ALPHABET.index(segment[-1])
    return segment[:-1] + ALPHABET[last ^ 1]


def test_non_canonical_base64_unused_bits(env: Env) -> None:
    send, token = env()
    h, p, s = token.split(".")
    flipped = _flip_unused_bit(s)
    assert base64.urlsafe_b64decode(flipped + "=") == base64.urlsafe_b64decode(s + "=")
    assert_error(send(f"{h}.{p}.{flipped}"), 401, "invalid_token")
    _header, claims = parts(token)
    claims = _with_filler(claims, lambda seg: len(seg) % 4 in (2, 3))
    p = b64(dump(claims))
    assert send(signed(h, p)).status_code == 200
    assert_error(send(signed(h, _flip_unused_bit(p))), 401, "invalid_token")


@pytest.mark.parametrize("raw", [b"[]", b'"at+jwt"', b"42", b"null", b"true", b"", b"{", b"{}x"])
def test_header_not_a_json_object(env: Env, raw: bytes) -> None:
    send, token = env()
    _, p, _ = token.split(".")
    assert_error(send(signed(b64(raw), p)), 401, "invalid_token")


@pytest.mark.parametrize(
    "raw", [b"[]", b'"alice"', b"42", b"null", b"[{}]", b"{", b"{}x", b"{} {}", b" ", b"{}\x00"]
)
def test_payload_not_a_json_object(env: Env, raw: bytes) -> None:
    send, token = env()
    h, _, _ = token.split(".")
    assert_error(send(signed(h, b64(raw))), 401, "invalid_token")


def test_payload_after_a_whole_object(env: Env) -> None:
    # The claims are parsed by the scanner alone when they fill the payload;
    # anything after the object must still be refused by the whole decoder.
    send, token = env()
    header, claims = parts(token)
    h, body = b64(dump(header)), dump(claims)
    for tail in (b"x", b",", b"}", b"{}", b" 1", b"\n{", b"\x00"):
        assert_error(send(signed(h, b64(body + tail))), 401, "invalid_token")


@pytest.mark.parametrize("space", [b" ", b"\n", b"\t\r\n "])
def test_payload_json_whitespace_is_valid_json(env: Env, space: bytes) -> None:
    # RFC 8259 allows whitespace around the object: such a token, signed with
    # the key, is valid JSON from another writer and is accepted.
    send, token = env()
    header, claims = parts(token)
    h, body = b64(dump(header)), dump(claims)
    assert send(signed(h, b64(space + body + space))).status_code == 200


def test_invalid_utf8(env: Env) -> None:
    send, token = env()
    header, claims = parts(token)
    h, p = b64(dump(header)), b64(dump(claims))
    for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82"):
        raw_claims = dump(claims).replace(b'"alice"', b'"ali' + bad + b'ce"')
        assert_error(send(signed(h, b64(raw_claims))), 401, "invalid_token")
        raw_header = dump(header).replace(b'"at+jwt"', b'"at+jwt' + bad + b'"')
        assert_error(send(signed(b64(raw_header), p)), 401, "invalid_token")
    assert_error(send(signed(h, b64(b"\xef\xbb\xbf" + dump(claims)))), 401, "invalid_token")


def test_duplicate_names(env: Env) -> None:
    send, token = env()
    header, claims = parts(token)
    h, body = b64(dump(header)), dump(claims)
    assert_error(send(signed(h, b64(body[:-1] + b',"sub":"bob"}'))), 401, "invalid_token")
    past = b'{"exp":1,' + body[1:]
    assert_error(send(signed(h, b64(past))), 401, "invalid_token")
    nested = body[:-1] + b',"x":{"a":1,"a":2}}'
    assert_error(send(signed(h, b64(nested))), 401, "invalid_token")
    raw_header = b'{"alg":"none",' + dump(header)[1:]
    assert_error(send(signed(b64(raw_header), b64(body))), 401, "invalid_token")


@pytest.mark.parametrize("depth", [64, 1_000, 2_500])
def test_deeply_nested_json(env: Env, depth: int) -> None:
    send, token = env()
    header, claims = parts(token)
    nested = b"[" * depth + b"]" * depth
    raw = dump(claims)[:-1] + b',"deep":' + nested + b"}"
    forged = signed(b64(dump(header)), b64(raw))
    assert len(forged) <= 8192
    assert_error(send(forged), 401, "invalid_token")
    raw_header = dump(header)[:-1] + b',"deep":' + nested + b"}"
    assert_error(send(signed(b64(raw_header), b64(dump(claims)))), 401, "invalid_token")


def test_modest_nesting_is_fine(env: Env) -> None:
    send, token = env()
    header, claims = parts(token)
    assert send(forge(header, {**claims, "roles": [[{"a": [1, 2]}]]})).status_code == 200


def test_oversized_token(env: Env) -> None:
    send, token = env()
    header, claims = parts(token)
    big = forge(header, {**claims, "blob": "A" * 9000})
    assert_error(send(big), 401, "invalid_token")
    send_big_cap, _ = env(COCART_JWT_MAX_TOKEN_BYTES=65536)
    assert send_big_cap(big).status_code == 200
    huge_header = forge({**header, "x": "A" * 20_000}, claims)
    assert_error(send(huge_header), 401, "invalid_token")
    assert_error(send("A" * 200_000), 401, "invalid_token")
    assert_error(send(".".join(["A" * 100_000] * 3)), 401, "invalid_token")


def test_size_cap_boundary(env: Env) -> None:
    _, token = env()
    send_at, _ = env(COCART_JWT_MAX_TOKEN_BYTES=len(token))
    send_below, _ = env(COCART_JWT_MAX_TOKEN_BYTES=len(token) - 1)
    assert send_at(token).status_code == 200
    assert_error(send_below(token), 401, "invalid_token")
