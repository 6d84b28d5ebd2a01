"""SPEC 9, claims: time edges and types, required claims, ``iss``/``aud`` and ``typ``.

The clock is frozen with time-machine; forged tokens are signed with the
app's secret so only the claim check under test can refuse them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from flask import Flask

from tests.conftest import AuthActions, assert_error
from tests.security import DROP, NO_LIMITS, Sender, b64, claims_at, dump, forge, parts, sender

Env = Callable[..., tuple[Sender, dict[str, Any]]]
NOW = 1_900_000_000
ISSUER = "https://issuer.example"
AUDIENCE = "https://api.example"


@pytest.fixture
def frozen(time_machine: time_machine.TimeMachineFixture) -> time_machine.TimeMachineFixture:
    time_machine.move_to(datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc), tick=False)
    return time_machine


@pytest.fixture(params=["/me", "/auth/validate-token"])
def env(
    request: pytest.FixtureRequest,
    make_app: Callable[..., Flask],
    frozen: time_machine.TimeMachineFixture,
) -> Env:
    """``env(**config)``: a sender to the endpoint and a header to sign with."""

    def build(**config: Any) -> tuple[Sender, dict[str, Any]]:
        app = make_app(**NO_LIMITS, **config)
        token = AuthActions(app.test_client()).tokens()["access_token"]
        header, _ = parts(token)
        return sender(app.test_client(), request.param), header

    return build


def test_forged_baseline_is_accepted(env: Env) -> None:
    send, header = env()
    response = send(forge(header, claims_at(NOW)))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("exp", "leeway", "expected"),
    [
        (NOW + 1, 0, None),
        (NOW, 0, "token_expired"),
        (NOW - 1, 0, "token_expired"),
        (0, 0, "token_expired"),
        (-1, 0, "token_expired"),
        (NOW - 1, 10, None),
        (NOW - 9, 10, None),
        (NOW - 10, 10, "token_expired"),
        (NOW - 11, 10, "token_expired"),
        (NOW + 0.5, 0, None),
    ],
)
def test_exp_edges(env: Env, exp: float, leeway: int, expected: str | None) -> None:
    send, header = env(COCART_JWT_LEEWAY=leeway)
    response = send(forge(header, claims_at(NOW - 100, exp=exp)))
    if expected is None:
        assert response.status_code == 200
    else:
        assert_error(response, 401, expected)


@pytest.mark.parametrize("name", ["nbf", "iat"])
@pytest.mark.parametrize(
    ("offset", "leeway", "ok"),
    [(0, 0, True), (1, 0, False), (0.5, 0, False), (5, 10, True), (10, 10, True), (11, 10, False)],
)
def test_not_yet_valid(env: Env, name: str, offset: float, leeway: int, ok: bool) -> None:
    send, header = env(COCART_JWT_LEEWAY=leeway)
    claims = claims_at(NOW, **{name: NOW + offset})
    if name == "iat":
        claims["nbf"] = NOW
    response = send(forge(header, claims))
    if ok:
        assert response.status_code == 200
    else:
        assert_error(response, 401, "invalid_token")


def test_issued_token_expires_after_its_lifetime(
    make_app: Callable[..., Flask], frozen: time_machine.TimeMachineFixture
) -> None:
    app = make_app(**NO_LIMITS)
    auth = AuthActions(app.test_client())
    token = auth.tokens()["access_token"]
    assert parts(token)[1]["exp"] == NOW + 15 * 60
    frozen.shift(15 * 60 - 1)
    assert auth.get("/me", token).status_code == 200
    frozen.shift(1)
    assert_error(auth.get("/me", token), 401, "token_expired")
    assert_error(auth.post("/auth/validate-token", token), 401, "token_expired")


BAD_DATES: list[Any] = [str(NOW + 60), "", True, False, None, [NOW + 60], {"t": NOW + 60}]


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", BAD_DATES, ids=repr)
def test_ill_typed_dates(env: Env, name: str, value: Any) -> None:
    send, header = env()
    assert_error(send(forge(header, claims_at(NOW, **{name: value}))), 401, "invalid_token")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
def test_non_finite_dates(env: Env, name: str, literal: bytes) -> None:
    send, header = env()
    raw = dump(claims_at(NOW, **{name: 123456})).replace(b"123456", literal)
    assert_error(send(forge(header, b64(raw))), 401, "invalid_token")


def test_float_dates_are_fine(env: Env) -> None:
    send, header = env()
    claims = claims_at(NOW, iat=NOW - 0.5, nbf=NOW - 0.25, exp=NOW + 60.5)
    assert send(forge(header, claims)).status_code == 200


@pytest.mark.parametrize("name", ["sub", "jti", "sid", "exp", "iat"])
def test_missing_required_claim(env: Env, name: str) -> None:
    send, header = env()
    assert_error(send(forge(header, claims_at(NOW, **{name: DROP}))), 401, "invalid_token")


def test_nbf_is_optional(env: Env) -> None:
    send, header = env()
    assert send(forge(header, claims_at(NOW, nbf=DROP))).status_code == 200


@pytest.mark.parametrize("name", ["sub", "jti", "sid"])
@pytest.mark.parametrize("value", [1, "", None, ["alice"], {"id": "alice"}, True, "x" * 256])
def test_ill_typed_text_claims(env: Env, name: str, value: Any) -> None:
    send, header = env()
    assert_error(send(forge(header, claims_at(NOW, **{name: value}))), 401, "invalid_token")


@pytest.mark.parametrize("value", ["true", 1, 0, None, []])
def test_ill_typed_fresh(env: Env, value: Any) -> None:
    send, header = env()
    assert_error(send(forge(header, claims_at(NOW, fresh=value))), 401, "invalid_token")


WRONG_ISSUERS: list[Any] = [
    "https://issuer.example.evil",
    "https://issuer.example/",
    "https://issuer.exampl",
    "https://ISSUER.example",
    "http://issuer.example",
    "",
    None,
    [ISSUER],
    DROP,
]


@pytest.mark.parametrize("iss", WRONG_ISSUERS, ids=repr)
def test_wrong_or_prefixed_issuer(env: Env, iss: Any) -> None:
    send, header = env(COCART_JWT_ISSUER=ISSUER)
    assert send(forge(header, claims_at(NOW, iss=ISSUER))).status_code == 200
    assert_error(send(forge(header, claims_at(NOW, iss=iss))), 401, "invalid_token")


def test_issuer_when_none_is_configured(env: Env) -> None:
    send, header = env()
    assert_error(send(forge(header, claims_at(NOW, iss=ISSUER))), 401, "invalid_token")


WRONG_AUDIENCES: list[Any] = [
    "https://other.example",
    "https://api.example.evil",
    "https://api.exampl",
    "api.example",
    "https://api.example/",
    ["https://other.example"],
    [],
    [["https://api.example"]],
    5,
    None,
    {"aud": AUDIENCE},
    DROP,
]


@pytest.mark.parametrize("aud", WRONG_AUDIENCES, ids=repr)
def test_wrong_or_prefixed_audience(env: Env, aud: Any) -> None:
    send, header = env(COCART_JWT_AUDIENCE=AUDIENCE)
    assert send(forge(header, claims_at(NOW, aud=AUDIENCE))).status_code == 200
    assert_error(send(forge(header, claims_at(NOW, aud=aud))), 401, "invalid_token")


def test_audience_lists(env: Env) -> None:
    send, header = env(COCART_JWT_AUDIENCE=["https://a.example", AUDIENCE])
    for aud in (AUDIENCE, ["https://other.example", AUDIENCE], ["https://a.example"]):
        assert send(forge(header, claims_at(NOW, aud=aud))).status_code == 200
    mixed = [5, None, "https://other.example"]
    assert_error(send(forge(header, claims_at(NOW, aud=mixed))), 401, "invalid_token")


@pytest.mark.parametrize("aud", [AUDIENCE, [AUDIENCE], None])
def test_audience_when_none_is_configured(env: Env, aud: Any) -> None:
    send, header = env()
    assert_error(send(forge(header, claims_at(NOW, aud=aud))), 401, "invalid_token")


@pytest.mark.parametrize(
    "typ", ["JWT", "jwt", "at+jwt ", "rt+jwt", "AT+JWT", "", 1, None, ["at+jwt"], DROP], ids=repr
)
def test_typ_must_be_at_jwt(env: Env, typ: Any) -> None:
    send, header = env()
    forged = dict(header)
    if typ is DROP:
        del forged["typ"]
    else:
        forged["typ"] = typ
    assert_error(send(forge(forged, claims_at(NOW))), 401, "invalid_token")


def test_expired_is_only_said_of_otherwise_valid_tokens(env: Env) -> None:
    send, header = env(COCART_JWT_AUDIENCE=AUDIENCE)
    expired = claims_at(NOW - 3600, aud=AUDIENCE)
    assert_error(send(forge(header, expired)), 401, "token_expired")
    head, payload, signature = forge(header, expired).split(".")
    assert_error(send(f"{head}.{payload}.{signature[::-1]}"), 401, "invalid_token")
    assert_error(send(forge(header, {**expired, "aud": "x"})), 401, "invalid_token")
    assert_error(send(forge({**header, "typ": "JWT"}, expired)), 401, "invalid_token")
    assert_error(send(forge(header, {**expired, "sub": 5})), 401, "invalid_token")
    assert_error(send(forge(header, expired, key="k" * 64)), 401, "invalid_token")
